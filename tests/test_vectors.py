"""Sentence vectors stored at ingest: a content-addressed cache that answering reads first."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.config import Settings
from rag.embed import Vectors, create_embedder
from rag.index import ArticleChunks, Indexer
from rag.schema import Article
from rag.store import Metadata, StoredChunk
from rag.stores.chroma import ChromaStore
from rag.vectors import StoredEmbedder, VectorFile, pending, text_key
from tests.conftest import HashEmbedder


class CountingEmbedder(HashEmbedder):
    """The fake embedder, recording every text it is asked to embed."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.seen.extend(texts)
        return super().embed(texts)


def test_vectors_round_trip_as_float16_and_go_with_their_article(tmp_path: Path) -> None:
    file = VectorFile(tmp_path / "vectors.sqlite")
    vectors = HashEmbedder().embed(["one text", "another text"])
    keys = [text_key("m", "one text"), text_key("m", "another text")]
    file.add("a1", keys, vectors)
    got = file.get([*keys, text_key("m", "never stored")])
    assert set(got) == set(keys)
    for key, vector in zip(keys, vectors, strict=True):
        assert np.allclose(got[key], vector, atol=1e-3)
    file.forget(["a2"])
    assert file.count() == 2
    file.forget(["a1"])
    assert file.count() == 0


def test_keys_differ_by_model_and_by_text() -> None:
    assert text_key("m1", "text") != text_key("m2", "text")
    assert text_key("m1", "text") != text_key("m1", "text ")


def test_an_article_is_prepared_only_in_the_version_recorded(tmp_path: Path) -> None:
    file = VectorFile(tmp_path / "vectors.sqlite")
    file.mark("a1", "hash-1")
    assert pending(file, {"a1": "hash-1", "a2": "hash-2"}) == ["a2"]
    assert pending(file, {"a1": "hash-changed"}) == ["a1"]
    file.forget(["a1"])
    assert pending(file, {"a1": "hash-1"}) == ["a1"]


def test_labels_are_stored_per_sentence(tmp_path: Path) -> None:
    file = VectorFile(tmp_path / "vectors.sqlite")
    key, empty = text_key("ner", "Kallas spoke on Monday."), text_key("ner", "It rained.")
    file.add_labels("a1", {key: frozenset({"PERSON", "DATE"}), empty: frozenset()})
    assert file.get_labels([key, empty]) == {key: {"PERSON", "DATE"}, empty: frozenset()}
    file.forget(["a1"])
    assert file.get_labels([key]) == {}


def test_a_damaged_file_is_moved_aside_and_started_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "vectors.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="rag.vectors"):
        file = VectorFile(path)
    assert file.count() == 0
    assert "unreadable" in caplog.text
    assert list(tmp_path.glob("vectors.sqlite.damaged-*"))


def _rows(file: VectorFile, keys: Sequence[bytes]) -> dict[bytes, bytes]:
    return {k: v.tobytes() for k, v in file.get(keys).items()}


def test_storing_articles_together_keeps_what_storing_them_one_by_one_keeps(
    tmp_path: Path,
) -> None:
    # The same vectors, each filed under the first article that has it (so forgetting that
    # article takes it away in both), from a single embed call.
    articles = [
        ("a1", ["alpha beta", "shared text", "alpha beta"]),
        ("a2", ["shared text", "gamma delta"]),
        ("a3", ["alpha beta"]),
    ]
    one = StoredEmbedder(HashEmbedder(), VectorFile(tmp_path / "one.sqlite"))
    assert [one.store(a, texts) for a, texts in articles] == [2, 1, 0]
    base = CountingEmbedder()
    together = StoredEmbedder(base, VectorFile(tmp_path / "together.sqlite"))
    assert together.store_many(articles) == 3
    assert base.seen == ["alpha beta", "shared text", "gamma delta"]
    keys = [text_key("fake/hash-64", t) for _, texts in articles for t in texts]
    assert _rows(together.file, keys) == _rows(one.file, keys)
    for stored in (one, together):
        stored.file.forget(["a1"])
    assert _rows(together.file, keys) == _rows(one.file, keys)
    assert together.file.count() == one.file.count() == 1  # only a2's own "gamma delta"
    assert together.store_many([("a4", ["gamma delta"])]) == 0
    assert together.store_many([]) == 0


def test_stored_embedder_embeds_only_what_is_not_stored(tmp_path: Path) -> None:
    base = CountingEmbedder()
    stored = StoredEmbedder(base, VectorFile(tmp_path / "vectors.sqlite"))
    assert stored.store("a1", ["alpha beta", "gamma delta", "alpha beta"]) == 2
    assert stored.store("a1", ["alpha beta"]) == 0
    base.seen.clear()
    vectors = stored.embed(["alpha beta", "a question", "gamma delta"])
    assert base.seen == ["a question"]
    assert np.allclose(
        vectors, HashEmbedder().embed(["alpha beta", "a question", "gamma delta"]), atol=1e-3
    )


class RecordingPrep:
    """An ArticlePrep that records what it was asked to do."""

    def __init__(self) -> None:
        self.done: dict[str, str] = {}
        self.prepared: list[str] = []
        self.forgotten: list[str] = []
        self.steps: list[list[str]] = []

    def pending(self, articles: Mapping[str, str]) -> list[str]:
        return [a for a, h in articles.items() if self.done.get(a) != h]

    def prepare(self, articles: Sequence[ArticleChunks]) -> int:
        self.steps.append([a.article_id for a in articles])
        for a in articles:
            assert a.chunks and all(c.metadata["article_id"] == a.article_id for c in a.chunks)
            assert [c.metadata["index"] for c in a.chunks] == list(range(len(a.chunks)))
            self.done[a.article_id] = a.content_hash
            self.prepared.append(a.article_id)
        return sum(len(a.chunks) for a in articles)

    def forget(self, article_ids: Sequence[str]) -> None:
        self.forgotten.extend(article_ids)
        for a in article_ids:
            self.done.pop(a, None)


def _article(
    article_id: str, text: str = "The bloc met Japan on Monday. It agreed on chips."
) -> Article:
    return Article(article_id=article_id, title=f"Title {article_id}", text=text)


def _indexer(settings: Settings, prep: RecordingPrep) -> Indexer:
    embedder = create_embedder(settings)
    return Indexer(settings, embedder, ChromaStore.open(settings, embedder.model_id), prep)


def test_ingest_prepares_new_and_changed_articles_once(settings: Settings) -> None:
    prep = RecordingPrep()
    _indexer(settings, prep).sync([_article("a1"), _article("a2")], progress=False)
    assert sorted(prep.prepared) == ["a1", "a2"]
    prep.prepared.clear()
    _indexer(settings, prep).sync([_article("a1"), _article("a2")], progress=False)
    assert prep.prepared == []  # unchanged: nothing to do
    _indexer(settings, prep).sync(
        [_article("a1", "A new text about Korea. It is short."), _article("a2")], progress=False
    )
    assert prep.forgotten[-1:] == ["a1"] and prep.prepared == ["a1"]


def test_articles_are_prepared_in_steps_of_several(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rag.index._PREP_BATCH", 2)
    prep = RecordingPrep()
    articles = [_article(f"a{i}") for i in range(5)]
    _indexer(settings, prep).sync(articles, progress=False)
    assert [len(step) for step in prep.steps] == [2, 2, 1]
    assert sorted(prep.prepared) == [a.article_id for a in articles]


class OneByOneJudge:
    """A preparing judge that takes one article at a time, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[str]]] = []

    def prepare(self, article_id: str, content_hash: str, candidates: Sequence[str]) -> int:
        self.calls.append((article_id, content_hash, list(candidates)))
        return len(candidates)


class ManyJudge(OneByOneJudge):
    """One that takes several at once (as ``FeatureJudge.prepare_many``)."""

    def prepare_many(self, articles: Sequence[tuple[str, str, Sequence[str]]]) -> int:
        self.steps = [a for a, _, _ in articles]
        return sum(self.prepare(*one) for one in articles)


def _chunk(article_id: str, index: int, text: str) -> StoredChunk:
    meta: Metadata = {"article_id": article_id, "title": f"Title {article_id}", "index": index}
    return StoredChunk(chunk_id=f"{article_id}-{index}", text=text, metadata=meta)


def test_judge_prep_hands_several_articles_to_a_judge_that_takes_them(tmp_path: Path) -> None:
    from rag.extract import JudgePrep

    articles = [
        ArticleChunks("a1", "h1", (_chunk("a1", 0, "The bloc met Japan on Monday. It agreed."),)),
        ArticleChunks("a2", "h2", (_chunk("a2", 0, "Ministers spoke about chips in Tokyo."),)),
    ]
    one, many = OneByOneJudge(), ManyJudge()
    assert JudgePrep(one).prepare(articles) == JudgePrep(many).prepare(articles)  # type: ignore[arg-type]
    assert many.steps == ["a1", "a2"]
    assert many.calls == one.calls and [c[:2] for c in one.calls] == [("a1", "h1"), ("a2", "h2")]
    assert all(c[2] for c in one.calls)


def test_an_interrupted_preparation_is_completed_by_the_next_ingest(settings: Settings) -> None:
    prep = RecordingPrep()
    _indexer(settings, prep).sync([_article("a1"), _article("a2")], progress=False)
    prep.done.pop("a2")  # as if the run had stopped before preparing a2
    prep.prepared.clear()
    _indexer(settings, prep).sync([_article("a1"), _article("a2")], progress=False)
    assert prep.prepared == ["a2"]


def test_removed_articles_are_forgotten(settings: Settings) -> None:
    prep = RecordingPrep()
    _indexer(settings, prep).sync([_article("a1"), _article("a2")], progress=False)
    prep.forgotten.clear()
    _indexer(settings, prep).sync([_article("a1")], prune=True, progress=False)
    assert prep.forgotten == ["a2"]
    _indexer(settings, prep).remove(["a1"])
    assert prep.forgotten == ["a2", "a1"]


class Killed(BaseException):
    """What SIGKILL does to a run: it stops, whatever it was doing."""


def _killed(*args: object, **kwargs: object) -> None:
    raise Killed


def test_articles_deleted_by_a_run_killed_before_preparing_are_forgotten(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by tests/test_ingest_sigkill.py: killed while saving the BM25 copy, after the
    # pruned chunks were gone, a run left them prepared, and no later run knew to forget them.
    prep = RecordingPrep()
    _indexer(settings, prep).sync([_article("a1"), _article("a2"), _article("a3")], progress=False)
    prep.forgotten.clear()
    with monkeypatch.context() as patched:
        patched.setattr("rag.index.open_lexical", _killed)
        with pytest.raises(Killed):
            _indexer(settings, prep).sync(
                [_article("a1"), _article("a2")], prune=True, progress=False
            )
        with pytest.raises(Killed):
            _indexer(settings, prep).remove(["a2"])
    _indexer(settings, prep).sync([_article("a1")], prune=True, progress=False)
    assert set(prep.done) == {"a1"}
    assert prep.forgotten == ["a3", "a2"]  # each once, before its chunks were deleted
