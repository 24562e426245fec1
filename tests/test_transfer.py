"""Transfer with a border of the source image: box maths, border 0 = plain paste, full border = source image."""
from __future__ import annotations

import pytest
import torch

from attack.patch import apply_patch
from attack.transfer import border_box, border_paste, border_transfer


@pytest.mark.parametrize("loc,size,image_size,border,expected", [
    ((0, 0), 56, 224, 0.0, (0, 0, 56, 56)),
    ((0, 0), 56, 224, 0.25, (0, 0, 112, 112)),  # 56 px grown on every side, clipped at the top/left
    ((84, 84), 56, 224, 0.25, (28, 28, 196, 196)),
    ((84, 84), 56, 224, 1.0, (0, 0, 224, 224)),
    ((168, 168), 56, 224, 0.1, (146, 146, 224, 224)),  # round(22.4) = 22
    ((10, 100), 20, 200, 0.05, (0, 90, 40, 130)),
])
def test_border_box(loc, size, image_size, border, expected):
    assert border_box(loc, size, image_size, border) == expected


def test_border_box_validation():
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="border"):
            border_box((0, 0), 10, 100, bad)


@pytest.mark.parametrize("domain", ["image", "network"])
def test_border_zero_is_plain_paste(model, photos, domain):
    src, dst = photos[0], photos[1:3]
    g = torch.Generator().manual_seed(0)
    patch = torch.rand(3, 30, 30, generator=g) if domain == "image" else torch.randn(3, 30, 30, generator=g)
    loc = (40, 150)
    out = border_paste(src, dst, patch, loc, 0.0, domain, model)
    assert torch.equal(out, apply_patch(dst, patch, loc, domain, model))


@pytest.mark.parametrize("domain", ["image", "network"])
def test_full_border_is_the_patched_source(model, photos, domain):
    src, dst = photos[0], photos[1:3]
    patch = torch.rand(3, 30, 30, generator=torch.Generator().manual_seed(1))
    out = border_paste(src, dst, patch, (40, 150), 1.0, domain, model)
    expected = apply_patch(src, patch, (40, 150), domain, model)
    assert torch.equal(out, expected.unsqueeze(0).expand(2, -1, -1, -1))
    assert not torch.equal(out, apply_patch(dst, patch, (40, 150), domain, model))


def test_border_transfer_monotonic_sanity(model, photos, real_attack):
    """With the real patch: the copied area grows with the border, border 0 is the plain patch on each image, and a
    border covering the whole image reproduces the attacked source image's prediction on every destination."""
    res, src = real_attack.result, real_attack.image
    dst = photos[2:4]
    borders = (0.0, 0.1, 0.25, 1.0)
    out = border_transfer(model, src, dst, res.patch, real_attack.loc, res.target, borders=borders,
                          domain="network")
    assert out["borders"] == list(borders)
    assert out["area"] == sorted(out["area"]) and out["area"][0] == pytest.approx((res.size / 224) ** 2)
    assert out["area"][-1] == 1.0
    # full border: every destination becomes the attacked source image
    assert out["confident"][-1] == 1.0 and out["argmax"][-1] == 1.0
    assert out["mean_p_target"][-1] == pytest.approx(res.p_target, abs=1e-4)
    # border 0 equals pasting the plain patch on each destination
    with torch.no_grad():
        x = apply_patch(dst, res.patch, real_attack.loc, "network", model)
        p0 = torch.softmax(model.net(x), 1)[:, res.target].mean()
    assert out["mean_p_target"][0] == pytest.approx(float(p0), abs=1e-5)
    for key in ("confident", "argmax", "not_source", "mean_p_target"):
        assert all(0.0 <= v <= 1.0 for v in out[key])
    # per photo (the Transfer page's grid reads them instead of running its own forwards): consistent with the means
    for i in range(len(borders)):
        each, top1 = out["p_target_each"][i], out["top1"][i]
        assert len(each) == len(top1) == len(out["top1_p"][i]) == 2
        assert sum(each) / 2 == pytest.approx(out["mean_p_target"][i], abs=1e-4)
        assert sum(t == res.target for t in top1) / 2 == out["argmax"][i]
        assert all(p >= q - 1e-4 for p, q in zip(out["top1_p"][i], each))
