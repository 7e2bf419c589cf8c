"""Calibrate the answer judge's threshold end to end, on the dev articles of squad-train.

``python -m train.calibrate --data-dir .rag-squad`` asks every ``dev`` question of
``eval/squad-split.yaml`` through the whole pipeline (retrieval over all 18 articles, the
extractive answerer) with the judge's threshold at ~0, records the best score each answer's
quote got, and picks the threshold that maximises refusal accuracy + (1 - false-refusal rate)
among those whose false-refusal rate stays at or under ``--max-false-refusals`` (a refusal
when the archive holds the answer is a failure too). It writes the threshold into the judge's
``judge.json`` (``threshold``, with the curve under ``calibration``); the model files and
their checksums are unchanged. The validation articles are never read.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from rag.judge import PACKAGED_JUDGE_DIR

ROOT = Path(__file__).resolve().parent.parent
_GRID = [t / 100 for t in range(0, 61, 2)]


def curve(rows: Sequence[tuple[bool, bool, float, float]]) -> list[dict[str, float]]:
    """Refusal accuracy, false refusals and fact recall at each threshold of the grid.

    ``rows``: (answerable, refused anyway, best quote score, fact recall when answered)."""
    points = []
    for t in _GRID:
        right = wrong = fact = 0.0
        unanswerable = sum(1 for r in rows if not r[0])
        answerable = len(rows) - unanswerable
        for is_answerable, refused, best, recall in rows:
            declined = refused or best < t
            if is_answerable:
                wrong += declined
                fact += 0.0 if declined else recall
            else:
                right += declined
        points.append(
            {
                "threshold": t,
                "refusal_accuracy": round(right / max(unanswerable, 1), 4),
                "false_refusal_rate": round(wrong / max(answerable, 1), 4),
                "fact_recall": round(fact / max(answerable, 1), 4),
            }
        )
    return points


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.calibrate", description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".rag-squad")
    parser.add_argument("--questions", type=Path, required=True, help="the dev questions (YAML)")
    parser.add_argument("--judge-dir", type=Path, default=PACKAGED_JUDGE_DIR)
    parser.add_argument("--max-false-refusals", type=float, default=0.15)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from rag.assistant import Assistant
    from rag.config import Settings
    from rag.evaluate import fact_hits, load_questions

    settings = Settings(data_dir=args.data_dir, judge_threshold=0.001)
    assistant = Assistant.open(settings)
    assistant.store.require_built()
    rows = []
    for q in load_questions(args.questions):
        answer = assistant.ask(q.question, q.history)
        best = max((c.score for c in answer.citations), default=-1.0)
        hits = fact_hits(answer.answer, q.facts) if q.facts else []
        recall = sum(hits) / len(hits) if hits else 0.0
        rows.append((q.answerable, answer.refused, best, recall))
    points = curve(rows)
    allowed = [p for p in points if p["false_refusal_rate"] <= args.max_false_refusals]
    chosen = max(
        allowed or points,
        key=lambda p: p["refusal_accuracy"] + 1.0 - p["false_refusal_rate"],
    )
    config_path = args.judge_dir / "judge.json"
    config = json.loads(config_path.read_text("utf-8"))
    config["candidate_set_threshold"] = config.get("candidate_set_threshold", config["threshold"])
    config["threshold"] = chosen["threshold"]
    config["calibration"] = {
        "questions": str(args.questions.name),
        "max_false_refusals": args.max_false_refusals,
        "chosen": chosen,
        "curve": points,
    }
    config_path.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
    print(json.dumps(chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
