"""Background trainings, one per (browser session, job key), in a bounded process-wide pool.

``start(key, fn, *args, **kwargs)`` runs ``fn(*args, callback=…, cancel=event, **kwargs)`` in a thread; the
callback's payloads are appended to ``job.progress`` (the page polls it from an ``st.fragment(run_every=…)``).
At most ``LAVAN_MAX_JOBS`` (default 2) trainings run at once; the rest wait and report their queue position.
A job stops when: Stop is pressed (:func:`stop`), the user opens another page (:func:`leave_page`), a new job
with the same key starts, its browser session disconnects for ``GONE_S`` seconds (tab closed: a watchdog thread
checks the Streamlit runtime four times a second), or nobody has polled it for ``HEARTBEAT_S`` seconds.

Whatever a browser sends, the server caps iterations at $LAVAN_MAX_ITER (default 10,000, the paper's cap):
:func:`start` clamps the ``steps``/``max_steps`` argument. Each job's end is logged on stderr
(``lavan job <id> <key> <status> …``) with how long the thread took to end after it was told to stop.
"""
from __future__ import annotations

import atexit
import dataclasses
import itertools
import os
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st
import torch
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

MAX_JOBS = max(1, int(os.environ.get("LAVAN_MAX_JOBS", "2")))
HEARTBEAT_S = float(os.environ.get("LAVAN_JOB_HEARTBEAT_S", "60"))
GONE_S = float(os.environ.get("LAVAN_JOB_GONE_S", "1.0"))  # grace for a dropped websocket that reconnects


def max_iter() -> int:
    """The server's cap on iterations per training (read at each start, so an operator's env var always wins)."""
    return max(1, int(os.environ.get("LAVAN_MAX_ITER", "10000")))


_STEP_ARGS = ("steps", "max_steps")

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
    latest_patch: Any = None
    result: Any = None
    error: str | None = None
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

    def request_stop(self, reason: str) -> None:
        if not self.cancel.is_set():
            self.stop_reason, self.stop_asked = reason, time.time()
            self.cancel.set()

    def _watch(self, now: float) -> None:
        """Called by the watchdog: stop the job when its session has gone or nobody polls it."""
        if now - self.last_seen > HEARTBEAT_S:
            self.request_stop(f"no poll for {HEARTBEAT_S:g} s")
        elif self.session_id is not None and Runtime.exists():
            if Runtime.instance().is_active_session(self.session_id):
                self.gone_since = None
            else:
                self.gone_since = self.gone_since or now
                if now - self.gone_since >= GONE_S:
                    self.request_stop("session closed")

    def _callback(self, info) -> None:
        # A training's StepInfo carries its leading patch: keep only the latest one (the page redraws it), so a
        # 10,000-iteration job does not hold 10,000 patches.
        patch = getattr(info, "patch", None)
        if patch is not None:
            self.latest_patch = patch
            info = dataclasses.replace(info, patch=None)
        self.progress.append(dict(info) if isinstance(info, dict) else info)

    def _run(self, fn, args, kwargs) -> None:
        with _queue_lock:
            _queue.append(self.id)
        try:
            while not _slots.acquire(timeout=0.2):
                if self.cancel.is_set():
                    self.status, self.finished = "cancelled", time.time()
                    self._log()
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
                self._log()
        finally:
            with _queue_lock:
                if self.id in _queue:
                    _queue.remove(self.id)


    def _log(self) -> None:
        after = f", ended {self.finished - self.stop_asked:.2f} s after the stop" if self.stop_asked else ""
        ran = (f"{self.finished - self.started:.1f} s, {len(self.progress)} progress reports" if self.started
               else "never started")
        print(f"lavan job {self.id} {self.key} {self.status} ({self.stop_reason or 'ran to its end'}; {ran}{after}) "
              f"at {self.finished:.3f}", file=sys.stderr, flush=True)


def _watchdog() -> None:
    while True:
        time.sleep(0.25)
        now = time.time()
        for job in list(_every_job):
            if job.active:
                try:
                    job._watch(now)
                except Exception:  # noqa: BLE001 - the watchdog must survive a runtime shutting down
                    traceback.print_exc()


_watchdog_started = threading.Event()
_watchdog_lock = threading.Lock()


def _ensure_watchdog() -> None:
    with _watchdog_lock:
        if not _watchdog_started.is_set():
            threading.Thread(target=_watchdog, name="lavan-job-watchdog", daemon=True).start()
            _watchdog_started.set()


def _jobs() -> dict[str, Job]:
    return st.session_state.setdefault("_lavan_jobs", {})


def start(key: str, fn: Callable, *args, page: str = "", on_done: Callable[[Any], None] | None = None,
          meta: dict | None = None, **kwargs) -> Job:
    """Start ``fn`` in the background for this browser session, replacing (and stopping) any job under ``key``.
    An iteration count above the server's cap (``steps``/``max_steps`` > ``MAX_ITER``) is clamped to it."""
    old = _jobs().get(key)
    if old is not None:
        old.request_stop("replaced by a new training")
    meta = dict(meta or {})
    cap = max_iter()
    for arg in _STEP_ARGS:
        if arg in kwargs and int(kwargs[arg]) > cap:
            meta["clamped_from"], meta["cap"] = int(kwargs[arg]), cap
            kwargs[arg] = cap
    ctx = get_script_run_ctx(suppress_warning=True)
    job = Job(key=key, page=page, on_done=on_done, meta=meta, session_id=ctx.session_id if ctx else None)
    job.thread = threading.Thread(target=job._run, args=(fn, args, kwargs), name=f"lavan-{key}-{job.id}",
                                  daemon=True)
    _jobs()[key] = job
    _every_job.add(job)
    _ensure_watchdog()
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
        job.request_stop("Stop pressed")


def forget(key: str) -> None:
    job = _jobs().pop(key, None)
    if job is not None:
        job.request_stop("forgotten")


def leave_page(current: str) -> None:
    """Stop this session's jobs that belong to another page (called by app.py on every run)."""
    for job in _jobs().values():
        if job.active and job.page and job.page != current:
            job.request_stop(f"left for page {current}")


def show_status(job: Job) -> None:
    """The lines every training page shows above its live view: place in the queue, a clamped iteration count."""
    if job.status == "queued":
        st.info(f"Waiting for a free training slot: position {job.queue_position()} in the queue "
                f"({MAX_JOBS} trainings run at once on this server).")
    if "clamped_from" in job.meta:
        st.warning(f"{job.meta['clamped_from']:,} iterations asked; this server stops every training at "
                   f"{job.meta['cap']:,} (LAVAN_MAX_ITER).")


def live_view(key: str, draw: Callable[[Job, list], None], on_result: Callable[[Any, Job], None],
              interval: float = 0.5) -> None:
    """The polling part of a training page, as an ``st.fragment`` that reruns every ``interval`` s while the job
    runs: queue place and caps (:func:`show_status`), the page's own ``draw(job, progress)``, a failure message, and
    once the job has ended its result handed to ``on_result(result, job)`` exactly once, then a full rerun."""
    current = _jobs().get(key)

    @st.fragment(run_every=interval if current is not None and current.active else None)
    def _live() -> None:
        job = get(key)
        if job is None:
            return
        show_status(job)
        progress = list(job.progress)
        if progress:
            draw(job, progress)
        if job.status == "error":
            st.error(f"Training failed: {job.error}")
        consumed = f"_lavan_consumed_{key}"
        if not job.active and st.session_state.get(consumed) != job.id:
            st.session_state[consumed] = job.id
            if job.result is not None:
                on_result(job.result, job)
            st.rerun()

    _live()


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
        j.request_stop("server shutting down")
    for j in live:
        j.thread.join(timeout)


atexit.register(stop_all)
