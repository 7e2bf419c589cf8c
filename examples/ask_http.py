"""Ask a `rag serve` server a question over plain HTTP and print the answer with its sources.

Standard library only (urllib), so it runs anywhere Python does. The key, needed to add an
article (and to ask, when the server has keys), comes from RAG_API_KEY, never from a flag:

    python examples/ask_http.py "Which countries does Brussels want to work with?"
    python examples/ask_http.py --stream "On what date were the proposals published?"
    RAG_API_KEY=... python examples/ask_http.py --add article.json "What does it say?"

``article.json`` holds one article: {"title": ..., "text": ..., "author": ..., "date": ...,
"url": ..., "id": ...} (title and text required). --url (or RAG_URL) picks the server,
default http://127.0.0.1:7860.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any


def call(url: str, method: str, path: str, body: Any = None, key: str = "") -> Any:
    """One JSON request; raises SystemExit with the server's one-line error on failure."""
    request = urllib.request.Request(url.rstrip("/") + path, method=method)
    if body is not None:
        request.data = json.dumps(body).encode("utf-8")
        request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return json.load(response)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"error {e.code}: {json.load(e).get('error', e.reason)}") from None


def stream_events(url: str, question: str, key: str = "") -> Iterator[tuple[str, Any]]:
    """(event, data) pairs from POST /v1/ask/stream, read as server-sent events."""
    request = urllib.request.Request(
        url.rstrip("/") + "/v1/ask/stream",
        data=json.dumps({"question": question}).encode("utf-8"),
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
        method="POST",
    )
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        response = urllib.request.urlopen(request, timeout=120)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"error {e.code}: {json.load(e).get('error', e.reason)}") from None
    with response:
        event, data = "message", ""
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:  # a blank line ends an event
                yield event, json.loads(data)
                event, data = "message", ""


def print_answer(answer: dict[str, Any]) -> None:
    print(answer["answer"])
    for notice in answer.get("notices", []):
        print(f"Note: {notice}")
    if answer["citations"]:
        print("\nSources:")
    for c in answer["citations"]:
        byline = ", ".join(part for part in (c["author"], c["date"]) if part)
        print(f"[{c['n']}] {c['title']}" + (f" ({byline})" if byline else ""))
        print(f"    “{c['quote']}”")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("question")
    parser.add_argument("--url", default=os.environ.get("RAG_URL", "http://127.0.0.1:7860"))
    parser.add_argument("--add", metavar="ARTICLE_JSON", help="add this article first")
    parser.add_argument("--stream", action="store_true", help="print the answer as it comes")
    args = parser.parse_args()
    key = os.environ.get("RAG_API_KEY", "")

    if args.add:
        with open(args.add, encoding="utf-8") as file:
            article = json.load(file)
        added = call(args.url, "POST", "/v1/articles", article, key)
        state = "added" if added["created"] else "already indexed"
        print(f"{state}: {', '.join(added['article_ids'])} ({added['chunks_embedded']} chunks)")

    if not args.stream:
        print_answer(call(args.url, "POST", "/v1/ask", {"question": args.question}, key))
        return 0
    for event, data in stream_events(args.url, args.question, key):
        if event == "token":
            print(data["text"], end="", flush=True)
        elif event == "answer":
            print("\n")  # the streamed text is replaced by the final, verified answer
            print_answer(data)
        elif event == "error":
            raise SystemExit(f"error: {data['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
