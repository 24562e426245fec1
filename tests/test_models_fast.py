"""The accelerated model equals the package's network as shipped: BatchNorm folded into the convolutions
(``load_model(fold=True)``, the default) gives the same ImageNet predictions and patch gradients, keeps what other
code hooks into (the ReLU6 modules, Grad-CAM's head convolution), and falls back to the unfolded network when
folding fails."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import attack
import attack.models as models
from attack.patch import patched_logits


@pytest.fixture(scope="module")
def unfolded():
    return attack.load_model("efficientnet-lite0", device="cpu", channels_last=True, fold=False)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max().detach() / b.abs().max().detach())


def test_default_model_is_folded_and_unfolded_is_as_shipped(model, unfolded):
    assert isinstance(model.net._conv_stem, models.FoldedConv)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.net._blocks.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in unfolded.net.modules()) == 49
    assert model.cam_layer is model.net._conv_head


@pytest.mark.parametrize("channels_last", [True, False])
def test_folded_predictions_equal_unfolded_within_1e_4(model, unfolded, photos, channels_last):
    a = model if channels_last else attack.load_model("efficientnet-lite0", device="cpu")
    b = unfolded if channels_last else attack.load_model("efficientnet-lite0", device="cpu", fold=False)
    with torch.no_grad():
        la, lb = a(photos), b(photos)
    assert _rel(la, lb) < 1e-4
    assert _rel(attack.predict(a, photos), attack.predict(b, photos)) < 1e-4
    assert torch.equal(la.argmax(1), lb.argmax(1))


@pytest.mark.parametrize("domain", ["network", "image"])
def test_folded_patch_gradient_equals_unfolded(model, unfolded, photos, domain):
    x = photos[:3]
    locs = [(0, 0), (100, 37), (161, 161)]  # corner, inside, the far corner (asymmetric TF padding at the edge)

    def grad(m):
        w = torch.rand(3, 3, 63, 63, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
        logits = patched_logits(m, x, w, locs, domain)
        return logits, torch.autograd.grad(logits[:, 859].sum() - logits[:, 0].sum(), w)[0]

    (la, ga), (lb, gb) = grad(model), grad(unfolded)
    assert _rel(la, lb) < 1e-4
    # A gradient is piecewise constant in the ReLU6 masks, and a unit within rounding of 0 or 6 may flip: the
    # unfolded network itself, run at 2 threads instead of 1, moved one row's gradient by 2e-3 (norm) here.
    for i in range(3):
        assert float((ga[i] - gb[i]).norm() / gb[i].norm()) < 1e-2


@pytest.mark.parametrize("k,stride,groups,size", [(3, 2, 8, 28), (5, 2, 8, 28), (3, 1, 8, 15), (3, 2, 1, 29),
                                                  (1, 1, 1, 14)])
def test_folded_conv_equals_conv_then_batchnorm_values_and_input_gradient(k, stride, groups, size):
    from efficientnet_lite_pytorch.utils import Conv2dStaticSamePadding

    torch.manual_seed(0)
    conv = Conv2dStaticSamePadding(8, 8, k, stride=stride, groups=groups, bias=False, image_size=size).eval()
    bn = nn.BatchNorm2d(8).eval()
    bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.data.uniform_(0.5, 2)
    bn.bias.data.uniform_(-1, 1)
    folded = models.FoldedConv(conv, bn).requires_grad_(False)
    conv.requires_grad_(False), bn.requires_grad_(False)
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(2, 8, size, size).contiguous(memory_format=fmt).requires_grad_(True)
        ref = bn(conv(x))
        out = folded(x)
        assert out.shape == ref.shape and _rel(out, ref) < 1e-5
        g = torch.randn_like(ref)
        (gr,) = torch.autograd.grad(ref, x, g)
        (gf,) = torch.autograd.grad(out, x, g)
        assert _rel(gf, gr) < 1e-5


def test_the_relu6_leak_still_hooks_the_folded_network(model, photo):
    from attack.optim import relu6_backward

    x = (photo[None] * 40 - 20).requires_grad_(True)
    (g_plain,) = torch.autograd.grad(model.net(x)[0, 859], x)
    with relu6_backward(model, 0.05, 0.05):
        (g_leak,) = torch.autograd.grad(model.net(x)[0, 859], x)
    assert not torch.allclose(g_plain, g_leak)


def test_cam_layer_output_is_the_unnormalised_head_convolution(model, unfolded, photos):
    seen = {}
    hooks = [m.cam_layer.register_forward_hook(lambda mod, i, o, key=key: seen.__setitem__(key, o))
             for key, m in (("folded", model), ("unfolded", unfolded))]
    with torch.no_grad():
        model(photos[:2]), unfolded(photos[:2])
    for h in hooks:
        h.remove()
    assert _rel(seen["folded"], seen["unfolded"]) < 1e-4


def test_folding_failure_falls_back_to_the_unfolded_network(monkeypatch):
    def broken(net):
        raise RuntimeError("no")

    monkeypatch.setattr(models, "fold_batchnorm", broken)
    with pytest.warns(RuntimeWarning, match="BatchNorm folding failed"):
        m = attack.load_model("efficientnet-lite0", device="cpu")
    assert sum(isinstance(x, nn.BatchNorm2d) for x in m.net.modules()) == 49


@pytest.mark.parametrize("domain", ["network", "image"])
def test_local_forward_equals_the_full_network_values_and_patch_gradient(model, photos, domain):
    """Incremental inference (early layers only where the patch reaches): same logits and patch gradient as the
    full network, for a corner, the far corner, an inner box and rows with different boxes (their union)."""
    from attack.patch import apply_patch

    x = photos[:4]
    lf = models.LocalForward(model, photos[:6])
    rows = torch.tensor([0, 1, 2, 3])
    for locs in ([(0, 0)] * 4, [(161, 161)] * 4, [(100, 37)] * 4, [(0, 0), (10, 20), (5, 5), (30, 2)]):
        w = torch.rand(4, 3, 63, 63, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
        inp = apply_patch(x, w, locs, domain, model)
        box = (min(t for t, _ in locs), max(t for t, _ in locs) + 63, min(l for _, l in locs), max(l for _, l in locs) + 63)
        ref = model(inp) if domain == "image" else model.net(inp)
        out = lf(inp, rows, box, domain)
        assert _rel(out, ref) < 1e-4
        (g_ref,) = torch.autograd.grad(ref[:, 859].sum(), w, retain_graph=True)
        (g_out,) = torch.autograd.grad(out[:, 859].sum(), w)
        assert float((g_out - g_ref).norm() / g_ref.norm()) < 1e-3


def test_local_forward_rows_pick_their_clean_image_and_a_whole_image_box_runs_everything(model, photos):
    lf = models.LocalForward(model, photos[:3])
    x = model.normalize(photos[[2, 0]])
    with torch.no_grad():
        ref = model.net(x)
        assert _rel(lf(x, torch.tensor([2, 0]), (0, 10, 0, 10)), ref) < 1e-4
        assert _rel(lf(x, torch.tensor([2, 0]), (0, 224, 0, 224)), ref) < 1e-4


def test_local_forward_needs_a_folded_network():
    with pytest.raises(ValueError, match="folded"):
        models.LocalForward(attack.load_model("efficientnet-lite0", device="cpu", fold=False), torch.rand(1, 3, 224, 224))


def test_class_names_read_without_importing_torchvision():
    """attack.class_names parses torchvision's list from its source file (a cold torchvision import costs
    seconds); the result equals the imported list."""
    import subprocess
    import sys
    code = ("import sys; from attack.models import class_names; n = class_names(); "
            "print(len(n), 'torchvision' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1000", "False"]
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    from attack.models import class_names
    assert class_names() == tuple(_IMAGENET_CATEGORIES)
