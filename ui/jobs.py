"""Background trainings, one per (browser session, job key), in a bounded process-wide pool.

``start(key, fn, *args, **kwargs)`` runs ``fn(*args, callback=…, cancel=event, **kwargs)`` in a thread; the
callback's payloads are appended to ``job.progress`` (the page polls it from an ``st.fragment(run_every=…)``).
At most ``LAVAN_MAX_JOBS`` (default 2) trainings run at once; the rest wait and report their queue position.
A job stops when: Stop is pressed (:func:`stop`), the user opens another page (:func:`leave_page`), a new job
with the same key starts, or nobody has polled it for ``HEARTBEAT_S`` seconds (tab closed).
"""
from __future__ import annotations

import atexit
import itertools
import os
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st
import torch

MAX_JOBS = max(1, int(os.environ.get("LAVAN_MAX_JOBS", "2")))
HEARTBEAT_S = float(os.environ.get("LAVAN_JOB_HEARTBEAT_S", "60"))

_slots = threading.BoundedSemaphore(MAX_JOBS)
_queue: list[int] = []  # ids of jobs waiting for a slot, in arrival order
_queue_lock = threading.Lock()
_ids = itertools.count(1)
_every_job: weakref.WeakSet = weakref.WeakSet()  # all sessions' jobs, for shutdown


@dataclass(eq=False)  # identity semantics: jobs are hashable (kept in a WeakSet)
class Job:
    key: str
    page: str
    id: int = field(default_factory=lambda: next(_ids))
    cancel: threading.Event = field(default_factory=threading.Event)
    status: str = "queued"  # queued | running | done | cancelled | error
    progress: list = field(default_factory=list)
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    last_seen: float = field(default_factory=time.time)
    thread: threading.Thread | None = None
    on_done: Callable[[Any], None] | None = None
    meta: dict = field(default_factory=dict)  # what the page needs to show the result (e.g. the image)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def queue_position(self) -> int:
        """1-based place in the waiting line (0 once running)."""
        with _queue_lock:
            return _queue.index(self.id) + 1 if self.id in _queue else 0

    def touch(self) -> None:
        self.last_seen = time.time()

    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.time()) - self.started

    def _callback(self, info) -> None:
        self.progress.append(dict(info) if isinstance(info, dict) else info)
        if time.time() - self.last_seen > HEARTBEAT_S:  # nobody is watching any more
            self.cancel.set()

    def _run(self, fn, args, kwargs) -> None:
        with _queue_lock:
            _queue.append(self.id)
        try:
            while not _slots.acquire(timeout=0.2):
                if self.cancel.is_set() or time.time() - self.last_seen > HEARTBEAT_S:
                    self.status, self.finished = "cancelled", time.time()
                    return
            with _queue_lock:
                _queue.remove(self.id)
            try:
                self.status, self.started = "running", time.time()
                from .cache import torch_threads

                torch.set_num_threads(torch_threads())
                self.result = fn(*args, callback=self._callback, cancel=self.cancel, **kwargs)
                if self.on_done is not None and self.result is not None:
                    self.on_done(self.result)
                self.status = "cancelled" if getattr(self.result, "cancelled", False) else "done"
            except Exception as exc:  # noqa: BLE001 - reported on the page
                self.error = f"{type(exc).__name__}: {exc}"
                self.status = "error"
                traceback.print_exc()
            finally:
                self.finished = time.time()
                _slots.release()
        finally:
            with _queue_lock:
                if self.id in _queue:
                    _queue.remove(self.id)


def _jobs() -> dict[str, Job]:
    return st.session_state.setdefault("_lavan_jobs", {})


def start(key: str, fn: Callable, *args, page: str = "", on_done: Callable[[Any], None] | None = None,
          meta: dict | None = None, **kwargs) -> Job:
    """Start ``fn`` in the background for this browser session, replacing (and stopping) any job under ``key``."""
    old = _jobs().get(key)
    if old is not None:
        old.cancel.set()
    job = Job(key=key, page=page, on_done=on_done, meta=dict(meta or {}))
    job.thread = threading.Thread(target=job._run, args=(fn, args, kwargs), name=f"lavan-{key}-{job.id}",
                                  daemon=True)
    _jobs()[key] = job
    _every_job.add(job)
    job.thread.start()
    return job


def get(key: str) -> Job | None:
    job = _jobs().get(key)
    if job is not None:
        job.touch()
    return job


def stop(key: str) -> None:
    job = _jobs().get(key)
    if job is not None:
        job.cancel.set()


def forget(key: str) -> None:
    job = _jobs().pop(key, None)
    if job is not None:
        job.cancel.set()


def leave_page(current: str) -> None:
    """Stop this session's jobs that belong to another page (called by app.py on every run)."""
    for job in _jobs().values():
        if job.active and job.page and job.page != current:
            job.cancel.set()


def running() -> int:
    """Trainings running in this process right now (all sessions)."""
    return MAX_JOBS - _slots._value  # noqa: SLF001 - read-only peek for the status line


def wait(job: Job, timeout: float = 60.0) -> bool:
    """Block until the job ends (tests and scripts); True when it ended in time."""
    if job.thread is not None:
        job.thread.join(timeout)
    return not job.active


def stop_all(timeout: float = 10.0) -> None:
    """Cancel every job of every session and wait for the threads (server shutdown, end of a test run)."""
    live = [j for j in list(_every_job) if j.thread is not None]
    for j in live:
        j.cancel.set()
    for j in live:
        j.thread.join(timeout)


atexit.register(stop_all)
