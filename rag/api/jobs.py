"""Background jobs: work too long for one request, run in order by one worker thread.

``Jobs.submit(kind, work)`` queues ``work(progress)`` and returns at once; ``Jobs.status(id)``
says where it is (queued, running, done, failed), how far it got and, at the end, its result
or its error in one line. The API runs large ingests this way (``POST /v1/articles`` answers
``202`` with ``Location: /v1/jobs/{id}``), so that no request waits minutes for an embedding
and a client's timeout cannot leave it guessing what happened.

What it deliberately does not do: persist jobs. They live as long as the process; after a
restart their ids are unknown (404). Nothing half-written becomes visible because of that:
an article is shown only once all its chunks are stored (``rag.store`` commit records), and
posting it again embeds only the chunks that are missing. It runs one job at a time (the
index has one writer anyway) and keeps the last ``keep`` finished jobs.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from rag.errors import RagError

logger = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass(frozen=True, slots=True)
class JobStatus:
    """A background job, as ``GET /v1/jobs/{id}`` shows it."""

    job_id: str
    kind: str
    state: str
    created: str  # ISO 8601, UTC
    started: str  # "" until it runs
    finished: str  # "" until it ends
    done: int  # units of work done so far (for an ingest: chunks embedded)
    total: int  # units of work in all, when known (else 0)
    unit: str
    result: dict[str, Any] | None
    error: str


class Progress:
    """What a running job reports: units done out of a total."""

    def __init__(self, jobs: Jobs, job_id: str) -> None:
        self._jobs = jobs
        self._job_id = job_id

    def total(self, units: int) -> None:
        self._jobs._update(self._job_id, total=units)

    def advance(self, units: int) -> None:
        self._jobs._advance(self._job_id, units)


Work = Callable[[Progress], dict[str, Any]]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class JobsFullError(RagError):
    """Too many jobs are waiting; the caller should try again later."""


class Jobs:
    """Queued jobs and the one worker thread that runs them, oldest first."""

    def __init__(self, *, max_queued: int = 8, keep: int = 200) -> None:
        if max_queued < 1 or keep < 1:
            raise ValueError(f"max_queued and keep must be 1 or more, got {max_queued}, {keep}")
        self.max_queued = max_queued
        self.keep = keep
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, JobStatus] = OrderedDict()
        self._queue: queue.Queue[tuple[str, Work] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._serial = itertools.count(1)

    def submit(self, kind: str, work: Work, *, unit: str = "") -> JobStatus:
        """Queue ``work``; raises ``JobsFullError`` when ``max_queued`` jobs are waiting."""
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.state == QUEUED)
            if waiting >= self.max_queued:
                raise JobsFullError(
                    f"{waiting} jobs are already waiting: try again when one has finished"
                )
            # A counter keeps ids in order; the random part keeps them unguessable.
            job_id = f"{next(self._serial):06d}-{secrets.token_hex(6)}"
            job = JobStatus(job_id, kind, QUEUED, _now(), "", "", 0, 0, unit, None, "")
            self._jobs[job_id] = job
            self._forget_old()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="rag-jobs", daemon=True)
                self._worker.start()
        self._queue.put((job_id, work))
        return job

    def status(self, job_id: str) -> JobStatus | None:
        with self._lock:
            return self._jobs.get(job_id)

    def close(self) -> None:
        """Let the worker stop after the job it is running (queued ones are dropped)."""
        self._queue.put(None)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            job_id, work = item
            self._update(job_id, state=RUNNING, started=_now())
            try:
                result = work(Progress(self, job_id))
            except RagError as e:
                message = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), "")
                self._update(job_id, state=FAILED, finished=_now(), error=message or "failed")
            except Exception:
                logger.exception("Job %s failed", job_id)
                self._update(job_id, state=FAILED, finished=_now(), error="internal error")
            else:
                self._update(job_id, state=DONE, finished=_now(), result=result)

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(job, **changes)

    def _advance(self, job_id: str, units: int) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                self._jobs[job_id] = replace(job, done=job.done + units)

    def _forget_old(self) -> None:
        finished = [j for j, job in self._jobs.items() if job.state in (DONE, FAILED)]
        for job_id in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[job_id]
