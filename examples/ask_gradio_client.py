"""Ask the chat that `rag serve` mounts at /chat/ with gradio_client, as the chat UI would.

The reply is the chat's Markdown: the answer with its [n] markers, then a "Sources" section.
One Client is one conversation: questions asked on it are follow-ups of the earlier ones.

    python examples/ask_gradio_client.py "Who is Kaja Kallas?" "What did she say?"

--url (or RAG_URL) picks the server, default http://127.0.0.1:7860. On a server with API keys,
set RAG_API_KEY to one of them: it is sent as X-API-Key with every call.
"""

from __future__ import annotations

import argparse
import os
import sys

from gradio_client import Client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("questions", nargs="+", help="one or more questions, asked in order")
    parser.add_argument("--url", default=os.environ.get("RAG_URL", "http://127.0.0.1:7860"))
    args = parser.parse_args()

    key = os.environ.get("RAG_API_KEY", "")
    client = Client(
        args.url.rstrip("/") + "/chat/",
        headers={"X-API-Key": key} if key else None,
        verbose=False,
        analytics_enabled=False,
        download_files=False,
        httpx_kwargs={"timeout": 120},
    )
    try:
        for question in args.questions:
            reply = client.predict(question, api_name="/respond")
            print(f"> {question}\n\n{reply}\n")
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
