"""Bring the index in line with a set of articles: chunk, embed what is new, store, derive BM25.

Incremental by content: an article is left alone when its commit record (``rag.store``) names
its content hash and exactly that many chunks of that hash are stored; a new, changed or
incomplete one (an earlier run was killed, or the disk filled up) gets only its missing chunks
embedded, its stray chunks deleted and its kept chunks' metadata refreshed, and is committed
last. An article stored before commit records existed is not re-embedded: when its chunks carry
its hash and cover its text, its record is written from them. With ``prune=True`` articles that
were not given are removed, except those from a file or folder that was given but could not be
read (so a bad file or an unreadable folder loses nothing); ``remove`` deletes articles by id.

Readers never see part of an article: the store shows only each article's committed version
(the rule is ``rag.store``'s), and the order of writes below keeps that version complete, or
hides the article, at every point where a run can stop. The store's ``index_version`` changes
before the first write and after the last, so the lexical index (what the store shows) follows
after any run that wrote, even one that was stopped; and a run with nothing to write still
makes a lexical index follow that does not hold exactly what the store shows of the articles
given. Without ``prune``, a run reads only the given articles from the store, and the lexical
index (``fts5``) reads only the articles that changed: adding one article is work in
proportion to that article, not to the archive.
What an answerer prepared for an article (``ArticlePrep``) is forgotten before the article's
chunks are deleted, since once they are gone no run would know to forget it.
Only one process may write an index at a time. Writers of one data dir hold its file lock
(``writer_lock``); writers of a store shared through a Chroma server (API processes with data
dirs of their own) also hold the store's writer lease (``rag.store``), renewed while they write
and checked before every write. A second writer waits for the lease a bounded time, then gets
``IndexLockedError``, instead of mixing its chunks with another's; the one that gets the lease
reads the store afresh, so it builds on what the first one wrote. A write the store refuses
(a full disk) stops the run with one line saying which articles were committed before it and
that the next run of the same ingest completes the rest.
This module does not read files or answer questions.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from rag.chunk import chunk_article
from rag.config import IndexSettings
from rag.embed import Embedder
from rag.errors import IndexLockedError, IndexWriteError, ProviderError, RagError, SettingsError
from rag.lexical import LexicalSearch, open_lexical
from rag.schema import Article, Chunk
from rag.store import (
    LEASE_TTL_S,
    LEASE_WAIT_S,
    CommitRecord,
    Lease,
    Metadata,
    StoredChunk,
    VectorStore,
    by_article,
    date_as_int,
    is_shown,
)

_EMBED_BATCH = 256  # chunks embedded and written per step: bounds memory, keeps progress live
# Articles prepared per step (``ArticlePrep``): their sentences are embedded and labelled
# together, sorted by length across articles (a few thousand texts), and progress stays live.
_PREP_BATCH = 64


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
            f" {self.total_chunks} chunks in the index;"
            f" {len(self.skipped)} files or folders skipped"
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


@contextmanager
def writer_lock(settings: IndexSettings) -> Iterator[None]:
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


@dataclass(frozen=True, slots=True)
class ArticleChunks:
    """An article to prepare (``ArticlePrep``): its id, the content hash it is prepared for,
    and its stored chunks in order."""

    article_id: str
    content_hash: str
    chunks: tuple[StoredChunk, ...]


class ArticlePrep(Protocol):
    """Per-article work an answerer wants done at ingest rather than per question (the trained
    judge's sentence vectors: ``rag.extract.JudgePrep``). Done after the chunks are stored;
    what it keeps is a cache, so a failed or interrupted run is completed by the next one."""

    def pending(self, articles: Mapping[str, str]) -> list[str]:
        """The ids of ``articles`` (``id -> content hash``) not prepared in this version."""
        ...

    def prepare(self, articles: Sequence[ArticleChunks]) -> int:
        """Prepare several articles from their stored chunks, together (what is kept for
        each must be what preparing it alone keeps), recording each as prepared only once
        all of its work is stored."""
        ...

    def forget(self, article_ids: Sequence[str]) -> None:
        """Drop what was prepared for replaced or removed articles (for removed ones, before
        their chunks are deleted: once they are gone, no later run knows to)."""
        ...


class Indexer:
    """Writes articles into the store and keeps the lexical index derived from it."""

    def __init__(
        self,
        settings: IndexSettings,
        embedder: Embedder,
        store: VectorStore,
        prep: ArticlePrep | None = None,
        *,
        lease_ttl_s: float = LEASE_TTL_S,
        lease_wait_s: float = LEASE_WAIT_S,
    ) -> None:
        """``lease_ttl_s`` and ``lease_wait_s``: how long the writer lease of a shared store
        lasts unrenewed, and how long to wait for it while another process holds it."""
        if lease_ttl_s <= 0:
            raise SettingsError(f"lease_ttl_s must be greater than 0, got {lease_ttl_s}")
        if lease_wait_s < 0:
            raise SettingsError(f"lease_wait_s must be 0 or more, got {lease_wait_s}")
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.prep = prep
        self.lease_ttl_s = lease_ttl_s
        self.lease_wait_s = lease_wait_s

    @contextmanager
    def _writing(self) -> Iterator[_Run]:
        """Be the index's only writer: hold the data dir's file lock and, when the store is a
        server's, the store's writer lease (another data dir's lock does not stop this one)."""
        with writer_lock(self.settings):
            if not self.store.shared:  # a local store lives in the locked data dir
                yield _Run(None)
                return
            with self.store.take_lease(ttl_s=self.lease_ttl_s, wait_s=self.lease_wait_s) as lease:
                yield _Run(lease)

    def sync(
        self,
        articles: Sequence[Article],
        *,
        prune: bool = False,
        keep_sources: Sequence[str] = (),
        progress: bool = True,
    ) -> IngestReport:
        """Make the index hold ``articles`` (and, with ``prune``, nothing else).

        ``keep_sources`` lists files and folders that were given but unreadable: articles
        read from them (or from anywhere under such a folder) are never pruned.
        """
        with self._writing() as run:
            return self._sync(articles, prune, keep_sources, progress, run)

    def _sync(
        self,
        articles: Sequence[Article],
        prune: bool,
        keep_sources: Sequence[str],
        progress: bool,
        run: _Run,
    ) -> IngestReport:
        # Without prune only the given articles matter: adding one reads only its own chunks.
        wanted = None if prune else {a.article_id for a in articles}
        stored = self.store.chunks_by_article(include_uncommitted=True, article_ids=wanted)
        records = self.store.commit_records(wanted)
        writes: list[_ArticleWrite] = []
        backfill: list[CommitRecord] = []
        added = updated = unchanged = 0
        replaced: list[str] = []
        for article in articles:
            existing = stored.get(article.article_id, {})
            record = records.get(article.article_id)
            if record is not None and _is_complete(record, article.content_hash, existing):
                unchanged += 1
                continue
            if record is None and _covers(article, existing):
                # Stored whole before commit records existed: record it, embed nothing.
                backfill.append(
                    CommitRecord(article.article_id, article.content_hash, len(existing))
                )
                unchanged += 1
                continue
            writes.append(self._plan(article, existing, record))
            if _was_shown(existing, record):
                updated += 1
            else:
                added += 1
            if existing:
                replaced.append(article.article_id)

        doomed: dict[str, list[str]] = {}  # article id -> its chunk ids, for prune
        orphans: list[str] = []  # records without chunks: an interrupted write or removal
        if prune:
            given = {a.article_id for a in articles}
            for article_id, chunk_metas in stored.items():
                sources = {str(m.get("source", "")) for m in chunk_metas.values()}
                if article_id not in given and not any(
                    lies_under(source, keep_sources) for source in sources
                ):
                    doomed[article_id] = list(chunk_metas)
            orphans = [a for a in records if a not in stored and a not in given]

        changed = bool(writes or doomed)
        try:
            run.check_lease()
            # First write: the pins, so that nothing written next is shown before it commits;
            # the doomed articles hidden; the records of complete older articles.
            self.store.write_commit_records(
                [
                    *(w.pin for w in writes),
                    *(CommitRecord(article_id, "", 0) for article_id in doomed),
                    *backfill,
                ]
            )
            if changed:
                self.store.bump_version()  # an interrupted run still leaves the version changed
            embedded = self._write(writes, progress, run)
            run.check_lease()
            self._forget(list(doomed))
            self.store.delete([chunk_id for chunk_ids in doomed.values() for chunk_id in chunk_ids])
            self.store.delete_commit_records([*doomed, *orphans])
            if changed:
                self.store.bump_version()
        except (IndexLockedError, ProviderError) as e:
            raise _stopped(e, run, writes, unchanged, len(doomed)) from e
        try:
            # Follows only when the store moved on (or the files are missing): a no-op
            # re-ingest costs a version check, one new article the reading of its chunks.
            lexical = open_lexical(self.settings, self.store)
            if not changed and lexical.view(wanted) != _shown_view(stored, records):
                # Saved by a reader while a run that was then stopped was writing: that run's
                # versions bump came first, so the index looks current. Make it follow.
                self.store.bump_version()
                lexical = open_lexical(self.settings, self.store)
            self._prepare(lexical, replaced, progress)
        except (OSError, sqlite3.Error) as e:
            raise IndexWriteError(
                f"cannot save the search files in {self.settings.data_dir}: {e}; every article"
                " is stored and committed, and the next run rebuilds them"
            ) from e
        return IngestReport(
            articles_added=added,
            articles_updated=updated,
            articles_unchanged=unchanged,
            articles_removed=len(doomed),
            chunks_embedded=embedded,
            chunks_deleted=sum(len(w.stray) for w in writes)
            + sum(len(chunk_ids) for chunk_ids in doomed.values()),
            total_chunks=self.store.count(),
        )

    def _plan(
        self, article: Article, existing: Mapping[str, Metadata], record: CommitRecord | None
    ) -> _ArticleWrite:
        chunks = [
            replace(c, metadata=chunk_metadata(article, c))
            for c in chunk_article(
                article, self.settings.chunk_chars, self.settings.chunk_overlap_sentences
            )
        ]
        new_ids = {c.chunk_id for c in chunks}
        new = [c for c in chunks if c.chunk_id not in existing]
        # Only kept chunks whose metadata differs are written (a repair rewrites none).
        kept = [
            c for c in chunks if c.chunk_id in existing and dict(existing[c.chunk_id]) != c.metadata
        ]
        stray = [chunk_id for chunk_id in existing if chunk_id not in new_ids]
        if record is not None:
            shown, count = record.article_hash, record.chunks
        else:  # stored before records: readers see all of its chunks, of a single version
            hashes = {str(m.get("article_hash", "")) for m in existing.values()}
            shown, count = (hashes.pop(), len(existing)) if len(hashes) == 1 else ("", 0)
        if shown == article.content_hash and (new or kept):
            # The chunks about to be written carry the hash readers are shown: hide the
            # article until they are all there.
            shown, count = "", 0
        pin = CommitRecord(article.article_id, shown, count, pending=article.content_hash)
        return _ArticleWrite(article, len(chunks), tuple(new), tuple(kept), tuple(stray), pin)

    def _write(self, writes: Sequence[_ArticleWrite], progress: bool, run: _Run) -> int:
        """Embed and add the new chunks, batch by batch, committing each article as soon as
        all of its chunks are stored; returns the number of chunks embedded."""
        self._commit([w for w in writes if not w.new], run)
        waiting = {w.article.article_id: len(w.new) for w in writes if w.new}
        by_id = {w.article.article_id: w for w in writes}
        chunks = [c for w in writes for c in w.new]
        if not chunks:
            return 0
        with tqdm(total=len(chunks), desc="Embedding", unit="chunk", disable=not progress) as bar:
            for start in range(0, len(chunks), _EMBED_BATCH):
                batch = chunks[start : start + _EMBED_BATCH]
                texts = [embedding_text(c, str(c.metadata.get("title", ""))) for c in batch]
                vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
                run.check_lease()
                self.store.add(batch, vectors)
                done: list[_ArticleWrite] = []
                for chunk in batch:
                    waiting[chunk.article_id] -= 1
                    if not waiting[chunk.article_id]:
                        done.append(by_id[chunk.article_id])
                self._commit(done, run)
                bar.update(len(batch))
        return len(chunks)

    def _commit(self, writes: Sequence[_ArticleWrite], run: _Run) -> None:
        """Finish articles whose new chunks are all stored.

        Readers see only chunks whose hash is the committed one, so two versions never mix;
        the order keeps what they see complete. New chunks were added under the new hash,
        unseen. Kept chunks are refreshed in place, which takes them out of the old version
        one by one, so their article is hidden first. The commit record, written once every
        chunk of the new version is there, shows it whole. Stray chunks of the old version,
        no longer shown, go last: a run stopped before that leaves them to the next, which
        finds more chunks than the record counts.
        """
        if not writes:
            return
        run.check_lease()
        self.store.write_commit_records(
            [
                replace(w.pin, article_hash="", chunks=0)
                for w in writes
                if w.kept and w.pin.article_hash
            ]
        )
        self.store.update_metadata([c for w in writes for c in w.kept])
        self.store.write_commit_records(
            [CommitRecord(w.article.article_id, w.article.content_hash, w.chunks) for w in writes]
        )
        run.committed.extend(w.article.article_id for w in writes)
        self.store.delete([chunk_id for w in writes for chunk_id in w.stray])

    def remove(self, article_ids: Sequence[str]) -> IngestReport:
        """Delete every chunk of ``article_ids``; ids that are not indexed are ignored."""
        with self._writing() as run:
            wanted = list(dict.fromkeys(article_ids))
            stored = self.store.chunks_by_article(include_uncommitted=True, article_ids=wanted)
            records = self.store.commit_records(wanted)
            found = [a for a in wanted if a in stored]
            to_delete = [cid for a in found for cid in stored[a]]
            try:
                run.check_lease()
                # Hidden first, so that a reader never sees part of an article being deleted.
                self.store.write_commit_records([CommitRecord(a, "", 0) for a in found])
                if to_delete:
                    self.store.bump_version()
                run.check_lease()
                self._forget(found)
                self.store.delete(to_delete)
                self.store.delete_commit_records([a for a in wanted if a in stored or a in records])
                if to_delete:
                    self.store.bump_version()
            except (IndexLockedError, ProviderError) as e:
                message = (
                    f"{e}; removing {_some(found) or 'the articles'} is not finished (each is"
                    " still shown whole, or hidden): remove them again to finish"
                )
                raise (
                    IndexLockedError(message)
                    if isinstance(e, IndexLockedError)
                    else IndexWriteError(message)
                ) from e
            lexical = open_lexical(self.settings, self.store)
            self._prepare(lexical, (), progress=False)
            return IngestReport(
                articles_removed=len(found),
                chunks_deleted=len(to_delete),
                total_chunks=self.store.count(),
            )

    def _forget(self, article_ids: Sequence[str]) -> None:
        """Drop what was prepared for articles about to be deleted. Done before their chunks
        go: once they are gone, no later run knows what was prepared for them."""
        if self.prep is None or not article_ids:
            return
        try:
            self.prep.forget(article_ids)
        except (OSError, sqlite3.Error) as e:
            raise IndexWriteError(
                f"cannot update the sentence vectors in {self.settings.data_dir}: {e}"
            ) from e

    def _prepare(self, lexical: LexicalSearch, replaced: Sequence[str], progress: bool) -> None:
        """Prepare every stored article not prepared in its current version (new, changed, or
        left incomplete by an interrupted run), after forgetting what was prepared for it and
        for the articles that were replaced (removed ones were forgotten by ``_forget``).
        Only the chunks of the articles to prepare are read."""
        if self.prep is None:
            return
        hashes = lexical.article_hashes()
        todo = self.prep.pending(hashes)
        stored = by_article(lexical.article_chunks(todo))
        # A partial or outdated preparation is dropped first, so nothing stale stays behind.
        self.prep.forget(list(dict.fromkeys([*replaced, *todo])))
        with tqdm(
            total=len(todo),
            desc="Preparing sentences",
            unit="article",
            disable=not progress or not todo,
        ) as bar:
            for start in range(0, len(todo), _PREP_BATCH):
                step = [
                    ArticleChunks(a, hashes[a], tuple(stored[a]))
                    for a in todo[start : start + _PREP_BATCH]
                ]
                self.prep.prepare(step)
                bar.update(len(step))


@dataclass(slots=True)
class _Run:
    """One writing run: the shared store's lease it holds (None for a local store), and the
    articles it has committed so far, for the message when it stops part way."""

    lease: Lease | None
    committed: list[str] = field(default_factory=list)

    def check_lease(self) -> None:
        if self.lease is not None:
            self.lease.check()


def _stopped(
    error: RagError, run: _Run, writes: Sequence[_ArticleWrite], unchanged: int, pruned: int
) -> RagError:
    """``error``, which stopped a run part way, with what the run kept and what it left to
    the next one (readers see each article left whole: its previous version, or nothing)."""
    done = set(run.committed)
    left = [w.article.article_id for w in writes if w.article.article_id not in done]
    kept = f"{len(done)} of {len(writes)} new or changed articles were committed"
    if done:
        kept += f" ({_some(run.committed)})"
    kept += f" and {unchanged} were unchanged"
    rest = [_some(left)] if left else []
    if pruned:
        rest.append(f"the removal of {pruned} pruned articles")
    message = f"{error}; {kept}"
    if rest:
        message += (
            f"; the next run of the same ingest completes {' and '.join(rest)} (until then"
            " readers see each of those articles as before, or not at all)"
        )
    if isinstance(error, IndexLockedError):
        return IndexLockedError(message)
    return IndexWriteError(message)


def _some(article_ids: Sequence[str], shown: int = 5) -> str:
    """A few of ``article_ids`` for a one-line message."""
    listed = ", ".join(article_ids[:shown])
    more = len(article_ids) - shown
    return f"{listed} and {more} more" if more > 0 else listed


@dataclass(frozen=True, slots=True)
class _ArticleWrite:
    """What brings one article to its new version: chunks to add, to refresh and to delete,
    and the record that says, until it commits, which version readers see."""

    article: Article
    chunks: int  # in the new version
    new: tuple[Chunk, ...]
    kept: tuple[Chunk, ...]  # stored, with metadata to refresh
    stray: tuple[str, ...]  # stored chunk ids that the new version does not have
    pin: CommitRecord


def _is_complete(record: CommitRecord, article_hash: str, existing: Mapping[str, Metadata]) -> bool:
    """The committed version is ``article_hash``, with all of its chunks and no others."""
    return (
        not record.pending
        and record.article_hash == article_hash
        and len(existing) == record.chunks
        and all(m.get("article_hash") == article_hash for m in existing.values())
    )


def _covers(article: Article, existing: Mapping[str, Metadata]) -> bool:
    """The stored chunks all carry ``article``'s hash and between them cover all of its text:
    how an article stored before commit records is known to be whole. Their offsets are
    checked, not a fresh chunking, so other chunk settings do not call for re-embedding."""
    if not existing or any(
        m.get("article_hash") != article.content_hash for m in existing.values()
    ):
        return False
    text = article.text
    position = 0
    for start, end in sorted(
        (int(m.get("start", 0)), int(m.get("end", 0))) for m in existing.values()
    ):
        if start > position and text[position:start].strip():
            return False
        position = max(position, end)
    return not text[position:].strip()


def _was_shown(existing: Mapping[str, Metadata], record: CommitRecord | None) -> bool:
    """Readers could see a version of the article before this run."""
    if record is None:
        return bool(existing)
    return bool(record.article_hash) and any(
        m.get("article_hash") == record.article_hash for m in existing.values()
    )


def lies_under(source: str, places: Collection[str]) -> bool:
    """``source`` (a path, or ``path#row N``) is one of ``places`` or inside one of them.

    Paths are compared as written and as absolute paths, so ``corpus/a.md`` lies under
    ``./corpus``; a match keeps an article, so a spurious one can only keep too much.
    """
    if not places:
        return False
    path = source.split("#", 1)[0]
    if not path:
        return False
    spellings = {os.path.normpath(path), os.path.abspath(path)}
    for place in places:
        if not place:
            continue
        for base in {os.path.normpath(place), os.path.abspath(place)}:
            prefix = base if base.endswith(os.sep) else base + os.sep
            if any(p == base or p.startswith(prefix) for p in spellings):
                return True
    return False


def _shown_view(
    stored: Mapping[str, Mapping[str, Metadata]], records: Mapping[str, CommitRecord]
) -> set[tuple[str, str]]:
    """The (chunk id, article hash) of every chunk readers are shown (``rag.store``'s rule)."""
    view: set[tuple[str, str]] = set()
    for article_id, chunk_metas in stored.items():
        record = records.get(article_id)
        committed = None if record is None else record.article_hash
        for chunk_id, meta in chunk_metas.items():
            article_hash = str(meta.get("article_hash", ""))
            if is_shown(article_hash, committed):
                view.add((chunk_id, article_hash))
    return view
