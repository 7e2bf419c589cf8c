"""Write the SQuAD questions of one article split as a ``rag eval`` questions file.

The questions (``questions.yaml``) and per-question labels (``labels.jsonl``) live in
``../shared/data/squad-train`` (SQuAD 2.0 dev, Rajpurkar, Jia and Liang 2018, CC BY-SA 4.0);
``eval/squad-split.yaml`` says which of its 18 articles are ``train``, ``dev`` and
``validation``. The split is by article, never by question: a question belongs to the article
its label names (unanswerable questions carry no ``sources``, so the label is the only record
of their article). Scores are reported on ``validation`` only.

Usage (``make eval-squad`` runs the first form)::

    python eval/squad_subset.py --out .rag-squad/validation.yaml
    python eval/squad_subset.py --split dev --limit 200 --out /tmp/dev-200.yaml

``--limit N`` keeps a deterministic sample of ``N`` questions: those whose SHA-256 of the
question id sorts first, written in their original order, so the same ``N`` always gives the
same file and a larger ``N`` contains a smaller one. Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DEFAULT_SQUAD_DIR = HERE.parent.parent / "shared" / "data" / "squad-train"
DEFAULT_SPLIT_FILE = HERE / "squad-split.yaml"
SPLITS = ("train", "dev", "validation")
# The keys ``rag eval`` accepts (rag.evaluate); anything else in the source is dropped.
EVAL_KEYS = ("id", "question", "history", "answerable", "facts", "support", "sources")


class SubsetError(Exception):
    """A missing or malformed input file; the message names it."""


def load_split(path: Path, split: str) -> list[str]:
    """The article ids of ``split`` in the split file at ``path``."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SubsetError(f"{path}: cannot read the split file ({error})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get(split), list) or not raw[split]:
        raise SubsetError(f"{path}: no article list for split {split!r}")
    articles = [str(article) for article in raw[split]]
    other = {str(a) for name, items in raw.items() if name != split for a in items or []}
    overlap = sorted(other & set(articles))
    if overlap:
        raise SubsetError(f"{path}: {split} shares articles with another split: {overlap}")
    return articles


def load_labels(path: Path) -> dict[str, str]:
    """Question id -> article id, from ``labels.jsonl``."""
    articles: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SubsetError(f"{path}: cannot read the labels ({error.strerror or error})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            label = json.loads(line)
            articles[str(label["id"])] = str(label["article"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise SubsetError(f"{path}: line {number}: bad label ({error})") from None
    return articles


def load_questions(path: Path) -> list[dict[str, Any]]:
    """The question mappings of ``questions.yaml``."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SubsetError(f"{path}: cannot read the questions ({error})") from None
    if not isinstance(raw, list) or not all(isinstance(q, dict) and "id" in q for q in raw):
        raise SubsetError(f"{path}: expected a list of questions with ids")
    return raw


def sample_key(question_id: str) -> str:
    """The order a ``--limit`` sample is drawn in: stable across runs and machines."""
    return hashlib.sha256(question_id.encode("utf-8")).hexdigest()


def select(
    questions: Sequence[dict[str, Any]],
    labels: dict[str, str],
    articles: Sequence[str],
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The questions whose labelled article is in ``articles``, in file order; at most
    ``limit`` of them, sampled by ``sample_key``. Each keeps only the ``rag eval`` keys."""
    wanted = set(articles)
    missing = [str(q["id"]) for q in questions if str(q["id"]) not in labels]
    if missing:
        raise SubsetError(f"{len(missing)} questions have no label, e.g. {missing[0]}")
    chosen = [q for q in questions if labels[str(q["id"])] in wanted]
    if limit is not None and limit < len(chosen):
        keep = set(sorted((str(q["id"]) for q in chosen), key=sample_key)[:limit])
        chosen = [q for q in chosen if str(q["id"]) in keep]
    return [{key: q[key] for key in EVAL_KEYS if key in q} for q in chosen]


def header(
    split: str,
    articles: Sequence[str],
    chosen: Sequence[dict[str, Any]],
    labels: dict[str, str],
) -> str:
    """The comment that opens the written file: where it comes from and what it holds."""
    by_article = Counter(labels[str(q["id"])] for q in chosen)
    unanswerable = sum(1 for q in chosen if q.get("answerable") is False)
    lines = [
        f"# SQuAD 2.0 dev questions, {split} split ({len(chosen)} questions:"
        f" {len(chosen) - unanswerable} answerable, {unanswerable} unanswerable).",
        "# Rajpurkar, Jia and Liang 2018; CC BY-SA 4.0 (text from Wikipedia, CC BY-SA).",
        f"# Articles: {', '.join(articles)}.",
        f"# Questions by article: {', '.join(f'{a} {by_article[a]}' for a in articles)}.",
        "# Generated by eval/squad_subset.py from ../shared/data/squad-train and"
        " eval/squad-split.yaml; do not edit.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python eval/squad_subset.py",
        description="Write the SQuAD questions of one article split in the rag eval schema.",
    )
    parser.add_argument("--squad-dir", type=Path, default=DEFAULT_SQUAD_DIR)
    parser.add_argument("--split-file", type=Path, default=DEFAULT_SPLIT_FILE)
    parser.add_argument("--split", choices=SPLITS, default="validation")
    parser.add_argument("--limit", type=int, default=None, help="a deterministic sample of N")
    parser.add_argument("--out", type=Path, required=True, help="the YAML file to write")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        articles = load_split(args.split_file, args.split)
        labels = load_labels(args.squad_dir / "labels.jsonl")
        questions = load_questions(args.squad_dir / "questions.yaml")
        unknown = sorted(set(articles) - set(labels.values()))
        if unknown:
            raise SubsetError(f"{args.split_file}: articles with no questions: {unknown}")
        chosen = select(questions, labels, articles, args.limit)
    except SubsetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    body = yaml.safe_dump(chosen, allow_unicode=True, sort_keys=False, width=100)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(header(args.split, articles, chosen, labels) + body, encoding="utf-8")
    print(f"wrote {len(chosen)} {args.split} questions to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
