"""The chat as a journalist uses it, in headless Chromium: names, headings, sources, filters.

The real stack (packaged models, Chroma in a temporary directory, ``rag serve``'s app on
uvicorn on 127.0.0.1) indexes the seed article and a second one from another outlet. Playwright
drives Debian's chromium (/usr/bin/chromium, installed by ``make test``; never downloaded). It
checks what a reader relies on: every control has an accessible name and headings go down one
level at a time; an answer's quote is printed once in its text and once, highlighted inside its
paragraph, on its article's card; each ``[n]`` leads to its quote; "Read the article" opens the
article view; an outlet filter in the Archive tab changes the sources of the next answer; "Copy
answer" copies plain text with the citations; at 390 px the chat fits the screen and text
contrast is at least 4.5:1. Every wait is bounded.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import app as chat_ui
from rag.api import create_app
from rag.assistant import Assistant
from rag.config import Settings
from tests.conftest import CORPUS
from tests.test_api import serve
from tests.test_embed_browser import (  # noqa: F401  (browser: the fixture)
    CHROMIUM,
    WAIT_MS,
    browser,
)

pytestmark = pytest.mark.integration

SEED_TITLE = "Why Europe Should Double Down On Its Global Tech Ties"
PARTNERS_Q = "Which countries does Brussels want to reinforce relationships with?"
GAZETTE = "Harbour Gazette"
GAZETTE_TITLE = "Brussels courts the northern ports"
GAZETTE_ARTICLE = f"""---
id: northern-ports
title: {GAZETTE_TITLE}
author: Ana Diaz
date: 2017-01-12
publisher: {GAZETTE}
---

The harbour board met on Tuesday to discuss the plans from Brussels.

Brussels wants to reinforce relationships with Norway and Iceland, the harbour board said on
Tuesday, to keep the northern ports open all winter.

Work on the new quays will start in the spring, the board said.
"""
# Roles a reader reaches with the keyboard or a screen reader: each needs a name.
NAMED_ROLES = (
    "button", "textbox", "combobox", "listbox", "link", "tab", "checkbox", "searchbox",
    "slider", "spinbutton", "switch", "menuitem", "option", "radio",
)  # fmt: skip


@dataclass
class Chat:
    url: str


@pytest.fixture(scope="module")
def chat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chat]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make test` (it installs Debian's chromium)")
    extra = tmp_path_factory.mktemp("gazette")
    (extra / "northern-ports.md").write_text(GAZETTE_ARTICLE, encoding="utf-8")
    settings = Settings(data_dir=tmp_path_factory.mktemp("index"))
    Assistant.open(settings).ingest([CORPUS, extra], progress=False)
    assistant = Assistant.open(settings)
    api = create_app(assistant, settings, chat=chat_ui.build_app)
    with serve(api) as url:
        yield Chat(url)


@pytest.fixture
def page(browser: Any, chat: Chat) -> Iterator[Any]:  # noqa: F811
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    tab = context.new_page()
    tab.set_default_timeout(WAIT_MS)
    tab.goto(f"{chat.url}/chat/")
    tab.locator("#rag-question textarea").wait_for(state="visible")
    try:
        yield tab
    finally:
        context.close()


def ask(page: Any, question: str) -> Any:
    """Ask ``question`` in the chat and return the locator of its final answer."""
    before = page.locator("#rag-chatbot .rag-answer[id]").count()
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    answer = page.locator("#rag-chatbot .rag-answer[id]").nth(before)
    answer.wait_for(state="visible")
    return answer


def unnamed_controls(snapshot: str) -> list[str]:
    """Lines of an ARIA snapshot that are controls without a name (``- button`` alone)."""
    roles = "|".join(NAMED_ROLES)
    pattern = re.compile(rf"^\s*- ({roles})(?: \[[^\]]*\])*:?\s*$")
    return [line for line in snapshot.splitlines() if pattern.match(line)]


def heading_levels(snapshot: str) -> list[int]:
    return [int(m) for m in re.findall(r"- heading .*?\[level=(\d)\]", snapshot)]


def assert_headings_in_order(levels: list[int]) -> None:
    assert levels and levels[0] == 1, levels
    for before, after in itertools.pairwise(levels):
        assert after <= before + 1, f"a heading jumps from h{before} to h{after}: {levels}"


def test_every_control_is_named_and_headings_are_in_order(page: Any) -> None:
    ask(page, PARTNERS_Q)
    chat_view = page.locator("body").aria_snapshot()
    assert unnamed_controls(chat_view) == []
    assert '- textbox "Question"' in chat_view
    assert re.search(r'- button "(Ask|Submit)"', chat_view)
    assert_headings_in_order(heading_levels(chat_view))

    page.get_by_role("tab", name="Archive").click()
    page.locator(".rag-stats").wait_for(state="visible")
    archive_view = page.locator("body").aria_snapshot()
    assert unnamed_controls(archive_view) == []
    for name in ("Outlets", "Authors", "Articles", "From date (YYYY-MM-DD)"):
        assert name in archive_view
    assert_headings_in_order(heading_levels(archive_view))
    # No Gradio developer settings or Gradio API page for readers; "API" leads to /v1's docs.
    assert (
        page.get_by_text("Use via API").count() == 0
        or not page.get_by_text("Use via API").first.is_visible()
    )
    assert page.get_by_role("button", name="Settings").count() == 0
    docs = page.get_by_role("link", name="API documentation (/v1)")
    href = docs.get_attribute("href")
    assert page.evaluate("(h) => new URL(h, location.href).pathname", href) == "/docs"


def test_an_answer_prints_each_quote_once_and_each_marker_leads_to_it(page: Any) -> None:
    answer = ask(page, PARTNERS_Q)
    prose = " ".join(answer.locator(".rag-text").all_inner_texts())
    cards = answer.locator(".rag-card")
    headlines = cards.locator("h3").all_inner_texts()
    assert SEED_TITLE in headlines
    assert len(headlines) == len(set(headlines)), "an article got two cards"
    quotes = answer.locator("mark.rag-quote")
    assert quotes.count() >= 1
    whole = answer.inner_text()
    for i in range(quotes.count()):
        mark = quotes.nth(i)
        text = mark.evaluate(
            "(m) => { const c = m.cloneNode(true);"
            " c.querySelectorAll('.rag-n, .rag-when').forEach((e) => e.remove());"
            " return c.textContent.replace(/\\s+/g, ' ').trim(); }"
        )
        # Once in the answer's text, once highlighted on its card: never a third time.
        assert " ".join(whole.split()).count(text) <= 2, text
        assert " ".join(prose.split()).count(text) <= 1, text
        paragraph = mark.locator("xpath=..").inner_text()
        assert len(paragraph) >= len(text)  # shown inside its paragraph
    refs = answer.locator("a.rag-ref")
    assert refs.count() >= 1
    for i in range(refs.count()):
        target = refs.nth(i).get_attribute("href")
        assert target and target.startswith("#")
        assert answer.locator(f"[id='{target[1:]}']").count() == 1
    refs.first.click()
    focused = page.evaluate("() => document.activeElement && document.activeElement.id")
    assert focused == refs.first.get_attribute("href")[1:]


def test_the_article_view_opens_from_a_card(page: Any) -> None:
    answer = ask(page, PARTNERS_Q)
    card = answer.locator(".rag-card").filter(has_text=SEED_TITLE).first
    quote = card.locator("mark.rag-quote").first.inner_text()
    card.get_by_role("link", name=re.compile("Read the article")).click()
    view = page.locator(".rag-article-body")
    view.wait_for(state="visible")
    assert page.get_by_role("tab", name="Article").get_attribute("aria-selected") == "true"
    assert page.locator(".rag-article h2").inner_text() == SEED_TITLE
    highlighted = " ".join(view.locator("mark.rag-quote").all_inner_texts())
    words = quote.split("]", 1)[-1].split()[:6]
    assert " ".join(words) in " ".join(highlighted.split())
    assert len(view.inner_text()) > 2000  # the whole article, not the quote


def test_an_outlet_filter_changes_the_answers_sources(page: Any) -> None:
    unfiltered = ask(page, PARTNERS_Q).locator(".rag-card h3").all_inner_texts()
    assert SEED_TITLE in unfiltered

    page.get_by_role("tab", name="Archive").click()
    outlets = page.get_by_role("combobox", name="Outlets")
    outlets.click()
    page.get_by_role("option", name=GAZETTE).click()
    listed = page.locator(".rag-list")
    listed.filter(has_text="1 of 2 articles").wait_for(state="visible")
    assert GAZETTE_TITLE in listed.inner_text() and SEED_TITLE not in listed.inner_text()

    page.get_by_role("tab", name="Chat").click()
    page.locator("#rag-filters-note").filter(has_text=GAZETTE).wait_for(state="visible")
    answer = ask(page, PARTNERS_Q)
    filtered = answer.locator(".rag-card h3").all_inner_texts()
    assert filtered == [GAZETTE_TITLE]
    assert GAZETTE in answer.locator(".rag-card .rag-meta").first.inner_text()
    # The article's Tuesday is dated beside it.
    assert "Tuesday (article of Thursday 12 January 2017)" in answer.inner_text()


def test_copying_an_answer_gives_plain_text_with_its_citations(page: Any) -> None:
    answer = ask(page, PARTNERS_Q)
    answer.get_by_role("button", name="Copy answer").click()
    answer.get_by_role("button", name="Copied").wait_for(state="visible")
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert "<" not in copied and "Sources" in copied
    assert re.search(r"\[1\]", copied.split("Sources")[0])
    assert f"[1] {SEED_TITLE}" in copied or f"] {SEED_TITLE}" in copied


def contrast(page: Any, selector: str, pseudo: str = "") -> float:
    """The contrast ratio of ``selector``'s text colour on its (first opaque) background."""
    return float(
        page.evaluate(
            """([sel, pseudo]) => {
              const el = document.querySelector(sel);
              const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
              const lum = ([r, g, b]) => {
                const f = (v) => {
                  v /= 255;
                  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                };
                return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
              };
              const fg = rgb(getComputedStyle(el, pseudo || null).color);
              let node = el, bg = [255, 255, 255];
              while (node && node.nodeType === 1) {
                const c = rgb(getComputedStyle(node).backgroundColor);
                if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) { bg = c; break; }
                node = node.parentElement;
              }
              const [a, b] = [lum(fg) + 0.05, lum(bg) + 0.05];
              return Math.max(a, b) / Math.min(a, b);
            }""",
            [selector, pseudo],
        )
    )


def test_on_a_phone_the_chat_fits_and_text_is_readable(browser: Any, chat: Chat) -> None:  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    try:
        page.goto(f"{chat.url}/chat/")
        page.locator("#rag-question textarea").wait_for(state="visible")
        answer = ask(page, PARTNERS_Q)
        page.wait_for_timeout(300)
        geometry = page.evaluate(
            """() => {
              const box = (s) => document.querySelector(s).getBoundingClientRect();
              const log = box('#rag-chatbot [role="log"]');
              const answers = document.querySelectorAll('#rag-chatbot .rag-answer[id]');
              const last = answers[answers.length - 1].getBoundingClientRect();
              return { question: box('#rag-question').bottom,
                       width: document.documentElement.scrollWidth,
                       logTop: log.top, logHeight: log.height, answerTop: last.top };
            }"""
        )
        assert geometry["question"] <= 844, geometry  # the question box is on screen
        assert geometry["width"] <= 390, geometry  # no sideways scrolling
        assert geometry["logHeight"] >= 500, geometry  # the chat takes most of the screen
        # The new answer opens at its top, not scrolled to its end.
        assert 0 <= geometry["answerTop"] - geometry["logTop"] <= 80, geometry
        assert answer.locator(".rag-card").count() >= 1
        for selector, pseudo in (
            ("#rag-question textarea", "::placeholder"),
            (".rag-footer", ""),
            (".rag-card .rag-meta", ""),
            ("mark.rag-quote", ""),
        ):
            assert contrast(page, selector, pseudo) >= 4.5, selector
    finally:
        context.close()
