"""Sentence vectors kept next to the index, so that answering never embeds what ingest did.

The answer judge compares the question with every candidate sentence and its window (the
sentence with its headline and neighbours). Embedding those at question time was 98% of an
answer's cost, and they depend only on the article, so ingest computes them once per article
(``rag.index.Indexer`` calls an ``ArticlePrep``) and ``VectorFile`` keeps them:

- one SQLite file (``data_dir/vectors.sqlite``, standard library, WAL, one writer and any
  number of readers); a row is ``blake2b(model id, text) -> float16 vector`` plus the article it
  was computed for, so replacing or removing an article deletes its rows (work in proportion
  to the article, not to the archive); table ``labels`` keeps each sentence's spaCy entity
  labels the same way (the answerer checks a sentence holds the asked-for type);
- table ``articles`` records ``(article_id, content_hash)`` after all of an article's vectors
  are in, so an index built before this file existed, or an ingest that was interrupted, is
  completed by the next ingest.

It is a cache, content-addressed by the text it embeds: a row can only ever give the vector of
its own text, quoted text never comes from here, and deleting the file costs speed only. A file
that SQLite cannot read is moved aside and started again, with a log line saying so.
``StoredEmbedder`` is an ``Embedder`` over it: stored vectors are read, missing ones embedded
(and not written: only the index writer writes). This module does not decide which texts are
worth storing (``rag.judge_features`` does).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.embed import Embedder, Vectors

log = logging.getLogger(__name__)
_SCHEMA_VERSION = 1
_QUERY_BATCH = 500  # keys per SELECT ... IN (...): well under SQLite's variable limit


def text_key(model_id: str, text: str) -> bytes:
    """The row key of ``text`` embedded by ``model_id`` (a 16-byte BLAKE2b digest)."""
    return hashlib.blake2b(f"{model_id}\0{text}".encode(), digest_size=16).digest()


def first_owners(articles: Sequence[tuple[str, Sequence[str]]]) -> dict[str, str]:
    """Each distinct text of ``articles`` (``(article id, texts)``), in order, with the first
    article that has it: what is stored for a text shared by articles is filed under that one,
    as storing the articles one by one does."""
    owner: dict[str, str] = {}
    for article_id, texts in articles:
        for text in texts:
            owner.setdefault(text, article_id)
    return owner


class VectorFile:
    """Vectors by text hash in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as e:
            aside = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            log.warning(
                "sentence vector file %s is unreadable (%s): moved to %s, starting it again",
                self.path,
                e,
                aside.name,
            )
            self.path.replace(aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, _SCHEMA_VERSION):
                raise sqlite3.DatabaseError(f"schema version {version}, expected {_SCHEMA_VERSION}")
            db.executescript(
                """
                CREATE TABLE IF NOT EXISTS vectors (
                    key BLOB PRIMARY KEY, article_id TEXT NOT NULL, vector BLOB NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS vectors_article ON vectors(article_id);
                CREATE TABLE IF NOT EXISTS labels (
                    key BLOB PRIMARY KEY, article_id TEXT NOT NULL, labels TEXT NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS labels_article ON labels(article_id);
                CREATE TABLE IF NOT EXISTS articles (
                    article_id TEXT PRIMARY KEY, content_hash TEXT NOT NULL
                ) WITHOUT ROWID;
                """
            )
            db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
            db.commit()
            return db
        except sqlite3.DatabaseError:
            db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _select(self, table: str, column: str, keys: Sequence[bytes]) -> list[tuple[bytes, Any]]:
        """``(key, column)`` of the rows of ``table`` among ``keys``, in batches."""
        rows: list[tuple[bytes, Any]] = []
        with self._lock:
            for start in range(0, len(keys), _QUERY_BATCH):
                batch = list(keys[start : start + _QUERY_BATCH])
                marks = ",".join("?" * len(batch))
                sql = f"SELECT key, {column} FROM {table} WHERE key IN ({marks})"
                rows.extend(self._db.execute(sql, batch).fetchall())
        return rows

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The stored vectors (float32) of those ``keys`` that have one."""
        return {
            key: np.frombuffer(blob, dtype=np.float16).astype(np.float32)
            for key, blob in self._select("vectors", "vector", keys)
        }

    def add(self, article_id: str, keys: Sequence[bytes], vectors: Vectors) -> None:
        rows = [
            (key, article_id, np.asarray(v, dtype=np.float16).tobytes())
            for key, v in zip(keys, vectors, strict=True)
        ]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors (key, article_id, vector) VALUES (?, ?, ?)", rows
            )

    def get_labels(self, keys: Sequence[bytes]) -> dict[bytes, frozenset[str]]:
        """The stored entity labels of those ``keys`` (sentence keys) that have them."""
        return {
            key: frozenset(labels.split()) for key, labels in self._select("labels", "labels", keys)
        }

    def add_labels(self, article_id: str, labels: Mapping[bytes, frozenset[str]]) -> None:
        rows = [(key, article_id, " ".join(sorted(value))) for key, value in labels.items()]
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO labels (key, article_id, labels) VALUES (?, ?, ?)", rows
            )

    def mark(self, article_id: str, content_hash: str) -> None:
        """Record that every vector of this version of the article is stored."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO articles (article_id, content_hash) VALUES (?, ?)",
                (article_id, content_hash),
            )

    def prepared(self) -> dict[str, str]:
        """``article_id -> content_hash`` of every article whose vectors are all stored."""
        with self._lock:
            return dict(self._db.execute("SELECT article_id, content_hash FROM articles"))

    def forget(self, article_ids: Iterable[str]) -> None:
        """Delete the vectors (and the record) of ``article_ids``."""
        ids = [(a,) for a in dict.fromkeys(article_ids)]
        if not ids:
            return
        with self._lock, self._db:
            self._db.executemany("DELETE FROM vectors WHERE article_id = ?", ids)
            self._db.executemany("DELETE FROM labels WHERE article_id = ?", ids)
            self._db.executemany("DELETE FROM articles WHERE article_id = ?", ids)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM vectors").fetchone()[0])


class StoredEmbedder:
    """An ``Embedder`` that reads vectors from a ``VectorFile`` and embeds only the rest."""

    def __init__(self, embedder: Embedder, file: VectorFile) -> None:
        self.embedder = embedder
        self.file = file

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return self.embedder.embed(texts)
        keys = [text_key(self.model_id, t) for t in texts]
        stored = self.file.get(keys)
        pairs = zip(texts, keys, strict=True)
        missing = list(dict.fromkeys(t for t, k in pairs if k not in stored))
        fresh = dict(zip(missing, self.embedder.embed(missing), strict=True)) if missing else {}
        return np.stack(
            [stored[k] if k in stored else fresh[t] for t, k in zip(texts, keys, strict=True)]
        ).astype(np.float32)

    def store(self, article_id: str, texts: Sequence[str]) -> int:
        """Embed and store the ``texts`` of one article that are not stored yet; how many."""
        return self.store_many([(article_id, texts)])

    def store_many(self, articles: Sequence[tuple[str, Sequence[str]]]) -> int:
        """Embed and store the texts of several articles (``(article id, texts)``) that are
        not stored yet, in one ``embed`` call; returns how many were embedded.

        A text is filed under the first article that has it, as storing the articles one by
        one does. One call lets the embedder sort all of the texts by length, so that a
        batch pads to a neighbour's length rather than to its article's longest sentence
        (the rows are the same: each text's vector does not depend on its batch).
        """
        owner = first_owners(articles)
        unique = list(owner)
        keys = [text_key(self.model_id, t) for t in unique]
        stored = self.file.get(keys)
        todo = [(t, k) for t, k in zip(unique, keys, strict=True) if k not in stored]
        if not todo:
            return 0
        vectors = self.embedder.embed([t for t, _ in todo])
        by_article: dict[str, tuple[list[bytes], list[int]]] = {}
        for row, (text, key) in enumerate(todo):
            keys_rows = by_article.setdefault(owner[text], ([], []))
            keys_rows[0].append(key)
            keys_rows[1].append(row)
        for article_id, (article_keys, rows) in by_article.items():
            self.file.add(article_id, article_keys, vectors[rows])
        return len(todo)


def pending(file: VectorFile, articles: Mapping[str, str]) -> list[str]:
    """The ids of ``articles`` (``id -> content hash``) whose vectors are not all stored."""
    done = file.prepared()
    return [a for a, h in articles.items() if done.get(a) != h]
