"""What every training thread does, in the pool or as a shared batch's runner: it runs below the server's page
threads (:func:`lower_priority`, $LAVAN_TRAIN_NICE) with the server's torch threads, and a failure is logged with
its traceback under a short error id that is all the page shows."""
from __future__ import annotations

import os
import sys
import threading
import uuid

import torch


def train_nice() -> int:
    """How much lower than the server's page threads a training thread runs: $LAVAN_TRAIN_NICE, default 10 (the
    kernel then gives a runnable page thread ~9× a training thread's share of a busy core, so pages answer while
    the pool trains; 0 turns it off)."""
    try:
        return max(0, min(19, int(os.environ.get("LAVAN_TRAIN_NICE", "10"))))
    except ValueError:
        return 10


def lower_priority() -> int | None:
    """Renice the calling thread (Linux schedules threads one by one: ``setpriority`` on its native id touches
    only this thread; torch's intra-op workers started from it inherit the value). Returns the nice value set, or
    None where the platform has no per-thread priority or refuses."""
    step = train_nice()
    if not step or not hasattr(os, "setpriority") or not sys.platform.startswith("linux"):
        return None
    try:
        tid = threading.get_native_id()
        value = min(19, os.getpriority(os.PRIO_PROCESS, tid) + step)
        os.setpriority(os.PRIO_PROCESS, tid, value)
        return value
    except OSError:
        return None


def become_training_thread() -> None:
    """Called first in a training thread: :func:`lower_priority`, then the server's torch threads per call."""
    from ..cache import torch_threads

    lower_priority()
    torch.set_num_threads(torch_threads())


def log_failure(where: str, exc: Exception) -> str:
    """Log the exception being handled (``exc``) with its traceback under a new id; returns what the page may
    show: ``"error id <id>"``, never the traceback."""
    from ..boot import ERROR_LOG

    error_id = uuid.uuid4().hex[:8]
    ERROR_LOG.error("lavan error %s in %s: %s", error_id, where, type(exc).__name__, exc_info=True)
    return f"error id {error_id}"
