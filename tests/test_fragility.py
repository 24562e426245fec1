"""Fragility maps: shape (2r+1)^2, centre = the trained location, shifts that leave the image are NaN."""
from __future__ import annotations

import math

import pytest
import torch

from attack.fragility import shift_map
from attack.patch import patched_logits


def test_map_shape_centre_and_out_of_image(model, real_attack):
    res, img, loc = real_attack.result, real_attack.image, real_attack.loc
    assert loc == (0, 0)  # top-left corner: negative shifts leave the image
    r = 2
    maps = shift_map(model, img, res.patch, loc, res.target, radius=r, domain="network")
    for key in ("p_target", "p_source", "argmax"):
        assert maps[key].shape == (2 * r + 1, 2 * r + 1)
    pt, am = maps["p_target"], maps["argmax"]
    # rows dy = -2, -1 and columns dx = -2, -1 would put the patch outside the image
    assert torch.isnan(pt[:r]).all() and torch.isnan(pt[:, :r]).all()
    assert (am[:r] == -1).all() and (am[:, :r] == -1).all()
    assert torch.isfinite(pt[r:, r:]).all() and (am[r:, r:] >= 0).all()
    # the centre is exactly the trained configuration
    with torch.no_grad():
        p = torch.softmax(patched_logits(model, img.unsqueeze(0), res.patch, [loc], "network"), 1)[0]
    assert float(pt[r, r]) == pytest.approx(float(p[res.target]), abs=1e-5)
    assert float(pt[r, r]) == pytest.approx(res.p_target, abs=1e-4)
    assert int(am[r, r]) == res.target
    assert maps["source"] == res.source
    # an arbitrary off-centre cell equals direct evaluation at its shifted location
    with torch.no_grad():
        q = torch.softmax(patched_logits(model, img.unsqueeze(0), res.patch, [(1, 2)], "network"), 1)[0]
    assert float(pt[r + 1, r + 2]) == pytest.approx(float(q[res.target]), abs=1e-5)
    assert float(maps["p_source"][r + 1, r + 2]) == pytest.approx(float(q[res.source]), abs=1e-5)


def test_map_in_the_middle_all_finite(model, photo):
    patch = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))
    maps = shift_map(model, photo, patch, (100, 100), 859, radius=1, domain="image")
    assert maps["p_target"].shape == (3, 3) and torch.isfinite(maps["p_target"]).all()
    assert ((maps["p_target"] >= 0) & (maps["p_target"] <= 1)).all()


def test_bottom_right_edge(model, photo):
    patch = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))
    maps = shift_map(model, photo, patch, (204, 204), 859, radius=1, domain="image", batch_size=2)
    pt = maps["p_target"]
    assert torch.isnan(pt[2]).all() and torch.isnan(pt[:, 2]).all()  # +1 shifts leave a 224 image
    assert torch.isfinite(pt[:2, :2]).all()
    assert not any(math.isnan(v) for v in pt[:2, :2].flatten().tolist())


def test_radius_zero_and_validation(model, photo):
    patch = torch.rand(3, 8, 8)
    maps = shift_map(model, photo, patch, (5, 5), 859, radius=0, domain="image")
    assert maps["p_target"].shape == (1, 1)
    with pytest.raises(ValueError, match="radius"):
        shift_map(model, photo, patch, (5, 5), 859, radius=-1, domain="image")
