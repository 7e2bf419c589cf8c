"""A frozen numpy segment of the FTS5 lexical index: Lucene's design, one segment and a tail.

FTS5's ``bm25()`` scores every row that matches any query term at about 10 us a row, so a
question of common words costs hundreds of milliseconds at a million chunks. A ``Segment``
holds, for the rows of ``rag.lexical_fts``'s file with ``id <= mark``, what ranking needs as
numpy arrays (saved as ``.npy`` files in a versioned folder next to the file, loaded with
mmap): the postings of each term (CSC: a term's row positions and term frequencies), each
row's token count (FTS5's own, from its ``docsize`` table), and the fields that filters read
(date, author and publisher codes, row id). ``FtsIndex.search`` scores those rows here and the
rows after the mark with FTS5 as before (``rowid > mark``), then merges the two.

The scores are FTS5's, to the last bit where the arithmetic allows: the same formula in the
same order of operations (k1 = 1.2, b = 0.75, idf = log((N - n + 0.5) / (n + 0.5)) clamped
to 1e-6 when <= 0), with N and the total token count read from FTS5's own averages record and
each term's n as FTS5 counts it over the whole current table, not the segment: its count
when the segment was built (``df``), less the segment's rows deleted since with their terms,
plus the rows after the mark (a ``count(*)`` of FTS5 with ``rowid > mark``: 0.2-0.4 ms a term
at 1M rows, where an ``fts5vocab`` row lookup walks the term's whole doclist, 2.3 ms). So a
segment row and a tail row are ranked as one FTS5 query would rank them. Rows deleted after
the segment was built are masked out (``FtsIndex`` records every deleted row id in its
``deleted_rows`` table).

Its postings are built from the file alone, never from the store: FTS5's own tokens and
counts (an ``fts5vocab`` instance table), its lengths FTS5's ``docsize``. It holds
only tokens that are certainly one ``unicode61`` token when a query term is quoted: lower-case
ASCII letters and digits, at most ``_MAX_TERM`` long. A query term of any other shape (``3.5``
and ``long-term`` are phrases to FTS5; a word with an accent) is scored over the segment's
rows by FTS5 itself, one query per such term: its bm25 alone is exactly its share of the
whole score. Text and metadata are never read from a segment: hits are read from the file's
rows and checked against their SHA-256 as before.

A segment also keeps each row's dense vector, as float16 (``vectors.npy``, with
``vector_known.npy`` saying which rows have one), so that a filter which few chunks pass is
searched exactly without reading each vector from the vector store (about 50 us a vector by id
in Chroma; ``VectorStore.query_among`` then reads only the winners). They are the one thing a
segment takes from the store: each build carries over the vectors of the rows the last
segment held (a row is one version of a chunk, and its vector never changes), and reads only
the rest from its ``vectors`` source (the FTS5 file's copies of newer rows, then the store),
so a build reads vectors in proportion to what changed. A row the
store has no vector for is marked unknown and read from the store when asked for.

Each array file's SHA-256 is in the segment's manifest, written at the build and checked when
a process loads the segment (about 0.1 s a 100 MB): a segment whose files changed since (a
flipped bit, a truncated copy) would rank wrongly without any error, so it is refused
instead, FTS5 ranks every row, and the next check builds a new one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.files import file_sha256

log = logging.getLogger(__name__)

# 2: df.npy, the rows of each term when built; 3: each file's SHA-256; 4: the rows' vectors
_FORMAT = 4
_MAX_TERM = 32  # longer terms stay with FTS5 (a fixed-width sorted term array)
_SIMPLE = re.compile(rf"[a-z0-9]{{1,{_MAX_TERM}}}")
_K1 = 1.2
_B = 0.75
_KEPT = 3  # segment folders kept: the current one and two before it, for readers still on them
_STAGING = ".staging-"
_ARRAYS = (
    "ids",
    "dl",
    "date",
    "author",
    "publisher",
    "terms",
    "df",
    "offsets",
    "post_pos",
    "post_tf",
    "vectors",
    "vector_known",
)
_VECTOR_PAGE = 5000  # chunk ids per read of vectors from the store while building
# A vector source: the vectors the store holds of some chunk ids (``VectorStore.get_vectors``).
VectorSource = Callable[[Sequence[str]], Mapping[str, np.ndarray]]


def segments_dir(path: Path) -> Path:
    """Where the segments of the FTS5 file ``path`` are kept."""
    return path.with_name(path.name + ".segments")


def in_segment(term: str) -> bool:
    """Whether ``term`` is one unicode61 token that a segment holds (else FTS5 scores it)."""
    return _SIMPLE.fullmatch(term) is not None


def idf(rows: int, hits: int) -> float:
    """FTS5's idf, clamped as it clamps it."""
    value = math.log((rows - hits + 0.5) / (hits + 0.5))
    return value if value > 0.0 else 1e-6


def term_scores(weight: float, tf: np.ndarray, dl: np.ndarray, avgdl: float) -> np.ndarray:
    """One term's share of bm25 for rows with term frequency ``tf`` and length ``dl``: the
    operations of fts5_aux.c's ``fts5Bm25Function`` in its order."""
    return weight * ((tf * (_K1 + 1.0)) / (tf + _K1 * ((1 - _B) + _B * dl / avgdl)))


def averages(db: sqlite3.Connection) -> tuple[int, int]:
    """FTS5's row count and total token count (its averages record, rowid 1 of ``fts_data``:
    varints, as ``bm25()`` reads them)."""
    row = db.execute("SELECT block FROM fts_data WHERE id = 1").fetchone()
    if row is None or not row[0]:
        return 0, 0
    block = bytes(row[0])
    rows, at = _varint(block, 0)
    tokens, _ = _varint(block, at) if at < len(block) else (0, at)
    return rows, tokens


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's varint (FTS5 uses the same): 7 bits a byte, big-endian, the 9th byte whole."""
    value = 0
    for i in range(8):
        byte = data[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | data[at + 8], at + 9


@dataclass
class Segment:
    """One built segment, loaded (arrays memory-mapped) with its in-memory deletion mask."""

    name: str
    mark: int  # the rows with id <= mark are this segment's
    deleted_seq: int  # deletions up to this seq of the ``deleted`` table predate the build
    ids: np.ndarray  # int64, sorted: each position's row id
    dl: np.ndarray  # int32: each row's token count (FTS5's)
    date: np.ndarray  # int32 date_int
    author: np.ndarray  # int32 code into ``authors``
    publisher: np.ndarray  # int32 code into ``publishers``
    terms: np.ndarray  # bytes, sorted
    df: np.ndarray  # int64: FTS5's row count of each term when built (deleted rows' included)
    offsets: np.ndarray  # int64, len(terms) + 1
    post_pos: np.ndarray  # int32 positions into ids
    post_tf: np.ndarray  # uint16
    vectors: np.ndarray  # float16, rows x dimensions (dimensions 0 when built without them)
    vector_known: np.ndarray  # bool per position: the store had a vector for the row
    authors: dict[str, int]
    publishers: dict[str, int]
    deleted: np.ndarray  # bool per position, in memory: rows deleted since the build
    unindexed: np.ndarray  # bool: those of them deleted with their terms (FTS5 n dropped)
    seen_seq: int  # the last ``deleted`` seq applied to ``deleted``
    lock: threading.Lock

    @property
    def rows(self) -> int:
        return len(self.ids)

    @classmethod
    def load(cls, folder: Path) -> Segment:
        """The segment saved in ``folder`` (ValueError/OSError when missing or inconsistent)."""
        manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
        if manifest.get("format") != _FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, not {_FORMAT}")
        checksums = manifest["sha256"]
        for name in _ARRAYS:
            if file_sha256(folder / f"{name}.npy") != checksums[name]:
                raise ValueError(f"{name}.npy does not match the SHA-256 of its build")
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        rows = int(manifest["rows"])
        for name in ("ids", "dl", "date", "author", "publisher", "vectors", "vector_known"):
            if len(arrays[name]) != rows:
                raise ValueError(f"{name}.npy holds {len(arrays[name])} rows, not {rows}")
        offsets = arrays["offsets"]
        if len(offsets) != len(arrays["terms"]) + 1 or int(offsets[-1]) != len(arrays["post_pos"]):
            raise ValueError("the postings do not match their offsets")
        if len(arrays["df"]) != len(arrays["terms"]):
            raise ValueError("df.npy and terms.npy differ in length")
        if len(arrays["post_tf"]) != len(arrays["post_pos"]):
            raise ValueError("post_tf.npy and post_pos.npy differ in length")
        return cls(
            name=folder.name,
            mark=int(manifest["mark"]),
            deleted_seq=int(manifest["deleted_seq"]),
            authors={a: i for i, a in enumerate(manifest["authors"])},
            publishers={p: i for i, p in enumerate(manifest["publishers"])},
            deleted=np.zeros(rows, dtype=bool),
            unindexed=np.zeros(rows, dtype=bool),
            seen_seq=int(manifest["deleted_seq"]),
            lock=threading.Lock(),
            **arrays,
        )

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray, int] | None:
        """``term``'s row positions, term frequencies and FTS5 row count when built, or None
        when no row of the segment has it."""
        key = term.encode("ascii")
        at = int(np.searchsorted(self.terms, key))
        if at >= len(self.terms) or self.terms[at] != key:
            return None
        lo, hi = int(self.offsets[at]), int(self.offsets[at + 1])
        return self.post_pos[lo:hi], self.post_tf[lo:hi], int(self.df[at])

    def positions(self, row_ids: np.ndarray) -> np.ndarray:
        """The positions of those of ``row_ids`` that this segment holds."""
        at = np.searchsorted(self.ids, row_ids)
        at = np.minimum(at, max(self.rows - 1, 0))
        return at[self.ids[at] == row_ids] if self.rows else at[:0]

    def vectors_of(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Of ``row_ids``, those whose vector this segment holds (a bool mask over
        ``row_ids``) and those vectors (float16, in the same order)."""
        if not self.rows or not self.vectors.shape[1]:
            return np.zeros(len(row_ids), dtype=bool), np.zeros((0, 0), dtype=np.float16)
        at = np.minimum(np.searchsorted(self.ids, row_ids), self.rows - 1)
        held = self.ids[at] == row_ids
        held[held] = self.vector_known[at[held]]
        return held, np.asarray(self.vectors[at[held]])

    def apply_deletions(self, db: sqlite3.Connection) -> None:
        """Mask the rows deleted since this process last looked (cheap when none were)."""
        with self.lock:
            found = db.execute(
                "SELECT seq, id, terms_kept FROM deleted_rows WHERE seq > ? ORDER BY seq",
                (self.seen_seq,),
            ).fetchall()
            if not found:
                return
            ids = np.fromiter((r[1] for r in found), dtype=np.int64, count=len(found))
            self.deleted[self.positions(ids)] = True
            removed = np.fromiter((not r[2] for r in found), dtype=bool, count=len(found))
            self.unindexed[self.positions(ids[removed])] = True
            self.seen_seq = int(found[-1][0])


def build(
    path: Path,
    progress: Callable[[str], None] | None = None,
    *,
    vectors: VectorSource | None = None,
    previous: Segment | None = None,
) -> tuple[str, dict[str, float]]:
    """Build a segment of every row the FTS5 file ``path`` holds now, into a new folder of
    ``segments_dir(path)``; the folder's name and figures (the caller points ``meta`` at it).
    It reads one snapshot of the file in its own connection: writers and readers go on.
    The rows' vectors are ``previous``'s where it held them, the rest read from ``vectors``
    (none kept without it).

    The postings are FTS5's own: its ``fts5vocab`` instance table (term, row, position, in
    term and row order), counted per term and row, so each token and frequency is the one
    ``bm25()`` sees. Measured at 50k chunks: 8 s, against 51 s to recompute ``index_terms``
    from each row's text (and a regex's guess at FTS5's tokenizer)."""
    started = time.perf_counter()
    db = sqlite3.connect(path, timeout=60.0, isolation_level=None)
    try:
        db.execute("CREATE VIRTUAL TABLE temp.instances USING fts5vocab(main, 'fts', 'instance')")
        db.execute("BEGIN")  # one snapshot: the rows, their sizes, postings and deletions
        deleted_seq = int(
            db.execute("SELECT coalesce(max(seq), 0) FROM deleted_rows").fetchone()[0]
        )
        fields = db.execute(
            "SELECT c.id, c.author, c.publisher, c.date_int, d.sz, c.chunk_id FROM chunks AS c"
            " JOIN fts_docsize AS d ON d.id = c.id ORDER BY c.id"
        ).fetchall()
        mark = int(db.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()[0])
        authors: dict[str, int] = {}
        publishers: dict[str, int] = {}
        ids = np.fromiter((r[0] for r in fields), np.int64, len(fields))
        dl = np.fromiter((_varint(bytes(r[4]), 0)[0] for r in fields), np.int32, len(fields))
        date = np.fromiter((r[3] for r in fields), np.int32, len(fields))
        author = np.fromiter(
            (authors.setdefault(str(r[1]), len(authors)) for r in fields), np.int32, len(fields)
        )
        publisher = np.fromiter(
            (publishers.setdefault(str(r[2]), len(publishers)) for r in fields),
            np.int32,
            len(fields),
        )
        chunk_ids = [str(r[5]) for r in fields]
        del fields
        names: list[str] = []
        starts = array("q")  # where each held term's postings start (terms come in order)
        post_doc = array("i" if mark < 2**31 else "q")
        post_tf = array("H")
        current: str | None = None
        held = False
        last_doc = -1
        for term, doc in db.execute("SELECT term, doc FROM temp.instances"):
            if term != current:
                current, last_doc = term, -1
                held = _SIMPLE.fullmatch(term) is not None
                if held:
                    names.append(term)
                    starts.append(len(post_doc))
            if not held:
                continue
            if doc == last_doc:
                if post_tf[-1] < 65535:
                    post_tf[-1] += 1
            else:
                last_doc = doc
                post_doc.append(doc)
                post_tf.append(1)
        starts.append(len(post_doc))
        db.execute("COMMIT")
    finally:
        db.close()
    read_s = time.perf_counter() - started
    if progress:
        progress(f"segment: {len(ids)} rows, {len(post_doc)} postings read in {read_s:.1f} s")
    # Row ids to positions, a slice at a time (the postings are the bulk of the memory).
    docs = np.frombuffer(post_doc, dtype=np.int32 if post_doc.typecode == "i" else np.int64)
    post_pos = np.empty(len(docs), dtype=np.int32)
    kept = np.empty(len(docs), dtype=bool)
    for lo in range(0, len(docs), 1 << 23):
        part = docs[lo : lo + (1 << 23)]
        at = np.minimum(np.searchsorted(ids, part), max(len(ids) - 1, 0))
        kept[lo : lo + len(part)] = ids[at] == part if len(ids) else False
        post_pos[lo : lo + len(part)] = at
    del docs, post_doc
    tf = np.frombuffer(post_tf, dtype=np.uint16)
    offsets = np.frombuffer(starts, dtype=np.int64)
    df = np.diff(offsets)  # rows per term as FTS5 counts them, before any are left out
    if not kept.all():
        # Entries of rows no longer in ``chunks`` (a damaged row deleted without its terms)
        # stay out; FTS5 still counts them in its n and N, as bm25() does.
        before = np.concatenate(([0], np.cumsum(kept, dtype=np.int64)))
        offsets = before[offsets]
        post_pos, tf = post_pos[kept], tf[kept]
    del kept
    # CSC: terms in byte order, each one's postings together. FTS5 hands its terms over in
    # that order; should it not, the terms are sorted and their postings moved with them.
    terms = np.array(names, dtype=f"S{_MAX_TERM}") if names else np.zeros(0, "S1")
    if len(terms) > 1 and not bool(np.all(terms[1:] > terms[:-1])):
        order = np.argsort(terms, kind="stable")
        pieces = [slice(int(offsets[i]), int(offsets[i + 1])) for i in order]
        post_pos = np.concatenate([post_pos[p] for p in pieces])
        tf = np.concatenate([tf[p] for p in pieces])
        terms = terms[order]
        df = df[order]
        offsets = np.concatenate(([0], np.cumsum([p.stop - p.start for p in pieces])))
    arrays: dict[str, np.ndarray] = {
        "ids": ids,
        "dl": dl,
        "date": date,
        "author": author,
        "publisher": publisher,
        "terms": terms,
        "df": df,
        "offsets": np.asarray(offsets, dtype=np.int64),
        "post_pos": post_pos,
        "post_tf": tf,
    }
    manifest: dict[str, object] = {
        "format": _FORMAT,
        "mark": mark,
        "deleted_seq": deleted_seq,
        "rows": len(ids),
        "authors": list(authors),
        "publishers": list(publishers),
    }
    folder = segments_dir(path)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING, dir=folder))
    try:
        for name, values in arrays.items():
            np.save(staging / f"{name}.npy", values)
        known, carried, read = _row_vectors(staging, ids, chunk_ids, vectors, previous)
        np.save(staging / "vector_known.npy", known)
        # Hashed as written (read back): what a later load must find.
        manifest["sha256"] = {name: file_sha256(staging / f"{name}.npy") for name in _ARRAYS}
        (staging / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        saved = folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        os.rename(staging, saved)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    figures = {
        "rows": float(len(ids)),
        "postings": float(len(post_pos)),
        "terms": float(len(terms)),
        "read_s": read_s,
        "vectors_carried": float(carried),
        "vectors_read": float(read),
        "build_s": time.perf_counter() - started,
        "disk_mb": sum(p.stat().st_size for p in saved.iterdir()) / 2**20,
    }
    return saved.name, figures


def _row_vectors(
    staging: Path,
    ids: np.ndarray,
    chunk_ids: Sequence[str],
    source: VectorSource | None,
    previous: Segment | None,
) -> tuple[np.ndarray, int, int]:
    """Write each row's vector (float16) to ``staging/vectors.npy``, a slice at a time (a
    million rows are 768 MB: never all in memory); whether each is known, how many were
    carried over from ``previous`` (the rows it held keep their vectors: a row's vector never
    changes) and how many were read from ``source`` (the others, a page at a time)."""
    rows = len(ids)
    known = np.zeros(rows, dtype=bool)
    wanted = np.arange(rows)
    dim = int(previous.vectors.shape[1]) if previous is not None and previous.rows else 0
    first: Mapping[str, np.ndarray] = {}
    if not dim and source is not None and rows:  # the first page read tells the width
        first = source([chunk_ids[i] for i in wanted[:_VECTOR_PAGE]])
        dim = next((len(v) for v in first.values()), 0)
    out = np.lib.format.open_memmap(
        staging / "vectors.npy", mode="w+", dtype=np.float16, shape=(rows, dim)
    )
    carried = read = 0
    if previous is not None and dim and rows:
        for lo in range(0, rows, _VECTOR_PAGE * 20):
            part = slice(lo, min(lo + _VECTOR_PAGE * 20, rows))
            held, found = previous.vectors_of(ids[part])
            if len(found) and found.shape[1] == dim:
                out[part][held] = found
                known[part] = held
        carried = int(known.sum())
        wanted = np.flatnonzero(~known)
    if source is not None and dim:
        for lo in range(0, len(wanted), _VECTOR_PAGE):
            page = wanted[lo : lo + _VECTOR_PAGE]
            got = first if lo == 0 and first else source([chunk_ids[i] for i in page])
            for i in page:
                vector = got.get(chunk_ids[i])
                if vector is not None and len(vector) == dim:
                    out[i] = vector
                    known[i] = True
                    read += 1
    out.flush()
    del out
    return known, carried, read


def remove_old(path: Path, current: str) -> None:
    """Every segment folder but the newest ``_KEPT`` (``current`` among them), and staging
    folders of builds that crashed an hour ago or more."""
    folder = segments_dir(path)
    if not folder.is_dir():
        return
    saved = sorted(f.name for f in folder.iterdir() if f.is_dir() and f.name[0].isdigit())
    kept = set(saved[-_KEPT:]) | {current}
    for entry in folder.iterdir():
        if entry.name in kept or not entry.is_dir():
            continue
        if entry.name.startswith(_STAGING):
            try:
                if time.time() - entry.stat().st_mtime < 3600.0:
                    continue
            except OSError:
                continue
        shutil.rmtree(entry, ignore_errors=True)
