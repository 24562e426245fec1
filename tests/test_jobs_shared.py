"""ui/jobs/ with $LAVAN_SHARED_BATCH: the attack page's eligible trainings of several browser sessions join one
attack.scheduler.SharedBatch instead of waiting for a pool slot (issue 14).

Sessions are played in one thread through ui/jobs/session.py's seams, as in tests/test_jobs.py; the trainings are real
(the session's model, a 32 px patch, a few evaluations, stop_at=1.0 so every run spends its whole budget).
Proves: three sessions' trainings run at once with one pool slot, none queued, each ending with the result and the
per-step payloads of a solo ``train_patch`` with the same seed; Stop and a closed tab cancel only their config; an
ineligible training (several restarts, a ReLU6 leak) still takes a pool slot; switch 0 (and ``auto`` on a CPU) is
the pool as before; and through the real page (AppTest), the default training goes through the shared batch.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from test_jobs import Sessions, until

import attack
from attack.scheduler import SharedBatch, shared_options
from attack.train import default_patch_size
from ui import jobs

SIZE = 32
SMALL = dict(size=SIZE, restarts=1, relu6_leak=0, stop_at=1.0)  # below the default area: say "one patch, no leak"


@pytest.fixture
def sessions(monkeypatch):
    monkeypatch.setattr(jobs.pool, "MAX_JOBS", 1)
    monkeypatch.setenv("LAVAN_MAX_JOBS", "1")
    monkeypatch.setenv("LAVAN_SHARED_BATCH", "1")
    monkeypatch.setenv("LAVAN_START_INTERVAL_S", "0")
    alive: dict[str, bool] = {}
    monkeypatch.setattr(jobs.watchdog, "_session_alive", lambda sid: alive.get(sid, True))
    s = Sessions(monkeypatch)
    s.alive, s.started = alive, []
    real_start = jobs.start

    def start(*a, **k):
        job = real_start(*a, **k)
        s.started.append(job)
        return job

    monkeypatch.setattr(jobs, "start", start)
    yield s
    for j in s.started:  # nothing of one test runs into the next
        j.request_stop("end of test")
    for j in s.started:
        if j.thread is not None:
            j.thread.join(60)
    until(lambda: jobs.shared_configs() == 0 and not jobs.shared._batches, what="the shared batches to empty")
    jobs.pool._history.clear()


@pytest.fixture
def gated(monkeypatch):
    """Hold every shared batch before its steps until ``gate`` is set; ``sizes``: configs in the batch at each step."""
    gate, sizes = threading.Event(), []
    step = SharedBatch.step

    def held(self):
        gate.wait(60)
        sizes.append(len(self))
        return step(self)

    monkeypatch.setattr(SharedBatch, "step", held)
    yield gate, sizes
    gate.set()  # a failed test must not leave a runner held


def test_three_sessions_train_at_once_in_one_batch_with_one_pool_slot(sessions, gated, model, photos):
    gate, sizes = gated
    configs = {"A": (photos[0], 429, (0, 0), 1), "B": (photos[1], 859, (10, 150), 5),
               "C": (photos[2], 56, (192, 0), 7)}
    done: dict[str, object] = {}
    started = {}
    for name, (img, target, loc, seed) in configs.items():
        with sessions(name):
            started[name] = jobs.start("attack", attack.train_patch, model, img, target, loc, steps=4, seed=seed,
                                       page="attack", on_done=lambda r, n=name: done.__setitem__(n, r), **SMALL)
    # none queued and none holds the pool's one slot, although three trainings are live
    assert all(j.shared and j.status == "running" and j.queue_position() == 0 for j in started.values())
    assert jobs.running() == 0
    until(lambda: jobs.shared_configs() == 3, what="the three configs to be in the batch")
    assert any("shared batch (3 configs)" in t for _, t in jobs.status_lines(started["A"]))
    gate.set()
    for j in started.values():
        assert jobs.wait(j, 120) and j.status == "done"
    assert sizes[0] == 3  # the first step already trained all three
    for name, (img, target, loc, seed) in configs.items():
        j, solo_steps = started[name], []
        solo = attack.train_patch(model, img, target, loc, steps=4, seed=seed, callback=solo_steps.append, **SMALL)
        res = j.result
        assert done[name] is res and res.meta["shared_batch"]
        assert res.evaluations == solo.evaluations == 4 and res.steps == solo.steps
        assert res.p_target == pytest.approx(solo.p_target, abs=1e-4)
        assert res.history["p_target"] == pytest.approx(solo.history["p_target"], abs=1e-4)
        assert torch.allclose(res.patch, solo.patch, atol=1e-4)
        # what the page's live view reads: the same StepInfo fields, one per evaluated point
        got = j.progress
        assert [(s.iteration, s.evaluations, s.leader, len(s.restarts), s.patch) for s in got] == \
               [(s.iteration, s.evaluations, s.leader, len(s.restarts), None) for s in solo_steps]
        assert [s.p_target for s in got] == pytest.approx([s.p_target for s in solo_steps], abs=1e-4)
        assert [s.top5[0][0] for s in got] == [s.top5[0][0] for s in solo_steps]
        assert j.latest_patch is not None and j.latest_patch.shape == (3, SIZE, SIZE)


def test_stop_and_a_closed_tab_cancel_only_their_config(sessions, gated, model, photos):
    gate, sizes = gated
    with sessions("A"):
        a = jobs.start("attack", attack.train_patch, model, photos[0], 429, (0, 0), steps=50, seed=1, **SMALL)
    with sessions("B"):
        b = jobs.start("attack", attack.train_patch, model, photos[1], 859, (0, 192), steps=50, seed=2, **SMALL)
    with sessions("C"):
        c = jobs.start("attack", attack.train_patch, model, photos[2], 56, (100, 100), steps=4, seed=3, **SMALL)
    gate.set()
    until(lambda: all(len(j.progress) >= 1 for j in (a, b, c)), what="a first step of every config")
    with sessions("A"):
        jobs.stop("attack")
    sessions.alive["B"] = False  # B's tab closed: the watchdog stops it after GONE_S
    assert jobs.wait(a, 60) and jobs.wait(b, 60)
    assert a.status == b.status == "cancelled" and a.result.cancelled and b.result.cancelled
    assert (a.stop_reason, b.stop_reason) == ("Stop pressed", "session closed")
    assert a.result.evaluations < 50 and b.result.evaluations < 50
    assert jobs.wait(c, 120) and c.status == "done" and not c.result.cancelled and c.result.evaluations == 4
    assert max(sizes) == 3


def test_a_job_nobody_polls_leaves_the_batch_and_a_polled_one_goes_on(sessions, gated, model, photos, monkeypatch):
    """The heartbeat rule for shared jobs: a training whose page stopped polling (HEARTBEAT_S without a touch) is
    cancelled, alone; one that is still polled trains on to its end in the same batch."""
    gate, sizes = gated
    with sessions("A"):
        a = jobs.start("attack", attack.train_patch, model, photos[0], 429, (0, 0), steps=30, seed=1, **SMALL)
    with sessions("B"):
        b = jobs.start("attack", attack.train_patch, model, photos[1], 859, (0, 192), steps=30, seed=2, **SMALL)
    assert a.shared and b.shared
    gate.set()
    until(lambda: all(len(j.progress) >= 1 for j in (a, b)), what="a first step of both configs")
    monkeypatch.setattr(jobs.watchdog, "HEARTBEAT_S", 0.5)

    def b_gone():
        a.touch()  # A's page still polls
        return b.cancel.is_set()

    until(b_gone, what="the unpolled job to be stopped")
    assert b.stop_reason == "no poll for 0.5 s"
    end = time.time() + 120
    while not jobs.wait(a, 0.1) and time.time() < end:
        a.touch()
    assert jobs.wait(b, 60) and b.status == "cancelled" and b.result.cancelled and b.result.evaluations < 30
    assert a.status == "done" and not a.result.cancelled and a.result.evaluations == 30
    assert max(sizes) == 2


def test_ineligible_trainings_and_switch_off_use_the_pool(sessions, model, photos, monkeypatch):
    img = photos[3]
    with sessions("A"):  # several restarts: successive halving, which a shared batch does not do
        several = jobs.start("attack", attack.train_patch, model, img, 429, (0, 0), steps=4, size=SIZE, restarts=2,
                             relu6_leak=0, stop_at=1.0, seed=1)
    assert not several.shared
    with sessions("B"):  # the page's default below the default area: 8 restarts and a ReLU6 leak
        small = jobs.start("attack", attack.train_patch, model, img, 429, (0, 0), steps=2, size=SIZE, seed=1)
    assert not small.shared and small.status == "queued"  # the pool's one slot is A's
    monkeypatch.setenv("LAVAN_SHARED_BATCH", "0")
    with sessions("C"):
        off = jobs.start("attack", attack.train_patch, model, img, 429, (0, 0), steps=2, seed=1, **SMALL)
    monkeypatch.setenv("LAVAN_SHARED_BATCH", "auto")  # the default: on CUDA only, and this model is on the CPU
    with sessions("D"):
        auto = jobs.start("attack", attack.train_patch, model, img, 429, (0, 0), steps=2, seed=1, **SMALL)
    for j in (several, small, off, auto):
        assert jobs.wait(j, 120) and j.status == "done"
        assert not j.shared and j.slot_freed is not None and "shared_batch" not in j.result.meta
    assert jobs.shared_configs() == 0


def test_shared_options_accepts_exactly_what_a_shared_batch_trains(model, photos):
    img, default = photos[0], default_patch_size(model.input_size)
    opts = shared_options(model, img, 859, (0, 0), steps=10, domain="image", seed=3)
    assert (opts["size"], opts["domain"], opts["restarts"], opts["seed"]) == (default, "image", 1, 3)
    assert shared_options(model, img, 859, (0, 0), size=default, relu6_leak=None) is not None  # "auto": no leak
    assert shared_options(model, img, 859, size=SIZE) is None  # auto below the default area: 8 restarts + leak
    assert shared_options(model, img, 859, size=SIZE, restarts=1) is None  # the leak alone
    assert shared_options(model, img, 859, size=SIZE, restarts=1, relu6_leak=0) is not None
    assert shared_options(model, img, 859, restarts=4) is None
    assert shared_options(model, img, 859, relu6_leak=0.05) is None
    assert shared_options(model, img, 859, callback=print) is None
    assert shared_options(model, img[:, :100, :100], 859) is None
    assert shared_options(model, img, 859, restarts="many") is None  # train_patch will say why


APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_attack_page_default_training_goes_through_the_shared_batch(steady_server, monkeypatch):
    """The page itself has no special case: its default training (63 px on 224, one restart, no leak) joins the
    shared batch, draws its live curve and ends with a cached result, as a pooled one does."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LAVAN_SHARED_BATCH", "1")
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    at.switch_page("pages/1_attack.py").run()
    at.number_input(key="attack_steps").set_value(4).run()
    at.button(key="attack_train").click().run()
    job = at.session_state["_lavan_jobs"]["attack"]
    assert job.shared and job.status in ("running", "done")
    job.thread.join(120)
    for _ in range(20):  # the live view hands the result over at its next poll
        if "result" in at.session_state and at.session_state["result"] is not None:
            break
        at.run()
    res = at.session_state["result"]
    assert res.meta["shared_batch"] and res.evaluations <= 4 and res.meta["restarts"] == 1
    assert [c for c in at.get("plotly_chart") if "iteration" in c.proto.spec], "the confidence curve is not drawn"
    assert "(trained)" in "\n".join(str(m.value) for m in at.markdown)
