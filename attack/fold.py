"""BatchNorm folded into the convolutions of a frozen EfficientNet-Lite (:func:`fold_batchnorm`, :class:`FoldedConv`),
and the convolution geometry the incremental forward (:mod:`attack.fast`) computes windows with. Same values as
the package's modules up to float rounding (tests/test_models_fast.py)."""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FoldedConv", "fold_batchnorm"]

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
    modules are kept, so hooks on them (:func:`attack.optim.relu6_backward`) still apply."""
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


class _Geom(NamedTuple):
    """A square convolution along one axis: kernel, stride, zeros before and after, input and output sides."""
    k: int
    s: int
    before: int
    after: int
    n_in: int
    n_out: int

    @property
    def n_pad(self) -> int:
        return self.n_in + self.before + self.after


def _geom(conv: FoldedConv, n_in: int) -> _Geom:
    k, s = conv.weight.shape[-1], conv.stride[0]
    if conv.weight.shape[-2] != k or conv.stride[1] != s:
        raise ValueError("LocalForward: square kernels and strides only")
    if conv.pre_pad is not None:
        left, right, top, bottom = conv.pre_pad
        if (left, right) != (top, bottom) or any(conv.padding):
            raise ValueError("LocalForward: the same padding along both axes only")
        before, after = top, bottom
    else:
        if conv.padding[0] != conv.padding[1]:
            raise ValueError("LocalForward: the same padding along both axes only")
        before = after = conv.padding[0]
    return _Geom(k, s, before, after, n_in, (n_in + before + after - k) // s + 1)


def _reach(a: torch.Tensor, r: int, g: _Geom) -> tuple[torch.Tensor, int]:
    """Along one axis, per row: the outputs of the convolution ``g`` whose window meets the inputs ``[a, a + r)``,
    as a start ``(N,)`` and one size for every row (the largest; a start moves back where the map ends)."""
    o0 = torch.div(a + (g.before - g.k + g.s), g.s, rounding_mode="floor").clamp(min=0)  # ceil((a+p-k+1)/s)
    o1 = (torch.div(a + (r - 1 + g.before), g.s, rounding_mode="floor") + 1).clamp(max=g.n_out)
    size = int((o1 - o0).max())
    return o0.clamp(max=g.n_out - size), size


def _window(flat: torch.Tensor, side: int, img: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor, hy: int,
            wx: int, before: int = 0) -> torch.Tensor:
    """Pixel rows ``(N·hy·wx, C)`` of the window ``[y0, y0+hy) × [x0, x0+wx)`` of each row's map, in the
    coordinates of the map zero-padded by ``before``: ``flat`` holds square maps of side ``side`` as pixel rows
    ``(M·side·side, C)``, ``img`` (N,) picks each row's map; pixels outside the map are zeros."""
    dev = flat.device
    iy = y0[:, None] + torch.arange(-before, hy - before, device=dev)
    ix = x0[:, None] + torch.arange(-before, wx - before, device=dev)
    idx = (img[:, None, None] * side + iy.clamp(0, side - 1)[:, :, None]) * side + ix.clamp(0, side - 1)[:, None, :]
    win = flat.index_select(0, idx.reshape(-1))
    off_y, off_x = (iy < 0) | (iy >= side), (ix < 0) | (ix >= side)
    if bool(off_y.any()) or bool(off_x.any()):
        win.index_fill_(0, (off_y[:, :, None] | off_x[:, None, :]).reshape(-1).nonzero().squeeze(1), 0)
    return win


def _paste_(win: torch.Tensor, hy: int, wx: int, oy: torch.Tensor, ox: torch.Tensor, ry: int, rx: int,
            src: torch.Tensor) -> torch.Tensor:
    """Write the pixel rows ``src`` (N·ry·rx, C) into the windows ``win`` (N·hy·wx, C) at offsets ``(oy, ox)``."""
    dev = win.device
    iy = oy[:, None] + torch.arange(ry, device=dev)
    ix = ox[:, None] + torch.arange(rx, device=dev)
    n = torch.arange(oy.shape[0], device=dev)
    idx = (n[:, None, None] * hy + iy[:, :, None]) * wx + ix[:, None, :]
    return win.index_copy_(0, idx.reshape(-1), src)


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1).contiguous()


def _to_rows(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def _to_map(rows: torch.Tensor, n: int, hy: int, wx: int) -> torch.Tensor:
    return rows.view(n, hy, wx, rows.shape[-1]).permute(0, 3, 1, 2)  # channels_last in memory


def _pointwise(conv: FoldedConv, rows: torch.Tensor) -> torch.Tensor:
    return F.linear(rows, conv.weight.view(conv.weight.shape[0], -1), conv.bias)


def _valid_conv(conv: FoldedConv, x: torch.Tensor) -> torch.Tensor:
    """``conv`` on an already padded window."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _FrozenConv.apply(x, conv.weight, conv.bias, conv.stride, (0, 0), conv.groups)
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)
