"""Universal patch trainer: the paper's stopping rule (p >= stop_at on `patience` consecutive steps) and the cap,
images already of the target class left out, determinism, validation."""
from __future__ import annotations

import pytest
import torch

import attack
from attack.universal import train_universal


@pytest.fixture(scope="module")
def three(photos):
    return photos[:3].clone()


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_stops_after_exactly_patience_steps(model, three):
    """stop_at tiny: every step is a success, so the streak reaches `patience` at step `patience`."""
    streaks = []
    res = train_universal(model, three, 859, size=16, stop_at=1e-12, patience=3, max_steps=50, generator=_gen(),
                          callback=lambda info: streaks.append(info["streak"]))
    assert res.steps == 3
    assert res.success == {"converged": True}
    assert streaks == [1, 2, 3] and res.history["streak"] == [1, 2, 3]
    assert res.loc is None and res.patch.shape == (3, 16, 16)
    assert res.patch.min() >= 0 and res.patch.max() <= 1  # image domain by default


def test_stops_at_cap(model, three):
    """stop_at = 1.0 is never reached: the trainer runs to max_steps and reports no convergence."""
    res = train_universal(model, three, 859, size=16, stop_at=1.0, patience=2, max_steps=3, generator=_gen())
    assert res.steps == 3 and res.success == {"converged": False}
    assert res.history["streak"] == [0, 0, 0] and len(res.history["p_target"]) == 3
    assert res.meta["max_steps"] == 3


def test_target_class_images_excluded(model, three):
    clean = attack.predict(model, three).argmax(1)
    target = int(clean[0])
    others = int((clean != target).sum())
    assert 0 < others < 3
    res = train_universal(model, three, target, size=16, stop_at=1.0, patience=2, max_steps=3, batch_size=2,
                          generator=_gen())
    assert res.meta["train_images"] == others
    # an image of the target class would have source == target, i.e. p_source == p_target on that step
    assert all(abs(pt - ps) > 1e-6 for pt, ps in zip(res.history["p_target"], res.history["p_source"]))


def test_all_images_of_target_class(model, three):
    target = int(attack.predict(model, three[:1]).argmax())
    with pytest.raises(ValueError, match="already classified as the target"):
        train_universal(model, three[:1], target, size=16, max_steps=2)


def test_deterministic(model, three):
    kw = dict(size=16, stop_at=1.0, patience=2, max_steps=2, batch_size=2)
    a = train_universal(model, three, 859, generator=_gen(3), **kw)
    b = train_universal(model, three, 859, generator=_gen(3), **kw)
    assert torch.equal(a.patch, b.patch) and a.history["p_target"] == b.history["p_target"]


def test_cancel(model, three):
    res = train_universal(model, three, 859, size=16, stop_at=1.0, max_steps=100, cancel=lambda: True)
    assert res.cancelled and res.steps == 1 and not res.success["converged"]


@pytest.mark.parametrize("kwargs,msg", [
    (dict(patience=0), ">= 1"), (dict(max_steps=0), ">= 1"), (dict(batch_size=0), ">= 1"),
    (dict(optimizer="lbfgs"), "optimizer"), (dict(domain="pixels"), "domain"),
    (dict(size=0), "patch size"), (dict(size=500), "patch size"),
])
def test_validation(model, three, kwargs, msg):
    kw = dict(size=16, max_steps=1)
    kw.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        train_universal(model, three, 859, **kw)
