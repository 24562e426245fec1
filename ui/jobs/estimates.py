"""The wait estimate a queued page shows: the measured seconds per iteration of the running trainings times the
iterations they still need (the median that recent trainings of the same kind needed, or the iteration cap when
there is no history yet). A job in a shared batch holds no slot and is not counted."""
from __future__ import annotations

import heapq
import statistics

from . import pool
from .pool import Job


def _expected_work(job: Job) -> float | None:
    """Iterations a training of this kind is expected to need in all: the median of the recent trainings of the
    same key that ran to their end (most stop early, at p ≥ 0.9), never above the job's own cap; the cap when
    there is no history yet."""
    with pool._pool:
        done = [w for w, _ in pool._history.get(job.key, ())]
    if done:
        return min(statistics.median(done), job.max_steps or float("inf"))
    return job.max_steps


def _seconds_per_unit(running: list[Job]) -> float | None:
    """Measured seconds per iteration: the mean over the running trainings that have reported progress, else over
    the recent finished ones."""
    rates = [j.elapsed() / j.work_done() for j in running if j.started and j.work_done() > 0]
    if not rates:
        with pool._pool:
            rates = [t / w for h in pool._history.values() for w, t in h if w > 0]
    return statistics.fmean(rates) if rates else None


def _remaining(job: Job, per_unit: float) -> float:
    """Seconds a running job still needs (its own measured speed when it has one)."""
    done = job.work_done()
    own = job.elapsed() / done if job.started and done > 0 else per_unit
    if job.cancel.is_set():
        return own  # ends at its next iteration boundary
    expected = _expected_work(job)
    if expected is None:
        return float("nan")
    left = expected - done
    if left <= 0:  # past the usual: somewhere between here and its cap; say half the way
        left = max((job.max_steps or done) - done, 0) / 2
    return left * own


def estimate_wait(job: Job) -> float | None:
    """Seconds until ``job`` (queued) should get a slot, or None when nothing has been measured yet: every slot
    frees when its training's remaining iterations (:func:`_remaining`) are done; each job ahead in line then takes
    the earliest free slot for its expected iterations × the measured seconds per iteration."""
    with pool._pool:
        holding, line = list(pool._holding), [j for j in pool._waiting if not j.cancel.is_set()]
    if job not in line:
        return 0.0
    per_unit = _seconds_per_unit(holding)
    if per_unit is None:
        return None
    free = [_remaining(j, per_unit) for j in holding] + [0.0] * max(pool.MAX_JOBS - len(holding), 0)
    if any(t != t for t in free):  # a running job without a cap or history: no estimate
        return None
    heapq.heapify(free)
    for ahead in line[:line.index(job)]:
        need = _expected_work(ahead)
        if need is None:
            return None
        heapq.heappush(free, heapq.heappop(free) + need * per_unit)
    wait = heapq.heappop(free)
    mine = [_remaining(j, per_unit) for j in holding if job.session_id is not None and j.session_id == job.session_id]
    return max([wait] + mine)


def fmt_wait(seconds: float) -> str:
    """A wait for people: 'about 15 s', 'about 2.5 min', 'about 12 min'."""
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    return f"about {seconds / 60:.0f} min" if seconds >= 600 else f"about {seconds / 60:.1f} min"
