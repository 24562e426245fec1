"""What the server allows one browser session, whatever its browser sends: at most ``$LAVAN_MAX_ITER`` iterations
per training (:func:`clamp_steps`), at most one start every ``$LAVAN_START_INTERVAL_S`` and ``$LAVAN_START_QUOTA``
starts per ``$LAVAN_START_WINDOW_S`` (:func:`refusal`). Every value is read at each start, so an operator's env var
always wins."""
from __future__ import annotations

import os

_STEP_ARGS = ("steps", "max_steps")


def max_iter() -> int:
    """The server's cap on iterations per training (default 10,000, the paper's cap)."""
    return max(1, int(os.environ.get("LAVAN_MAX_ITER", "10000")))


def start_limits() -> tuple[float, int, float]:
    """(minimum seconds between two starts of one session, starts allowed per window, window in seconds)."""
    return (float(os.environ.get("LAVAN_START_INTERVAL_S", "3")), int(os.environ.get("LAVAN_START_QUOTA", "20")),
            float(os.environ.get("LAVAN_START_WINDOW_S", "600")))


def clamp_steps(kwargs: dict, meta: dict) -> int | None:
    """Clamp the ``steps``/``max_steps`` argument in ``kwargs`` to :func:`max_iter` (noting ``clamped_from`` and
    ``cap`` in ``meta`` for the page); returns the iteration budget, None when the call names none."""
    cap = max_iter()
    steps = None
    for arg in _STEP_ARGS:
        if arg in kwargs:
            if int(kwargs[arg]) > cap:
                meta["clamped_from"], meta["cap"] = int(kwargs[arg]), cap
                kwargs[arg] = cap
            steps = int(kwargs[arg])
    return steps


def refusal(starts: list[float], now: float) -> str | None:
    """Why a session whose recent start times are ``starts`` may not start a training now (None: it may). Forgets
    the starts older than the window (in place)."""
    interval, quota, window = start_limits()
    starts[:] = [t for t in starts if now - t < window]
    if starts and now - starts[-1] < interval:
        return (f"Trainings start at most once every {interval:g} s in one tab, so that every student gets a turn: "
                f"press Train again in {interval - (now - starts[-1]):.0f} s.")
    if len(starts) >= quota:
        return (f"This tab has started {quota} trainings in the last {window / 60:g} minutes, the most this server "
                f"allows one tab so that every student gets a turn: the next one can start in "
                f"{(window - (now - starts[0])) / 60:.0f} min. Trainings already in the cache still answer at once.")
    return None
