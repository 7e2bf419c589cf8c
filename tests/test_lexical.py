"""The BM25 copy (rag.lexical) is checked like a record: a damaged copy is rebuilt, never quoted."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from rag.config import Settings
from rag.embed import create_embedder
from rag.index import Indexer
from rag.lexical import LexicalIndex
from rag.schema import Article
from rag.store import ChromaStore

TEXT = (
    "In proposals published on June 5, the Commission set out its plan.\n\n"
    "Brussels wants closer ties with India, South Korea and Japan."
)


@pytest.fixture
def built(settings: Settings) -> tuple[Settings, ChromaStore]:
    embedder = create_embedder(settings)
    store = ChromaStore.open(settings, embedder.model_id)
    Indexer(settings, embedder, store).sync([Article("eu", "EU plan", TEXT)], progress=False)
    return settings, store


def _texts(index: LexicalIndex) -> str:
    return " ".join(c.text for c in index.chunks)


def _damaged(
    settings: Settings, store: ChromaStore, caplog: pytest.LogCaptureFixture
) -> LexicalIndex:
    """What a reader gets after the damage: the index loaded (or rebuilt) from the store."""
    assert LexicalIndex.load(settings.lexical_dir) is None
    with caplog.at_level(logging.WARNING, logger="rag.lexical"):
        index = LexicalIndex.load_or_build(settings.lexical_dir, store)
    assert any("damaged" in r.message and "rebuilding" in r.message for r in caplog.records)
    assert LexicalIndex.load(settings.lexical_dir) is not None  # saved again, whole
    return index


def test_an_intact_copy_loads(built: tuple[Settings, ChromaStore]) -> None:
    settings, _ = built
    loaded = LexicalIndex.load(settings.lexical_dir)
    assert loaded is not None and "June 5" in _texts(loaded)


def test_an_edited_quote_is_never_loaded_and_the_copy_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    path = settings.lexical_dir / "chunks.jsonl"
    path.write_text(path.read_text("utf-8").replace("June 5", "June 9"), "utf-8")
    index = _damaged(settings, store, caplog)
    assert "June 5" in _texts(index) and "June 9" not in _texts(index)


def test_an_emptied_chunk_file_under_a_matching_manifest_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    (settings.lexical_dir / "chunks.jsonl").write_text("", "utf-8")
    index = _damaged(settings, store, caplog)
    assert len(index.chunks) == store.count() and index.search("Japan India", 3)


def test_a_truncated_bm25_file_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    arrays = sorted((settings.lexical_dir / "bm25").glob("*.npy"))
    arrays[0].write_bytes(arrays[0].read_bytes()[:10])
    index = _damaged(settings, store, caplog)
    assert index.search("Japan India", 3)


def test_a_copy_without_checksums_is_rebuilt(
    built: tuple[Settings, ChromaStore], caplog: pytest.LogCaptureFixture
) -> None:
    settings, store = built
    manifest_path: Path = settings.lexical_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    del manifest["sha256"]
    manifest_path.write_text(json.dumps(manifest), "utf-8")
    _damaged(settings, store, caplog)
