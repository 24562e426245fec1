"""A page's analysis (a defence, a transfer curve, a fragility map) as a background job over the shared result
cache, so that no page computes on open (issue 26).

``a = analysis(job_key, kind, model, image_hash, patch_hash, loc, params, fn, *args, page=...)`` returns at once:
``a.value`` is the finished result when any session of this server (or an earlier run of it) has computed it
(:class:`attack.result_cache.ResultCache`, on disk by content); otherwise a :mod:`ui.jobs` job computes it,
``fn(*args, callback=..., cancel=..., **kwargs)`` returning a JSON-able value (None when stopped) and reporting
``{"done", "total", "text", "partial"}`` dicts through ``callback``. :func:`live` draws the job's progress bar, its
Stop button and the partial result as it grows (``draw(partial)``), then reruns the page, which finds the value in
the cache. At most ``LAVAN_MAX_ANALYSES`` (default 2) analyses of all sessions run at once; they take no training
slot (``ui.jobs.start(..., analysis=True)``).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, Callable

import streamlit as st

from attack.result_cache import ResultCache, result_key
from ui import cache, jobs

MAX_AT_ONCE = max(1, int(os.environ.get("LAVAN_MAX_ANALYSES", "2")))
_lane = threading.BoundedSemaphore(MAX_AT_ONCE)


def results() -> ResultCache:
    """The result cache beside the patch cache ($LAVAN_CACHE_DIR or .lavan-cache/, ``results/``)."""
    return ResultCache(cache.cache_dir())


@dataclass
class Analysis:
    key: str  # the result's cache key (attack.result_cache.result_key)
    value: Any = None  # the finished result, or None while it is being computed
    job: jobs.Job | None = None  # the job computing it (None when the cache answered)

    @property
    def stopped(self) -> bool:
        """The visitor pressed Stop (the page shows *Compute again*)."""
        return self.value is None and self.job is not None and not self.job.active and self.job.cancel.is_set()

    @property
    def failed(self) -> bool:
        return self.value is None and self.job is not None and self.job.status == "error"


def _in_lane(fn: Callable) -> Callable:
    def run(*args, callback, cancel, **kwargs):
        if not _lane.acquire(blocking=False):
            callback({"done": 0, "total": 1, "partial": None,
                      "text": f"Waiting for a free worker ({MAX_AT_ONCE} page computations run at once here)"})
            while not _lane.acquire(timeout=0.2):
                if cancel.is_set():
                    return None
        try:
            return None if cancel.is_set() else fn(*args, callback=callback, cancel=cancel, **kwargs)
        finally:
            _lane.release()
    return run


def _store(key: str) -> Callable[[Any], None]:
    def put(value: Any) -> None:  # runs in the worker thread: no st.*
        try:
            results().put(key, value)
        except OSError as exc:  # a read-only cache dir: the job's own result still reaches its page
            print(f"lavan result cache: {key[:12]} not stored ({type(exc).__name__})", flush=True)
    return put


def analysis(job_key: str, kind: str, model, image_hash: str | None, patch_hash: str | None, loc, params: dict,
             fn: Callable, *args, page: str, label: str = "Computing…", **kwargs) -> Analysis:
    """The cached result of ``kind`` for these inputs, or the job (started now, unless this session's job under
    ``job_key`` already computes the same key, or was stopped by the visitor) that computes it."""
    key = result_key(kind, model, image_hash, patch_hash, loc, **params)
    value = results().get(key)
    job = jobs.get(job_key)
    if value is not None:
        if job is not None and job.active and job.meta.get("result_key") != key:
            jobs.forget(job_key)  # the visitor went back to a cached answer: the other computation is not wanted
        return Analysis(key, value)
    if job is not None and job.meta.get("result_key") == key:
        if job.result is not None:
            return Analysis(key, job.result, job)
        if job.active or job.status == "error" or (job.cancel.is_set() and job.stop_reason == "Stop pressed"):
            return Analysis(key, None, job)
    job = jobs.start(job_key, _in_lane(fn), *args, page=page, on_done=_store(key), analysis=True,
                     meta={"result_key": key, "label": label}, **kwargs)
    if not job.progress:  # the progress bar shows from the very first redraw, before the thread reports
        job.progress.append({"done": 0, "total": 1, "text": label, "partial": None})
    return Analysis(key, None, job)


def restart(job_key: str) -> None:
    """*Compute again* after a Stop: forget the stopped job, so the next run starts a new one."""
    jobs.forget(job_key)


def live(job_key: str, a: Analysis, draw: Callable[[Any], None] | None = None) -> None:
    """While ``a`` is computed: a progress bar (within the page's first redraw), Stop, and ``draw(partial)`` every
    poll; when the job ends, a full rerun (the page then draws the value from the cache). After a Stop: a note and
    *Compute again*. Nothing when ``a`` came from the cache."""
    if a.value is not None and a.job is None:
        return
    if a.stopped:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.info("Stopped. Nothing is kept from a stopped computation.")
        c2.button("Compute again", key=f"{job_key}_again", on_click=restart, args=(job_key,), width="stretch")
        return

    def _draw(job: jobs.Job, prog: list) -> None:
        last = prog[-1]
        if job.active:
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            done, total = int(last.get("done", 0)), max(1, int(last.get("total", 1)))
            c1.progress(min(1.0, done / total), text=f"{last.get('text', '')} · {job.elapsed():.0f} s")
            c2.button("Stop", key=f"{job_key}_stop", on_click=jobs.stop, args=(job_key,), width="stretch")
        partial = next((p.get("partial") for p in reversed(prog) if p.get("partial") is not None), None)
        if draw is not None and partial is not None and job.active:
            draw(partial)

    jobs.live_view(job_key, _draw, lambda result, job: None)
