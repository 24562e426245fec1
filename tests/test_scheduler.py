"""attack.scheduler.SharedBatch: configs that join and leave a running batch train exactly as they would alone."""
from __future__ import annotations

import threading

import pytest
import torch

from attack.scheduler import SharedBatch
from attack.train import train_patch

SIZE = 32


def alone(model, image, target, loc, seed, **kw):
    """The reference: the same config trained by train_patch on its own (full forward, one restart)."""
    return train_patch(model, image, target, loc, size=SIZE, restarts=1, seed=seed, local=False, relu6_leak=0, **kw)


def assert_same(res, ref):
    assert len(res.history["p_target"]) == len(ref.history["p_target"])
    assert res.history["p_target"] == pytest.approx(ref.history["p_target"], abs=1e-5)
    assert res.history["p_source"] == pytest.approx(ref.history["p_source"], abs=1e-5)
    assert res.history["evaluations"] == ref.history["evaluations"]
    assert [t[0][0] for t in res.history["top5"]] == [t[0][0] for t in ref.history["top5"]]
    assert torch.allclose(res.patch, ref.patch, atol=1e-5)
    assert (res.steps, res.evaluations, res.success, res.cancelled) == (ref.steps, ref.evaluations, ref.success,
                                                                       ref.cancelled)
    assert (res.loc, res.target, res.source, res.domain, res.size) == (ref.loc, ref.target, ref.source, ref.domain,
                                                                      ref.size)
    assert res.p_target == pytest.approx(ref.p_target, abs=1e-5)


def test_config_joining_mid_run_matches_training_alone(model, photos):
    # capacity=1: the second config makes the Adam group grow its state while the first one is mid-run.
    batch = SharedBatch(model, size=SIZE, domain="image", capacity=1)
    kw = dict(steps=5, lr=0.3, optimizer="adam", stop_at=1.0)
    first = batch.add(photos[0], 429, (0, 0), seed=1, **kw)
    batch.step()
    batch.step()
    assert first.progress()["evaluations"] == 2 and not first.done
    second = batch.add(photos[1], 859, (10, 150), seed=5, **kw)
    other_rule = batch.add(photos[2], 56, (192, 0), seed=7, steps=3, optimizer="sgd", stop_at=1.0)
    assert second.progress()["evaluations"] == 0  # queued: joins at the next step
    batch.run_until_idle()
    assert first.done and second.done and other_rule.done and len(batch) == 0
    assert_same(first.result, alone(model, photos[0], 429, (0, 0), 1, domain="image", **kw))
    assert_same(second.result, alone(model, photos[1], 859, (10, 150), 5, domain="image", **kw))
    assert_same(other_rule.result, alone(model, photos[2], 56, (192, 0), 7, domain="image", steps=3,
                                         optimizer="sgd", stop_at=1.0))
    assert second.result.meta["shared_batch"] and second.result.meta["restarts"] == 1


def test_finished_and_cancelled_configs_leave_and_the_others_go_on(model, photos):
    batch = SharedBatch(model, size=SIZE, domain="network")
    kw = dict(steps=4, optimizer="adam", stop_at=1.0)
    stays = batch.add(photos[3], 859, (0, 192), seed=3, **kw)
    quick = batch.add(photos[4], 429, (0, 0), seed=4, steps=50, stop_at=1e-9)  # p >= stop_at at its first forward
    cancelled = batch.add(photos[5], 56, (100, 100), seed=6, steps=50)
    batch.step()
    assert quick.done and quick.result.success["confident"] and quick.result.evaluations == 0
    assert len(batch) == 2
    batch.step()
    cancelled.cancel()
    batch.step()
    assert cancelled.done and cancelled.result.cancelled and cancelled.result.evaluations == 2
    assert len(cancelled.result.history["p_target"]) == 3
    assert cancelled.result.p_target == max(cancelled.result.history["p_target"])  # its best point
    assert len(batch) == 1 and not stays.done
    batch.run_until_idle()
    assert_same(stays.result, alone(model, photos[3], 859, (0, 192), 3, domain="network", **kw))


def test_evaluations_equal_steps_and_the_budget_stops(model, photos):
    batch = SharedBatch(model, size=SIZE, domain="network")
    seen = []
    h = batch.add(photos[6], 859, (50, 60), seed=2, steps=3, stop_at=1.0, watch_patch=True)
    while batch.step():
        seen.append(h.progress())
    res = h.result
    assert [p["evaluations"] for p in seen] == [1, 2, 3]
    assert [p["iteration"] for p in seen] == [0, 1, 2]
    assert res.evaluations == res.steps == 3 and not res.cancelled and not res.success["confident"]
    assert res.history["evaluations"] == [0, 1, 2, 3]  # the last forward only checks the final point
    assert h.progress()["done"] and h.progress()["p_target"] == res.history["p_target"][-1]
    assert h.latest_patch is not None and h.latest_patch.shape == (3, SIZE, SIZE)
    info = h.info()  # what train_patch's callback receives
    assert (info.iteration, info.evaluations, info.p_target) == (3, 3, res.history["p_target"][-1])
    assert info.top5[0][0] == res.history["top5"][-1][0][0] and len(info.top5) == 5


def test_mismatched_configs_are_refused(model, photos):
    batch = SharedBatch(model, size=SIZE, domain="image")
    assert batch.key == (model.name, model.input_size, SIZE, "image")
    with pytest.raises(ValueError, match="trains 32 px patches, not 40 px"):
        batch.add(photos[0], 859, size=40)
    with pytest.raises(ValueError, match="image-domain patches, not 'network'"):
        batch.add(photos[0], 859, domain="network")
    small = torch.nn.functional.interpolate(photos[:1], size=112)[0]
    with pytest.raises(ValueError, match="share the input size"):
        batch.add(small, 859)
    with pytest.raises(ValueError, match="restarts=1.*train_patches"):
        batch.add(photos[0], 859, restarts=8)
    with pytest.raises(ValueError, match="restarts=1"):
        batch.add(photos[0], 859, restarts="auto")  # 32 px on 224 is below the default area: 8 restarts
    with pytest.raises(ValueError, match="relu6_leak=0"):
        batch.add(photos[0], 859, relu6_leak=0.05)
    with pytest.raises(ValueError, match="unknown domain"):
        SharedBatch(model, size=SIZE, domain="pixels")
    assert len(batch) == 0


def test_configs_added_from_another_thread_while_a_worker_steps(model, photos):
    batch = SharedBatch(model, size=SIZE, domain="image")
    handles = [batch.add(photos[0], 859, (0, 0), seed=1, steps=2, stop_at=1.0)]
    worker = threading.Thread(target=batch.run_until_idle)
    worker.start()
    handles.append(batch.add(photos[1], 429, (0, 0), seed=2, steps=2, stop_at=1.0))
    worker.join(120)
    if len(batch):  # the second config arrived after the worker went idle
        batch.run_until_idle()
    assert all(h.wait(0) is not None for h in handles)
    assert [h.result.evaluations for h in handles] == [2, 2]


@pytest.mark.parametrize("optimizer", ["adam", "apgd"])
def test_a_config_reusing_a_freed_slot_starts_from_fresh_rule_state(model, photos, optimizer):
    batch = SharedBatch(model, size=SIZE, domain="image", capacity=1)
    kw = dict(steps=3, optimizer=optimizer, stop_at=1.0)
    before = batch.add(photos[0], 429, (0, 0), seed=1, **kw)
    batch.step()
    batch.step()
    before.cancel()
    batch.step()  # leaves: its slot (the group's only one) is free, with its rule state still in it
    assert before.done and before.result.evaluations == 2 and len(batch) == 0
    after = batch.add(photos[1], 859, (0, 192), seed=5, **kw)
    batch.run_until_idle()
    assert_same(after.result, alone(model, photos[1], 859, (0, 192), 5, domain="image", **kw))
