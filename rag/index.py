"""Bring the index in line with a set of articles: chunk, embed what is new, store, derive BM25.

Incremental by content: an article whose content hash is already stored is not even chunked;
a changed article gets only its new chunks embedded, its stale chunks deleted and its kept
chunks' metadata refreshed; with ``prune=True`` articles that were not given are removed
(except those whose file was given but could not be read, so a bad file loses nothing), and
``remove`` deletes articles by id.
Only one process may write an index at a time: a second writer gets ``IndexLockedError``
instead of silently corrupting records. This module does not read files or answer questions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Protocol

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from rag.chunk import chunk_article
from rag.config import Settings
from rag.embed import Embedder
from rag.errors import IndexLockedError
from rag.lexical import LexicalIndex
from rag.schema import Article, Chunk
from rag.store import ChromaStore, Metadata, StoredChunk

_EMBED_BATCH = 256  # chunks embedded and written per step: bounds memory, keeps progress live


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ingestion run changed."""

    articles_added: int = 0
    articles_updated: int = 0
    articles_unchanged: int = 0
    articles_removed: int = 0
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    total_chunks: int = 0
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)  # (source, reason)

    def summary(self) -> str:
        return (
            f"{self.articles_added} added, {self.articles_updated} updated,"
            f" {self.articles_unchanged} unchanged, {self.articles_removed} removed;"
            f" {self.chunks_embedded} chunks embedded, {self.chunks_deleted} deleted;"
            f" {self.total_chunks} chunks in the index; {len(self.skipped)} files skipped"
        )


def embedding_text(chunk: Chunk, title: str) -> str:
    """What the embedder sees of a chunk: its article's title gives a short chunk its topic."""
    return f"{title}\n{chunk.text}" if title else chunk.text


def chunk_metadata(article: Article, chunk: Chunk) -> Metadata:
    return {
        "article_id": article.article_id,
        "article_hash": article.content_hash,
        "title": article.title,
        "author": article.author,
        "date": article.date,
        "date_int": date_as_int(article.date),
        "publisher": article.publisher,
        "url": article.url,
        "source": article.source,
        "start": chunk.start,
        "end": chunk.end,
        "index": chunk.index,
    }


def date_as_int(iso_date: str) -> int:
    """``2025-06-05`` -> 20250605 (Chroma filters compare numbers); 0 when unknown."""
    try:
        parsed = date.fromisoformat(iso_date)
    except ValueError:
        return 0
    return parsed.year * 10000 + parsed.month * 100 + parsed.day


@contextmanager
def writer_lock(settings: Settings) -> Iterator[None]:
    """Hold the index's single-writer lock, or fail at once if another process has it."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(settings.lock_path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise IndexLockedError(
            f"another process is writing the index in {settings.data_dir}; try again when it"
            " has finished"
        ) from None
    try:
        yield
    finally:
        lock.release()


class ArticlePrep(Protocol):
    """Per-article work an answerer wants done at ingest rather than per question (the trained
    judge's sentence vectors: ``rag.extract.JudgePrep``). Done after the chunks are stored;
    what it keeps is a cache, so a failed or interrupted run is completed by the next one."""

    def pending(self, articles: Mapping[str, str]) -> list[str]:
        """The ids of ``articles`` (``id -> content hash``) not prepared in this version."""
        ...

    def prepare(self, article_id: str, content_hash: str, chunks: Sequence[StoredChunk]) -> int:
        """Prepare one article from its stored chunks."""
        ...

    def forget(self, article_ids: Sequence[str]) -> None:
        """Drop what was prepared for replaced or removed articles."""
        ...


class Indexer:
    """Writes articles into the store and keeps the lexical index derived from it."""

    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: ChromaStore,
        prep: ArticlePrep | None = None,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.prep = prep

    def sync(
        self,
        articles: Sequence[Article],
        *,
        prune: bool = False,
        keep_sources: Sequence[str] = (),
        progress: bool = True,
    ) -> IngestReport:
        """Make the index hold ``articles`` (and, with ``prune``, nothing else).

        ``keep_sources`` lists sources that were given but unreadable: their articles are
        never pruned.
        """
        with writer_lock(self.settings):
            return self._sync(articles, prune, set(keep_sources), progress)

    def _sync(
        self, articles: Sequence[Article], prune: bool, keep_sources: set[str], progress: bool
    ) -> IngestReport:
        stored = self.store.chunks_by_article()
        to_embed: list[Chunk] = []
        to_update: list[Chunk] = []
        to_delete: list[str] = []
        added = updated = unchanged = 0
        replaced: list[str] = []
        for article in articles:
            existing = stored.get(article.article_id, {})
            hashes = {str(m.get("article_hash")) for m in existing.values()}
            if existing and hashes == {article.content_hash}:
                unchanged += 1
                continue
            chunks = [
                replace(c, metadata=chunk_metadata(article, c))
                for c in chunk_article(
                    article, self.settings.chunk_chars, self.settings.chunk_overlap_sentences
                )
            ]
            new_ids = {c.chunk_id for c in chunks}
            to_embed.extend(c for c in chunks if c.chunk_id not in existing)
            to_update.extend(c for c in chunks if c.chunk_id in existing)
            to_delete.extend(cid for cid in existing if cid not in new_ids)
            added, updated = (added + 1, updated) if not existing else (added, updated + 1)
            if existing:
                replaced.append(article.article_id)

        removed = 0
        if prune:
            given = {a.article_id for a in articles}
            for article_id, chunk_metas in stored.items():
                sources = {str(m.get("source", "")) for m in chunk_metas.values()}
                if article_id not in given and not sources & keep_sources:
                    to_delete.extend(chunk_metas)
                    replaced.append(article_id)
                    removed += 1

        self._embed_and_add(to_embed, progress)
        self.store.update_metadata(to_update)
        self.store.delete(to_delete)
        changed = bool(to_embed or to_update or to_delete)
        if changed:
            self.store.bump_version()
        # Rebuilds only when the store moved on (or the files are missing): a no-op re-ingest
        # costs a version check.
        lexical = LexicalIndex.load_or_build(self.settings.lexical_dir, self.store)
        self._prepare(lexical, replaced, progress)
        return IngestReport(
            articles_added=added,
            articles_updated=updated,
            articles_unchanged=unchanged,
            articles_removed=removed,
            chunks_embedded=len(to_embed),
            chunks_deleted=len(to_delete),
            total_chunks=self.store.count(),
        )

    def remove(self, article_ids: Sequence[str]) -> IngestReport:
        """Delete every chunk of ``article_ids``; ids that are not indexed are ignored."""
        with writer_lock(self.settings):
            stored = self.store.chunks_by_article()
            found = [a for a in dict.fromkeys(article_ids) if a in stored]
            to_delete = [cid for a in found for cid in stored[a]]
            self.store.delete(to_delete)
            if to_delete:
                self.store.bump_version()
            lexical = LexicalIndex.load_or_build(self.settings.lexical_dir, self.store)
            self._prepare(lexical, found, progress=False)
            return IngestReport(
                articles_removed=len(found),
                chunks_deleted=len(to_delete),
                total_chunks=self.store.count(),
            )

    def _prepare(self, lexical: LexicalIndex, replaced: Sequence[str], progress: bool) -> None:
        """Prepare every stored article not prepared in its current version (new, changed, or
        left incomplete by an interrupted run), after forgetting what was prepared for it and
        for the articles that were replaced or removed."""
        if self.prep is None:
            return
        by_article: dict[str, list[StoredChunk]] = {}
        hashes: dict[str, str] = {}
        for chunk in lexical.chunks:
            article_id = str(chunk.metadata.get("article_id", ""))
            by_article.setdefault(article_id, []).append(chunk)
            hashes[article_id] = str(chunk.metadata.get("article_hash", ""))
        todo = self.prep.pending(hashes)
        # A partial or outdated preparation is dropped first, so nothing stale stays behind.
        self.prep.forget(list(dict.fromkeys([*replaced, *todo])))
        for article_id in tqdm(
            todo, desc="Preparing sentences", unit="article", disable=not progress or not todo
        ):
            chunks = sorted(by_article[article_id], key=lambda c: int(c.metadata.get("index", 0)))
            self.prep.prepare(article_id, hashes[article_id], chunks)

    def _embed_and_add(self, chunks: Sequence[Chunk], progress: bool) -> None:
        if not chunks:
            return
        with tqdm(total=len(chunks), desc="Embedding", unit="chunk", disable=not progress) as bar:
            for start in range(0, len(chunks), _EMBED_BATCH):
                batch = chunks[start : start + _EMBED_BATCH]
                texts = [embedding_text(c, str(c.metadata.get("title", ""))) for c in batch]
                vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
                self.store.add(batch, vectors)
                bar.update(len(batch))
