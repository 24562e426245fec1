"""Patch maths: x' = (1-m)*x + m*delta, bit-exact outside, differentiable, both domains, any size/loc/batch."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attack
from attack.patch import apply_patch, as_locs, check_loc, corner_loc, paste, patch_mask, patched_logits


class _Norm(torch.nn.Module):
    """Stand-in with the Classifier's normalisation (mean/std not 0/1, so pasting before vs after shows)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def normalize(self, x):
        return (x - self.mean) / self.std


def _outside(mask_hw: torch.Tensor) -> torch.Tensor:
    return ~mask_hw.bool()


def test_outside_bit_exact_inside_equals_patch():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=g)
    patch = torch.rand(3, 5, 5, generator=g)
    out = paste(images, patch, (3, 7))
    m = patch_mask(32, 5, (3, 7))[0].bool()
    assert torch.equal(out[:, :, ~m], images[:, :, ~m])  # bit-for-bit, not allclose
    assert torch.equal(out[:, :, 3:8, 7:12], patch.expand(2, -1, -1, -1))
    assert not torch.equal(out, images)


def test_paste_does_not_modify_input():
    images = torch.rand(1, 3, 16, 16)
    before = images.clone()
    paste(images, torch.zeros(3, 4, 4), (0, 0))
    assert torch.equal(images, before)


def test_mask_form_equivalence():
    """paste equals the paper's mask form (1-m)*x + m*delta built from patch_mask and a padded patch."""
    images = torch.rand(1, 3, 20, 20)
    patch = torch.rand(3, 6, 6)
    loc = (9, 2)
    m = patch_mask(20, 6, loc)
    delta = torch.zeros(3, 20, 20)
    delta[:, 9:15, 2:8] = patch
    expected = (1 - m) * images + m * delta
    assert torch.equal(paste(images, patch, loc), expected)


def test_differentiable_wrt_patch():
    images = torch.rand(2, 3, 16, 16)
    patch = torch.rand(3, 4, 4, requires_grad=True)
    weights = torch.rand(2, 3, 16, 16)
    (paste(images, patch, (2, 3)) * weights).sum().backward()
    # d/dpatch of sum(w * x') is the sum over the batch of w inside the patch window
    assert torch.allclose(patch.grad, weights[:, :, 2:6, 3:7].sum(0))


def test_image_domain_clamps_patch_to_unit_range():
    images = torch.rand(1, 3, 16, 16)
    patch = torch.linspace(-2, 3, 3 * 4 * 4).view(3, 4, 4)
    out = apply_patch(images, patch, (5, 5), domain="image")
    assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[0, :, 5:9, 5:9], patch.clamp(0, 1))


def test_network_domain_pasted_after_normalisation():
    model = _Norm()
    images = torch.rand(2, 3, 16, 16)
    patch = torch.full((3, 4, 4), 7.5)  # far outside what any [0,1] pixel normalises to
    out = apply_patch(images, patch, (0, 0), domain="network", model=model)
    normed = model.normalize(images)
    assert torch.equal(out[:, :, :4, :4], patch.expand(2, -1, -1, -1))  # not clamped, not normalised
    m = patch_mask(16, 4, (0, 0))[0].bool()
    assert torch.equal(out[:, :, ~m], normed[:, :, ~m])
    with pytest.raises(ValueError, match="needs the model"):
        apply_patch(images, patch, (0, 0), domain="network")


def test_network_domain_single_image():
    model = _Norm()
    img = torch.rand(3, 16, 16)
    out = apply_patch(img, torch.zeros(3, 4, 4), (12, 12), domain="network", model=model)
    assert out.shape == (3, 16, 16)
    assert torch.equal(out[:, :12], model.normalize(img.unsqueeze(0))[0][:, :12])


def test_unknown_domain():
    with pytest.raises(ValueError, match="unknown domain"):
        apply_patch(torch.rand(1, 3, 8, 8), torch.rand(3, 2, 2), (0, 0), domain="pixels")
    with pytest.raises(ValueError, match="unknown domain"):
        attack.to_domain(torch.zeros(3, 2, 2), "pixels")


def test_batch_of_patches_at_batch_of_locations():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 24, 24, generator=g)
    patches = torch.rand(3, 3, 5, 5, generator=g)
    locs = torch.tensor([[0, 0], [19, 19], [7, 11]])
    out = paste(images, patches, locs)
    for i, (t, l) in enumerate(locs.tolist()):
        assert torch.equal(out[i], paste(images[i], patches[i], (t, l)))
        assert torch.equal(out[i, :, t:t + 5, l:l + 5], patches[i])


def test_corners():
    assert corner_loc("top-left", 224, 56) == (0, 0)
    assert corner_loc("top-right", 224, 56) == (0, 168)
    assert corner_loc("bottom-left", 224, 56) == (168, 0)
    assert corner_loc("bottom-right", 224, 56) == (168, 168)
    assert corner_loc("bottom-right", 224, 56, margin=4) == (164, 164)
    images = torch.zeros(1, 3, 224, 224)
    for name in attack.CORNERS:
        out = paste(images, torch.ones(3, 56, 56), corner_loc(name, 224, 56))
        assert out.sum() == 3 * 56 * 56  # the whole patch is inside the image
    with pytest.raises(ValueError, match="unknown corner"):
        corner_loc("centre", 224, 56)


@pytest.mark.parametrize("loc,size,msg", [
    ((-1, 0), 8, "does not fit"), ((0, -1), 8, "does not fit"), ((25, 0), 8, "does not fit"),
    ((0, 25), 8, "does not fit"), ((0, 0), 0, "between 1"), ((0, 0), 33, "between 1"), ((0, 0), -3, "between 1"),
])
def test_check_loc_errors(loc, size, msg):
    with pytest.raises(ValueError, match=msg):
        check_loc(loc, size, 32)
    with pytest.raises(ValueError, match=msg):
        patch_mask(32, size, loc)
    if size >= 1:
        with pytest.raises(ValueError, match=msg):
            paste(torch.rand(1, 3, 32, 32), torch.rand(3, size, size), loc)


def test_check_loc_edges_ok():
    assert check_loc((24, 24), 8, 32) == (24, 24)
    assert check_loc((0, 0), 32, 32) == (0, 0)
    assert check_loc((2, 10), 4, (8, 16)) == (2, 10)


def test_shape_errors():
    with pytest.raises(ValueError, match="square"):
        paste(torch.rand(1, 3, 16, 16), torch.rand(3, 4, 5), (0, 0))
    with pytest.raises(ValueError, match="do not match"):
        paste(torch.rand(2, 3, 16, 16), torch.rand(3, 3, 4, 4), (0, 0))
    with pytest.raises(ValueError, match="locations"):
        as_locs([[0, 0], [1, 1], [2, 2]], 2)


def test_random_locs_fit_and_are_seeded():
    a = attack.random_locs(200, 224, 56, torch.Generator().manual_seed(3))
    b = attack.random_locs(200, 224, 56, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 168 and a.shape == (200, 2)
    with pytest.raises(ValueError):
        attack.random_locs(1, 32, 40)


def test_domain_round_trip_and_area():
    d = torch.rand(3, 8, 8) * 0.98 + 0.01
    assert torch.allclose(attack.to_domain(attack.from_domain(d, "image"), "image"), d, atol=1e-5)
    w = torch.randn(3, 8, 8)
    assert torch.equal(attack.to_domain(w, "network"), w)
    assert attack.to_domain(w * 100, "image").min() >= 0 and attack.to_domain(w * 100, "image").max() <= 1
    assert attack.to_domain(w * 100, "image", param="clamp").max() <= 1
    assert attack.area_fraction(42, 299) == pytest.approx(0.0197, abs=1e-4)
    assert attack.size_for_area(0.0625, 224) == 56
    with pytest.raises(ValueError):
        attack.size_for_area(0, 224)


def test_patched_logits_both_domains_agree_with_model(model, photo):
    """The image-domain path is model(paste(x, clamp(p))); the network-domain path pastes normalize(p) after
    normalisation — for a patch that is a valid image the two give the same logits."""
    p_img = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0))
    p_net = model.normalize(p_img.unsqueeze(0))[0]
    with torch.no_grad():
        a = patched_logits(model, photo.unsqueeze(0), p_img, (10, 30), "image")
        b = patched_logits(model, photo.unsqueeze(0), p_net, (10, 30), "network")
    assert torch.allclose(a, b, atol=1e-3)


# ------------------------------------------------------------------ property tests
@st.composite
def _configs(draw):
    h = draw(st.integers(4, 40))
    w = draw(st.integers(4, 40))
    size = draw(st.integers(1, min(h, w)))
    n = draw(st.integers(1, 4))
    locs = [(draw(st.integers(0, h - size)), draw(st.integers(0, w - size))) for _ in range(n)]
    shared = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return h, w, size, n, locs, shared, seed


@settings(max_examples=60, deadline=None)
@given(_configs())
def test_property_paste(cfg):
    h, w, size, n, locs, shared, seed = cfg
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, h, w, generator=g)
    patches = torch.randn(3, size, size, generator=g) if shared else torch.randn(n, 3, size, size, generator=g)
    out = paste(images, patches, locs)
    masks = patch_mask((h, w), size, torch.tensor(locs)).bool()  # (n,1,h,w)
    assert out.shape == images.shape
    for i, (t, l) in enumerate(locs):
        p = patches if shared else patches[i]
        assert torch.equal(out[i, :, t:t + size, l:l + size], p)
        outside = ~masks[i, 0]
        assert torch.equal(out[i][:, outside], images[i][:, outside])
        assert int(masks[i].sum()) == size * size


@settings(max_examples=40, deadline=None)
@given(_configs())
def test_property_gradient_only_inside(cfg):
    h, w, size, n, locs, _, seed = cfg
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, h, w, generator=g, requires_grad=True)
    patches = torch.rand(n, 3, size, size, generator=g, requires_grad=True)
    apply_patch(images, patches, locs, domain="image").sum().backward()
    masks = patch_mask((h, w), size, torch.tensor(locs)).expand(n, 3, h, w)
    assert torch.equal(images.grad, 1 - masks)  # the image only matters outside the patch
    assert torch.equal(patches.grad, torch.ones_like(patches))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 64), st.integers(1, 64), st.integers(-5, 70), st.integers(-5, 70))
def test_property_check_loc(image_size, size, top, left):
    ok = 1 <= size <= image_size and 0 <= top <= image_size - size and 0 <= left <= image_size - size
    if ok:
        assert check_loc((top, left), size, image_size) == (top, left)
    else:
        with pytest.raises(ValueError):
            check_loc((top, left), size, image_size)
