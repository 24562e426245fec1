"""Fast paths for a frozen, folded EfficientNet-Lite: BatchNorm folded into the convolutions (:func:`fold_batchnorm`)
and incremental inference when only a pasted patch changed (:class:`LocalForward`). Same values as the unfolded
network on the full input up to float rounding (tests/test_models_fast.py)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FoldedConv", "fold_batchnorm", "LocalForward"]

class _FrozenConv(torch.autograd.Function):
    """``F.conv2d`` with a frozen weight whose input gradient is one transposed convolution: bit-for-bit the same
    gradient as autograd's ``convolution_backward``, which on CPU takes a path several times slower for the
    depthwise and stride-2 layers (bench/speed.py)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, groups):  # noqa: D102
        ctx.save_for_backward(weight)
        ctx.conf = (stride, padding, groups, x.shape[-2:])
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (weight,) = ctx.saved_tensors
        stride, padding, groups, (h, w) = ctx.conf
        kh, kw = weight.shape[-2:]
        # rows/columns of the input that no window reached (stride > 1) come back as output_padding zeros
        out_pad = tuple(int(size + 2 * p - k - (g - 1) * s) for size, p, k, g, s in
                        zip((h, w), padding, (kh, kw), grad.shape[-2:], stride))
        gx = F.conv_transpose2d(grad, weight, None, stride, padding, out_pad, groups)
        return gx, None, None, None, None, None


class FoldedConv(nn.Module):
    """One of the weights package's TF-"same" convolutions with the BatchNorm after it folded in, for a frozen
    network in eval mode: ``w' = w·γ/√(σ²+ε)``, ``b' = β + (b − μ)·γ/√(σ²+ε)``.

    Same values as ``bn(conv(x))`` up to float rounding, in fewer and faster kernels: no BatchNorm forward or
    backward; symmetric "same" padding goes into the convolution instead of a separate zero-pad copy (only the
    stride-2 layers, padded one pixel more at the bottom/right, keep the pad); and a 1×1 convolution of a
    channels_last tensor is one matrix product (``F.linear`` over the pixels), because at one thread and small
    batches PyTorch sends 1×1 convolutions to its slow im2col path.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None):
        super().__init__()
        w = conv.weight.detach().clone()
        b = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        if bn is not None:
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            w = w * scale.view(-1, 1, 1, 1)
            b = bn.bias.detach() + (b - bn.running_mean) * scale
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = nn.Parameter(b, requires_grad=False)
        self.stride = tuple(conv.stride) if len(conv.stride) == 2 else (conv.stride[0],) * 2
        self.groups = conv.groups
        if tuple(conv.dilation) not in ((1, 1), (1,)):
            raise ValueError("FoldedConv: dilated convolutions are not supported")
        pad = getattr(getattr(conv, "static_padding", None), "padding", (0, 0, 0, 0))  # (left, right, top, bottom)
        pad = tuple(int(v) for v in pad)
        base = tuple(int(v) for v in conv.padding) if isinstance(conv.padding, tuple) else (0, 0)
        if any(base) and any(pad):
            raise ValueError("FoldedConv: both a static pad and conv padding")
        left, right, top, bottom = pad
        if left == right and top == bottom:
            self.pre_pad, self.padding = None, (top + base[0], left + base[1])
        else:
            self.pre_pad, self.padding = pad, base
        self.pointwise = w.shape[-2:] == (1, 1) and self.stride == (1, 1) and self.groups == 1 \
            and self.pre_pad is None and self.padding == (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pointwise and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and not x.is_contiguous():
            n, c, h, w = x.shape  # NHWC in memory: the pixels are the rows of one (N·H·W, C) matrix
            y = F.linear(x.permute(0, 2, 3, 1).reshape(-1, c), self.weight.view(self.weight.shape[0], c), self.bias)
            return y.view(n, h, w, -1).permute(0, 3, 1, 2)
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        if torch.is_grad_enabled() and x.requires_grad and not self.weight.requires_grad:
            return _FrozenConv.apply(x, self.weight, self.bias, self.stride, self.padding, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every BatchNorm of an ``efficientnet_lite_pytorch`` EfficientNet into the convolution before it, in
    place (the BatchNorms become ``nn.Identity``); returns ``net``. The head's BatchNorm stays: Grad-CAM reads the
    head convolution's output (``Classifier.cam_layer``), which must stay the unnormalised one. ``nn.ReLU6``
    modules are kept, so hooks on them (``straight_through_relu6``) still apply."""
    if net.training:
        raise ValueError("fold_batchnorm needs a network in eval mode (running statistics)")
    net._conv_stem = FoldedConv(net._conv_stem, net._bn0)
    net._bn0 = nn.Identity()
    for block in net._blocks:
        if getattr(block, "has_se", False):
            raise ValueError("fold_batchnorm: squeeze-excitation blocks are not supported")
        if block._block_args.expand_ratio != 1:
            block._expand_conv = FoldedConv(block._expand_conv, block._bn0)
            block._bn0 = nn.Identity()
        block._depthwise_conv = FoldedConv(block._depthwise_conv, block._bn1)
        block._bn1 = nn.Identity()
        block._project_conv = FoldedConv(block._project_conv, block._bn2)
        block._bn2 = nn.Identity()
    net._conv_head = FoldedConv(net._conv_head)
    return net


# ---------------------------------------------------------------- incremental inference for a pasted patch
def _grow(region: tuple[int, int], k: int, s: int, p: int, n_out: int):
    """Along one axis: the outputs ``[o0, o1)`` of a convolution (kernel k, stride s, ``p`` zeros before) whose
    window meets the input rows ``region``, and the input window ``[w0, w1)`` (unclipped) they read."""
    a, b = region
    o0 = max(0, -(-(a + p - k + 1) // s))  # ceil((a + p - k + 1) / s)
    o1 = min(n_out, (b - 1 + p) // s + 1)
    return (o0, o1), (o0 * s - p, (o1 - 1) * s - p + k)


class LocalForward:
    """Logits of images that differ from known clean images only inside a box (a pasted patch), computing the
    early, high-resolution layers only where the box can reach and reusing the clean images' activations elsewhere
    (incremental inference, as for occlusion maps: Nakandala et al., SIGMOD 2019). Same values as ``model`` on the
    full input up to float rounding (tests/test_models_fast.py), in a fraction of the early layers' work.

    Folded EfficientNet-Lite only (:func:`fold_batchnorm`). ``images`` (M,3,H,W) in [0,1] are the clean images;
    ``forward(x, rows, box)`` takes the full network input ``x`` (N,3,H,W) (normalised, the patch pasted, as for
    ``model.net``), ``rows`` (N,) the clean image of each row, and ``box = (top, bottom, left, right)`` the union of
    the rows' patch boxes; outside it ``x`` must equal ``model.normalize(images[rows])``. The layers stay local
    while the box they reach covers less than ``max_share`` of their map; then the rest of the network runs on
    the full map.
    Example: >>> lf = LocalForward(model, images); logits = lf(x, torch.arange(len(images)), (0, 63, 0, 63))
    """

    def __init__(self, model: Classifier, images: torch.Tensor, max_share: float = 0.5):
        net = model.net
        if not isinstance(getattr(net, "_conv_stem", None), FoldedConv):
            raise ValueError("LocalForward needs a folded EfficientNet-Lite (load_model(..., fold=True))")
        self.model, self.net, self.max_share = model, net, float(max_share)
        with torch.no_grad():
            h = net._swish(net._conv_stem(model.normalize(images.to(model.device))))
            self.clean = []  # per block: (input, expanded or None, depthwise output)
            for blk in net._blocks:
                e = blk._swish(blk._expand_conv(h)) if blk._block_args.expand_ratio != 1 else h
                d = blk._swish(blk._depthwise_conv(e))
                self.clean.append((h, e if blk._block_args.expand_ratio != 1 else None, d))
                h = blk(h)
            self.clean.append((h, None, None))  # the last block's output

    @staticmethod
    def _conv(conv: FoldedConv, src: torch.Tensor, clean: torch.Tensor, reg, rows: torch.Tensor):
        """``conv`` on the outputs its window from ``reg`` reaches: (dirty output, its region)."""
        n_in = clean.shape[-1]
        k = conv.weight.shape[-1]
        s = conv.stride[0]
        p = conv.pre_pad[2] if conv.pre_pad is not None else conv.padding[0]
        n_out = (n_in + (sum(conv.pre_pad[2:]) if conv.pre_pad is not None else 2 * p) - k) // s + 1
        (oy, wy), (ox, wx) = _grow(reg[:2], k, s, p, n_out), _grow(reg[2:], k, s, p, n_out)
        cy0, cy1, cx0, cx1 = max(0, wy[0]), min(n_in, wy[1]), max(0, wx[0]), min(n_in, wx[1])
        win = clean[:, :, cy0:cy1, cx0:cx1][rows].clone()
        win[:, :, reg[0] - cy0:reg[1] - cy0, reg[2] - cx0:reg[3] - cx0] = src
        pads = (cx0 - wx[0], wx[1] - cx1, cy0 - wy[0], wy[1] - cy1)
        if any(pads):
            win = F.pad(win, pads)
        if torch.is_grad_enabled() and win.requires_grad:
            out = _FrozenConv.apply(win, conv.weight, conv.bias, conv.stride, (0, 0), conv.groups)
        else:
            out = F.conv2d(win, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)
        return out, (oy[0], oy[1], ox[0], ox[1])

    def __call__(self, x: torch.Tensor, rows: torch.Tensor, box: tuple[int, int, int, int],
                 domain: str = "network") -> torch.Tensor:
        """Logits ``(N,1000)``; ``domain="image"`` takes ``x`` in [0,1] (as ``model(x)``), ``"network"`` the
        normalised input (as ``model.net(x)``), like ``attack.patch.domain_logits``."""
        net = self.net
        if domain == "image":
            x = self.model.normalize(x)
        elif domain != "network":
            raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
        rows = torch.as_tensor(rows, dtype=torch.long, device=x.device)
        t, b, l, r = (int(v) for v in box)
        # the stem reads the real input; its "clean" map is the input itself
        stem_in = x[:, :, t:b, l:r]
        h, reg = self._conv(net._conv_stem, stem_in, x.detach(), (t, b, l, r), torch.arange(len(x), device=x.device))
        h = net._swish(h)
        i = 0
        for i, blk in enumerate(net._blocks):
            h_in_clean, e_clean, _ = self.clean[i]
            side = h_in_clean.shape[-1]
            if (reg[1] - reg[0]) * (reg[3] - reg[2]) > self.max_share * side * side:
                break
            e = blk._swish(blk._expand_conv(h)) if e_clean is not None else h
            d, reg_out = self._conv(blk._depthwise_conv, e, e_clean if e_clean is not None else h_in_clean,
                                    reg, rows)
            out = blk._project_conv(blk._swish(d))
            a = blk._block_args
            if a.id_skip and a.stride == 1 and a.input_filters == a.output_filters:
                y0, y1, x0, x1 = reg_out
                skip = h_in_clean[:, :, y0:y1, x0:x1][rows].clone()
                skip[:, :, reg[0] - y0:reg[1] - y0, reg[2] - x0:reg[3] - x0] = h
                out = out + skip
            h, reg = out, reg_out
        else:
            i = len(net._blocks)
        full = self.clean[i][0][rows].clone()
        full[:, :, reg[0]:reg[1], reg[2]:reg[3]] = h
        h = full
        for blk in net._blocks[i:]:
            h = blk(h)
        h = net._swish(net._bn1(net._conv_head(h)))
        return net._fc(net._dropout(net._avg_pooling(h).flatten(1)))
