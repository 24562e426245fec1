"""Background trainings, one per (browser session, job key), in a bounded process-wide pool.

``start(key, fn, *args, **kwargs)`` runs ``fn(*args, callback=…, cancel=event, **kwargs)`` in a thread; the
callback's payloads are appended to ``job.progress`` (the page polls it from an ``st.fragment(run_every=…)``).

The pool (a classroom on one server):

* At most ``LAVAN_MAX_JOBS`` (default 2) trainings hold a slot at once; the others wait in arrival order and the
  page shows their place and an estimated wait (:func:`estimate_wait`: the measured seconds per iteration of the
  running trainings times the iterations they still need — the median that recent trainings of the same kind
  needed, or the iteration cap when there is no history yet).
* One browser session holds at most one slot: a second training of the same session (another key, or the
  replacement of one still ending) waits until the first has let go, and does not hold back other sessions.
* One session cannot start trainings in a loop: at most one start every ``LAVAN_START_INTERVAL_S`` (default 3 s)
  and ``LAVAN_START_QUOTA`` (default 20) starts per ``LAVAN_START_WINDOW_S`` (default 600 s); a refused start
  is a job with status ``refused`` whose page says why and when to try again.

The shared batch (issue 14): with ``LAVAN_SHARED_BATCH`` on (read at each start: ``auto``, the default, is on only
when the model is on CUDA; ``1`` forces it, also on a CPU; ``0`` is the pool alone), a start of
``attack.train_patch`` that a shared batch trains exactly (:func:`attack.scheduler.shared_options`: one restart, no
ReLU6 leak — the attack page's default at the default patch area) takes no slot: its config joins the process-wide
:class:`attack.scheduler.SharedBatch` of its model object, input size, patch size and domain, whose one runner
thread steps every config in one forward+backward until the batch is empty (then ends; the next config starts a new
one). The job's own thread only joins, relays a stop to its config (``ConfigHandle.cancel``) and waits; the batch
calls the job's callback with the StepInfo that train_patch would send and the job ends with the PatchResult of a
solo run with the same seed (up to float rounding), so pages need no special case. The start limits and every stop
rule below apply as to a pooled job; a shared job is not counted in the pool's wait estimates. Any other training
(several restarts, a leak, another function) goes through the pool.

A job stops when: Stop is pressed (:func:`stop`), the user opens another page (:func:`leave_page`), a new job
with the same key starts, its browser session disconnects for ``GONE_S`` seconds (tab closed: a watchdog thread
checks the Streamlit runtime every ``TICK_S``), or nobody has polled it for ``HEARTBEAT_S`` seconds. A job whose
session has gone gives its slot back at once (the next student starts while its thread finishes the iteration it
is in); any other stopped job keeps its slot until its thread has ended.

Whatever a browser sends, the server caps iterations at $LAVAN_MAX_ITER (default 10,000, the paper's cap):
:func:`start` clamps the ``steps``/``max_steps`` argument. Each job's end is logged on stderr
(``lavan job <id> <key> <status> …``) with how long the thread took to end after it was told to stop and, when it
gave its slot back before its thread ended, when. A training that raises is logged with its traceback under an
error id (``ui.boot.report_error``); the page shows only the id.
"""
from __future__ import annotations

import atexit
import collections
import dataclasses
import heapq
import itertools
import os
import statistics
import sys
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import streamlit as st
import torch
from streamlit.runtime import Runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from attack.scheduler import SharedBatch, shared_options

MAX_JOBS = max(1, int(os.environ.get("LAVAN_MAX_JOBS", "2")))
HEARTBEAT_S = float(os.environ.get("LAVAN_JOB_HEARTBEAT_S", "60"))
GONE_S = float(os.environ.get("LAVAN_JOB_GONE_S", "0.5"))  # grace for a dropped websocket that reconnects
TICK_S = 0.1  # the watchdog's period: a closed tab's slot is free GONE_S + TICK_S after the server saw it close


def max_iter() -> int:
    """The server's cap on iterations per training (read at each start, so an operator's env var always wins)."""
    return max(1, int(os.environ.get("LAVAN_MAX_ITER", "10000")))


def start_limits() -> tuple[float, int, float]:
    """(minimum seconds between two starts of one session, starts allowed per window, window in seconds)."""
    return (float(os.environ.get("LAVAN_START_INTERVAL_S", "3")), int(os.environ.get("LAVAN_START_QUOTA", "20")),
            float(os.environ.get("LAVAN_START_WINDOW_S", "600")))


_STEP_ARGS = ("steps", "max_steps")

_pool = threading.Condition()  # guards _waiting and _holding (an RLock inside: request_stop may nest)
_waiting: list["Job"] = []  # jobs waiting for a slot, in arrival order
_holding: list["Job"] = []  # jobs holding a slot (at most MAX_JOBS, at most one per session)
_history: dict[str, collections.deque] = {}  # key -> (work units, seconds) of recent finished trainings
_ids = itertools.count(1)
_every_job: weakref.WeakSet = weakref.WeakSet()  # all sessions' jobs, for shutdown


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
    batch: Any = None  # the _Shared entry it joined

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

    def _watch(self, now: float) -> None:
        """Called by the watchdog: stop the job when its session has gone or nobody polls it."""
        if now - self.last_seen > HEARTBEAT_S:
            self.request_stop(f"no poll for {HEARTBEAT_S:g} s")
        elif self.session_id is not None:
            alive = _session_alive(self.session_id)
            if alive is None or alive:
                self.gone_since = None
            else:
                self.gone_since = self.gone_since or now
                if now - self.gone_since >= GONE_S:
                    self.request_stop("session closed")
                    _release(self)  # nobody will see its end: the next student need not wait for its iteration

    def _callback(self, info) -> None:
        # A training's StepInfo carries its leading patch: keep only the latest one (the page redraws it), so a
        # 10,000-iteration job does not hold 10,000 patches.
        patch = getattr(info, "patch", None)
        if patch is not None:
            self.latest_patch = patch
            info = dataclasses.replace(info, patch=None)
        self.progress.append(dict(info) if isinstance(info, dict) else info)

    def _run(self, fn, args, kwargs) -> None:
        if not _acquire(self):
            self.status, self.finished = "cancelled", time.time()
            self._log()
            return
        try:
            self.status, self.started = "running", time.time()
            from .cache import torch_threads

            lower_priority()
            torch.set_num_threads(torch_threads())
            self._ended(fn(*args, callback=self._callback, cancel=self.cancel, **kwargs))
        except Exception as exc:  # noqa: BLE001 - logged with its traceback; the page gets only the id
            self._failed(exc)
        finally:
            self.finished = time.time()
            _release(self)
            if self.status == "done":
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
        from .boot import ERROR_LOG

        error_id = uuid.uuid4().hex[:8]
        ERROR_LOG.error("lavan error %s in job %d (%s): %s", error_id, self.id, self.key, type(exc).__name__,
                        exc_info=True)
        self.error, self.status = f"error id {error_id}", "error"

    def _run_shared(self, model, options: dict) -> None:
        """The thread of a job in a shared batch: joins it, relays a stop to its config, waits for its result; the
        batch's runner thread (:func:`_join_shared`) does the training and calls ``_callback`` every step."""
        try:
            if options.get("source") is None:  # the clean argmax, as train_patch finds it (outside the batch's lock)
                with torch.no_grad():
                    image = options["image"].unsqueeze(0).to(next(model.buffers()).device)
                    options["source"] = int(model(image).argmax(1)[0])
            if self.cancel.is_set():
                self.status = "cancelled"
                return
            self.batch, self.handle = _join_shared(model, options, self._callback)
            if self.cancel.is_set():  # a stop that came before the handle existed
                self.handle.cancel()
            while not self.handle.wait(0.1):
                if self.cancel.is_set():
                    self.handle.cancel()
                if self.batch.error is not None:
                    self.error, self.status = self.batch.error, "error"
                    return
            self._ended(self.handle.result)
        except Exception as exc:  # noqa: BLE001 - logged with its traceback; the page gets only the id
            self._failed(exc)
        finally:
            self.finished = time.time()
            self._log()

    def _log(self) -> None:
        after = f", ended {self.finished - self.stop_asked:.2f} s after the stop" if self.stop_asked else ""
        if self.stop_asked and self.slot_freed and self.slot_freed < self.finished - 0.005:
            after += f", slot freed {self.slot_freed - self.stop_asked:.2f} s after the stop at {self.slot_freed:.3f}"
        ran = (f"{self.finished - self.started:.1f} s, {len(self.progress)} progress reports" if self.started
               else "never started") + (", in the shared batch" if self.shared else "")
        print(f"lavan job {self.id} {self.key} {self.status} ({self.stop_reason or 'ran to its end'}; {ran}{after}) "
              f"at {self.finished:.3f}", file=sys.stderr, flush=True)


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


# ------------------------------------------------------------------------------------------------------ the pool
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


def _session_alive(session_id: str) -> bool | None:
    """Whether the Streamlit session is connected (None: no runtime to ask, e.g. AppTest or a script)."""
    if not Runtime.exists():
        return None
    return Runtime.instance().is_active_session(session_id)


def _watchdog() -> None:
    while True:
        time.sleep(TICK_S)
        now = time.time()
        for job in list(_every_job):
            if job.active:
                try:
                    job._watch(now)
                except Exception:  # noqa: BLE001 - the watchdog must survive a runtime shutting down
                    import traceback

                    traceback.print_exc()


_watchdog_started = threading.Event()
_watchdog_lock = threading.Lock()


def _ensure_watchdog() -> None:
    with _watchdog_lock:
        if not _watchdog_started.is_set():
            threading.Thread(target=_watchdog, name="lavan-job-watchdog", daemon=True).start()
            _watchdog_started.set()


# ------------------------------------------------------------------------------------------- the shared batches
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


def _shared_options(fn, args: tuple, kwargs: dict) -> dict | None:
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


_shared_lock = threading.Lock()  # guards _shared, and a runner's decision to leave against a config joining
_shared: dict[tuple, _Shared] = {}


def _join_shared(model, options: dict, callback) -> tuple[_Shared, Any]:
    """Add a config to the shared batch of its model/size/domain (created, with its runner thread, when there is
    none): (the entry, its ConfigHandle). ``callback`` receives train_patch's StepInfo every step."""
    batch_key = (id(model), getattr(model, "name", type(model).__name__), int(getattr(model, "input_size", 224)),
                 int(options["size"]), options["domain"])
    with _shared_lock:
        entry = _shared.get(batch_key)
        if entry is None:
            entry = _shared[batch_key] = _Shared(batch_key, SharedBatch(model, size=options["size"],
                                                                        domain=options["domain"]))
        handle = entry.batch.add(**options, callback=callback)
        if entry.thread is None:
            entry.thread = threading.Thread(target=_step_shared, args=(entry,), daemon=True,
                                            name=f"lavan-shared-{batch_key[1]}-{batch_key[3]}-{batch_key[4]}")
            entry.thread.start()
    return entry, handle


def _step_shared(entry: _Shared) -> None:
    """A shared batch's runner: steps while it has configs, then removes the batch and ends (the next config
    starts a new one). A failing step ends every config of the batch with one error id."""
    from .cache import torch_threads

    lower_priority()
    torch.set_num_threads(torch_threads())
    try:
        while True:
            if entry.batch.step() == 0:
                with _shared_lock:
                    if len(entry.batch) == 0:
                        _shared.pop(entry.key, None)
                        return
    except Exception as exc:  # noqa: BLE001 - logged with its traceback; the pages get only the id
        from .boot import ERROR_LOG

        error_id = uuid.uuid4().hex[:8]
        ERROR_LOG.error("lavan error %s in the shared batch %s: %s", error_id, entry.key[1:], type(exc).__name__,
                        exc_info=True)
        with _shared_lock:
            entry.error = f"error id {error_id}"
            if _shared.get(entry.key) is entry:
                del _shared[entry.key]


def shared_configs() -> int:
    """Configs in this process's shared batches right now (all sessions), training or about to join."""
    with _shared_lock:
        return sum(len(e.batch) for e in _shared.values())


# --------------------------------------------------------------------------------------------- the wait estimate
def _expected_work(job: Job) -> float | None:
    """Iterations a training of this kind is expected to need in all: the median of the recent trainings of the
    same key that ran to their end (most stop early, at p ≥ 0.9), never above the job's own cap; the cap when
    there is no history yet."""
    with _pool:
        done = [w for w, _ in _history.get(job.key, ())]
    if done:
        return min(statistics.median(done), job.max_steps or float("inf"))
    return job.max_steps


def _seconds_per_unit(running: list[Job]) -> float | None:
    """Measured seconds per iteration: the mean over the running trainings that have reported progress, else over
    the recent finished ones."""
    rates = [j.elapsed() / j.work_done() for j in running if j.started and j.work_done() > 0]
    if not rates:
        with _pool:
            rates = [t / w for h in _history.values() for w, t in h if w > 0]
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
    with _pool:
        holding, line = list(_holding), [j for j in _waiting if not j.cancel.is_set()]
    if job not in line:
        return 0.0
    per_unit = _seconds_per_unit(holding)
    if per_unit is None:
        return None
    free = [_remaining(j, per_unit) for j in holding] + [0.0] * max(MAX_JOBS - len(holding), 0)
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


def _fmt_wait(seconds: float) -> str:
    if seconds < 60:
        return f"about {max(5, round(seconds / 5) * 5):.0f} s"
    return f"about {seconds / 60:.0f} min" if seconds >= 600 else f"about {seconds / 60:.1f} min"


# ------------------------------------------------------------------------------------------ the pages' interface
def _state():
    """This browser session's state (a seam for the unit tests, which play several sessions in one thread)."""
    return st.session_state


def _session_id() -> str | None:
    ctx = get_script_run_ctx(suppress_warning=True)
    return ctx.session_id if ctx else None


def _jobs() -> dict[str, Job]:
    return _state().setdefault("_lavan_jobs", {})


def _refusal(now: float) -> str | None:
    """Why this session may not start a training now (None: it may), from its recent starts."""
    interval, quota, window = start_limits()
    starts = _state().setdefault("_lavan_starts", [])
    starts[:] = [t for t in starts if now - t < window]
    if starts and now - starts[-1] < interval:
        return (f"Trainings start at most once every {interval:g} s in one tab, so that every student gets a turn: "
                f"press Train again in {interval - (now - starts[-1]):.0f} s.")
    if len(starts) >= quota:
        return (f"This tab has started {quota} trainings in the last {window / 60:g} minutes, the most this server "
                f"allows one tab so that every student gets a turn: the next one can start in "
                f"{(window - (now - starts[0])) / 60:.0f} min. Trainings already in the cache still answer at once.")
    return None


def start(key: str, fn: Callable, *args, page: str = "", on_done: Callable[[Any], None] | None = None,
          meta: dict | None = None, **kwargs) -> Job:
    """Start ``fn`` in the background for this browser session, replacing (and stopping) any job under ``key``.
    An iteration count above the server's cap (``steps``/``max_steps`` > ``MAX_ITER``) is clamped to it. A start
    too soon after the last one, or past the session's quota (:func:`start_limits`), returns a ``refused`` job
    whose ``error`` says why (and leaves a running job under ``key`` alone). An ``attack.train_patch`` that a
    shared batch can train joins one instead of the pool when :func:`shared_mode` is on for its model."""
    now = time.time()
    old = _jobs().get(key)
    why = _refusal(now)
    if why is not None:
        if old is not None and old.active:
            return old
        job = Job(key=key, page=page, status="refused", error=why, meta=dict(meta or {}), finished=now)
        _jobs()[key] = job
        print(f"lavan job {job.id} {key} refused (start limit) at {now:.3f}", file=sys.stderr, flush=True)
        return job
    _state()["_lavan_starts"].append(now)
    if old is not None:
        old.request_stop("replaced by a new training")
    meta = dict(meta or {})
    cap = max_iter()
    steps = None
    for arg in _STEP_ARGS:
        if arg in kwargs:
            if int(kwargs[arg]) > cap:
                meta["clamped_from"], meta["cap"] = int(kwargs[arg]), cap
                kwargs[arg] = cap
            steps = int(kwargs[arg])
    job = Job(key=key, page=page, on_done=on_done, meta=meta, session_id=_session_id(), max_steps=steps)
    shared = _shared_options(fn, args, kwargs)
    if shared is not None:  # no slot to wait for: it joins the shared batch at its next step
        job.shared, job.status, job.started = True, "running", time.time()
        job.thread = threading.Thread(target=job._run_shared, args=(args[0], shared),
                                      name=f"lavan-{key}-{job.id}-shared", daemon=True)
    else:
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


def status_lines(job: Job) -> list[tuple[str, str]]:
    """(kind, text) lines :func:`show_status` draws: refusal, place in the queue with the estimated wait, a
    clamped iteration count."""
    lines = []
    if job.status == "refused":
        lines.append(("warning", job.error or "This training was not started."))
    if job.status == "queued":
        pos, wait = job.queue_position(), estimate_wait(job)
        with _pool:
            own = any(j.session_id == job.session_id for j in _holding if job.session_id is not None)
        text = (f"Waiting for a free training slot: position {pos} in the queue "
                f"({MAX_JOBS} trainings run at once on this server, one per browser tab)")
        if own:
            text += "; this tab's previous training is still ending"
        finished = len(_history.get(job.key, ()))
        if wait is None:
            text += ". No wait estimate yet: nothing has been measured on this server."
        elif finished:
            text += (f". Estimated wait: **{_fmt_wait(wait)}** — the measured seconds per iteration of the running "
                     f"trainings × the iterations still ahead, taking the median that the last {finished} finished "
                     "training(s) here needed (most stop early, at p ≥ 0.9).")
        else:
            text += (f". Estimated wait: **at most {_fmt_wait(wait)}** — the measured seconds per iteration of the "
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


POLL_FAST, POLL_SLOW = 0.5, 1.0  # seconds between two redraws of a training page
BUSY = 4  # more live trainings than this on the server (running + queued, all sessions): pages poll at POLL_SLOW


def poll_interval(job: Job | None) -> float:
    """How often a page polls its training: ``POLL_FAST`` while it runs on a quiet server; ``POLL_SLOW`` while it
    waits for a slot (it only shows its place) or while more than ``BUSY`` trainings are live. A classroom's polls
    are Python work under one GIL that delays every other session's redraw (bench/load.py --gil-profile); once a
    second still draws the curve and the forming patch at the 1 Hz the attack page promises."""
    with _pool:
        live = len(_holding) + sum(1 for j in _waiting if not j.cancel.is_set())
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
    from .boot import guard

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


# ------------------------------------------------------------------------ a Streamlit race that lost redraws
def keep_finished_runs_output(app_session_cls=None, events=None) -> bool:
    """Work around a race in Streamlit's AppSession (1.67) that lost whole redraws under load (issue 14).

    A ScriptRunner posts its events (deltas, ``script_finished``) to the session's event loop from its own thread.
    When a rerun request (typically a page's progress poll, twice a second) reaches the loop after a run's script
    thread has finished but before the loop has handled that run's last events, the finished runner refuses the
    request and AppSession starts a new one, which becomes current; the finished run's queued events then arrive
    and are dropped as coming "from a non-current ScriptRunner" — its last deltas (a redrawn canvas, the
    ``auto_rerun`` that re-arms the page's poll) and its ``script_finished`` never reach the browser, which keeps a
    half-drawn page and stops polling (then the job is cancelled for "no poll"). bench/load.py's server-side trace
    showed exactly this for every lost redraw (bench/results/load10_lost_redraws_2026-12-01.txt).

    The patch: a runner that refused a request (so it had already ended its run chain) stays "finishing" until its
    SHUTDOWN, and its events are handled as if it were still current. They cannot interleave with the new runner's:
    it posted them before it refused, so before the new runner existed. Its SHUTDOWN is dropped (the session's
    runner is the new one). Runners stopped on purpose (fastReruns' request_stop) are not affected: AppSession
    forgets them before it creates the next one. Installed once per process (idempotent); returns whether it is.
    ``app_session_cls`` and ``events`` are seams for the unit test."""
    if app_session_cls is None:
        try:
            from streamlit.runtime.app_session import AppSession as app_session_cls
            from streamlit.runtime.scriptrunner import ScriptRunnerEvent as events
        except ImportError:
            return False
    cls = app_session_cls
    create = getattr(cls, "_create_scriptrunner", None)
    handle = getattr(cls, "_handle_scriptrunner_event_on_event_loop", None)
    if create is None or handle is None or not hasattr(events, "SHUTDOWN"):
        return False  # another Streamlit: nothing to patch
    if getattr(handle, "_lavan_keeps_finished_runs", False):
        return True

    def _create_scriptrunner(self, initial_rerun_data):
        finished = self._scriptrunner  # not None only when it refused the rerun: its run chain has ended
        create(self, initial_rerun_data)
        if finished is not None and finished is not self._scriptrunner:
            self.__dict__.setdefault("_lavan_finishing", []).append(finished)

    def _handle_scriptrunner_event_on_event_loop(self, sender, event, *args, **kwargs):
        finishing = self.__dict__.get("_lavan_finishing") or []
        if sender is None or sender is self._scriptrunner or not any(r is sender for r in finishing):
            return handle(self, sender, event, *args, **kwargs)
        if event == events.SHUTDOWN:
            finishing[:] = [r for r in finishing if r is not sender]
            return None
        if event in (events.SCRIPT_STOPPED_WITH_SUCCESS, events.SCRIPT_STOPPED_WITH_COMPILE_ERROR,
                     getattr(events, "FRAGMENT_STOPPED_WITH_SUCCESS", None)):
            print(f"lavan streamlit race: delivered the end of a finished run of session {self.id[:8]} "
                  "(ui/jobs.keep_finished_runs_output)", file=sys.stderr, flush=True)
        current, self._scriptrunner = self._scriptrunner, sender
        try:
            return handle(self, sender, event, *args, **kwargs)
        finally:
            self._scriptrunner = current

    _handle_scriptrunner_event_on_event_loop._lavan_keeps_finished_runs = True
    cls._create_scriptrunner = _create_scriptrunner
    cls._handle_scriptrunner_event_on_event_loop = _handle_scriptrunner_event_on_event_loop
    return True


keep_finished_runs_output()
