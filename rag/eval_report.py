"""What ``rag eval`` shows: terminal tables, the HTML report, and what changed since an earlier run.

``format_table`` prints one run, ``format_compare`` several side by side. ``render_html`` writes
one self-contained page (inline CSS and SVG; no scripts, nothing fetched) whose question table
can be narrowed to failures, or to the questions that changed, with radio buttons that work by
CSS alone.

``rag eval --against OLD.json``: ``load_previous`` reads an earlier ``--report-json``,
``check_question_set`` refuses one made on other questions (before anything runs), and
``compare_runs`` lists per question what flipped (right/wrong, refused/answered, hit@k, the
support rank, fact recall) and per metric the delta, for ``format_changes`` and the reports.

It does not run or score anything (``rag.evaluate`` does), and it does not decide whether a
change is noise: latency is compared as a metric, never per question.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.evaluate import METRICS, SCORES, EvalReport, QuestionResult

# -- terminal output -----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _digits(metric: str) -> int:
    return 1 if metric.endswith("_ms") else 3


def format_table(report: EvalReport) -> str:
    """The per-question table and the metrics summary, for the terminal."""
    header = f"{'id':<6} {'ans':<4} {'refused':<8} {'facts':>6} {'rank':>5} {'':<5} {'ms':>8}"
    lines = [header, "-" * len(header)]
    for r in report.questions:
        lines.append(
            f"{r.id:<6} {'yes' if r.answerable else 'no':<4} {'yes' if r.refused else 'no':<8}"
            f" {_fmt(r.fact_recall, 2):>6} {_fmt(r.support_rank):>5}"
            f" {'ok' if r.ok else 'FAIL':<5} {r.latency_ms:>8.1f}"
        )
    passed = sum(r.ok for r in report.questions)
    lines.append("")
    lines.append(
        f"{passed}/{len(report.questions)} questions ok"
        f" (retrieval {report.retrieval}, k={report.metrics['k']})"
    )
    for name in METRICS:
        lines.append(f"  {name:<20} {_fmt(report.metrics.get(name), _digits(name))}")
    return "\n".join(lines)


def format_compare(reports: Mapping[str, EvalReport]) -> str:
    """One table of metrics by retrieval mode (or by answerer)."""
    modes = list(reports)
    lines = [f"{'metric':<20}" + "".join(f" {m:>10}" for m in modes)]
    lines.append("-" * len(lines[0]))
    for name in METRICS:
        lines.append(
            f"{name:<20}"
            + "".join(f" {_fmt(reports[m].metrics.get(name), _digits(name)):>10}" for m in modes)
        )
    return "\n".join(lines)


def failure_reason(result: QuestionResult) -> str:
    """Why ``result`` is not ok, in a few words; "" when it is."""
    if result.ok:
        return ""
    if not result.answerable:
        return "answered (should refuse)"
    if result.refused:
        return "refused"
    reasons = []
    missed = result.fact_hits.count(False)
    if missed:
        reasons.append(f"missed {missed} of {len(result.fact_hits)} facts")
    if result.citation_problems:
        reasons.append("citation problems")
    return ", ".join(reasons)


# -- an earlier run (--against) ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreviousQuestion:
    """What an earlier ``--report-json`` says about one question."""

    id: str
    question: str
    history: tuple[str, ...]
    ok: bool
    refused: bool
    support_rank: int | None
    fact_recall: float | None
    answer: str


@dataclass(frozen=True, slots=True)
class PreviousRun:
    """An earlier run, read back from its ``--report-json``."""

    path: Path
    retrieval: str
    metrics: Mapping[str, Any]
    questions: tuple[PreviousQuestion, ...]


_NOT_A_REPORT = "not a `rag eval --report-json` report"


def load_previous(path: Path) -> PreviousRun:
    """The run recorded in ``path``; a one-line ``RagError`` when it is missing, not JSON, or
    not a report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RagError(f"{path}: no such file (--against takes an earlier --report-json)") from None
    except OSError as e:
        raise RagError(f"{path}: cannot read it ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise RagError(f"{path}: not JSON (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise RagError(f"{path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise RagError(f"{path}: {_NOT_A_REPORT} (no questions list)")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise RagError(f"{path}: {_NOT_A_REPORT} (no metrics)")
    questions = tuple(
        _previous_question(path, position, item)
        for position, item in enumerate(data["questions"], start=1)
    )
    if not questions:
        raise RagError(f"{path}: {_NOT_A_REPORT} (no questions)")
    return PreviousRun(path, str(data.get("retrieval", "")), metrics, questions)


def _previous_question(path: Path, position: int, item: object) -> PreviousQuestion:
    where = f"{path}: {_NOT_A_REPORT} (question {position}"
    if not isinstance(item, dict):
        raise RagError(f"{where} is not an object)")
    for key, kind in (("id", str), ("question", str), ("ok", bool), ("refused", bool)):
        if not isinstance(item.get(key), kind):
            raise RagError(f"{where} has no {key!r})")
    rank, recall = item.get("support_rank"), item.get("fact_recall")
    history = item.get("history", [])
    return PreviousQuestion(
        id=item["id"],
        question=item["question"],
        history=tuple(str(h) for h in history) if isinstance(history, list) else (),
        ok=item["ok"],
        refused=item["refused"],
        support_rank=rank if isinstance(rank, int) and not isinstance(rank, bool) else None,
        fact_recall=float(recall) if isinstance(recall, int | float) else None,
        answer=str(item.get("answer", "")),
    )


def check_question_set(
    previous: PreviousRun, questions: Sequence[tuple[str, str, Sequence[str]]]
) -> None:
    """Raise a ``RagError`` unless ``previous`` asked exactly ``questions`` (id, question,
    history each), in any order; the message says how many match."""
    old = {(q.id, q.question, q.history) for q in previous.questions}
    new = {(qid, text, tuple(history)) for qid, text, history in questions}
    if old == new:
        return
    matched = len(old & new)
    raise RagError(
        f"{previous.path}: made on a different question set: {matched} of {len(new)} questions"
        f" match by id, text and history ({len(previous.questions)} in that run)"
    )


# -- what changed --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuestionChange:
    """One question in the earlier run and in this one."""

    id: str
    question: str
    ok: tuple[bool, bool]  # (before, now)
    refused: tuple[bool, bool]
    support_rank: tuple[int | None, int | None]
    retrieval_scored: bool
    fact_recall: tuple[float | None, float | None]
    answer_changed: bool

    @property
    def kinds(self) -> tuple[str, ...]:
        """The changes, e.g. ``("right->wrong", "hit->miss")``; empty when nothing changed
        but, perhaps, the wording of the answer."""
        kinds: list[str] = []
        if self.ok[0] != self.ok[1]:
            kinds.append("wrong->right" if self.ok[1] else "right->wrong")
        if self.refused[0] != self.refused[1]:
            kinds.append("answered->refused" if self.refused[1] else "refused->answered")
        if self.retrieval_scored:
            before, now = self.support_rank
            if (before is None) != (now is None):
                kinds.append("miss->hit" if now is not None else "hit->miss")
            elif before != now:
                kinds.append("rank")
        if self.fact_recall[0] != self.fact_recall[1]:
            kinds.append("facts")
        return tuple(kinds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "changes": list(self.kinds),
            "ok": list(self.ok),
            "refused": list(self.refused),
            "support_rank": list(self.support_rank),
            "fact_recall": list(self.fact_recall),
            "answer_changed": self.answer_changed,
        }


@dataclass(frozen=True, slots=True)
class MetricDelta:
    """One metric before and now; ``better`` is None when it did not move or was not measured."""

    name: str
    before: float | None
    now: float | None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.now is None:
            return None
        return round(self.now - self.before, 4)

    @property
    def better(self) -> bool | None:
        delta = self.delta
        if not delta:
            return None
        return delta > 0 if self.name in SCORES else delta < 0

    def to_dict(self) -> dict[str, Any]:
        return {"before": self.before, "now": self.now, "delta": self.delta, "better": self.better}


# The per-question changes counted in the summary line, in its order.
COUNTED = ("right->wrong", "wrong->right", "refused->answered", "answered->refused")


@dataclass(frozen=True, slots=True)
class RunChanges:
    """This run against an earlier one: every question (in this run's order) and metric."""

    previous: str  # the earlier report's path
    k: tuple[Any, Any]
    retrieval: tuple[str, str]
    questions: tuple[QuestionChange, ...]
    metrics: tuple[MetricDelta, ...]

    @property
    def changed(self) -> tuple[QuestionChange, ...]:
        return tuple(q for q in self.questions if q.kinds)

    def count(self, kind: str) -> int:
        return sum(kind in q.kinds for q in self.questions)

    @property
    def hit_changes(self) -> int:
        return self.count("hit->miss") + self.count("miss->hit")

    def to_dict(self) -> dict[str, Any]:
        return {
            "previous": self.previous,
            "k": list(self.k),
            "retrieval": list(self.retrieval),
            "counts": {
                **{kind: self.count(kind) for kind in COUNTED},
                "hit->miss": self.count("hit->miss"),
                "miss->hit": self.count("miss->hit"),
                "unchanged": len(self.questions) - len(self.changed),
            },
            "questions": [q.to_dict() for q in self.changed],
            "metrics": {m.name: m.to_dict() for m in self.metrics},
        }


def compare_runs(previous: PreviousRun, report: EvalReport) -> RunChanges:
    """What changed from ``previous`` to ``report``; both must have asked the same questions."""
    check_question_set(previous, [(r.id, r.question, r.history) for r in report.questions])
    before = {q.id: q for q in previous.questions}
    questions = tuple(
        QuestionChange(
            id=r.id,
            question=r.question,
            ok=(before[r.id].ok, r.ok),
            refused=(before[r.id].refused, r.refused),
            support_rank=(before[r.id].support_rank, r.support_rank),
            retrieval_scored=r.retrieval_scored,
            fact_recall=(before[r.id].fact_recall, r.fact_recall),
            answer_changed=before[r.id].answer != r.answer,
        )
        for r in report.questions
    )
    metrics = tuple(
        MetricDelta(name, _number(previous.metrics.get(name)), _number(report.metrics.get(name)))
        for name in METRICS
    )
    return RunChanges(
        previous=str(previous.path),
        k=(previous.metrics.get("k"), report.metrics.get("k")),
        retrieval=(previous.retrieval, report.retrieval),
        questions=questions,
        metrics=metrics,
    )


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value  # an int stays one: verifier_removed is a count


def _pair(pair: tuple[Any, Any], digits: int = 2) -> str:
    before, now = (_fmt(v, digits) for v in pair)
    return before if before == now else f"{before} -> {now}"


def _delta(metric: MetricDelta) -> str:
    if metric.delta is None:
        return "-"
    if not metric.delta:
        return "0"
    word = {True: "better", False: "worse", None: ""}[metric.better]
    return f"{metric.delta:+.{_digits(metric.name)}f} {word}".rstrip()


def _setup(changes: RunChanges) -> str:
    """How the two runs were set up, where that differs."""
    parts = []
    if changes.k[0] != changes.k[1]:
        parts.append(f"k {_fmt(changes.k[0])} -> {_fmt(changes.k[1])}")
    if changes.retrieval[0] and changes.retrieval[0] != changes.retrieval[1]:
        parts.append(f"retrieval {changes.retrieval[0]} -> {changes.retrieval[1]}")
    return f" ({', '.join(parts)})" if parts else ""


def summary_line(changes: RunChanges) -> str:
    """E.g. ``"2 right->wrong, 1 wrong->right, ..., 3 hit@k changes; 44 unchanged"``."""
    counts = [f"{changes.count(kind)} {kind}" for kind in COUNTED]
    counts.append(f"{changes.hit_changes} hit@k changes")
    unchanged = len(changes.questions) - len(changes.changed)
    return f"{', '.join(counts)}; {unchanged} unchanged"


# The order the terminal lists changed questions in: regressions first.
_SEVERITY = ("right->wrong", "wrong->right", *COUNTED[2:], "hit->miss", "miss->hit", "facts")


def format_changes(changes: RunChanges) -> str:
    """The questions that changed and the metric deltas, for the terminal.

    A question whose support rank alone moved (still a hit) is counted, not listed: the JSON
    and HTML reports list it."""
    listed = [q for q in changes.changed if set(q.kinds) - {"rank"}]
    listed.sort(key=lambda q: min(_SEVERITY.index(k) for k in q.kinds if k != "rank"))
    lines = [
        f"Against {changes.previous}{_setup(changes)}: {len(changes.changed)} of"
        f" {len(changes.questions)} questions changed"
    ]
    if listed:
        id_w = max(6, *(len(q.id) for q in listed))
        kinds_w = max(len(", ".join(q.kinds)) for q in listed)
        header = f"{'id':<{id_w}} {'change':<{kinds_w}} {'rank':>8} {'facts':>12}  question"
        lines += [header, "-" * len(header)]
        for q in listed:
            text = q.question if len(q.question) <= 40 else q.question[:39] + "…"
            lines.append(
                f"{q.id:<{id_w}} {', '.join(q.kinds):<{kinds_w}} {_pair(q.support_rank):>8}"
                f" {_pair(q.fact_recall):>12}  {text}"
            )
    rank_only = len(changes.changed) - len(listed)
    if rank_only:
        lines.append(f"(and {rank_only} whose support rank alone moved: see the JSON/HTML report)")
    lines += ["", summary_line(changes), ""]
    header = f"{'metric':<20} {'before':>9} {'now':>9}  delta"
    lines += [header, "-" * len(header)]
    for m in changes.metrics:
        digits = _digits(m.name)
        lines.append(
            f"{m.name:<20} {_fmt(m.before, digits):>9} {_fmt(m.now, digits):>9}  {_delta(m)}"
        )
    return "\n".join(lines)


# -- HTML report ---------------------------------------------------------------------------------

# The question filter is three radio buttons; `:has()` hides the rows the checked one leaves out,
# so the page needs no script (a browser without `:has()` shows every row).
_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:72rem}
table{border-collapse:collapse;font-size:.9rem}td,th{border:1px solid #ccc;padding:.3rem .5rem;
vertical-align:top;text-align:left}caption{text-align:left;font-weight:600;padding:.3rem 0}
tr.ok td.mark{background:#d4f4d4}tr.fail td.mark{background:#f8d0d0}
td.num{text-align:right;white-space:nowrap}td.answer{max-width:36rem}.muted{color:#595959}
td.better{color:#1b5e20}td.worse{color:#b71c1c}
svg text{font-family:system-ui,sans-serif;font-size:12px}
fieldset.filter{border:1px solid #ccc;margin:0 0 .8rem;padding:.4rem .8rem}
fieldset.filter label{margin-right:1.2rem;cursor:pointer}
fieldset.filter input:focus-visible{outline:3px solid #1e88e5;outline-offset:2px}
.empty{display:none;font-style:italic}
#questions:has(#show-failures:checked) tbody tr.ok{display:none}
#questions:has(#show-changed:checked) tbody tr:not(.changed){display:none}
#questions:has(#show-failures:checked) .empty.failures{display:block}
#questions:has(#show-changed:checked) .empty.changed{display:block}
"""


def _bar_chart(metrics: Mapping[str, Any]) -> str:
    """Horizontal bars for the metrics that lie in [0, 1]."""
    names = [*SCORES, "false_refusal_rate"]
    row, label_w, bar_w = 26, 150, 360
    height = row * len(names) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}"'
        f' height="{height}" role="img" aria-label="metrics">'
    ]
    for i, name in enumerate(names):
        value = metrics.get(name)
        y = 10 + i * row
        parts.append(f'<text x="0" y="{y + 14}">{html.escape(name)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{bar_w}" height="18" fill="#eee"/>')
        if value is not None:
            good = (1 - value) if name == "false_refusal_rate" else value
            colour = "#4caf50" if good >= 0.8 else "#ff9800" if good >= 0.5 else "#e53935"
            parts.append(
                f'<rect x="{label_w}" y="{y}" width="{bar_w * max(0.0, min(1.0, value)):.1f}"'
                f' height="18" fill="{colour}"/>'
            )
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 14}">{_fmt(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(latencies: Sequence[float], bins: int = 12) -> str:
    """A histogram of per-question latency in milliseconds."""
    width, height, pad = 520, 200, 36
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + pad}"'
        ' role="img" aria-label="latency histogram">'
    ]
    if latencies:
        low, high = min(latencies), max(latencies)
        span = (high - low) or 1.0
        counts = [0] * bins
        for value in latencies:
            counts[min(bins - 1, int((value - low) / span * bins))] += 1
        top = max(counts)
        bar = (width - 2 * pad) / bins
        for i, count in enumerate(counts):
            h = (height - 20) * count / top
            x = pad + i * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}"'
                f' fill="#1e88e5"><title>{count}</title></rect>'
            )
            if count:
                parts.append(
                    f'<text x="{x + bar / 2 - 4:.1f}" y="{height - h - 3:.1f}">{count}</text>'
                )
        parts.append(f'<text x="{pad}" y="{height + 16}">{low:.0f} ms</text>')
        parts.append(
            f'<text x="{width - pad}" y="{height + 16}" text-anchor="end">{high:.0f} ms</text>'
        )
    parts.append(f'<line x1="{pad}" y1="{height}" x2="{width - pad}" y2="{height}" stroke="#333"/>')
    parts.append("</svg>")
    return "".join(parts)


def _changes_html(changes: RunChanges) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><th scope='row'>{e(m.name)}</th>"
        f"<td class='num'>{_fmt(m.before, _digits(m.name))}</td>"
        f"<td class='num'>{_fmt(m.now, _digits(m.name))}</td>"
        f"<td class='num {'' if m.better is None else 'better' if m.better else 'worse'}'>"
        f"{e(_delta(m))}</td></tr>"
        for m in changes.metrics
    )
    return (
        f"<h2>Changes since {e(changes.previous)}</h2>"
        f"<p>{e(summary_line(changes))}{e(_setup(changes))}.</p>"
        "<table><caption>Metrics before and now</caption><thead><tr><th scope='col'>metric</th>"
        "<th scope='col'>before</th><th scope='col'>now</th><th scope='col'>delta</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _filter(total: int, failures: int, changed: int | None) -> str:
    """The radio buttons that narrow the question table (by CSS, see ``_CSS``)."""
    options = [("all", f"All questions ({total})"), ("failures", f"Failures only ({failures})")]
    if changed is not None:
        options.append(("changed", f"Changed since the earlier run ({changed})"))
    radios = "".join(
        f'<input type="radio" name="show" id="show-{key}" value="{key}"'
        f'{" checked" if key == "all" else ""}><label for="show-{key}">{label}</label>'
        for key, label in options
    )
    # Shown, by CSS, only while its option is checked, and only rendered when it is true.
    empty = '<p class="empty failures">No question failed.</p>' if not failures else ""
    if changed == 0:
        empty += '<p class="empty changed">No question changed.</p>'
    return f'<fieldset class="filter"><legend>Show</legend>{radios}</fieldset>{empty}'


def render_html(
    report: EvalReport,
    compare: Mapping[str, EvalReport] | None = None,
    changes: RunChanges | None = None,
) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    e = html.escape
    metrics = report.metrics
    by_id = {q.id: q for q in changes.questions} if changes else {}
    rows = []
    for r in report.questions:
        change = by_id.get(r.id)
        kinds = change.kinds if change else ()
        classes = ("ok" if r.ok else "fail") + (" changed" if kinds else "")
        mark = "ok" if r.ok else f"fail: {failure_reason(r)}"
        rows.append(
            f'<tr class="{classes}"><td>{e(r.id)}</td>'
            f"<td>{e(r.question)}"
            + (f'<div class="muted">after: {e(" / ".join(r.history))}</div>' if r.history else "")
            + f"</td><td>{'yes' if r.answerable else 'no'}</td>"
            f"<td>{'yes' if r.refused else 'no'}</td>"
            f'<td class="num">{_fmt(r.fact_recall, 2)}</td>'
            f'<td class="num">{_fmt(r.support_rank)}</td>'
            f'<td class="mark">{e(mark)}</td>'
            + (f"<td>{e(', '.join(kinds))}</td>" if changes else "")
            + f'<td class="num">{r.latency_ms:.1f}</td>'
            f'<td class="answer">{e(r.answer)}'
            + (
                f'<div class="muted">{e("; ".join(r.citation_problems))}</div>'
                if r.citation_problems
                else ""
            )
            + "</td></tr>"
        )
    summary = "".join(
        f"<tr><td>{e(name)}</td><td class='num'>{_fmt(metrics.get(name))}</td></tr>"
        for name in (*METRICS, "k", "questions")
    )
    compare_html = ""
    if compare:
        head = "".join(f"<th>{e(m)}</th>" for m in compare)
        body = "".join(
            f"<tr><td>{e(name)}</td>"
            + "".join(f"<td class='num'>{_fmt(compare[m].metrics.get(name))}</td>" for m in compare)
            + "</tr>"
            for name in METRICS
        )
        compare_html = (
            f"<h2>Retrieval modes</h2><table><tr><th>metric</th>{head}</tr>{body}</table>"
        )
    passed = sum(r.ok for r in report.questions)
    columns = ["id", "question", "answerable", "refused", "fact recall", "support rank", "verdict"]
    columns += ["change"] if changes else []
    columns += ["ms", "answer"]
    head = "".join(f'<th scope="col">{e(c)}</th>' for c in columns)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>rag eval report</title><style>{_CSS}</style></head><body>"
        f"<h1>rag eval report</h1><p>{passed}/{len(report.questions)} questions ok;"
        f" retrieval {e(report.retrieval)}, k={metrics.get('k')}.</p>"
        f"<h2>Metrics</h2>{_bar_chart(metrics)}<table>{summary}</table>{compare_html}"
        + (_changes_html(changes) if changes else "")
        + "<h2>Latency per question</h2>"
        f"{_histogram([r.latency_ms for r in report.questions])}"
        '<section id="questions" aria-labelledby="questions-heading">'
        '<h2 id="questions-heading">Questions</h2>'
        + _filter(len(report.questions), len(report.questions) - passed, _changed(changes))
        + f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</section></body></html>\n"
    )


def _changed(changes: RunChanges | None) -> int | None:
    return None if changes is None else len(changes.changed)
