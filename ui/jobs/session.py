"""One browser session's trainings, as the pages call them: :func:`start` (with the start limits and the
iteration cap of :mod:`.limits`), :func:`get` (a poll), :func:`stop`, :func:`forget`, :func:`leave_page`. The jobs
live in the session's state under their key; ``_state`` and ``_session_id`` are the seams the unit tests replace to
play several sessions in one thread."""
from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from . import limits, shared
from .pool import Job, _every_job
from .watchdog import ensure_watchdog


def _state():
    """This browser session's state (a seam for the unit tests, which play several sessions in one thread)."""
    return st.session_state


def _session_id() -> str | None:
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx else None


def _jobs() -> dict[str, Job]:
    return _state().setdefault("_lavan_jobs", {})


def start(key: str, fn: Callable, *args, page: str = "", on_done: Callable[[Any], None] | None = None,
          meta: dict | None = None, analysis: bool = False, **kwargs) -> Job:
    """Start ``fn`` in the background for this browser session, replacing (and stopping) any job under ``key``.
    An iteration count above the server's cap (``steps``/``max_steps`` > ``limits.max_iter()``) is clamped to it.
    A start too soon after the last one, or past the session's quota (:func:`limits.start_limits`), returns a
    ``refused`` job whose ``error`` says why (and leaves a running job under ``key`` alone). An
    ``attack.train_patch`` that a shared batch can train joins one instead of the pool when
    :func:`shared.shared_mode` is on for its model. ``analysis=True``: a page's own analysis (a defence, a transfer
    curve: ``ui.background``), started by opening the page rather than by a button: not counted against the
    session's start limits, and it takes no training slot (``ui.background`` bounds how many run at once), so a
    page never waits minutes behind other sessions' trainings for a second of forwards."""
    now = time.time()
    old = _jobs().get(key)
    why = limits.refusal(_state().setdefault("_lavan_starts", []), now) if not analysis else None
    if why is not None:
        if old is not None and old.active:
            return old
        job = Job(key=key, page=page, status="refused", error=why, meta=dict(meta or {}), finished=now)
        _jobs()[key] = job
        print(f"lavan job {job.id} {key} refused (start limit) at {now:.3f}", file=sys.stderr, flush=True)
        return job
    if not analysis:
        _state()["_lavan_starts"].append(now)
    if old is not None:
        old.request_stop("replaced by a new training")
    meta = dict(meta or {})
    steps = limits.clamp_steps(kwargs, meta)
    job = Job(key=key, page=page, on_done=on_done, meta=meta, session_id=_session_id(), max_steps=steps,
              pooled=not analysis)
    options = None if analysis else shared.options_for(fn, args, kwargs)
    if options is not None:  # no slot to wait for: it joins the shared batch at its next step
        job.shared, job.status, job.started = True, "running", time.time()
        job.thread = threading.Thread(target=shared.run_job, args=(job, args[0], options),
                                      name=f"lavan-{key}-{job.id}-shared", daemon=True)
    else:
        job.thread = threading.Thread(target=job._run, args=(fn, args, kwargs), name=f"lavan-{key}-{job.id}",
                                      daemon=True)
    _jobs()[key] = job
    _every_job.add(job)
    ensure_watchdog()
    job.thread.start()
    return job


def get(key: str) -> Job | None:
    """This session's job under ``key``, marked as polled (the watchdog stops a job nobody polls)."""
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
