"""The fts5 backend's numpy segment (rag.lexical_segment) ranks as FTS5 alone ranks: the same
top-k ids and the same scores (to 1e-9, relative) on a random corpus, with and without
filters, before and after deletions and replacements, with rows after the segment's mark;
replicas on the same file load a new segment; adding one article still reads only that
article, and leaves the segment as it is."""

from __future__ import annotations

import logging
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag import lexical_fts
from rag.config import Settings
from rag.embed import create_embedder
from rag.index import Indexer
from rag.lexical import LexicalHit, fts_path, open_lexical
from rag.lexical_fts import FtsIndex
from rag.lexical_segment import averages, segments_dir
from rag.retrieve import SearchFilters
from rag.schema import Article
from rag.store import StoredChunk
from rag.stores.chroma import ChromaStore
from tests.test_lexical import CountingReads

# Words that stem to distinct terms, a few phrases to FTS5 ("3.5", "long-term") and a word
# outside ASCII: those are scored by FTS5 over the segment's rows.
_WORDS = [f"{a}{b}" for a in ("harbo", "minist", "vot", "storm", "trad", "coal") for b in "xyzqkw"]
_ODD = ["3.5", "long-term", "café", "1,200"]
_AUTHORS = ["Ana Diaz", "Nora Lind", "Li Wei", ""]
_PUBLISHERS = ["Daily", "Weekly", "Herald"]


def _chunk(rng: random.Random, n: int, article: str) -> StoredChunk:
    weights = [1.0 / (i + 1) for i in range(len(_WORDS))]
    words = rng.choices(_WORDS, weights, k=rng.randint(3, 40))
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words) + 1), rng.choice(_ODD))
    meta = {
        "article_id": article,
        "article_hash": f"h-{article}-{n}",
        "title": " ".join(rng.sample(_WORDS, 2)) if rng.random() < 0.5 else "",
        "author": rng.choice(_AUTHORS),
        "publisher": rng.choice(_PUBLISHERS),
        "date_int": 20200101 + rng.randrange(6) * 10000 + rng.randrange(1, 12) * 100,
    }
    return StoredChunk(f"{article}-c{n}", " ".join(words) + ".", meta)


def _add(index: FtsIndex, chunks: list[StoredChunk]) -> None:
    db = index._db()
    db.execute("BEGIN IMMEDIATE")
    index._insert(iter(chunks))
    db.execute("COMMIT")


def _delete(index: FtsIndex, article_ids: list[str]) -> None:
    db = index._db()
    db.execute("BEGIN IMMEDIATE")
    marks = ",".join("?" * len(article_ids))
    index._delete_rows(
        db.execute(
            "SELECT id, chunk_id, text, metadata, sha256 FROM chunks"
            f" WHERE article_id IN ({marks})",
            article_ids,
        ).fetchall()
    )
    db.execute("COMMIT")


def _articles(rng: random.Random, start: int, count: int) -> list[StoredChunk]:
    return [
        _chunk(rng, i, f"a{n}")
        for n in range(start, start + count)
        for i in range(rng.randint(1, 4))
    ]


def _same(expected: list[LexicalHit], got: list[LexicalHit]) -> None:
    """The same scores (1e-9 relative) and the same ids, but the order of rows tied at the
    last score kept (which of those FTS5 keeps at the cut is its own choice)."""
    assert len(got) == len(expected)
    for e, g in zip(expected, got, strict=True):
        assert g.score == pytest.approx(e.score, rel=1e-9, abs=0.0)
    if not expected:
        return
    last = expected[-1].score

    def above(hits: list[LexicalHit]) -> set[str]:
        return {h.chunk.chunk_id for h in hits if h.score > last * (1 + 1e-9)}

    assert above(got) == above(expected)


def _queries(rng: random.Random, count: int) -> list[str]:
    out = []
    for _ in range(count):
        words = rng.sample(_WORDS, rng.randint(1, 5))
        if rng.random() < 0.3:
            words.append(rng.choice(_ODD))
        out.append(" ".join(words))
    return out


_FILTERS = [
    None,
    SearchFilters(authors=("Ana Diaz",)),
    SearchFilters(publishers=("Weekly", "Herald"), date_from="2022-01-01"),
    SearchFilters(date_from="2021-01-01", date_to="2023-12-31"),
    SearchFilters(article_ids=("a3", "a17", "a250", "a401", "zz")),
    SearchFilters(authors=("Nobody",)),
]


def _check(segmented: FtsIndex, plain: FtsIndex, rng: random.Random) -> int:
    """Every query and filter through both; the number of non-empty rankings compared."""
    compared = 0
    for query in _queries(rng, 40):
        for filters in _FILTERS:
            for k in (1, 10, 30):
                expected = plain.search(query, k, filters)
                _same(expected, segmented.search(query, k, filters))
                compared += bool(expected)
    return compared


def test_segment_and_tail_rank_as_fts5_alone(tmp_path: Path) -> None:
    rng = random.Random(5)
    path = tmp_path / "lexical.sqlite"
    segmented = FtsIndex(path, None, segments="manual")  # type: ignore[arg-type]
    plain = FtsIndex(path, None, segments="off")  # type: ignore[arg-type]
    _add(segmented, _articles(rng, 0, 300))
    figures = segmented.build_segment()
    assert figures["rows"] == segmented.count() and segmented.segment_name
    assert _check(segmented, plain, rng) > 200
    assert segmented._segment is not None and segmented._segment.rows == figures["rows"]
    # A tail after the mark, rows deleted from the segment and from the tail, replacements.
    _add(segmented, _articles(rng, 300, 120))
    _delete(segmented, [f"a{n}" for n in range(0, 300, 7)] + ["a310", "a333"])
    _delete(segmented, ["a5", "a301"])
    _add(segmented, [_chunk(rng, 9, "a5"), _chunk(rng, 9, "a301")])
    assert segmented._segment.mark < segmented.count() + 100  # the tail is not empty
    assert _check(segmented, plain, rng) > 200
    deleted = {f"a{n}-c0" for n in range(0, 300, 7)}
    for query in _queries(rng, 20):
        assert not deleted & {h.chunk.chunk_id for h in segmented.search(query, 50)}
    # A second segment over all of it, then more changes: still the same rankings.
    segmented.build_segment()
    _delete(segmented, ["a1", "a2", "a400"])
    _add(segmented, _articles(rng, 500, 20))
    assert _check(segmented, plain, rng) > 200


def test_a_replica_on_the_same_file_loads_a_new_segment(tmp_path: Path) -> None:
    rng = random.Random(8)
    path = tmp_path / "lexical.sqlite"
    writer = FtsIndex(path, None, segments="manual")  # type: ignore[arg-type]
    replica = FtsIndex(path, None, segments="manual")  # type: ignore[arg-type]
    plain = FtsIndex(path, None, segments="off")  # type: ignore[arg-type]
    _add(writer, _articles(rng, 0, 100))
    query = " ".join(_WORDS[:4])
    replica.search(query, 10)
    assert replica._segment is None  # none built yet: FTS5 alone
    writer.build_segment()
    _same(plain.search(query, 10), replica.search(query, 10))
    assert replica._segment is not None and replica._segment.name == writer.segment_name
    first = writer.segment_name
    _add(writer, _articles(rng, 100, 50))
    _delete(writer, ["a3"])
    writer.build_segment()
    assert writer.segment_name != first
    _same(plain.search(query, 10), replica.search(query, 10))
    assert replica._segment is not None and replica._segment.name == writer.segment_name
    assert segments_dir(path).is_dir()


def _built(tmp_path: Path, rng: random.Random, articles: int) -> tuple[Path, FtsIndex, FtsIndex]:
    """A file of ``articles`` random articles with a segment: its path, the writer that built
    it, and a reader that ranks with FTS5 alone."""
    path = tmp_path / "lexical.sqlite"
    writer = FtsIndex(path, None, segments="manual")  # type: ignore[arg-type]
    plain = FtsIndex(path, None, segments="off")  # type: ignore[arg-type]
    _add(writer, _articles(rng, 0, articles))
    writer.build_segment()
    return path, writer, plain


def test_a_segment_that_will_not_load_leaves_fts5_to_rank(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, writer, plain = _built(tmp_path, random.Random(9), 50)
    (segments_dir(path) / writer.segment_name / "post_pos.npy").write_bytes(b"")
    reader = FtsIndex(path, None, segments="manual")  # type: ignore[arg-type]
    query = " ".join(_WORDS[:5])
    with caplog.at_level(logging.WARNING, logger="rag.lexical_fts"):
        _same(plain.search(query, 10), reader.search(query, 10))
    assert any("would not load" in r.message for r in caplog.records)
    shutil.rmtree(segments_dir(path) / writer.segment_name)
    _same(plain.search(query, 10), FtsIndex(path, None, "manual").search(query, 10))  # type: ignore[arg-type]


def test_a_segment_file_changed_after_its_build_is_refused_and_built_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One flipped bit in a postings file keeps every shape and offset valid, so only the
    build's SHA-256 can tell: the segment is refused, FTS5 ranks, and a new one is built."""
    monkeypatch.setattr(lexical_fts, "SEGMENT_MIN_ROWS", 50)
    rng = random.Random(10)
    path, writer, plain = _built(tmp_path, rng, 80)
    damaged = writer.segment_name
    tf = segments_dir(path) / damaged / "post_tf.npy"
    data = bytearray(tf.read_bytes())
    data[-1] ^= 0x01  # the last term frequency: a valid .npy with one count changed
    tf.write_bytes(bytes(data))
    reader = FtsIndex(path, None, segments="auto")  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="rag.lexical_fts"):
        for query in _queries(rng, 20):
            _same(plain.search(query, 10), reader.search(query, 10))
    assert reader._segment is None
    assert any("does not match the SHA-256" in r.message for r in caplog.records)
    reader._maybe_build_segment()  # no segment loads: a new one is built
    deadline = time.monotonic() + 60
    while reader.segment_name == damaged and time.monotonic() < deadline:
        time.sleep(0.05)
    while reader._building.locked():
        time.sleep(0.05)
    assert reader.segment_name != damaged
    for query in _queries(rng, 20):
        _same(plain.search(query, 10), reader.search(query, 10))
    assert reader._segment is not None and reader._segment.name == reader.segment_name


def _article(n: int, extra: str = "") -> Article:
    return Article(
        f"a{n}",
        f"Report number {n}",
        f"Harbour {n} reopened on Monday after the storm.\n\nPort officials counted {n} ships"
        f" waiting offshore, and the mayor of town {n} thanked the crews.{extra}",
    )


def _thirty_articles(settings: Settings) -> tuple[ChromaStore, Indexer, FtsIndex]:
    """A real store of 30 articles, its indexer and its FTS5 index (no segment yet)."""
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    indexer = Indexer(settings, embedder, store)
    indexer.sync([_article(n) for n in range(30)], progress=False)
    index = open_lexical(settings, store)
    assert isinstance(index, FtsIndex)
    return store, indexer, index


def test_with_a_segment_one_article_still_costs_that_article(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings.replace(fts_segment="manual")
    store, indexer, index = _thirty_articles(settings)
    index.build_segment()
    segment = index.segment_name
    plain = FtsIndex(fts_path(settings), store, segments="off")
    reads = CountingReads(monkeypatch)
    report = indexer.sync([_article(99, " A zyxwquorble was seen.")], progress=False)
    assert reads.chunks == report.chunks_embedded > 0  # the new article's chunks, once
    index = open_lexical(settings, store)
    assert isinstance(index, FtsIndex) and index.segment_name == segment  # not rebuilt
    hits = index.search("zyxwquorble harbour 99", 5)
    assert hits[0].chunk.metadata["article_id"] == "a99"  # found in the tail
    _same(plain.search("harbour 99 ships storm", 10), index.search("harbour 99 ships storm", 10))
    # Replacing and removing an article of the segment: that article's reads, masked rows.
    reads.chunks = 0
    indexer.sync([_article(7, " The storm passed.")], progress=False)
    assert 0 < reads.chunks <= 3 * report.chunks_embedded
    reads.chunks = 0
    indexer.remove(["a12"])
    assert 0 < reads.chunks <= 2 * report.chunks_embedded
    index = open_lexical(settings, store)
    assert isinstance(index, FtsIndex) and index.segment_name == segment
    found = {h.chunk.metadata["article_id"] for h in index.search("harbour 12 ships", 40)}
    assert "a12" not in found and "a7" in found
    for query in ("harbour 12 ships", "storm passed", "mayor town crews 7"):
        for filters in (None, SearchFilters(article_ids=("a7", "a12", "a99"))):
            _same(plain.search(query, 10, filters), index.search(query, 10, filters))


def test_a_segment_keeps_each_rows_vector_and_a_new_build_reads_only_new_rows(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segment holds a float16 copy of every row's vector, which ``matching`` hands to
    the filtered dense search; rows added since (a replaced article's rows are new rows)
    keep a copy read from the store as their article is followed. The next build carries
    the segment's over and takes the new rows' copies: it reads no vector from the store."""
    settings = settings.replace(fts_segment="manual")
    store, indexer, index = _thirty_articles(settings)
    first = index.build_segment()
    assert first["vectors_read"] == index.count() and first["vectors_carried"] == 0
    match = index.matching(SearchFilters(article_ids=("a3", "a4")), 100)
    assert match.chunk_ids and set(match.vectors) == set(match.chunk_ids)
    exact = store.get_vectors(match.chunk_ids)
    for chunk_id, vector in match.vectors.items():
        assert vector.dtype == np.float16
        assert np.abs(vector.astype(np.float32) - exact[chunk_id]).max() < 1e-3
    added = indexer.sync([_article(99), _article(7, " The storm passed.")], progress=False)
    index = open_lexical(settings, store)
    assert isinstance(index, FtsIndex)
    tail = index.matching(SearchFilters(article_ids=("a99",)), 100)
    assert tail.chunk_ids and set(tail.vectors) == set(tail.chunk_ids)  # copied on follow
    exact = store.get_vectors(tail.chunk_ids)
    for chunk_id, vector in tail.vectors.items():
        assert np.abs(vector.astype(np.float32) - exact[chunk_id]).max() < 1e-3
    read: list[str] = []
    real = ChromaStore.get_vectors

    def counted(self: ChromaStore, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        read.extend(chunk_ids)
        return real(self, chunk_ids)

    monkeypatch.setattr(ChromaStore, "get_vectors", counted)
    second = index.build_segment()
    new_rows = len(index.article_chunks(["a7", "a99"]))
    assert added.chunks_embedded > 0 and second["vectors_read"] == new_rows and not read
    assert second["vectors_carried"] == index.count() - new_rows
    # The segment holds them now: the file keeps no copy of its own.
    assert index._db().execute("SELECT count(*) FROM row_vectors").fetchone()[0] == 0
    again = index.matching(SearchFilters(article_ids=("a7", "a99")), 100)
    assert again.chunk_ids and set(again.vectors) == set(again.chunk_ids)


def test_a_growing_file_builds_its_segment_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lexical_fts, "SEGMENT_MIN_ROWS", 50)
    rng = random.Random(3)
    path = tmp_path / "lexical.sqlite"
    index = FtsIndex(path, None, segments="auto")  # type: ignore[arg-type]
    _add(index, _articles(rng, 0, 10))
    index._maybe_build_segment()
    assert not index._building.locked() and not index.segment_name  # below the minimum
    _add(index, _articles(rng, 10, 60))
    index._maybe_build_segment()
    deadline = time.monotonic() + 60
    while not index.segment_name and time.monotonic() < deadline:
        time.sleep(0.05)
    first = index.segment_name
    assert first
    while index._building.locked():
        time.sleep(0.05)
    _add(index, _articles(rng, 70, 2))  # a small tail: no new build
    index._maybe_build_segment()
    assert not index._building.locked() and index.segment_name == first
    _add(index, _articles(rng, 72, 30))  # past the share: a new one
    index._maybe_build_segment()
    deadline = time.monotonic() + 60
    while index.segment_name == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert index.segment_name != first
    while index._building.locked():  # the build thread's last steps (pruning, closing)
        time.sleep(0.05)


def test_a_damaged_row_deleted_without_its_terms_stays_out_of_the_segment(
    tmp_path: Path,
) -> None:
    """A row whose text was edited is deleted without its terms (they cannot be recomputed):
    FTS5 keeps counting them, so the segment leaves the row out but ranks with FTS5's n."""
    rng = random.Random(12)
    path = tmp_path / "lexical.sqlite"
    segmented = FtsIndex(path, None, segments="manual")  # type: ignore[arg-type]
    plain = FtsIndex(path, None, segments="off")  # type: ignore[arg-type]
    _add(segmented, _articles(rng, 0, 80))
    segmented._db().execute("UPDATE chunks SET text = text || ' edited' WHERE article_id = 'a4'")
    _delete(segmented, ["a4"])
    assert averages(segmented._db())[0] > segmented.count()  # FTS5 still counts its terms
    figures = segmented.build_segment()
    assert figures["rows"] == segmented.count()
    for query in _queries(rng, 20):
        _same(plain.search(query, 1000), segmented.search(query, 1000))  # every match
        assert all(h.chunk.metadata["article_id"] != "a4" for h in segmented.search(query, 50))
    # The same after the build: masked from results, still in FTS5's n; and a clean delete.
    segmented._db().execute("UPDATE chunks SET text = text || ' edited' WHERE article_id = 'a9'")
    _delete(segmented, ["a9", "a11"])
    for query in _queries(rng, 20):
        _same(plain.search(query, 1000), segmented.search(query, 1000))
        found = {h.chunk.metadata["article_id"] for h in segmented.search(query, 50)}
        assert not found & {"a4", "a9", "a11"}
