"""Tests for ``rag.chain``: the answer pipeline as a LangChain runnable and as an agent's tool.

Most tests use the real ``Assistant`` over the fake embedder and judge (a real Chroma in a
temporary directory); the stream tests also use a scripted assistant whose pieces are known.
The integration test runs ``examples/langchain_*.py`` as subprocesses, with the real models.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import ToolMessage
from langchain_core.runnables import RunnableGenerator, RunnableLambda

from rag.assistant import Assistant
from rag.chain import AnswerRunnable, answer_text, as_runnable, parse_filters
from rag.config import Settings
from rag.errors import IndexNotBuiltError, QuestionError
from rag.retrieve import SearchFilters
from rag.schema import Answer, AnswerDelta, AnswerEvent, Article, Citation
from tests.conftest import CORPUS, REPO, SEED_ID

PARTNERS_Q = "Which countries does Brussels want to reinforce relationships with?"
SOLAR = Article(
    article_id="solar-farm",
    title="Valley solar farm approved",
    text="The county approved a 40-megawatt solar farm on Tuesday.\n\nIt will power 9,000 homes.",
    author="Ana Ruiz",
    date="2025-05-20",
    publisher="County Gazette",
)


def without_timings(answer: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


@pytest.fixture(scope="module")
def assistant(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """The real assistant over the fake embedder and judge: the bundled article and SOLAR."""
    data_dir = tmp_path_factory.mktemp("chain") / "index"
    settings = Settings(
        data_dir=data_dir, embedding_provider="fake-hash", min_evidence=0.3, judge="fake-overlap"
    )
    built = Assistant.open(settings)
    built.ingest([CORPUS], progress=False)
    built.add_articles([SOLAR])
    return built


@pytest.fixture(scope="module")
def runnable(assistant: Assistant) -> AnswerRunnable:
    return assistant.as_runnable()


class ScriptedStore:
    def require_built(self) -> None:
        pass


class ScriptedAssistant:
    """Answers every question with the same two pieces and final answer; records what it was
    asked, as (question, history, filters)."""

    max_question_chars = 500
    store = ScriptedStore()
    pieces = ("Brussels wants ties with India [1] ", "and with Japan. [2]")

    def __init__(self) -> None:
        self.asked: list[tuple[str, tuple[str, ...], SearchFilters | None]] = []

    def validate_question(self, question: str) -> str:
        return Assistant.validate_question(self, question)  # type: ignore[arg-type]

    def answer(self, question: str) -> Answer:
        citations = tuple(
            Citation(n, SEED_ID, "Tech ties", "Mark Scott", "2025-06-05", "", quote, "c", 0.9)
            for n, quote in ((1, "India"), (2, "Japan"))
        )
        return Answer(question, "".join(self.pieces), False, citations, (), {"total": 1.0})

    def ask(
        self, question: str, history: Sequence[str] = (), filters: SearchFilters | None = None
    ) -> Answer:
        self.asked.append((question, tuple(history), filters))
        return self.answer(question)

    def stream(
        self, question: str, history: Sequence[str] = (), filters: SearchFilters | None = None
    ) -> Iterator[AnswerEvent]:
        self.asked.append((question, tuple(history), filters))
        for piece in self.pieces:
            yield AnswerDelta(piece)
        yield self.answer(question)


@pytest.fixture
def scripted() -> ScriptedAssistant:
    return ScriptedAssistant()


# --- invoke -----------------------------------------------------------------------------------


def test_invoke_returns_what_rag_ask_json_prints(
    assistant: Assistant, runnable: AnswerRunnable
) -> None:
    result = runnable.invoke({"question": PARTNERS_Q})
    expected = json.loads(json.dumps(assistant.ask(PARTNERS_Q).to_dict(), ensure_ascii=False))
    assert without_timings(result) == without_timings(expected)
    assert result.keys() == expected.keys()
    assert "India, South Korea and Japan" in result["answer"]
    assert [c["article_id"] for c in result["citations"]] == [SEED_ID]


def test_invoke_takes_a_plain_question(runnable: AnswerRunnable) -> None:
    assert without_timings(runnable.invoke(PARTNERS_Q)) == without_timings(
        runnable.invoke({"question": PARTNERS_Q, "history": [], "filters": {}})
    )


def test_history_and_filters_reach_the_assistant(scripted: ScriptedAssistant) -> None:
    as_runnable(scripted).invoke(  # type: ignore[arg-type]
        {
            "question": " What did they say? ",
            "history": ["Who met in Brussels?"],
            "filters": {
                "authors": "Mark Scott",
                "publishers": ["A", "B"],
                "date_from": "2025-01-01",
            },
        }
    )
    filters = SearchFilters(authors=("Mark Scott",), publishers=("A", "B"), date_from="2025-01-01")
    assert scripted.asked == [("What did they say?", ("Who met in Brussels?",), filters)]


def test_filters_restrict_the_search(runnable: AnswerRunnable) -> None:
    outlet = runnable.invoke(
        {"question": PARTNERS_Q, "filters": {"publishers": ["Tech Policy Press"]}}
    )
    assert {c["article_id"] for c in outlet["citations"]} == {SEED_ID}
    other = runnable.invoke({"question": PARTNERS_Q, "filters": {"article_ids": ["solar-farm"]}})
    assert SEED_ID not in {c["article_id"] for c in other["citations"]}
    assert "India" not in other["answer"]


def test_an_empty_index_is_an_error(settings: Settings) -> None:
    with pytest.raises(IndexNotBuiltError, match="the index is empty"):
        Assistant.open(settings).as_runnable().invoke(PARTNERS_Q)


# --- stream -----------------------------------------------------------------------------------


def test_stream_yields_the_pieces_then_the_final_answer(scripted: ScriptedAssistant) -> None:
    chunks = list(as_runnable(scripted).stream({"question": "Who?"}))  # type: ignore[arg-type]
    assert chunks == [*ScriptedAssistant.pieces, scripted.answer("Who?").to_dict()]


def test_stream_of_the_real_pipeline_ends_with_its_answer(runnable: AnswerRunnable) -> None:
    # The extractive answerer writes nothing piece by piece: its stream is the answer alone.
    *pieces, final = runnable.stream(PARTNERS_Q)
    assert pieces == []
    assert isinstance(final, dict)
    assert without_timings(final) == without_timings(runnable.invoke(PARTNERS_Q))


def test_a_streamed_chain_hands_the_next_step_the_final_answer(
    scripted: ScriptedAssistant,
) -> None:
    seen: list[Any] = []

    def cited(answer: dict[str, Any]) -> list[int]:
        seen.append(answer)
        return [c["n"] for c in answer["citations"]]

    chain = as_runnable(scripted) | RunnableLambda(cited)  # type: ignore[arg-type]
    assert list(chain.stream("Who?")) == [[1, 2]]
    assert chain.invoke("Who?") == [1, 2]
    assert seen[0] == seen[1] == scripted.answer("Who?").to_dict()


def test_a_question_streamed_in_pieces_is_asked_whole(scripted: ScriptedAssistant) -> None:
    def question_pieces(_: Iterator[Any]) -> Iterator[str]:
        yield "Which countries "
        yield "does Brussels want?"

    chain = RunnableGenerator(question_pieces) | as_runnable(scripted)  # type: ignore[arg-type]
    whole = "Which countries does Brussels want?"
    assert list(chain.stream(None))[-1] == scripted.answer(whole).to_dict()
    assert [asked[0] for asked in scripted.asked] == [whole]


# --- batch and async --------------------------------------------------------------------------


def test_batch_answers_each_input_in_order(runnable: AnswerRunnable) -> None:
    solar = "How big is the solar farm the county approved?"
    results = runnable.batch([PARTNERS_Q, {"question": solar}])
    assert "India" in results[0]["answer"]
    assert "40-megawatt" in results[1]["answer"]
    with_error = runnable.batch([PARTNERS_Q, {"question": ""}], return_exceptions=True)
    assert isinstance(with_error[1], QuestionError)
    assert "India" in with_error[0]["answer"]


def test_ainvoke_and_astream(runnable: AnswerRunnable) -> None:
    async def both() -> tuple[dict[str, Any], list[Any]]:
        answer = await runnable.ainvoke({"question": PARTNERS_Q})
        chunks = [chunk async for chunk in runnable.astream(PARTNERS_Q)]
        return answer, chunks

    answer, chunks = asyncio.run(both())
    assert "India" in answer["answer"]
    assert len(chunks) == 1  # the extractive answer, whole: no replayed pieces
    assert without_timings(chunks[-1]) == without_timings(answer)


def test_ainvoke_raises_question_error(runnable: AnswerRunnable) -> None:
    with pytest.raises(QuestionError, match="Please type a question"):
        asyncio.run(runnable.ainvoke({"question": " "}))


# --- the tool ---------------------------------------------------------------------------------


def test_tool_returns_the_cited_answer_as_text(runnable: AnswerRunnable) -> None:
    tool = runnable.as_tool()
    assert tool.name == "ask_news_archive"
    assert set(tool.args) == {"question", "filters"}
    text = tool.invoke({"question": PARTNERS_Q, "filters": {"publishers": ["Tech Policy Press"]}})
    assert isinstance(text, str)
    assert "India, South Korea and Japan" in text and "[1]" in text
    assert "\nSources:\n[1] Why Europe Should Double Down On Its Global Tech Ties (" in text


def test_tool_call_gives_a_tool_message_with_the_answer_as_artifact(
    runnable: AnswerRunnable,
) -> None:
    tool = runnable.as_tool()
    call = {
        "name": tool.name,
        "args": {"question": PARTNERS_Q},
        "id": "call-1",
        "type": "tool_call",
    }
    message = tool.invoke(call)
    assert isinstance(message, ToolMessage)
    assert message.tool_call_id == "call-1" and message.status == "success"
    assert without_timings(message.artifact) == without_timings(runnable.invoke(PARTNERS_Q))
    assert message.content == answer_text(message.artifact)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"question": "  "}, "Please type a question."),
        ({"question": PARTNERS_Q, "filters": {"date_from": "June"}}, "date_from must be an ISO"),
        (
            {"question": PARTNERS_Q, "filters": {"outlet": "x"}},
            "bad tool arguments: filters.outlet",
        ),
        ({}, "bad tool arguments: question: Field required"),
    ],
)
def test_tool_errors_come_back_to_the_model(
    runnable: AnswerRunnable, args: dict[str, Any], message: str
) -> None:
    tool = runnable.as_tool()
    result = tool.invoke({"name": tool.name, "args": args, "id": "call-2", "type": "tool_call"})
    assert isinstance(result, ToolMessage)
    assert result.status == "error"
    assert str(result.content).startswith(message)


def test_answer_text_lists_the_closest_articles_on_a_refusal(runnable: AnswerRunnable) -> None:
    refused = runnable.invoke("What is the capital of Australia?")
    assert refused["refused"] and not refused["citations"]
    text = answer_text(refused)
    assert text.startswith(refused["answer"])
    assert "Sources:" not in text
    if refused["nearest"]:
        assert "Closest articles in the archive:" in text


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({}, "the input has no 'question'"),
        ({"question": 3}, "'question' must be a string, got int"),
        ({"question": "   "}, "Please type a question."),
        ("", "Please type a question."),
        ("x" * 5000, "The question is 5000 characters long"),
        ({"question": "Who?", "history": "Who met?"}, "'history' must be a list"),
        ({"question": "Who?", "history": [1]}, "'history' must hold strings"),
        ({"question": "Who?", "filters": ["x"]}, "'filters' must be a dict, got list"),
        ({"question": "Who?", "filters": {"outlet": ["x"]}}, "unknown filter 'outlet'"),
        ({"question": "Who?", "filters": {"authors": [1]}}, "filter 'authors' must be a list"),
        ({"question": "Who?", "filters": {"date_to": 2025}}, "filter 'date_to' must be a date"),
        ({"question": "Who?", "filters": {"date_from": "June 5"}}, "date_from must be an ISO"),
        (
            {"question": "Who?", "filters": {"date_from": "2025-02-01", "date_to": "2025-01-01"}},
            "date_from (2025-02-01) is after date_to",
        ),
        ({"question": "Who?", "answerer": "llm"}, "unknown input key 'answerer'"),
        (42, "the input must be a question (str) or a dict"),
        (None, "the input must be a question (str) or a dict"),
    ],
)
def test_bad_input_is_a_question_error(
    runnable: AnswerRunnable, request_: Any, message: str
) -> None:
    for run in (runnable.invoke, lambda r: list(runnable.stream(r))):
        with pytest.raises(QuestionError) as raised:
            run(request_)
        assert str(raised.value).startswith(message)
        assert "\n" not in str(raised.value)


def test_parse_filters_takes_dates_and_single_strings() -> None:
    import datetime as dt

    filters = parse_filters(
        {"article_ids": SEED_ID, "date_from": dt.date(2025, 1, 1), "date_to": None}
    )
    assert filters == SearchFilters(article_ids=(SEED_ID,), date_from="2025-01-01")
    assert parse_filters(None) is None


def test_langchain_stays_off_the_core_import_path() -> None:
    code = "import sys, rag.assistant; print(sorted(m for m in sys.modules if 'langchain' in m))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# --- the examples -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("langchain_chain.py", ("Verified; sources: [1] Why Europe Should Double Down",)),
        ("langchain_agent.py", ("(tool ask_news_archive: ", "Here is what the archive says:")),
    ],
)
def test_examples_run_offline(script: str, expected: tuple[str, ...], tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / script)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "India, South Korea and Japan" in out and "[1]" in out
    assert "\nSources:\n[1] Why Europe Should Double Down On Its Global Tech Ties (" in out
    for text in expected:
        assert text in out
