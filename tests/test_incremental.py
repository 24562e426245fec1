"""Incremental inference (attack.fast.LocalForward) equals the full forward for every local change that uses it:
PatchCleanser masks (both rounds), the occlusion heuristic, fragility shifts, transfer with a border, occlusion
saliency and the vulnerability map's cells (one box per row, forward and patch gradient). Each use is run twice on
the folded EfficientNet-Lite0, once as shipped (incremental) and once with the engine turned off (the full forward),
and must agree: labels exactly, probabilities within 1e-5, logits within 1e-4 of their largest magnitude, patch
gradients within 1e-3 (relative norm). A small network wrapped with ``attack.wrap`` has no engine and runs every
use through its plain full forward."""
from __future__ import annotations

from contextlib import ExitStack
from unittest import mock

import pytest
import torch
from torch import nn

import attack
import attack.defend as defend
import attack.fragility as fragility
import attack.saliency as saliency
import attack.transfer as transfer
from attack.fast import CLEAN_CACHE, LocalForward, local_engine, patch_boxes
from attack.patch import apply_patch, patched_logits

PROB_ATOL, LOGIT_RTOL, GRAD_RTOL = 1e-5, 1e-4, 1e-3


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


def _full_forward():
    """Every use's engine turned off: the plain full forward, as on a model without one."""
    stack = ExitStack()
    for mod in (defend, fragility, transfer, saliency):
        stack.enter_context(mock.patch.object(mod, "local_engine", lambda *a, **k: None))
    return stack


# --------------------------------------------------------------------------------------------------- the engine
@pytest.mark.parametrize("domain", ["network", "image"])
def test_one_box_per_row_equals_the_full_network_values_and_patch_gradient(model, photos, domain):
    """Rows with different corners and sizes in one batch (grouped by box size), repeated images among the rows."""
    x = photos[[0, 1, 2, 3, 0, 1]]
    lf = LocalForward(model, photos[:4])
    rows = torch.tensor([0, 1, 2, 3, 0, 1])
    for size, locs in ((63, [(0, 0), (161, 161), (100, 37), (0, 161), (161, 0), (5, 90)]),
                       (20, [(0, 0), (204, 204), (50, 3), (3, 50), (111, 111), (0, 100)])):
        w = torch.rand(6, 3, size, size, generator=torch.Generator().manual_seed(size)).requires_grad_(True)
        inp = apply_patch(x, w, locs, domain, model)
        ref = model(inp) if domain == "image" else model.net(inp)
        out = lf(inp, rows, patch_boxes(locs, size), domain)
        assert _rel(out, ref) < LOGIT_RTOL
        (g_ref,) = torch.autograd.grad(ref[:, 859].sum(), w, retain_graph=True)
        (g_out,) = torch.autograd.grad(out[:, 859].sum(), w)
        assert float((g_out - g_ref).norm() / g_ref.norm()) < GRAD_RTOL


def test_mixed_box_sizes_found_boxes_and_empty_boxes(model, photos):
    lf = LocalForward(model, photos[:2])
    x = model.normalize(photos[[0, 1, 0, 1, 0]]).clone()
    x[0, :, 10:30, 40:90] = 0.0
    x[1, :, 150:224, 0:17] = 1.0
    x[2, :, 100:101, 100:101] = -1.0
    x[3, :, 0:224, 0:224] = 0.3  # the whole image: the full forward
    # row 4 unchanged: its clean logits
    with torch.no_grad():
        ref = model.net(x)
        found = lf.boxes(x, torch.tensor([0, 1, 0, 1, 0]))
        assert found.tolist() == [[10, 30, 40, 90], [150, 224, 0, 17], [100, 101, 100, 101], [0, 224, 0, 224],
                                  [0, 0, 0, 0]]
        assert _rel(lf(x, torch.tensor([0, 1, 0, 1, 0]), None), ref) < LOGIT_RTOL
        assert _rel(lf(x, torch.tensor([0, 1, 0, 1, 0]), found), ref) < LOGIT_RTOL
    with pytest.raises(ValueError, match="boxes"):
        lf(x.requires_grad_(True), torch.tensor([0, 1, 0, 1, 0]), None)


def test_equal_images_share_activations_and_a_repeated_image_costs_no_forward(model, photos):
    CLEAN_CACHE.clear()
    lf = LocalForward(model, photos[[2, 2, 2, 5]])
    assert lf.slot.tolist() == [0, 0, 0, 1] and lf.h[0].shape[0] == 2 * 112 * 112
    with torch.no_grad():
        assert _rel(lf.clean_logits, model(photos[[2, 2, 2, 5]])) < LOGIT_RTOL
    with mock.patch.object(LocalForward, "_clean", side_effect=AssertionError("recomputed")):
        again = LocalForward(model, photos[[5, 2]])
    assert torch.equal(again.clean_logits, lf.clean_logits[[3, 0]])
    assert CLEAN_CACHE.nbytes > 0
    with torch.no_grad():
        assert _rel(LocalForward(model, photos[[5]], cache=False).clean_logits, lf.clean_logits[[3]]) < LOGIT_RTOL


def test_the_activation_cache_evicts_the_least_recently_used_block():
    from attack.fast import _CleanCache

    c = _CleanCache(max_bytes=3 * 400)
    for name in "abc":
        c.put([(0, name)], [torch.zeros(100)])  # 400 bytes a block
    assert c.find([(0, "a")])[0] is not None  # a is now the most recently used
    c.put([(0, "d"), (0, "e")], [torch.zeros(100)])
    assert [x is not None for x in c.find([(0, k) for k in "abcde"])] == [True, False, True, True, True]
    c.put([(0, "big")], [torch.zeros(1000)])  # larger than the cache: not kept
    assert c.find([(0, "big")]) == [None] and c.nbytes == 3 * 400


def test_vulnerability_map_cells_per_row_boxes(model, photo):
    """The vulnerability map trains one patch per grid cell, all cells rows of one batch of the same image: with
    one box per row the step's forward and patch gradient equal the full network's (the union of the cells' boxes
    would be the whole image)."""
    size = 63
    locs = defend.grid_locs(224, size, 81).view(-1, 2)
    n = locs.shape[0]
    lf = LocalForward(model, photo.unsqueeze(0).expand(n, -1, -1, -1))
    assert lf.slot.unique().numel() == 1  # one image's activations, not one per cell
    w = torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    inp = apply_patch(photo.unsqueeze(0).expand(n, -1, -1, -1), w, locs, "network", model)
    ref, out = model.net(inp), lf(inp, torch.arange(n), patch_boxes(locs, size))
    assert _rel(out, ref) < LOGIT_RTOL
    (g_ref,) = torch.autograd.grad((ref[:, 859] - ref[:, 0]).sum(), w, retain_graph=True)
    (g_out,) = torch.autograd.grad((out[:, 859] - out[:, 0]).sum(), w)
    assert float((g_out - g_ref).norm() / g_ref.norm()) < GRAD_RTOL


# ------------------------------------------------------------------------------------------------ each use
def test_patchcleanser_both_rounds_equal_the_full_forward(model, photos, photo):
    x = torch.stack([photo, apply_patch(photos[2], torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(3)),
                                        (60, 120))])
    fast = defend.double_masking(model, x, 32, k=3)
    with _full_forward():
        full = defend.double_masking(model, x, 32, k=3)
    assert (fast.second >= 0).sum() > 2 * 9  # the second round ran (certification pairs)
    for field in ("label", "undefended", "certified", "case", "first", "second", "forwards"):
        assert torch.equal(getattr(fast, field), getattr(full, field)), field


def test_patchcleanser_recovery_round_on_the_real_patch_equals_the_full_forward(model, real_attack):
    res = real_attack.result
    x = apply_patch(real_attack.image, res.patch, real_attack.loc, "network", model).unsqueeze(0)
    fast = defend.double_masking(model, x, res.patch.shape[-1], k=3, domain="network", certify=False)
    with _full_forward():
        full = defend.double_masking(model, x, res.patch.shape[-1], k=3, domain="network", certify=False)
    assert not bool((fast.first[0] == fast.first[0, 0]).all())  # not unanimous: the recovery pairs ran
    for field in ("label", "case", "first", "second", "forwards"):
        assert torch.equal(getattr(fast, field), getattr(full, field)), field


def test_occlusion_heuristic_equals_the_full_forward(model, photos):
    fast = defend.occlusion_defence(model, photos[:2], 56, stride=42)
    with _full_forward():
        full = defend.occlusion_defence(model, photos[:2], 56, stride=42)
    for field in ("label", "undefended", "loc", "forwards"):
        assert torch.equal(getattr(fast, field), getattr(full, field)), field
    assert torch.allclose(fast.drop, full.drop, atol=PROB_ATOL, rtol=0)


@pytest.mark.parametrize("domain,loc", [("network", (0, 0)), ("image", (100, 150))])
def test_fragility_shifts_equal_the_full_forward(model, photo, domain, loc):
    g = torch.Generator().manual_seed(0)
    patch = torch.randn(3, 42, 42, generator=g) if domain == "network" else torch.rand(3, 42, 42, generator=g)
    fast = fragility.shift_map(model, photo, patch, loc, 859, radius=1, domain=domain)
    with _full_forward():
        full = fragility.shift_map(model, photo, patch, loc, 859, radius=1, domain=domain)
    assert fast["source"] == full["source"] and torch.equal(fast["argmax"], full["argmax"])
    for key in ("p_target", "p_source"):
        assert torch.allclose(fast[key], full[key], atol=PROB_ATOL, rtol=0, equal_nan=True)


def test_transfer_with_a_border_equals_the_full_forward(model, photos):
    patch = torch.randn(3, 42, 42, generator=torch.Generator().manual_seed(1))
    args = (model, photos[0], photos[1:3], patch, (20, 150), 859)
    fast = transfer.border_transfer(*args, borders=(0.0, 0.1, 0.3))
    with _full_forward():
        full = transfer.border_transfer(*args, borders=(0.0, 0.1, 0.3))
    assert fast.keys() == full.keys()
    assert fast["top1"] == full["top1"]  # per photo and border: the same top-1 class
    for key in fast.keys() - {"top1"}:
        rows = fast[key] if fast[key] and isinstance(fast[key][0], list) else [fast[key]]
        ref = full[key] if rows is fast[key] else [full[key]]
        for a, b in zip(rows, ref, strict=True):
            assert a == pytest.approx(b, abs=PROB_ATOL), key


def test_occlusion_saliency_equals_captum_on_the_full_forward(model, photos):
    """Captum's Occlusion itself, its forwards routed through the engine; the reference is Captum on the plain
    forward. Attributions are sums of logit differences, so the tolerance is the logits'."""
    fast = saliency.attribution_map(model, photos[:2], [859, 56], method="occlusion", occlusion_window=56)
    with _full_forward():
        full = saliency.attribution_map(model, photos[:2], [859, 56], method="occlusion", occlusion_window=56)
    assert fast.shape == (2, 224, 224)
    assert _rel(fast, full) < LOGIT_RTOL


# --------------------------------------------------------------------------------------- any other classifier
@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4, padding=2), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, padding=1),
                        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1000))
    return attack.wrap(net, input_size=224, name="small")


def test_a_wrapped_network_takes_the_full_forward_path(small, photos):
    assert local_engine(small, photos[:2]) is None
    with pytest.raises(ValueError, match="folded"):
        LocalForward(small, photos[:2])
    x = photos[:2]
    with mock.patch.object(LocalForward, "__call__", side_effect=AssertionError("engine used")):
        r = defend.double_masking(small, x, 32, k=2)
        o = defend.occlusion_defence(small, x, 112)
        patch = torch.rand(3, 42, 42, generator=torch.Generator().manual_seed(0))
        s = fragility.shift_map(small, x[0], patch, (50, 50), 859, radius=1, domain="image")
        t = transfer.border_transfer(small, x[0], x[1:], patch, (50, 50), 859, borders=(0.0,), domain="image")
        heat = saliency.attribution_map(small, x[:1], 859, method="occlusion", occlusion_window=112)
    M = r.masks.masks()
    with torch.no_grad():
        assert r.first[0].tolist() == small(torch.where(M, torch.tensor(0.5), x[0])).argmax(1).tolist()
        assert o.undefended.tolist() == small(x).argmax(1).tolist()
        p = torch.softmax(patched_logits(small, x[:1], patch, (50, 50), "image"), 1)[0]
        assert float(s["p_target"][1, 1]) == pytest.approx(float(p[859]), abs=PROB_ATOL)
        q = torch.softmax(patched_logits(small, x[1:], patch, (50, 50), "image"), 1)[:, 859].mean()
        assert t["mean_p_target"][0] == pytest.approx(float(q), abs=PROB_ATOL)
    from captum.attr import Occlusion

    ref = Occlusion(small).attribute(x[:1], target=859, sliding_window_shapes=(3, 112, 112), strides=(3, 56, 56),
                                     baselines=0.5, perturbations_per_eval=16).sum(1).clamp(min=0)
    assert torch.allclose(heat, ref, atol=1e-6)


def test_the_trainer_at_mixed_corners_uses_one_box_per_row_and_trains_as_the_full_forward(model, photos):
    """A chunk with patches in different corners (reproduce, the vulnerability map): the trainer passes one box per
    row (their union would be the whole image) and trains what the full forward trains (float tolerance: p within
    1e-3 after 6 steps of Adam; the local path rounds differently)."""
    imgs, locs = photos[:3], [(0, 0), (0, 224 - 40), (224 - 40, 0)]
    seen = []
    real = LocalForward.__call__

    def spy(self, x, rows, box=None, domain="network"):
        seen.append(box)
        return real(self, x, rows, box, domain)
    spec = attack.TrainingSpec(size=40, steps=6, restarts=1, seed=0)
    with mock.patch.object(LocalForward, "__call__", spy):
        fast = attack.train_patches(model, imgs, 859, locs, spec.replace(local=True), seeds=[0, 1, 2])
    full = attack.train_patches(model, imgs, 859, locs, spec.replace(local=False), seeds=[0, 1, 2])
    assert any(isinstance(b, torch.Tensor) and b.shape == (3, 4) for b in seen)
    for a, b in zip(fast, full):
        assert abs(a.p_target - b.p_target) < 1e-3 and a.evaluations == b.evaluations
