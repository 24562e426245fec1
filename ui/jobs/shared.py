"""The shared batches (issue 14): with ``$LAVAN_SHARED_BATCH`` on (:func:`shared_mode`), a start of
``attack.train_patch`` that a shared batch trains exactly takes no pool slot: its config joins the process-wide
:class:`attack.scheduler.SharedBatch` of its model object, input size, patch size and domain, whose one runner
thread (:func:`_step`) steps every config in one forward+backward until the batch is empty. The job's own thread
(:func:`run_job`) only joins, relays a stop to its config and waits for its PatchResult."""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from attack.scheduler import SharedBatch, shared_options

from .pool import Job
from .threads import become_training_thread, log_failure


def shared_mode(model) -> bool:
    """Whether a training of ``model`` may join a shared batch, from $LAVAN_SHARED_BATCH (read at each start):
    ``auto`` (default) when the model is on CUDA, ``1`` always (also on a CPU: the tests), ``0`` never."""
    value = os.environ.get("LAVAN_SHARED_BATCH", "auto").strip().lower()
    if value in ("1", "on", "true", "yes"):
        return True
    if value in ("0", "off", "false", "no"):
        return False
    try:
        return next(model.buffers()).device.type == "cuda"
    except (AttributeError, StopIteration, TypeError):
        return False


def options_for(fn, args: tuple, kwargs: dict) -> dict | None:
    """SharedBatch.add's arguments when this start may join a shared batch: the switch is on for its model and it
    is ``attack.train_patch`` with options a shared batch trains exactly (:func:`attack.scheduler.shared_options`:
    one restart, no ReLU6 leak); None sends it to the pool."""
    from attack.train import train_patch

    if fn is not train_patch or not 3 <= len(args) <= 4 or set(kwargs) & {"callback", "cancel"}:
        return None
    if not shared_mode(args[0]):
        return None
    return shared_options(*args, **kwargs)


@dataclass(eq=False)
class _Shared:
    """One process-wide SharedBatch (per model object, input size, patch size, domain) and its runner thread."""
    key: tuple
    batch: SharedBatch
    thread: threading.Thread | None = None
    error: str | None = None  # set when a step failed: its jobs end with this error id


_lock = threading.Lock()  # guards _batches, and a runner's decision to leave against a config joining
_batches: dict[tuple, _Shared] = {}


def _join(model, options: dict, callback) -> tuple[_Shared, Any]:
    """Add a config to the shared batch of its model/size/domain (created, with its runner thread, when there is
    none): (the entry, its ConfigHandle). ``callback`` receives train_patch's StepInfo every step."""
    batch_key = (id(model), getattr(model, "name", type(model).__name__), int(getattr(model, "input_size", 224)),
                 int(options["size"]), options["domain"])
    with _lock:
        entry = _batches.get(batch_key)
        if entry is None:
            entry = _batches[batch_key] = _Shared(batch_key, SharedBatch(model, size=options["size"],
                                                                         domain=options["domain"]))
        handle = entry.batch.add(**options, callback=callback)
        if entry.thread is None:
            entry.thread = threading.Thread(target=_step, args=(entry,), daemon=True,
                                            name=f"lavan-shared-{batch_key[1]}-{batch_key[3]}-{batch_key[4]}")
            entry.thread.start()
    return entry, handle


def _step(entry: _Shared) -> None:
    """A shared batch's runner: steps while it has configs, then removes the batch and ends (the next config
    starts a new one). A failing step ends every config of the batch with one error id."""
    become_training_thread()
    try:
        while True:
            if entry.batch.step() == 0:
                with _lock:
                    if len(entry.batch) == 0:
                        _batches.pop(entry.key, None)
                        return
    except Exception as exc:  # noqa: BLE001 - logged with its traceback; the pages get only the id
        error = log_failure(f"the shared batch {entry.key[1:]}", exc)
        with _lock:
            entry.error = error
            if _batches.get(entry.key) is entry:
                del _batches[entry.key]


def shared_configs() -> int:
    """Configs in this process's shared batches right now (all sessions), training or about to join."""
    with _lock:
        return sum(len(e.batch) for e in _batches.values())


def run_job(job: Job, model, options: dict) -> None:
    """The thread of a job in a shared batch: joins it, relays a stop to its config, waits for its result; the
    batch's runner thread (:func:`_step`) does the training and calls the job's callback every step."""
    try:
        if options.get("source") is None:  # the clean argmax, as train_patch finds it (outside the batch's lock)
            with torch.no_grad():
                image = options["image"].unsqueeze(0).to(next(model.buffers()).device)
                options["source"] = int(model(image).argmax(1)[0])
        if job.cancel.is_set():
            job.status = "cancelled"
            return
        job.batch, job.handle = _join(model, options, job._callback)
        if job.cancel.is_set():  # a stop that came before the handle existed
            job.handle.cancel()
        while not job.handle.wait(0.1):
            if job.cancel.is_set():
                job.handle.cancel()
            if job.batch.error is not None:
                job.error, job.status = job.batch.error, "error"
                return
        job._ended(job.handle.result)
    except Exception as exc:  # noqa: BLE001 - logged with its traceback; the page gets only the id
        job._failed(exc)
    finally:
        job.finished = time.time()
        job._log()
