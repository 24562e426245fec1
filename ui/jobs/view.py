"""What a training page draws while its job lives: the status lines above the live view (refusal, place in the
queue with the estimated wait, the shared batch, a clamped iteration count) and :func:`live_view`, the polling
``st.fragment`` whose period (:func:`poll_interval`) slows down while queued or when the server is busy."""
from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from . import pool
from .estimates import estimate_wait, fmt_wait
from .pool import Job
from .session import _jobs, get
from .shared import shared_configs

POLL_FAST, POLL_SLOW = 0.5, 1.0  # seconds between two redraws of a training page
BUSY = 4  # more live trainings than this on the server (running + queued, all sessions): pages poll at POLL_SLOW


def status_lines(job: Job) -> list[tuple[str, str]]:
    """(kind, text) lines :func:`show_status` draws: refusal, place in the queue with the estimated wait, a
    clamped iteration count."""
    lines = []
    if job.status == "refused":
        lines.append(("warning", job.error or "This training was not started."))
    if job.status == "queued":
        pos, wait = job.queue_position(), estimate_wait(job)
        with pool._pool:
            own = any(j.session_id == job.session_id for j in pool._holding if job.session_id is not None)
        text = (f"Waiting for a free training slot: position {pos} in the queue "
                f"({pool.MAX_JOBS} trainings run at once on this server, one per browser tab)")
        if own:
            text += "; this tab's previous training is still ending"
        finished = len(pool._history.get(job.key, ()))
        if wait is None:
            text += ". No wait estimate yet: nothing has been measured on this server."
        elif finished:
            text += (f". Estimated wait: **{fmt_wait(wait)}** — the measured seconds per iteration of the running "
                     f"trainings × the iterations still ahead, taking the median that the last {finished} finished "
                     "training(s) here needed (most stop early, at p ≥ 0.9).")
        else:
            text += (f". Estimated wait: **at most {fmt_wait(wait)}** — the measured seconds per iteration of the "
                     "running trainings × the iterations up to their caps; no training has finished here yet, and "
                     "most stop early, at p ≥ 0.9.")
        lines.append(("info", text))
    if job.shared and job.status == "running" and job.batch is not None:
        lines.append(("info", f"Training in the shared batch ({len(job.batch.batch)} configs): this server trains "
                              "every tab's default training together, step by step, without a queue."))
    if "clamped_from" in job.meta:
        lines.append(("warning", f"{job.meta['clamped_from']:,} iterations asked; this server stops every training "
                                 f"at {job.meta['cap']:,}."))
    return lines


def show_status(job: Job) -> None:
    """The lines every training page shows above its live view (:func:`status_lines`)."""
    for kind, text in status_lines(job):
        getattr(st, kind)(text)


def poll_interval(job: Job | None) -> float:
    """How often a page polls its training: ``POLL_FAST`` while it runs on a quiet server; ``POLL_SLOW`` while it
    waits for a slot (it only shows its place) or while more than ``BUSY`` trainings are live. A classroom's polls
    are Python work under one GIL that delays every other session's redraw (bench/load.py --gil-profile); once a
    second still draws the curve and the forming patch at the 1 Hz the attack page promises."""
    with pool._pool:
        live = len(pool._holding) + sum(1 for j in pool._waiting if not j.cancel.is_set())
    live += shared_configs()
    if job is not None and job.status == "queued":
        return POLL_SLOW
    return POLL_FAST if live <= BUSY else POLL_SLOW


def live_view(key: str, draw: Callable[[Job, list], None], on_result: Callable[[Any, Job], None],
              interval: float | None = None) -> None:
    """The polling part of a training page, as an ``st.fragment`` that reruns every ``interval`` s (default:
    :func:`poll_interval`, chosen at each full run) while the job is live: queue place and caps
    (:func:`show_status`), the page's own ``draw(job, progress)``, a failure message, and once the job has ended its
    result handed to ``on_result(result, job)`` exactly once, then a full rerun.
    An unexpected error inside is shown as an error id (``ui.boot.guard``), like any page's."""
    from ..boot import guard

    current = _jobs().get(key)
    live = current is not None and current.active
    every = (poll_interval(current) if interval is None else interval) if live else None

    @st.fragment(run_every=every)
    def _live() -> None:
        with guard(f"live view {key}"):
            job = get(key)
            if job is None:
                return
            show_status(job)
            progress = list(job.progress)
            if progress:
                draw(job, progress)
            if job.status == "error":
                st.error(f"The training failed ({job.error}); the server's log has the details.")
            consumed = f"_lavan_consumed_{key}"
            if not job.active and st.session_state.get(consumed) != job.id:
                st.session_state[consumed] = job.id
                if job.result is not None:
                    on_result(job.result, job)
                st.rerun()

    _live()
