"""The training pool of ui/jobs/ as a classroom uses it: several browser sessions, played in one thread
through ui/jobs/session.py's two seams (``_state``: the session's state, ``_session_id``), with stand-in trainings
that sleep per iteration (so the CPU load of the machine barely changes their speed) — no model, no Streamlit server.

Proves: one session holds at most one slot and does not hold back other sessions; queued trainings know their
place and an estimated wait, which comes true within a factor of two; a session that disappears gives its slot
back before its thread has even finished its iteration, well within 2 s; starts in a loop are refused with a
reason. Timings are reported (``-s``) and only bounded generously; the assertions are about order and state.
"""
from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace

import pytest

from ui import jobs


class Sessions:
    """Play browser sessions: ``with sessions("A"): jobs.start(...)`` runs as session A."""

    def __init__(self, monkeypatch):
        self.states: dict[str, dict] = {}
        self.current: str | None = None
        monkeypatch.setattr(jobs.session, "_state", lambda: self.states.setdefault(self.current, {}))
        monkeypatch.setattr(jobs.session, "_session_id", lambda: self.current)

    @contextlib.contextmanager
    def __call__(self, name: str):
        self.current = name
        try:
            yield
        finally:
            self.current = None


@pytest.fixture
def sessions(monkeypatch):
    monkeypatch.setattr(jobs.pool, "MAX_JOBS", 2)
    monkeypatch.setenv("LAVAN_START_INTERVAL_S", "0")
    alive: dict[str, bool] = {}
    monkeypatch.setattr(jobs.watchdog, "_session_alive", lambda sid: alive.get(sid, True))
    s = Sessions(monkeypatch)
    s.alive = alive
    started: list[jobs.Job] = []
    real_start = jobs.start

    def start(*a, **k):
        job = real_start(*a, **k)
        started.append(job)
        return job

    monkeypatch.setattr(jobs, "start", start)
    yield s
    for j in started:  # nothing of one test runs into the next
        j.request_stop("end of test")
    for j in started:
        if j.thread is not None:
            j.thread.join(10)
    jobs.pool._history.clear()


def fake_train(steps: int, *, per_step: float = 0.02, gate: threading.Event | None = None, callback=None,
               cancel=None, succeeds_at: int | None = None):
    """A stand-in training: ``steps`` iterations of ``per_step`` s each (waiting for ``gate`` before each, an
    iteration that cannot be interrupted), one progress report per iteration, stops at an iteration boundary, or
    after ``succeeds_at`` iterations (as a real one stops at p >= 0.9, far below its cap)."""
    for i in range(min(steps, succeeds_at or steps)):
        if cancel.is_set():
            return SimpleNamespace(cancelled=True, steps=i)
        if gate is not None:
            gate.wait(30)
        time.sleep(per_step)
        callback({"iteration": i, "evaluations": i + 1})
    return SimpleNamespace(cancelled=False, steps=steps)


def until(cond, timeout: float = 30.0, what: str = "condition") -> None:
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_session_holds_one_slot_and_does_not_hold_back_others(sessions):
    gate = threading.Event()
    with sessions("A"):
        a1 = jobs.start("attack", fake_train, 1000, gate=gate)
        until(lambda: a1.status == "running", what="A's first training to run")
        a2 = jobs.start("universal", fake_train, 5)  # the same tab, another page's training
    with sessions("B"):
        b = jobs.start("attack", fake_train, 1000, gate=gate)
    # the pool has two slots and one is free, but it is not A's to take: B, who came later, gets it
    until(lambda: b.status == "running", what="B to get the free slot")
    assert a2.status == "queued" and a1.status == "running"
    assert jobs.running() == 2 and a2.queue_position() == 1
    assert any("previous training is still ending" in t for _, t in jobs.status_lines(a2))
    a1.request_stop("Stop pressed")
    gate.set()
    until(lambda: a2.status in ("running", "done"), what="A's second training to run once its first ended")
    assert not a1.active and a1.slot_freed is not None and a2.started >= a1.slot_freed
    until(lambda: a2.status == "done", what="A's second training to finish")


def test_a_replaced_training_keeps_its_session_to_one_slot(sessions):
    gate = threading.Event()
    with sessions("A"):
        first = jobs.start("attack", fake_train, 1000, gate=gate)
        until(lambda: first.status == "running", what="the first training to run")
        second = jobs.start("attack", fake_train, 5)  # Train again with another config: the first is told to stop
    assert first.cancel.is_set()
    time.sleep(0.3)
    assert second.status == "queued" and first.status == "running"  # the first is still in its iteration
    gate.set()
    until(lambda: second.status == "done", what="the replacement to finish")
    assert second.started >= first.finished


def test_queued_trainings_show_place_and_an_estimated_wait_that_comes_true(sessions):
    """Two 40-iteration trainings of 0.05 s per iteration run; C and D wait. The estimate for C (the remaining
    iterations of the first running training × its measured speed) must come true within a factor of two, and D
    waits longer than C. The numbers are printed."""
    with sessions("A"):
        a = jobs.start("attack", fake_train, steps=40, per_step=0.05)
    with sessions("B"):
        time.sleep(0.3)  # B starts a little later, so C's slot is A's
        jobs.start("attack", fake_train, steps=40, per_step=0.05)
    with sessions("C"):
        c = jobs.start("attack", fake_train, steps=5, per_step=0.05)
    with sessions("D"):
        d = jobs.start("attack", fake_train, steps=5, per_step=0.05)
    until(lambda: a.work_done() >= 8, what="A to report progress")
    assert (c.status, c.queue_position(), d.queue_position()) == ("queued", 1, 2)
    t_est = time.time()
    est_c, est_d = jobs.estimate_wait(c), jobs.estimate_wait(d)
    assert est_c is not None and est_d is not None and est_d > est_c > 0
    (kind, text), = [line for line in jobs.status_lines(c) if "queue" in line[1]]
    assert kind == "info" and "position 1 in the queue" in text and "Estimated wait" in text
    assert "measured seconds per iteration" in text and "at most" in text  # how it is made: caps, no history yet
    until(lambda: c.status != "queued", 60, "C to start")
    actual = c.started - t_est
    print(f"\nwait estimate for C: {est_c:.2f} s, actual {actual:.2f} s (ratio {actual / est_c:.2f}); D: {est_d:.2f} s")
    assert est_c / 2 <= actual <= est_c * 2, (est_c, actual)


def test_the_estimate_learns_that_trainings_stop_early(sessions):
    """Cap 400 iterations, but every training succeeds after 30 (0.04 s each): once three have finished, the
    estimate for a queued one uses their median (30), not the cap, and comes true within a factor of two."""
    for name in ("h1", "h2", "h3"):
        with sessions(name):
            j = jobs.start("attack", fake_train, steps=400, per_step=0.01, succeeds_at=30)
        until(lambda: j.status == "done", what="a history training")
    with sessions("A"):
        a = jobs.start("attack", fake_train, steps=400, per_step=0.04, succeeds_at=30)
    with sessions("B"):
        time.sleep(0.3)
        jobs.start("attack", fake_train, steps=400, per_step=0.04, succeeds_at=30)
    with sessions("C"):
        c = jobs.start("attack", fake_train, steps=400, per_step=0.04, succeeds_at=30)
    until(lambda: a.work_done() >= 5, what="A to report progress")
    t_est, est = time.time(), jobs.estimate_wait(c)
    (text,) = [t for _, t in jobs.status_lines(c) if "queue" in t]
    assert "median that the last 3 finished" in text, text
    until(lambda: c.status != "queued", 60, "C to start")
    actual = c.started - t_est
    print(f"\nwith history: estimate {est:.2f} s, actual {actual:.2f} s (ratio {actual / est:.2f}); "
          f"from the caps alone it would be ~{(400 - a.work_done()) * 0.04:.0f} s")
    assert est / 2 <= actual <= est * 2, (est, actual)


def test_no_estimate_before_anything_is_measured_and_history_is_used(sessions):
    gate = threading.Event()
    with sessions("A"):
        a = jobs.start("attack", fake_train, steps=100, gate=gate)
    with sessions("B"):
        jobs.start("attack", fake_train, steps=100, gate=gate)
    with sessions("C"):
        c = jobs.start("attack", fake_train, 5)
    until(lambda: jobs.running() == 2, what="two running")
    assert jobs.estimate_wait(c) is None  # nothing reported yet
    assert any("No wait estimate yet" in t for _, t in jobs.status_lines(c))
    # a history of trainings that stopped after ~10 iterations (p >= 0.9) shortens the expected remainder
    jobs.pool._history["attack"] = __import__("collections").deque([(10, 1.0), (12, 1.2), (8, 0.8)])
    (text,) = [t for _, t in jobs.status_lines(c) if "queue" in t]
    assert "median that the last 3 finished" in text and "at most" not in text, text
    assert jobs.estimate_wait(c) == pytest.approx(10 * 0.1, rel=0.01)  # 10 iterations at the history's 0.1 s each
    gate.set()
    until(lambda: a.work_done() >= 2, what="progress")
    assert jobs.estimates._expected_work(a) == 10


def test_a_closed_tab_gives_its_slot_back_before_its_iteration_ends(sessions):
    """A's training is inside an iteration that cannot be interrupted (a gate); its tab closes. The watchdog frees
    its slot GONE_S + one tick later, and B (queued) starts while A's thread is still in that iteration."""
    gate = threading.Event()
    with sessions("A"):
        a = jobs.start("attack", fake_train, 1000, gate=gate)
    with sessions("X"):
        jobs.start("attack", fake_train, 1000, gate=gate)  # the pool's other slot, busy
    with sessions("B"):
        b = jobs.start("attack", fake_train, 3)
    until(lambda: jobs.running() == 2 and b.status == "queued", what="the pool to fill")
    t_gone = time.time()
    sessions.alive["A"] = False  # the websocket closed
    until(lambda: b.status != "queued", 30, "B to start")
    assert a.thread.is_alive() and a.status == "running"  # A's thread is still in its iteration...
    assert a.stop_reason == "session closed" and a.slot_freed is not None  # ...but its slot is B's
    freed = a.slot_freed - t_gone
    print(f"\nslot freed {freed:.2f} s after the session closed (GONE_S {jobs.GONE_S:g} s, tick {jobs.TICK_S:g} s)")
    assert jobs.GONE_S <= freed < 2.0
    gate.set()
    until(lambda: not a.active and b.status == "done", what="both to end")
    assert a.status == "cancelled" and jobs.running() <= 1


def test_a_reconnecting_tab_keeps_its_training(sessions):
    with sessions("A"):
        a = jobs.start("attack", fake_train, 1000, per_step=0.01)
    until(lambda: a.status == "running", what="A to run")
    sessions.alive["A"] = False
    time.sleep(jobs.GONE_S / 4)  # a blip shorter than the grace
    sessions.alive["A"] = True
    time.sleep(jobs.GONE_S + 3 * jobs.TICK_S)
    assert a.status == "running" and not a.cancel.is_set()


def test_starts_in_a_loop_are_refused_with_a_reason(sessions, monkeypatch):
    monkeypatch.setenv("LAVAN_START_INTERVAL_S", "600")
    with sessions("A"):
        first = jobs.start("attack", fake_train, 2)
        until(lambda: not first.active, what="the first training to end")
        again = jobs.start("attack", fake_train, 2)
        assert again.status == "refused" and again.thread is None and not again.active
        (kind, text), = jobs.status_lines(again)
        assert kind == "warning" and "at most once every 600 s" in text and "press Train again in" in text
    with sessions("B"):  # another tab is not affected
        assert jobs.start("attack", fake_train, 2).status != "refused"
    monkeypatch.setenv("LAVAN_START_INTERVAL_S", "0")
    monkeypatch.setenv("LAVAN_START_QUOTA", "2")
    with sessions("C"):
        for _ in range(2):
            j = jobs.start("attack", fake_train, 2)
            until(lambda: not j.active, what="a training to end")
            assert j.status == "done"
        third = jobs.start("attack", fake_train, 2)
        assert third.status == "refused" and "started 2 trainings in the last 10 minutes" in third.error


def test_a_refused_start_leaves_the_running_training_alone(sessions, monkeypatch):
    monkeypatch.setenv("LAVAN_START_INTERVAL_S", "600")
    with sessions("A"):
        running = jobs.start("attack", fake_train, 1000, per_step=0.01)
        assert jobs.start("attack", fake_train, 2) is running
    assert not running.cancel.is_set()


def test_a_failing_training_shows_an_id_and_logs_the_traceback(sessions, caplog):
    def broken(callback=None, cancel=None):
        raise RuntimeError("internal detail /srv/secret/path")

    with sessions("A"):
        j = jobs.start("attack", broken)
    j.thread.join(10)
    assert j.status == "error" and j.error.startswith("error id ")
    assert "/srv/secret" not in j.error and "RuntimeError" not in j.error
    error_id = j.error.split()[-1]
    (rec,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert rec.exc_info and "internal detail /srv/secret/path" in str(rec.exc_info[1])


def _nice_of_this_thread() -> int:
    import os

    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="per-thread priority is Linux's")
@pytest.mark.parametrize("env, step", [(None, 10), ("4", 4), ("0", 0), ("oops", 10)])
def test_a_training_thread_runs_below_the_page_threads(sessions, monkeypatch, env, step):
    """Pages answer while the pool trains: each training thread lowers its own priority by $LAVAN_TRAIN_NICE
    (default 10, 0 = off) and no other thread's; the server's own priority stays as it was."""
    if env is None:
        monkeypatch.delenv("LAVAN_TRAIN_NICE", raising=False)
    else:
        monkeypatch.setenv("LAVAN_TRAIN_NICE", env)
    base = _nice_of_this_thread()
    seen = []

    def train(steps, *, callback=None, cancel=None):
        seen.append(_nice_of_this_thread())
        return SimpleNamespace(cancelled=False, steps=steps)

    with sessions("A"):
        job = jobs.start("attack", train, 1)
    until(lambda: job.status == "done", what="the training to end")
    assert seen == [min(19, base + step)]
    assert _nice_of_this_thread() == base


def test_pages_poll_slower_while_queued_or_when_the_server_is_busy(sessions, monkeypatch):
    monkeypatch.setattr(jobs.view, "BUSY", 2)
    gate = threading.Event()
    with sessions("A"):
        a = jobs.start("attack", fake_train, 1000, gate=gate)
    with sessions("B"):
        b = jobs.start("attack", fake_train, 1000, gate=gate)
    until(lambda: a.status == b.status == "running", what="A and B to run")
    assert jobs.poll_interval(a) == jobs.POLL_FAST  # 2 live trainings: not busy
    with sessions("C"):
        c = jobs.start("attack", fake_train, 1000, gate=gate)
    assert c.status == "queued" and jobs.poll_interval(c) == jobs.POLL_SLOW  # a queued page only shows its place
    assert jobs.poll_interval(a) == jobs.POLL_SLOW  # 3 live > BUSY: the running pages slow down too
    assert jobs.POLL_SLOW <= 1.0  # the attack page promises the forming patch at >= 1 Hz
    c.request_stop("Stop pressed")
    until(lambda: not c.active, what="C to leave the line")
    assert jobs.poll_interval(a) == jobs.POLL_FAST
    gate.set()
