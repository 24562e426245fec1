"""Attribution maps (Captum) and the paper's number: share of attribution mass inside the patch vs its area."""
from __future__ import annotations

import math

import pytest
import torch

from attack.patch import apply_patch, patch_mask
from attack.saliency import ATTRIBUTION_METHODS, attribution_map, mass_in_patch


@pytest.fixture(scope="module")
def patched(model, real_attack):
    """The attacked photo (network-domain input) and a clean photo run through the same normalisation."""
    res = real_attack.result
    return apply_patch(real_attack.image, res.patch, real_attack.loc, "network", model)


@pytest.mark.parametrize("method", ATTRIBUTION_METHODS)
def test_every_method_returns_finite_non_negative_maps(model, photos, method):
    kw = {"ig_steps": 4} if method == "integrated_gradients" else {}
    if method == "occlusion":
        kw["occlusion_window"] = 112  # 3x3 windows keep this cheap
    heat = attribution_map(model, photos[:2], target=[859, 56], method=method, domain="image", **kw)
    assert heat.shape == (2, 224, 224)
    assert torch.isfinite(heat).all() and (heat >= 0).all()
    assert heat.flatten(1).sum(1).gt(0).all()  # not trivially zero


@pytest.mark.parametrize("method", ["saliency", "grad_cam"])
def test_network_domain_input(model, real_attack, patched, method):
    heat = attribution_map(model, patched, target=real_attack.target, method=method, domain="network")
    assert heat.shape == (1, 224, 224) and torch.isfinite(heat).all() and (heat >= 0).all()
    share = mass_in_patch(heat, patch_mask(224, real_attack.result.size, real_attack.loc))
    assert share.shape == (1,) and 0.0 <= float(share) <= 1.0


def test_unknown_method(model, photo):
    with pytest.raises(ValueError, match="unknown method"):
        attribution_map(model, photo, 859, method="lime")


def test_mass_in_patch_concentrated_map_is_one():
    mask = patch_mask(32, 8, (4, 20))
    heat = torch.zeros(2, 32, 32)
    heat[0, 4:12, 20:28] = torch.rand(8, 8) + 0.1
    heat[1, 6, 22] = 5.0
    assert torch.allclose(mass_in_patch(heat, mask), torch.ones(2))


def test_mass_in_patch_uniform_map_is_area_share():
    mask = patch_mask(32, 8, (0, 0))
    share = mass_in_patch(torch.ones(3, 32, 32), mask)
    assert torch.allclose(share, torch.full((3,), 64 / 1024))
    assert float(share[0]) == pytest.approx(float(mask.mean()))


def test_mass_in_patch_bounds_and_mask_forms():
    g = torch.Generator().manual_seed(0)
    heat = torch.rand(4, 24, 24, generator=g)
    locs = torch.tensor([[0, 0], [3, 5], [10, 10], [16, 16]])
    masks = patch_mask(24, 8, locs)  # (4,1,24,24): one mask per map
    share = mass_in_patch(heat, masks)
    assert share.shape == (4,) and ((share >= 0) & (share <= 1)).all()
    for i in range(4):
        assert float(share[i]) == pytest.approx(float(mass_in_patch(heat[i], masks[i, 0])[0]))
    outside = heat.clone()
    outside[:, :8, :8] = 0
    assert float(mass_in_patch(outside[:1], patch_mask(24, 8, (0, 0)))[0]) == 0.0


def test_mass_in_patch_zero_map_is_nan():
    assert math.isnan(float(mass_in_patch(torch.zeros(1, 8, 8), patch_mask(8, 2, (0, 0)))[0]))
