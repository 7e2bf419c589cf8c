"""The lexical (BM25) index, derived from the vector store and kept beside it.

Chroma cannot index sparse vectors locally, so BM25 lives here, built with ``bm25s`` from the
same chunks, and saved under ``data_dir/lexical`` together with a copy of each chunk's text and
metadata (so lexical hits need no round trip to the store). It records the store's
``index_version`` it was built from; when that differs, or the files are missing or unreadable,
``LexicalIndex.load_or_build`` rebuilds it from the store. It never writes to the store.

Answers quote this copy, so it is checked like a record, not trusted like a cache: the manifest
holds the chunk count and the SHA-256 of every file saved, and a copy that differs in any byte
(an edited quote, an emptied file, a truncated array) is not loaded; it is rebuilt from the
store, with a log line that says so.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.store import ChromaStore, Metadata, StoredChunk
from rag.text import content_terms

_FORMAT = 2  # 2: the manifest carries the files' SHA-256
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LexicalHit:
    chunk: StoredChunk
    score: float


def index_terms(text: str, title: str = "") -> list[str]:
    """What BM25 sees of a chunk: its title and text, stemmed, without stopwords."""
    return content_terms(f"{title}\n{text}" if title else text)


class LexicalIndex:
    """BM25 over every chunk of the store, with metadata filters applied as a mask."""

    def __init__(self, chunks: Sequence[StoredChunk], version: str, bm25: object | None) -> None:
        self.chunks = list(chunks)
        self.version = version
        self._bm25 = bm25
        self._positions = {c.chunk_id: i for i, c in enumerate(self.chunks)}

    @classmethod
    def build(cls, chunks: Sequence[StoredChunk], version: str) -> LexicalIndex:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each build at DEBUG

        bm25 = None
        if chunks:
            corpus = [index_terms(c.text, str(c.metadata.get("title", ""))) for c in chunks]
            bm25 = bm25s.BM25()
            bm25.index(corpus, show_progress=False)
        return cls(chunks, version, bm25)

    @classmethod
    def load_or_build(cls, directory: Path, store: ChromaStore) -> LexicalIndex:
        """The saved index if it matches the store's version, else a fresh one (saved)."""
        version = store.index_version
        loaded = cls.load(directory)
        if loaded is not None and loaded.version == version:
            return loaded
        index = cls.build(list(store.iter_chunks()), version)
        index.save(directory)
        return index

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex | None:
        """The index saved in ``directory``, or None when missing, old, unreadable or not
        byte for byte what was saved (logged: it is then rebuilt)."""
        try:
            manifest = json.loads((directory / "manifest.json").read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
            return None
        try:
            damage = _damage(directory, manifest)
            if damage:
                log.warning(
                    "the lexical index in %s is damaged (%s): rebuilding it", directory, damage
                )
                return None
            with (directory / "chunks.jsonl").open(encoding="utf-8") as lines:
                chunks = [StoredChunk(*json.loads(line)) for line in lines]
            if len(chunks) != manifest["chunks"]:
                log.warning("the lexical index in %s is damaged: rebuilding it", directory)
                return None
            bm25 = None
            if chunks:
                import bm25s

                bm25 = bm25s.BM25.load(str(directory / "bm25"), show_progress=False)
            return cls(chunks, str(manifest["version"]), bm25)
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("the lexical index in %s is unreadable (%s): rebuilding it", directory, e)
            return None

    def save(self, directory: Path) -> None:
        """Write to a temporary sibling, then swap it in, so readers never see half an index."""
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".lexical-", dir=directory.parent))
        try:
            with (staging / "chunks.jsonl").open("w", encoding="utf-8") as out:
                for c in self.chunks:
                    out.write(json.dumps([c.chunk_id, c.text, c.metadata], ensure_ascii=False))
                    out.write("\n")
            if self._bm25 is not None:
                self._bm25.save(str(staging / "bm25"), show_progress=False)  # type: ignore[attr-defined]
            manifest = {
                "format": _FORMAT,
                "version": self.version,
                "chunks": len(self.chunks),
                "sha256": _digests(staging),
            }
            (staging / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
            old = directory.with_name(directory.name + ".old")
            if directory.exists():
                shutil.rmtree(old, ignore_errors=True)
                os.replace(directory, old)
            os.replace(staging, directory)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def search(
        self, query: str, k: int, keep: Callable[[Metadata], bool] | None = None
    ) -> list[LexicalHit]:
        """Top ``k`` chunks by BM25 for ``query``; only those whose metadata ``keep`` accepts."""
        terms = index_terms(query)
        if self._bm25 is None or not terms:
            return []
        mask = None
        if keep is not None:
            mask = np.fromiter((keep(c.metadata) for c in self.chunks), dtype=bool)
            if not mask.any():
                return []
        k = min(k, len(self.chunks))
        documents, scores = self._bm25.retrieve(  # type: ignore[attr-defined]
            [terms], k=k, show_progress=False, weight_mask=mask
        )
        return [
            LexicalHit(self.chunks[int(i)], float(s))
            for i, s in zip(documents[0], scores[0], strict=True)
            if s > 0
        ]

    def get(self, chunk_id: str) -> StoredChunk | None:
        position = self._positions.get(chunk_id)
        return None if position is None else self.chunks[position]


def _digests(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` (but the manifest), by relative path."""
    return {
        path.relative_to(directory).as_posix(): _sha256(path)
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != "manifest.json"
    }


def _damage(directory: Path, manifest: dict[str, object]) -> str:
    """What differs from the manifest's record of the saved files ("" when nothing)."""
    recorded = manifest.get("sha256")
    if not isinstance(recorded, dict) or "chunks.jsonl" not in recorded:
        return "no checksums"
    found = _digests(directory)
    for name, digest in recorded.items():
        if name not in found:
            return f"{name} is missing"
        if found[name] != digest:
            return f"{name} differs from what was saved"
    extra = sorted(set(found) - set(recorded))
    return f"{extra[0]} was not saved with it" if extra else ""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
