"""HTML (``.html``, ``.htm``): the main text and metadata are found by trafilatura (imported
here only), which parses the page as given and fetches nothing; navigation, footers, related
links and share buttons are left out. ``<title>``/``<meta>``/canonical-link values fill in
what trafilatura does not find. A page nested deeper than libxml2 parses has its deepest tags
removed first, keeping their text. It runs no scripts and loads no images or styles.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import ClassVar

from rag.readers.base import MAX_PAGE_MB, MB, Document, ReadOutcome, decode_text, one_line
from rag.readers.fields import build_article, file_article_id, lenient_date
from rag.schema import Article

# libxml2, which parses pages for trafilatura, stops at 256 nested elements and loses what is
# deeper; the tags of a page nested deeper than this are removed below it, keeping its text.
_HTML_MAX_DEPTH = 200
_VOID_ELEMENTS = frozenset(
    {
        "area", "base", "basefont", "br", "col", "embed", "frame", "hr", "img", "input",
        "isindex", "keygen", "link", "meta", "param", "source", "track", "wbr",
    }
)  # fmt: skip
# An element of these opened right inside one of the same name closes it (<p>a<p>b).
_SIBLING_CLOSED = frozenset({"p", "li", "option", "tr", "td", "th", "dt", "dd"})


class _TagNesting:
    """How deep elements nest, roughly as an HTML parser nests them: void elements hold
    nothing, an end tag closes whatever is open inside its element, a stray one is ignored,
    and ``<p>``/``<li>``... opened inside the same closes it. ``<div/>`` opens a ``div``."""

    def __init__(self) -> None:
        self._open: list[str] = []
        self.deepest = 0

    def start(self, tag: str) -> int:
        """The depth of the element ``tag`` starts (1 for the outermost)."""
        if tag in _VOID_ELEMENTS:
            return len(self._open) + 1
        if tag in _SIBLING_CLOSED and self._open and self._open[-1] == tag:
            self._open.pop()
        self._open.append(tag)
        self.deepest = max(self.deepest, len(self._open))
        return len(self._open)

    def end(self, tag: str) -> int | None:
        """The depth of the element ``tag`` ends, or None when none is open."""
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index] == tag:
                del self._open[index:]
                return index + 1
        return None


class _DeepTagRemover(HTMLParser):
    """The page as written, less the start and end tags of elements nested deeper than
    ``max_depth``; their text, comments and everything shallower are kept verbatim."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(convert_charrefs=False)
        self._max_depth = max_depth
        self._nesting = _TagNesting()
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._nesting.start(tag) <= self._max_depth:
            self.parts.append(self.get_starttag_text() or "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        depth = self._nesting.end(tag)
        if depth is None or depth <= self._max_depth:
            self.parts.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_entityref(self, name: str) -> None:
        self.parts.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.parts.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.parts.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.parts.append(f"<!{decl}>")

    def handle_pi(self, data: str) -> None:
        self.parts.append(f"<?{data}>")

    def unknown_decl(self, data: str) -> None:
        self.parts.append(f"<![{data}]>")


def _without_deep_tags(html: str, max_depth: int = _HTML_MAX_DEPTH) -> str:
    remover = _DeepTagRemover(max_depth)
    remover.feed(html)
    remover.close()
    return "".join(remover.parts)


class _MetaTagReader(HTMLParser):
    """Collects ``<title>``, ``<meta>`` and ``<link rel=canonical>`` values as fallbacks,
    and how deep the page's elements nest."""

    _KEYS: ClassVar[dict[str, str]] = {
        "og:title": "title",
        "twitter:title": "title",
        "author": "author",
        "article:author": "author",
        "og:site_name": "publisher",
        "application-name": "publisher",
        "article:published_time": "date",
        "date": "date",
        "datepublished": "date",
        "og:url": "url",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, str] = {}
        self.nesting = _TagNesting()
        self._in_title = False
        self._title_parts: list[str] = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)  # an HTML parser ignores the "/" of <div/>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.nesting.start(tag)
        attributes = {name.lower(): value or "" for name, value in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            key = attributes.get("property") or attributes.get("name") or attributes.get("itemprop")
            target = self._KEYS.get((key or "").lower())
            if target:
                self._remember(target, attributes.get("content", ""))
        elif tag == "link" and "canonical" in attributes.get("rel", "").lower().split():
            self._remember("url", attributes.get("href", ""))

    def _remember(self, name: str, value: str) -> None:
        if value.strip():
            self.values.setdefault(name, one_line(value))

    def handle_endtag(self, tag: str) -> None:
        self.nesting.end(tag)
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title_parts.append(data)

    def page_title(self) -> str:
        return one_line("".join(self._title_parts))


def _html_meta_fallbacks(html: str) -> tuple[dict[str, str], int]:
    """Metadata from the page's tags, and how deep its elements nest."""
    reader = _MetaTagReader()
    reader.feed(html)
    reader.close()
    values = dict(reader.values)
    if "title" not in values and reader.page_title():
        values["title"] = reader.page_title()
    return values, reader.nesting.deepest


class HtmlReader:
    name: str = "html"
    suffixes: tuple[str, ...] = (".html", ".htm")
    max_bytes: int | None = MAX_PAGE_MB * MB
    limit: str = f"the limit for one HTML page is {MAX_PAGE_MB} MB"

    def read(self, document: Document) -> ReadOutcome:
        return [_read_html(decode_text(document), document)], []


def _read_html(text: str, document: Document) -> Article:
    """Main text and metadata via trafilatura, which parses the string and fetches nothing."""
    import trafilatura
    from trafilatura.settings import Document as TrafilaturaDocument

    fallback, depth = _html_meta_fallbacks(text)
    if depth > _HTML_MAX_DEPTH:
        text = _without_deep_tags(text)
    found = trafilatura.bare_extraction(
        text,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        with_metadata=True,
    )
    extracted = found if isinstance(found, TrafilaturaDocument) else None

    def value(name: str) -> str:
        given = getattr(extracted, name, None)
        return one_line(given) if isinstance(given, str) else ""

    url = value("url") or fallback.get("url", "")
    title = value("title") or fallback.get("title", "") or document.stem
    # trafilatura puts each paragraph on its own line.
    paragraphs = (extracted.text or "").split("\n") if extracted else []
    return build_article(
        article_id=file_article_id(None, document, url),
        title=title,
        text="\n\n".join(paragraphs),
        source=document.source,
        author=(value("author") or fallback.get("author", "")).replace("; ", ", "),
        date_text=lenient_date(value("date")) or lenient_date(fallback.get("date", "")),
        publisher=value("sitename") or fallback.get("publisher", ""),
        url=url,
    )
