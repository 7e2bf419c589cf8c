"""Give the answer pipeline to a LangChain agent as a tool, offline.

A hand-written agent loop (model -> tool call -> tool result -> model) around a stand-in chat
model, so it runs without a network or an API key. Put a real tool-calling model (any LangChain
``BaseChatModel`` with ``bind_tools``) in place of ``OfflineToolCaller`` and the loop stays
the same. The tool's content is the cited answer with numbered sources, for the model to read;
its artifact is the full answer dict (``ToolMessage.artifact``), for the program.

    .venv/bin/python examples/langchain_agent.py ["question"]
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
QUESTION = "Which countries does Brussels want to reinforce relationships with?"


class OfflineToolCaller(BaseChatModel):
    """A stand-in for a tool-calling chat model, in the manner of langchain_core's fakes: asked
    a question, it calls the first tool it is bound to with it; handed the tool's result, it
    answers with that result."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, **kwargs: Any
    ) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(f"Here is what the archive says:\n\n{last.content}")
        else:
            tool = kwargs["tools"][0]["function"]["name"]
            call = {"name": tool, "args": {"question": last.content}, "id": "call-1"}
            reply = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])

    @property
    def _llm_type(self) -> str:
        return "offline-tool-caller"


def run_agent(model: Runnable[Any, AIMessage], tools: list[BaseTool], question: str) -> str:
    """Call the model until it answers instead of calling a tool."""
    by_name = {tool.name: tool for tool in tools}
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(5):
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return str(reply.content)
        for call in reply.tool_calls:
            result = by_name[call["name"]].invoke(call)  # a ToolMessage, answer dict as artifact
            print(f"(tool {call['name']}: {len(result.artifact['citations'])} citations)")
            messages.append(result)
    raise RuntimeError("the agent did not answer within 5 turns")


def main(argv: list[str]) -> int:
    for name, value in {"HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}.items():
        os.environ.setdefault(name, value)
    from rag.assistant import Assistant
    from rag.config import Settings

    with tempfile.TemporaryDirectory() as tmp:
        assistant = Assistant.open(Settings(data_dir=Path(tmp)))
        assistant.ingest([CORPUS], progress=False)
        tool = assistant.as_runnable().as_tool()
        model = OfflineToolCaller().bind_tools([tool])
        print(run_agent(model, [tool], argv[0] if argv else QUESTION))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
