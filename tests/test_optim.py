"""Update rules (attack/optim.py) and restarts with successive halving in the trainer: every rule's arithmetic,
the schedule's budget, evaluations counted, restarts leaving the batch, batched = alone, callback and cancel."""
from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from attack.optim import APGD, RULES, SGD, Adam, Sign, halving_schedule, make_rule
from attack.train import StepInfo, train_patch, train_patches


def _rows(k):
    return torch.arange(k)


def test_sgd_and_sign_steps():
    w, g = torch.zeros(2, 3), torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.5, -0.5]])
    none = torch.zeros(2, dtype=torch.bool)
    assert torch.allclose(SGD(lr=0.1).step(_rows(2), w, g, none, w), 0.1 * g)
    assert torch.allclose(Sign(lr=0.1).step(_rows(2), w, g, none, w), 0.1 * g.sign())
    clamp = Sign(lr=2.0, project=lambda x: x.clamp(0, 1))
    assert torch.equal(clamp.step(_rows(2), w, g, none, w), (2 * g.sign()).clamp(0, 1))


def test_adam_matches_torch_adam_and_keeps_rows_independent():
    """Two rows stepped at different times equal two separate torch.optim.Adam (maximize) runs."""
    torch.manual_seed(0)
    grads = [torch.randn(2, 4) for _ in range(5)]
    rule = Adam(lr=0.05)
    w = torch.zeros(2, 4)
    rule.init(w)
    refs = [torch.zeros(4, requires_grad=True) for _ in range(2)]
    opts = [torch.optim.Adam([r], lr=0.05, maximize=True) for r in refs]
    for t, g in enumerate(grads):
        rows = _rows(2) if t % 2 == 0 else torch.tensor([0])  # row 1 skips odd steps (as if paused)
        w[rows] = rule.step(rows, w[rows], g[rows], torch.zeros(len(rows), dtype=torch.bool), w[rows])
        for i in rows.tolist():
            refs[i].grad = g[i].clone()
            opts[i].step()
    for i in range(2):
        assert torch.allclose(w[i], refs[i].detach(), atol=1e-6)


def test_apgd_momentum_step():
    """One step from a fresh state: z = w + eta*sign(g); w' = w + a(z - w) + (1-a)(w - w_prev), w_prev = w."""
    rule = APGD(lr=0.2, momentum=0.75)
    w = torch.full((1, 3), 0.5)
    rule.init(w)
    g = torch.tensor([[1.0, -1.0, 2.0]])
    new = rule.step(_rows(1), w, g, torch.tensor([True]), w)
    assert torch.allclose(new, w + 0.75 * 0.2 * g.sign())
    # second step uses the momentum term (w - w_prev)
    newer = rule.step(_rows(1), new, g, torch.tensor([True]), new)
    assert torch.allclose(newer, new + 0.75 * 0.2 * g.sign() + 0.25 * (new - w))


def test_apgd_halves_and_resets_to_best_after_patience_stalls():
    rule = APGD(lr=0.4, patience=3)
    w = torch.zeros(2, 2)
    rule.init(w)
    best = torch.tensor([[9.0, 9.0], [0.0, 0.0]])
    g = torch.ones(2, 2)
    stalled = torch.tensor([False, True])
    for _ in range(2):
        w = rule.step(_rows(2), w, g, stalled, best)
    assert torch.allclose(rule.eta, torch.tensor([0.4, 0.4]))
    w = rule.step(_rows(2), w, g, stalled, best)  # row 0's third stall: halve, jump to best, no step this time
    assert torch.allclose(rule.eta, torch.tensor([0.2, 0.4]))
    assert torch.equal(w[0], best[0]) and int(rule.stall[0]) == 0
    assert not torch.equal(w[1], best[1])
    for _ in range(40):  # eta never falls below lr * min_ratio
        w = rule.step(_rows(2), w, g, stalled, best)
    assert float(rule.eta[0]) == pytest.approx(0.4 * rule.min_ratio)


def test_make_rule_names():
    for name in RULES:
        assert make_rule(name, 0.1) is not None
    with pytest.raises(ValueError, match="unknown update rule"):
        make_rule("lbfgs", 0.1)


def test_halving_schedule_examples():
    assert halving_schedule(8, 2000) == [(8, 62), (2, 250), (1, 1004)]
    assert halving_schedule(1, 300) == [(1, 300)]
    assert halving_schedule(4, 100, eta=2) == [(4, 6), (2, 12), (1, 52)]
    assert halving_schedule(8, 30) == [(4, 2), (1, 22)]  # too small for 8 restarts: fewer are used
    assert halving_schedule(8, 5) == [(1, 5)]


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 32), st.integers(1, 20_000), st.integers(2, 6))
def test_halving_schedule_spends_the_budget_exactly(restarts, budget, eta):
    sched = halving_schedule(restarts, budget, eta)
    assert sum(r * it for r, it in sched) == budget
    assert sched[-1][0] == 1 and all(it >= 1 for _, it in sched)
    counts = [r for r, _ in sched]
    assert counts == sorted(counts, reverse=True) and counts[0] <= restarts


def test_restarts_spend_the_budget_and_leave_the_batch(model, photo):
    """stop_at=1.0 never succeeds: the config spends exactly its budget; dropped restarts' curves end at their
    stage's end; the batch shrinks 4 → 2 → 1 rows."""
    rows_seen = []

    def cb(it, ids, probs):
        rows_seen.append(it)

    seen = []
    res = train_patches(model, photo[None], 859, [(0, 0)], size=16, steps=40, stop_at=1.0, optimizer="apgd",
                        restarts=4, halving=2, init="mixed", seeds=[3], callback=cb,
                        on_step=lambda d: seen.append(d["restarts"][0]))[0]
    sched = halving_schedule(4, 40, 2)
    assert sched == [(4, 2), (2, 5), (1, 22)] and res.meta["schedule"] == sched
    assert res.evaluations == 40
    # iterations: each stage's gradient steps plus one check-only forward at each stage end
    assert res.steps == sum(it for _, it in sched) + len(sched) - 1
    lengths = sorted(len(h) for h in res.history["restarts"])
    assert lengths == [3, 3, 9, res.steps + 1]
    assert [sum(p is not None for p in s) for s in seen] == [4] * 3 + [2] * 6 + [1] * (len(seen) - 9)
    assert res.history["evaluations"][-1] == 40 and res.history["evaluations"][:4] == [0, 4, 8, 8]
    # the returned patch is the best point seen: its p equals the best of the leader's curve
    leader = res.history["restarts"][res.meta["leader"]]
    assert res.p_target == pytest.approx(max(leader), abs=1e-6)


def test_config_stops_when_any_restart_succeeds(model, photos):
    probs = torch.softmax(model(photos), 1)
    conf = int(probs.max(1).values.argmax())
    clean = int(probs[conf].argmax())
    res = train_patches(model, photos[conf:conf + 1], clean, [(0, 0)], size=12, steps=80, stop_at=0.5,
                        restarts=8, optimizer="apgd", init="mixed", seeds=[1])[0]
    assert res.success["confident"] and res.steps == 0 and res.evaluations == 0


@pytest.mark.parametrize("rule", ["apgd", "adam"])
def test_batched_restarts_equal_alone(model, photos, rule):
    """With per-config seeds, each config of a batch trains exactly as it does alone (restarts included)."""
    imgs = photos[2:4]
    kw = dict(size=16, steps=12, stop_at=1.0, optimizer=rule, restarts=2, halving=2, init="mixed",
              domain="image")
    batched = train_patches(model, imgs, [859, 56], [(0, 0), (200 - 16, 8)], seeds=[11, 12], **kw)
    for i, (loc, tgt) in enumerate([((0, 0), 859), ((200 - 16, 8), 56)]):
        alone = train_patches(model, imgs[i:i + 1], tgt, [loc], seeds=[11 + i], **kw)[0]
        assert alone.evaluations == batched[i].evaluations == 12
        assert (alone.patch - batched[i].patch).abs().max() < 1e-3
        assert alone.p_target == pytest.approx(batched[i].p_target, abs=1e-4)


def test_train_patch_callback_reports_restarts_and_cancel_works(model, photo):
    cancel = threading.Event()
    infos: list[StepInfo] = []

    def cb(info: StepInfo):
        infos.append(info)
        if info.iteration == 5:
            cancel.set()

    res = train_patch(model, photo, 859, (0, 0), size=16, steps=400, stop_at=1.0, optimizer="apgd", restarts=4,
                      seed=0, callback=cb, cancel=cancel)
    assert res.cancelled and res.steps == 5 and res.evaluations == 20
    assert len(infos) == 6 and all(len(i.restarts) == 4 for i in infos)
    assert infos[-1].evaluations == 20 and infos[-1].patch is not None and infos[-1].patch.shape == (3, 16, 16)
    assert infos[-1].p_target == pytest.approx(max(infos[-1].restarts))


def test_relu6_backward_leaks_the_set_share_through_both_clips():
    """On one ReLU6 the surrogate's gradient is exactly 1 inside (0, 6), ``below`` at or under 0 and ``above`` at or
    over 6; values stay ReLU6's; (0, 0) is ReLU6's own backward; the hooks go on exit."""
    from torch import nn

    from attack.optim import relu6_backward
    net = nn.Sequential(nn.ReLU6())
    x = torch.tensor([-3.0, 0.0, 2.0, 6.0, 9.0], requires_grad=True)
    for below, above, want in [(0.1, 0.1, [0.1, 0.1, 1, 0.1, 0.1]), (0.0, 1.0, [0, 0, 1, 1, 1]),
                               (0.25, 0.0, [0.25, 0.25, 1, 0, 0]), (0.0, 0.0, [0, 0, 1, 0, 0])]:
        with relu6_backward(net, below, above):
            y = net(x)
            (g,) = torch.autograd.grad(y.sum(), x)
        assert y.tolist() == [0, 0, 2, 6, 6]
        assert g.tolist() == pytest.approx(want), (below, above)
    (g,) = torch.autograd.grad(net(x).sum(), x)
    assert g.tolist() == [0, 0, 1, 0, 0]


def test_a_leaky_relu6_backward_changes_the_training_not_the_predictions(model, photo):
    """train_patches(relu6_leak=…): the recorded p(target) is the true model's (the first step's forward is the same
    as without the leak), the gradient and so the patches differ, and the option is recorded and checked."""
    kw = dict(size=24, steps=6, stop_at=1.0, seeds=[0], optimizer="adam")
    plain = train_patches(model, photo[None], 859, [(0, 0)], relu6_leak=0, **kw)[0]
    leaky = train_patches(model, photo[None], 859, [(0, 0)], relu6_leak=0.1, **kw)[0]
    assert leaky.history["p_target"][0] == plain.history["p_target"][0]
    assert not torch.equal(leaky.patch, plain.patch)
    assert leaky.meta["relu6_leak"] == 0.1 and plain.meta["relu6_leak"] == 0.0
    with pytest.raises(ValueError, match="relu6_leak"):
        train_patches(model, photo[None], 859, [(0, 0)], relu6_leak=1.5, **kw)


def test_the_default_leak_follows_the_patch_area(model, photo):
    """relu6_leak "auto" (the default): LEAK_SMALL below the default patch area, none at it; recorded in meta."""
    from attack.train import LEAK_SMALL, default_patch_size, default_relu6_leak, resolve_relu6_leak
    big = default_patch_size(224)
    assert default_relu6_leak(42, 224) == LEAK_SMALL > 0 and default_relu6_leak(big, 224) == 0.0
    assert resolve_relu6_leak(None, 42, 224) == LEAK_SMALL and resolve_relu6_leak(0, 42, 224) == 0.0
    with pytest.raises(ValueError, match="relu6_leak"):
        resolve_relu6_leak(-0.1, 42, 224)
    kw = dict(steps=2, stop_at=1.0, seeds=[0], restarts=1)
    assert train_patches(model, photo[None], 859, [(0, 0)], size=24, **kw)[0].meta["relu6_leak"] == LEAK_SMALL
    assert train_patches(model, photo[None], 859, [(0, 0)], size=big, **kw)[0].meta["relu6_leak"] == 0.0


def test_margin_ce_switches_at_top1():
    from attack.losses import target_minus_source
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 5.0]], requires_grad=True)
    s = target_minus_source(logits, 0, 1, "margin_ce")  # row 0: target top-1 -> log p(t); row 1: margin -5
    assert float(s[0].detach()) == pytest.approx(float(torch.log_softmax(logits[0].detach(), 0)[0]))
    assert float(s[1].detach()) == pytest.approx(-5.0)
    s.sum().backward()
    assert logits.grad[1].tolist() == [1.0, 0.0, -1.0]


def test_auto_restarts_follow_the_patch_area(model, photo):
    from attack.train import DEFAULT_AREA, RESTARTS_SMALL, default_patch_size, default_restarts
    big = default_patch_size(224)
    assert default_restarts(big, 224) == 1 and default_restarts(224, 224) == 1
    assert default_restarts(42, 224) == RESTARTS_SMALL and default_restarts(42, 299) == RESTARTS_SMALL
    assert 42 * 42 / 224 ** 2 < DEFAULT_AREA
    res = train_patch(model, photo, 859, (0, 0), size=42, steps=40, stop_at=1.0, seed=0)
    assert res.meta["restarts"] == RESTARTS_SMALL and res.evaluations == 40
    with pytest.raises(ValueError, match="restarts"):
        train_patch(model, photo, 859, (0, 0), size=16, steps=4, restarts=0)


def test_auto_loss_follows_the_patch_area(model, photo):
    """loss="auto" (the default): the paper's logprob at the default area or larger, LOSS_SMALL below it; the result
    records the loss it trained with, and an explicit loss is kept."""
    from attack.train import DEFAULTS, LOSS_SMALL, default_loss, default_patch_size, resolve_loss
    big = default_patch_size(224)
    assert DEFAULTS["loss"] == "auto" and LOSS_SMALL != "logprob"
    assert default_loss(big, 224) == "logprob" and default_loss(42, 224) == LOSS_SMALL == resolve_loss(None, 42, 224)
    assert resolve_loss("logit", 42, 224) == "logit" and resolve_loss("auto", big, 224) == "logprob"
    small = train_patch(model, photo, 859, (0, 0), size=16, steps=4, restarts=1, stop_at=1.0, seed=0)
    same = train_patch(model, photo, 859, (0, 0), size=16, steps=4, restarts=1, stop_at=1.0, seed=0, loss=LOSS_SMALL)
    assert small.loss == LOSS_SMALL and small.p_target == pytest.approx(same.p_target, abs=1e-6)
    assert train_patch(model, photo, 859, (0, 0), size=16, steps=2, restarts=1, seed=0, loss="logit").loss == "logit"


def test_a_budget_too_small_for_the_restarts_trains_fewer(model, photo):
    res = train_patch(model, photo, 859, (0, 0), size=16, steps=5, restarts=8, stop_at=1.0, seed=0)
    assert res.meta["schedule"] == [(1, 5)] and res.meta["restarts"] == 1 and res.evaluations == 5
