"""A queue of coding jobs for the comparison server, run off the event loop.

One worker thread runs the jobs in order (the codec uses every core for one image, so
running two at once would only slow both); uploads made meanwhile wait in the queue, none
is dropped. Each job reports its stage and progress; finished jobs keep their results and
files in memory (nothing is written to disk) until :data:`KEPT_JOBS` newer ones push them
out.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

#: finished jobs whose results and files stay available
KEPT_JOBS = 64

#: a job's work: called with a progress callback (stage text, fraction done); returns the
#: JSON results and the files (name -> (bytes, media type)) the page can fetch
Work = Callable[[Callable[[str, float], None]], tuple[dict[str, Any], dict[str, tuple[bytes, str]]]]


class JobFailed(Exception):
    """An expected failure of a job (a bad image or file): its message is shown to the user."""


@dataclass
class Job:
    """One queued comparison or decode."""

    id: str
    number: int
    state: str = "queued"  # queued, running, done, failed
    stage: str = "waiting in the queue"
    progress: float = 0.0
    error: str | None = None
    results: dict[str, Any] | None = None
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    created: float = field(default_factory=time.time)

    def public(self, ahead: int) -> dict[str, Any]:
        """What the page sees: the state, and the results once done."""
        out = {"id": self.id, "state": self.state, "stage": self.stage, "progress": round(self.progress, 3)}
        if self.state == "queued":
            out["ahead"] = ahead
        if self.error is not None:
            out["error"] = self.error
        if self.results is not None:
            out["results"] = self.results
        return out


class JobQueue:
    """Submit work, poll its job; one worker thread."""

    def __init__(self, kept: int = KEPT_JOBS) -> None:
        self._kept = kept
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcm-serve")

    def submit(self, work: Work) -> Job:
        job = Job(id=secrets.token_urlsafe(12), number=next(self._numbers))
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._executor.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def ahead_of(self, job: Job) -> int:
        """How many queued or running jobs were submitted before ``job``."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.number < job.number and j.state in ("queued", "running"))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - self._kept)]:
            del self._jobs[job_id]

    def _run(self, job: Job, work: Work) -> None:
        def progress(stage: str, fraction: float) -> None:
            job.stage, job.progress = stage, min(max(fraction, 0.0), 1.0)

        job.state = "running"
        progress("starting", 0.0)
        try:
            job.results, job.files = work(progress)
        except JobFailed as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # noqa: BLE001 - a bug must not kill the worker; the page says so
            job.error, job.state = f"internal error ({type(exc).__name__}): {exc}", "failed"
        else:
            job.stage, job.progress, job.state = "done", 1.0, "done"
        with self._lock:
            self._forget_old()
