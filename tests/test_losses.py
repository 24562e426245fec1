"""The LaVAN score M(target) - M(source): every kind, maximised, source == target, errors."""
from __future__ import annotations

import math

import pytest
import torch

from attack.losses import LOSSES, target_minus_source


def _logits():
    z = torch.zeros(2, 5)
    z[0] = torch.tensor([3.0, 1.0, 0.0, -1.0, 0.5])
    z[1] = torch.tensor([0.0, 2.0, 1.0, 0.0, -2.0])
    return z


def test_each_kind_value():
    z = _logits()
    t, s = 1, 0
    logp = torch.log_softmax(z, 1)
    p = torch.softmax(z, 1)
    assert torch.allclose(target_minus_source(z, t, s, "logprob_raw"), logp[:, t] - logp[:, s])
    assert torch.allclose(target_minus_source(z, t, s, "logit"), z[:, t] - z[:, s])
    assert torch.allclose(target_minus_source(z, t, s, "prob"), p[:, t] - p[:, s])
    assert torch.allclose(target_minus_source(z, t, s, "target_ce"), logp[:, t])
    # logprob: the source term is floored at log p(t) - margin
    floored = logp[:, t] - torch.maximum(logp[:, s], logp[:, t] - 2.0)
    assert torch.allclose(target_minus_source(z, t, s, "logprob"), floored)
    assert torch.allclose(target_minus_source(z, t, s), floored)  # the default kind


def test_logprob_floor_caps_score_at_margin():
    z = torch.tensor([[10.0, 0.0, -20.0]])  # target 0 dominant, source 2 negligible
    assert target_minus_source(z, 0, 2, "logprob", margin=2.0).item() == pytest.approx(2.0)
    assert target_minus_source(z, 0, 2, "logprob_raw").item() > 25


@pytest.mark.parametrize("kind", LOSSES)
def test_maximisation_direction(kind):
    """A gradient *ascent* step on the score raises p(target) (the score is maximised, never minimised)."""
    z = _logits()[:1].clone().requires_grad_(True)
    t, s = 2, 0
    target_minus_source(z, t, s, kind).sum().backward()
    p0 = torch.softmax(z.detach(), 1)[0, t]
    p1 = torch.softmax(z.detach() + 0.1 * z.grad, 1)[0, t]
    assert p1 > p0
    if kind != "target_ce":
        assert z.grad[0, s] < 0  # the source logit is pushed down


def test_source_equals_target_drops_source_term():
    z = _logits()
    logp = torch.log_softmax(z, 1)
    for kind in LOSSES:
        score = target_minus_source(z, 1, 1, kind)
        assert torch.isfinite(score).all()
        assert not torch.allclose(score, torch.zeros(2))  # not the degenerate M(t) - M(t) = 0
    assert torch.allclose(target_minus_source(z, 1, 1, "logprob"), logp[:, 1])
    assert torch.allclose(target_minus_source(z, 1, 1, "logit"), z[:, 1])


def test_per_row_targets_and_sources():
    z = _logits()
    t = torch.tensor([1, 2])
    s = torch.tensor([0, 2])  # row 1: source == target
    score = target_minus_source(z, t, s, "logit")
    assert score[0].item() == pytest.approx(z[0, 1] - z[0, 0])
    assert score[1].item() == pytest.approx(z[1, 2])


def test_batch_independence():
    """Each row's score depends on its own logits only (the trainer sums rows, so gradients don't mix)."""
    z = _logits().requires_grad_(True)
    target_minus_source(z, 1, 0, "logprob")[0].backward()
    assert torch.count_nonzero(z.grad[1]) == 0


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown loss"):
        target_minus_source(_logits(), 1, 0, "hinge")


def test_scores_finite_on_extreme_logits():
    z = torch.tensor([[1e4, -1e4, 0.0]])
    for kind in LOSSES:
        v = target_minus_source(z, 1, 0, kind)
        assert math.isfinite(v.item()), kind
