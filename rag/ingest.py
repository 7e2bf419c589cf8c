"""Read news articles from files and folders into ``Article`` records: the orchestration.

What it does: walks files and folders, hands each supported file to the reader of its format
(``rag.readers``, one module per format, chosen by suffix), keeps the first article of each
id, and reports each file, folder or row it could not read instead of stopping.

What it does not do: parse any format (the readers do), chunk, embed or index text, fetch
anything from the network (HTML is parsed as given, never downloaded), guess languages, or fix
the article's wording. Text is quoted verbatim as citations, so apart from whitespace and
Unicode NFC it is left as written.

Corpus format (what ``corpus/`` and any folder handed to ``read_articles`` may hold):

- ``.md`` / ``.markdown``: optional YAML front matter between ``---`` lines with ``id``,
  ``title``, ``author`` (text or list), ``date``, ``publisher``, ``url`` (alias ``link``); other
  keys are ignored. Without ``title`` the first ``# heading`` is the title, else the file stem.
  Markdown syntax that is not prose (heading marks, emphasis, link targets, images) is removed.
- ``.txt``: plain text; the first line is the title. A page copied from a website is cleaned of
  its navigation, a ``Name / Jun 5, 2025`` byline becomes author and date, and trailers that
  start with a line such as ``Authors``, ``Related`` or ``Topics`` are dropped. A ``.txt`` that
  starts with front matter is read like Markdown metadata, with its text kept as written.
- ``.html`` / ``.htm``: the main text and metadata are found by trafilatura; navigation,
  footers, related links and share buttons are left out.
- ``.jsonl``: one JSON object per line; ``.csv``: a header row, then one article per row.
  Columns: ``text`` (or ``body``/``content``), and optionally ``id`` (``article_id``),
  ``title``, ``author``, ``date`` (``publish_date``), ``publisher``, ``url`` (``link``,
  ``article_source_link``); others (such as ``subtitle``) are ignored. A bad line or row is
  reported as ``path#line N`` / ``path#row N`` (data rows counted from 1) and the rest is read.
  A row without ``publisher`` gets one from its URL's host (``publisher_from_url``): a
  well-known news host gives the outlet's name (``www.bbc.co.uk`` -> "BBC",
  ``europe.chinadaily.com.cn`` -> "China Daily"), any other host itself without ``www.``;
  reserved example/test hosts (``news.example``, ``localhost``) give none.

Ids: an ``id`` given in the file (1-128 of ``A-Za-z0-9._-``, not only dots: ``.`` and ``..``
cannot name an article in a URL path); else the hex part of a file stem like
``000_46ce722664604c9f``; else a hash of the URL; else a slug of the file stem (rows: a hash of
title and date). None depends on the text, so editing an article keeps its id.
Files and folders whose names start with ``.`` are skipped when walking a folder. A folder that
cannot be listed (no permission, an I/O error) is reported as skipped like a bad file, with the
folder as its source, so that a prune keeps every article stored from under it. A symlink that
loops or points nowhere is reported as skipped too; symlinked folders inside a folder are
not walked.

Encodings: UTF-8 (with or without a byte-order mark), and UTF-16 or UTF-32 when the file starts
with their byte-order mark. Sizes: one article is at most ``MAX_ARTICLE_MB`` (a ``.md``/``.txt``
file, one export row, the text found in a page) and an HTML page at most ``MAX_PAGE_MB``; bigger
ones are skipped with their size in the reason, before anything is embedded. Exports have no
file limit: they are read row by row.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from rag.errors import CorpusError
from rag.readers import (
    MAX_ARTICLE_MB,
    MAX_PAGE_MB,
    Document,
    ReadResult,
    SkippedFile,
    UnreadableSource,
    article_from_record,
    drop_duplicates,
    publisher_from_url,
    read_document,
    reader_for,
    supported_suffixes,
    unsupported_reason,
)
from rag.readers.base import os_reason
from rag.schema import Article

__all__ = [
    "MAX_ARTICLE_MB",
    "MAX_PAGE_MB",
    "SUPPORTED_SUFFIXES",
    "ReadResult",
    "SkippedFile",
    "article_from_record",
    "publisher_from_url",
    "read_articles",
    "read_file",
]

SUPPORTED_SUFFIXES = supported_suffixes()  # of the readers registered when this is imported


# --- public entry points -----------------------------------------------------------------


def read_articles(paths: Sequence[Path]) -> ReadResult:
    """Read every supported file under ``paths``; bad files and rows go to ``skipped``.

    Raises ``CorpusError`` only when a path does not exist, before anything is read.
    """
    articles: list[Article] = []
    skipped: list[SkippedFile] = []
    first_seen: dict[str, str] = {}
    files, unreadable_folders = _files_to_read(paths)
    skipped.extend(unreadable_folders)
    for file_path in files:
        if not _is_supported_file(file_path):
            skipped.append(SkippedFile(str(file_path), _unsupported_reason(file_path)))
            continue
        try:
            found, bad_rows = read_document(Document.from_path(file_path))
        except UnreadableSource as error:
            skipped.append(SkippedFile(error.source, error.reason))
            continue
        skipped.extend(bad_rows)
        articles.extend(drop_duplicates(found, first_seen, skipped))
    return ReadResult(articles=tuple(articles), skipped=tuple(skipped))


def read_file(path: Path) -> list[Article]:
    """The articles in one file; raises ``CorpusError`` naming the file if it cannot be read.

    For ``.jsonl``/``.csv`` exports, bad rows are left out (``read_articles`` reports them);
    an export with no readable row at all is an error.
    """
    if not path.exists() and not _is_symlink_loop(path):
        raise CorpusError(f"no such file or directory: {path}")
    problem = _unresolvable_reason(path)
    if problem:
        raise UnreadableSource(str(path), problem)
    if not _is_supported_file(path):
        raise UnreadableSource(str(path), _unsupported_reason(path))
    articles, bad_rows = read_document(Document.from_path(path))
    if not articles and bad_rows:
        first = bad_rows[0]
        raise UnreadableSource(
            str(path), f"no readable rows (first: {first.source}: {first.reason})"
        )
    return articles


# --- finding files ---------------------------------------------------------------------------


def _files_to_read(paths: Sequence[Path]) -> tuple[list[Path], list[SkippedFile]]:
    """Files named or found under ``paths``, in order, each once, and what could not be
    followed (folders that could not be listed, looping or broken symlinks); raises for a
    missing path."""
    for path in paths:
        if not path.exists() and not _is_symlink_loop(path):
            raise CorpusError(f"no such file or directory: {path}")
    files: list[Path] = []
    unreadable: list[SkippedFile] = []
    seen: set[Path] = set()
    for path in paths:
        found = _walk_folder(path, unreadable) if path.is_dir() else iter([path])
        for file_path in found:
            try:
                resolved = file_path.resolve(strict=True)
            except (OSError, RuntimeError) as error:
                reason = _unresolvable_reason(file_path) or f"cannot read: {error}"
                unreadable.append(SkippedFile(str(file_path), reason))
                continue
            if resolved not in seen:
                seen.add(resolved)
                files.append(file_path)
    return files, unreadable


def _is_symlink_loop(path: Path) -> bool:
    return _unresolvable_reason(path) == _SYMLINK_LOOP


_SYMLINK_LOOP = "symlink loop: following the link never reaches a file"


def _unresolvable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be followed to a file or folder (a looping or broken symlink, an
    unreadable parent), or None when it can."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # how Python 3.11 and 3.12 report a loop
        return _SYMLINK_LOOP
    except OSError as error:
        if error.errno == errno.ELOOP:
            return _SYMLINK_LOOP
        if isinstance(error, FileNotFoundError) and path.is_symlink():
            return f"broken symlink: its target {os.readlink(path)} does not exist"
        return f"cannot read: {os_reason(error)}"
    return None


def _walk_folder(folder: Path, unreadable: list[SkippedFile]) -> Iterator[Path]:
    """Supported, non-hidden files under ``folder``, sorted, recursively; each folder that
    cannot be listed is added to ``unreadable`` (and what is under it is not read)."""

    def cannot_list(error: OSError) -> None:
        where = str(error.filename) if error.filename is not None else str(folder)
        unreadable.append(SkippedFile(where, f"cannot read folder: {os_reason(error)}"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=cannot_list):
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and reader_for(name) is not None:
                yield Path(dirpath) / name


def _is_supported_file(path: Path) -> bool:
    return path.is_file() and reader_for(path.name) is not None


def _unsupported_reason(path: Path) -> str:
    if not path.is_file():
        return "not a regular file"
    return unsupported_reason(path.name)
