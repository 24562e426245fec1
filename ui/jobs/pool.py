"""The pool: at most ``MAX_JOBS`` trainings hold a slot at once, at most one per browser session; the others wait
in arrival order (:func:`_next_grant`). :class:`Job` is one training: its thread, progress, result and why it
stopped. ``_history`` keeps the (iterations, seconds) of recent finished trainings for :mod:`.estimates`."""
from __future__ import annotations

import atexit
import collections
import dataclasses
import itertools
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

from .threads import become_training_thread, log_failure

MAX_JOBS = max(1, int(os.environ.get("LAVAN_MAX_JOBS", "2")))

_pool = threading.Condition()  # guards _waiting and _holding (an RLock inside: request_stop may nest)
_waiting: list["Job"] = []  # jobs waiting for a slot, in arrival order
_holding: list["Job"] = []  # jobs holding a slot (at most MAX_JOBS, at most one per session)
_history: dict[str, collections.deque] = {}  # key -> (work units, seconds) of recent finished trainings
_ids = itertools.count(1)
_every_job: weakref.WeakSet = weakref.WeakSet()  # all sessions' jobs, for the watchdog and shutdown


@dataclass(eq=False)  # identity semantics: jobs are hashable (kept in a WeakSet)
class Job:
    key: str
    page: str
    id: int = field(default_factory=lambda: next(_ids))
    cancel: threading.Event = field(default_factory=threading.Event)
    status: str = "queued"  # queued | running | done | cancelled | error | refused
    progress: list = field(default_factory=list)
    latest_patch: Any = None
    result: Any = None
    error: str | None = None  # what the page may show (an error id, a refusal), never a traceback
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    last_seen: float = field(default_factory=time.time)
    thread: threading.Thread | None = None
    on_done: Callable[[Any], None] | None = None
    meta: dict = field(default_factory=dict)  # what the page needs to show the result (e.g. the image)
    session_id: str | None = None  # the Streamlit session that started it (None outside a server)
    stop_reason: str | None = None
    stop_asked: float | None = None
    gone_since: float | None = None
    max_steps: int | None = None  # the (clamped) iteration budget, for the wait estimate
    slot_freed: float | None = None  # when it gave its slot back
    shared: bool = False  # trains in a process-wide SharedBatch instead of a pool slot
    handle: Any = None  # its attack.scheduler.ConfigHandle once it has joined the batch
    batch: Any = None  # the shared batch entry it joined (ui.jobs.shared)
    pooled: bool = True  # waits for a training slot; False: a page's analysis (ui.background), which takes none

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def queue_position(self) -> int:
        """1-based place in the waiting line (0 once running)."""
        with _pool:
            line = [j for j in _waiting if not j.cancel.is_set()]
            return line.index(self) + 1 if self in line else 0

    def touch(self) -> None:
        self.last_seen = time.time()

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def work_done(self) -> int:
        """Iterations (forward+backward evaluations when the trainer reports them) done so far."""
        if not self.progress:
            return 0
        last = self.progress[-1]
        ev = last.get("evaluations") if isinstance(last, dict) else getattr(last, "evaluations", 0)
        return int(ev) if ev else len(self.progress)

    def request_stop(self, reason: str) -> None:
        if not self.cancel.is_set():
            self.stop_reason, self.stop_asked = reason, time.time()
            self.cancel.set()
            if self.handle is not None:
                self.handle.cancel()  # leaves the shared batch at its next step
            with _pool:
                _pool.notify_all()  # a waiting job leaves the line at once

    def _callback(self, info) -> None:
        # A training's StepInfo carries its leading patch: keep only the latest one (the page redraws it), so a
        # 10,000-iteration job does not hold 10,000 patches.
        patch = getattr(info, "patch", None)
        if patch is not None:
            self.latest_patch = patch
            info = dataclasses.replace(info, patch=None)
        self.progress.append(dict(info) if isinstance(info, dict) else info)

    def _run(self, fn, args, kwargs) -> None:
        """The thread of a pooled job: waits for a slot, trains, gives the slot back, records its time."""
        if self.pooled and not _acquire(self):
            self.status, self.finished = "cancelled", time.time()
            self._log()
            return
        try:
            self.status, self.started = "running", time.time()
            become_training_thread()
            self._ended(fn(*args, callback=self._callback, cancel=self.cancel, **kwargs))
        except Exception as exc:  # noqa: BLE001 - logged with its traceback; the page gets only the id
            self._failed(exc)
        finally:
            self.finished = time.time()
            _release(self)
            if self.status == "done" and self.pooled:
                with _pool:  # the estimates read it from the pages' threads
                    _history.setdefault(self.key, collections.deque(maxlen=20)).append(
                        (self.work_done(), self.finished - self.started))
            self._log()

    def _ended(self, result) -> None:
        """The training returned ``result``: hand it to ``on_done`` and set the final status."""
        self.result = result
        if self.on_done is not None and result is not None:
            self.on_done(result)
        self.status = "cancelled" if getattr(result, "cancelled", False) else "done"

    def _failed(self, exc: Exception) -> None:
        self.error, self.status = log_failure(f"job {self.id} ({self.key})", exc), "error"

    def _log(self) -> None:
        after = f", ended {self.finished - self.stop_asked:.2f} s after the stop" if self.stop_asked else ""
        if self.stop_asked and self.slot_freed and self.slot_freed < self.finished - 0.005:
            after += f", slot freed {self.slot_freed - self.stop_asked:.2f} s after the stop at {self.slot_freed:.3f}"
        ran = (f"{self.finished - self.started:.1f} s, {len(self.progress)} progress reports" if self.started
               else "never started") + (", in the shared batch" if self.shared else "")
        print(f"lavan job {self.id} {self.key} {self.status} ({self.stop_reason or 'ran to its end'}; {ran}{after}) "
              f"at {self.finished:.3f}", file=sys.stderr, flush=True)


def _next_grant() -> Job | None:
    """The job that gets the next free slot: the first in line whose session holds no slot (a session's second
    training does not hold back other sessions); None when the pool is full."""
    if len(_holding) >= MAX_JOBS:
        return None
    busy = {j.session_id for j in _holding if j.session_id is not None}
    for job in _waiting:
        if not job.cancel.is_set() and (job.session_id is None or job.session_id not in busy):
            return job
    return None


def _acquire(job: Job) -> bool:
    """Wait in line for a slot; False when the job was cancelled first."""
    with _pool:
        _waiting.append(job)
        try:
            while True:
                if job.cancel.is_set():
                    return False
                if _next_grant() is job:
                    _holding.append(job)
                    return True
                _pool.wait(0.5)  # woken by every release and stop request; the timeout is only a safety net
        finally:
            _waiting.remove(job)
            _pool.notify_all()


def _release(job: Job) -> None:
    with _pool:
        if job in _holding:
            _holding.remove(job)
            job.slot_freed = time.time()
            _pool.notify_all()


def running() -> int:
    """Trainings holding a slot in this process right now (all sessions)."""
    with _pool:
        return len(_holding)


def wait(job: Job, timeout: float = 60.0) -> bool:
    """Block until the job ends (tests and scripts); True when it ended in time."""
    if job.thread is not None:
        job.thread.join(timeout)
    return not job.active


def stop_all(timeout: float = 10.0) -> None:
    """Cancel every job of every session and wait for the threads (server shutdown, end of a test run)."""
    live = [j for j in list(_every_job) if j.thread is not None]
    for j in live:
        j.request_stop("server shutting down")
    for j in live:
        j.thread.join(timeout)


atexit.register(stop_all)
