"""Markdown (``.md``, ``.markdown``): optional YAML front matter between ``---`` lines with
``id``, ``title``, ``author`` (text or list), ``date``, ``publisher``, ``url`` (alias ``link``);
other keys are ignored. Without ``title`` the first ``# heading`` is the title, else the file
stem. Markdown syntax that is not prose (heading marks, emphasis, link targets, images) is
removed; it does not render Markdown or keep code blocks apart from prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.readers.base import (
    ARTICLE_LIMIT,
    MAX_ARTICLE_MB,
    MB,
    Document,
    ReadOutcome,
    decode_text,
    one_line,
)
from rag.readers.fields import article_fields, article_from_front_matter, split_front_matter

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_THEMATIC_BREAK = re.compile(r"^([-*_])(\s*\1){2,}$")
_SETEXT_UNDERLINE = re.compile(r"^(=+|-+)$")
_REFERENCE_DEFINITION = re.compile(r"^\[[^\]]+\]:\s*\S+")
_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.*?)(?:\s+#+)?$")
_EMPTY_HEADING = re.compile(r"^#{1,6}$")
_LIST_ITEM = re.compile(r"^([-*+]|\d{1,9}[.)])\s+")
_BLOCKQUOTE = re.compile(r"^(>\s?)+")
_INLINE_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"!\[[^\]]*\]\[[^\]]*\]"), ""),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # [text](url)
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # [text][ref]
    (re.compile(r"<((?:https?|mailto):[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"`([^`\n]+)`"), r"\1"),  # inline code
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), r"\1"),  # emphasis
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), r"\1"),
)
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!>~|])")
# Private-use stand-ins for escaped characters while Markdown syntax is stripped.
_ESCAPE_BASE = 0xE000


class MarkdownReader:
    name: str = "markdown"
    suffixes: tuple[str, ...] = (".md", ".markdown")
    max_bytes: int | None = MAX_ARTICLE_MB * MB
    limit: str = ARTICLE_LIMIT

    def read(self, document: Document) -> ReadOutcome:
        text = decode_text(document)
        split = split_front_matter(text, document.source)
        record, body = split if split else ({}, text)
        meta = article_fields(record, document.source)
        heading_title, paragraphs = _markdown_paragraphs(body, take_title=not meta.title)
        article = article_from_front_matter(
            meta, meta.title or heading_title, "\n\n".join(paragraphs), document
        )
        return [article], []


@dataclass
class _MarkdownScan:
    """State while turning Markdown lines into prose paragraphs."""

    take_title: bool
    title: str = ""
    in_code: bool = False
    paragraphs: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)

    def finish_paragraph(self) -> None:
        if self.current:
            self.paragraphs.append("\n".join(self.current))
        self.current = []


def _markdown_paragraphs(markdown: str, *, take_title: bool) -> tuple[str, list[str]]:
    """(first ``#`` heading if ``take_title``, else "", paragraphs of prose).

    Soft-wrapped lines are joined with a space; list items and code lines keep their own line.
    """
    scan = _MarkdownScan(take_title=take_title)
    for raw_line in markdown.split("\n"):
        _scan_markdown_line(scan, raw_line)
    scan.finish_paragraph()
    return scan.title, scan.paragraphs


def _scan_markdown_line(scan: _MarkdownScan, raw_line: str) -> None:
    if _FENCE.match(raw_line):
        scan.finish_paragraph()
        scan.in_code = not scan.in_code
        return
    if scan.in_code:
        scan.current.append(raw_line)
        return
    line = _BLOCKQUOTE.sub("", raw_line.strip()).strip()
    if not line or _REFERENCE_DEFINITION.match(line) or _EMPTY_HEADING.match(line):
        scan.finish_paragraph()
        return
    if _SETEXT_UNDERLINE.match(line) and scan.current:
        # The line above was a heading ("=" underline: level 1, so it may be the title).
        if line.startswith("=") and scan.take_title and not scan.title and len(scan.current) == 1:
            scan.title, scan.current = one_line(scan.current[0]), []
        scan.finish_paragraph()
        return
    if _THEMATIC_BREAK.match(line):
        scan.finish_paragraph()
        return
    heading = _ATX_HEADING.match(line)
    if heading:
        scan.finish_paragraph()
        text = _strip_inline_markdown(heading[2])
        if scan.take_title and not scan.title and len(heading[1]) == 1:
            scan.title = one_line(text)
        else:
            scan.paragraphs.append(text)
        return
    text = _strip_inline_markdown(line)
    if scan.current and not _LIST_ITEM.match(line):
        scan.current[-1] = f"{scan.current[-1]} {text}"
    else:
        scan.current.append(text)


def _strip_inline_markdown(line: str) -> str:
    """Link text without targets, no images, no emphasis or code marks; escapes resolved."""
    protected = _MARKDOWN_ESCAPE.sub(lambda m: chr(_ESCAPE_BASE + ord(m[1])), line)
    for pattern, replacement in _INLINE_PATTERNS:
        protected = pattern.sub(replacement, protected)
    return "".join(
        chr(ord(ch) - _ESCAPE_BASE) if _ESCAPE_BASE <= ord(ch) < _ESCAPE_BASE + 128 else ch
        for ch in protected
    )
