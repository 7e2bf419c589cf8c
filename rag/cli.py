"""The ``rag`` command: ``ingest``, ``ask``, ``eval`` and ``serve``, thin over ``rag.assistant``.

``serve`` runs the HTTP API of ``rag.api`` with uvicorn, the Gradio chat mounted at ``/chat``.

Builds ``Settings`` once (environment, then flags), turns every ``RagError`` into one line on
stderr and a non-zero exit, and prints JSON when asked. Heavy libraries (torch, Chroma,
Gradio) are imported only by the command that needs them, so ``rag --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rag.config import Settings
from rag.errors import IndexNotBuiltError, RagError

if TYPE_CHECKING:
    from rag.assistant import Assistant

# Offline and private by default: no model hub, no telemetry, no analytics.
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def main(argv: Sequence[str] | None = None) -> int:
    for name, value in _OFFLINE_ENV.items():
        os.environ.setdefault(name, value)
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(os.environ).replace(
            data_dir=args.data_dir,
            embedding_model=args.embedding_model,
            device=args.device,
            chroma_url=args.chroma_url,
            answerer=getattr(args, "answerer", None),
            llm_provider=getattr(args, "llm_provider", None),
            llm_base_url=getattr(args, "llm_base_url", None),
            llm_model=getattr(args, "llm_model", None),
            retrieval=getattr(args, "retrieval", None),
            top_k=getattr(args, "top_k", None),
            host=getattr(args, "host", None),
            port=getattr(args, "port", None),
        )
        return int(args.run(args, settings))
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir", type=Path, help="where the index lives (default .rag, or RAG_DATA_DIR)"
    )
    common.add_argument(
        "--embedding-model",
        help="a local sentence-transformers model directory (default: packaged)",
    )
    common.add_argument("--device", help="torch device for embeddings: cpu (default), cuda, mps")
    common.add_argument(
        "--chroma-url",
        help="use the Chroma server at this URL (chroma run) instead of a local index",
    )

    # The API key is deliberately not a flag (it would show in `ps` and shell history):
    # it is read only from RAG_LLM_API_KEY.
    llm = argparse.ArgumentParser(add_help=False)
    llm.add_argument(
        "--answerer",
        choices=["extractive", "heuristic", "llm"],
        help="extractive (default: quotes what the trained judge picks), heuristic (the earlier"
        " rules) or llm (a chat model, verified)",
    )
    llm.add_argument(
        "--llm-provider",
        help="chat model provider: openai (default; any OpenAI-compatible endpoint), llamacpp"
        " (a local GGUF via xllamacpp) or any provider init_chat_model knows; RAG_LLM="
        "provider:model names both",
    )
    llm.add_argument(
        "--llm-base-url",
        metavar="URL",
        help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1 (or RAG_LLM_BASE_URL)",
    )
    llm.add_argument("--llm-model", metavar="NAME", help="model name sent to the endpoint")

    parser = argparse.ArgumentParser(
        prog="rag", description="Grounded question answering over a news article corpus."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser(
        "ingest", parents=[common], help="add or update articles in the index"
    )
    ingest.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="article files or folders (.md, .txt, .html, .jsonl, .csv); default: the corpus dir",
    )
    ingest.add_argument(
        "--prune", action="store_true", help="remove indexed articles that are not in PATHS"
    )
    ingest.add_argument("--quiet", action="store_true", help="no progress bar")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.set_defaults(run=_ingest)

    ask = commands.add_parser("ask", parents=[common, llm], help="answer one question")
    ask.add_argument("question")
    ask.add_argument(
        "--history",
        action="append",
        default=[],
        metavar="Q",
        help="an earlier question of the same conversation (repeat, oldest first)",
    )
    ask.add_argument("--json", action="store_true", help="print one JSON object")
    ask.add_argument("--article", action="append", default=[], help="only this article id")
    ask.add_argument("--author", action="append", default=[], help="only articles by this author")
    ask.add_argument("--since", default="", help="only articles dated on or after YYYY-MM-DD")
    ask.add_argument("--until", default="", help="only articles dated on or before YYYY-MM-DD")
    ask.add_argument("--retrieval", choices=["hybrid", "dense", "lexical"])
    ask.add_argument("--top-k", type=int, help="passages to read (default 5)")
    ask.set_defaults(run=_ask)

    evaluate = commands.add_parser(
        "eval",
        parents=[common, llm],
        help="score the assistant on a file of hand-written questions",
    )
    evaluate.add_argument(
        "--questions",
        type=Path,
        default=Path("eval/questions.yaml"),
        help="questions file (default eval/questions.yaml)",
    )
    evaluate.add_argument("--report-json", type=Path, metavar="PATH", help="write the report")
    evaluate.add_argument(
        "--report-html", type=Path, metavar="PATH", help="write a self-contained HTML report"
    )
    evaluate.add_argument(
        "--fail-under",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="exit 1 when a metric is below VALUE (repeat), e.g. hit_at_k=0.8",
    )
    evaluate.add_argument(
        "--fail-over",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="exit 1 when a metric is above VALUE (repeat), e.g. false_refusal_rate=0.2",
    )
    evaluate.add_argument("--retrieval", choices=["hybrid", "dense", "lexical"])
    evaluate.add_argument(
        "--compare",
        nargs="?",
        const="retrieval",
        choices=["retrieval", "answerers", "rerank"],
        help="run dense, lexical and hybrid retrieval (default), the extractive and the"
        " heuristic answerer, or fused passages with and without the judge's reranking, and"
        " print metrics side by side",
    )
    evaluate.add_argument(
        "--against",
        type=Path,
        metavar="OLD.json",
        help="an earlier --report-json of the same questions: print what changed per question"
        " (right/wrong, refused/answered, hit@k) and each metric's delta",
    )
    evaluate.set_defaults(run=_eval)

    serve = commands.add_parser(
        "serve", parents=[common, llm], help="start the HTTP API and the chat on 127.0.0.1"
    )
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 7860)")
    serve.set_defaults(run=_serve)
    return parser


def _open(settings: Settings) -> Assistant:
    from rag.assistant import Assistant

    return Assistant.open(settings)


def _require_data_dir(settings: Settings, hint: str = "") -> None:
    """Refuses a local index folder that does not exist (a mistyped ``--data-dir``) before
    opening the store would create it; only ``rag ingest`` starts a new index."""
    if settings.chroma_url or settings.data_dir.is_dir():
        return
    data_dir = settings.data_dir
    raise IndexNotBuiltError(
        f"no index at {data_dir}: run `rag ingest --data-dir {data_dir}` first{hint}"
    )


def _default_corpus(settings: Settings) -> Path:
    """The folder ``rag ingest`` reads when given no paths, checked before any index is opened."""
    from rag.errors import CorpusError

    if not settings.index.corpus_dir.exists():
        # It is relative to the working directory, which need not be this repository.
        raise CorpusError(
            f"no article paths given and the corpus dir {settings.corpus_dir} does not exist "
            f"in {Path.cwd()}: pass files or folders, or set RAG_CORPUS_DIR"
        )
    return settings.index.corpus_dir


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    paths = list(args.paths) or [_default_corpus(settings)]
    report = _open(settings).ingest(paths, prune=args.prune, progress=not args.quiet)
    for source, reason in report.skipped:
        print(f"skipped {source}: {reason}", file=sys.stderr)
    if args.json:
        print(json.dumps(_report_dict(report), indent=2))
    else:
        print(report.summary())
    return 0


def _report_dict(report: object) -> dict[str, object]:
    from dataclasses import asdict, is_dataclass

    assert is_dataclass(report) and not isinstance(report, type)
    data = asdict(report)
    data["skipped"] = [{"source": s, "reason": r} for s, r in data["skipped"]]
    return data


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.retrieve import SearchFilters

    filters = SearchFilters(
        article_ids=tuple(args.article),
        authors=tuple(args.author),
        date_from=args.since,
        date_to=args.until,
    )
    _require_data_dir(settings)
    assistant = _open(settings)
    assistant.store.require_built()
    answer = assistant.ask(args.question, args.history, filters)
    if args.json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
        return 0
    print(answer.answer)
    for notice in answer.notices:
        print(f"Note: {notice}")
    if answer.nearest:
        print("\nClosest articles in the archive:")
        for headline in answer.nearest:
            details = ", ".join(p for p in (headline.publisher, headline.date) if p)
            print(f"- {headline.title}" + (f" ({details})" if details else ""))
    if answer.citations:
        print()
        for c in answer.citations:
            byline = ", ".join(part for part in (c.author, c.date) if part)
            print(f"[{c.n}] {c.title}" + (f" ({byline})" if byline else ""))
            print(f"    “{c.quote}”")
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from rag import eval_report, evaluate

    under = evaluate.parse_thresholds(args.fail_under, "--fail-under")
    over = evaluate.parse_thresholds(args.fail_over, "--fail-over")
    questions = evaluate.load_questions(args.questions)
    previous = None
    if args.against:  # refused before the index is opened or anything is asked
        previous = eval_report.load_previous(args.against)
        eval_report.check_question_set(previous, [(q.id, q.question, q.history) for q in questions])
    _require_data_dir(settings)
    assistant = _open(settings)
    assistant.store.require_built()
    assistant.warm_up()  # latency then measures answering, not loading the model
    mode = settings.retrieval.retrieval
    compare: dict[str, evaluate.EvalReport] = {}
    if args.compare == "retrieval":
        for each in ("dense", "lexical", "hybrid"):
            compare[each] = evaluate.run_eval(assistant, questions, each)
        report = compare[mode]
    elif args.compare == "answerers":
        from rag.assistant import Assistant

        names = ["heuristic", "extractive"] + (["llm"] if settings.answerer == "llm" else [])
        for name in names:
            other = assistant
            if name != settings.answerer:
                other = Assistant(
                    settings.replace(answerer=name),
                    assistant.embedder,
                    assistant.store,
                    judge=assistant.judge() if name != "heuristic" else None,
                    analyzer=assistant.analyzer,
                )
            compare[name] = evaluate.run_eval(other, questions, mode)
        report = compare[settings.answerer]
    elif args.compare == "rerank":
        from rag.assistant import Assistant

        fused = Assistant(
            settings.replace(rerank_depth=0),
            assistant.embedder,
            assistant.store,
            judge=assistant.judge(),
            analyzer=assistant.analyzer,
        )
        compare["fused"] = evaluate.run_eval(fused, questions, mode)
        compare["reranked"] = report = evaluate.run_eval(assistant, questions, mode)
    else:
        report = evaluate.run_eval(assistant, questions, mode)
    print(eval_report.format_table(report))
    if compare:
        print()
        print(eval_report.format_compare(compare))
    changes = eval_report.compare_runs(previous, report) if previous else None
    if changes is not None:
        print()
        print(eval_report.format_changes(changes))
    if args.report_json:
        data = report.to_dict()
        if compare:
            data["compare"] = {mode: r.metrics for mode, r in compare.items()}
        if changes is not None:
            data["against"] = changes.to_dict()
        args.report_json.write_text(
            json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    if args.report_html:
        args.report_html.write_text(
            eval_report.render_html(report, compare, changes), encoding="utf-8"
        )
    failures = evaluate.threshold_failures(report.metrics, under, over)
    if failures:
        print(f"eval failed: {'; '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    _require_data_dir(settings, hint=" (or create the folder to serve an empty index)")
    import uvicorn

    import app
    from rag.api import create_app

    assistant = _open(settings)
    api = create_app(assistant, settings.serve, chat=app.build_app)
    if assistant.store.count() == 0:
        print(
            "warning: the index is empty: add articles with `rag ingest` or POST /v1/articles",
            file=sys.stderr,
        )
    keys = len(api.state.api.keys)
    access = f"{keys} API key(s)" if keys else "no API keys: reads open, writes disabled"
    serve = settings.serve
    base = f"http://{serve.host}:{serve.port}"
    print(
        f"Serving on {base}: chat {base}/chat/, API {base}/v1 (docs {base}/docs); {access}",
        file=sys.stderr,
    )
    uvicorn.run(
        api,
        host=serve.host,
        port=serve.port,
        log_level="warning",
        timeout_graceful_shutdown=5,  # open event streams must not hold up Ctrl-C
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
