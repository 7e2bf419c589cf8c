"""Use the answer pipeline as a step of a LangChain chain, offline.

Indexes the bundled corpus/ in a temporary directory with the packaged embedding model (no
download, no network), pipes the runnable into a formatting step, and asks a question with a
filter; then streams a follow-up: text pieces first, the verified answer last.

    .venv/bin/python examples/langchain_chain.py ["question"]

The first run loads the models: expect half a minute before the answer.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
QUESTION = "Which countries does Brussels want to reinforce relationships with?"
FOLLOW_UP = "On what date were the proposals published?"


def main(argv: list[str]) -> int:
    for name, value in {"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}.items():
        os.environ.setdefault(name, value)
    from langchain_core.runnables import RunnableLambda

    from rag.assistant import Assistant
    from rag.chain import answer_text
    from rag.config import Settings

    question = argv[0] if argv else QUESTION
    with tempfile.TemporaryDirectory() as tmp:
        assistant = Assistant.open(Settings(data_dir=Path(tmp)))
        assistant.ingest([CORPUS], progress=False)
        runnable = assistant.as_runnable()

        # invoke: the same dict as `rag ask --json`, here turned into text by the next step
        chain = runnable | RunnableLambda(answer_text)
        only_outlet = {"publishers": ["Tech Policy Press"]}
        print(chain.invoke({"question": question, "filters": only_outlet}))

        # stream: str pieces as the answer is produced, then the final answer dict
        print(f"\nStreaming a follow-up: {FOLLOW_UP}")
        for chunk in runnable.stream({"question": FOLLOW_UP, "history": [question]}):
            if isinstance(chunk, str):
                print(chunk, end="", flush=True)
            else:
                cited = ", ".join(f"[{c['n']}] {c['title']}" for c in chunk["citations"])
                print(f"\nVerified; sources: {cited or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
