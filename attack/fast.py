"""Fast paths for a frozen, folded EfficientNet-Lite: BatchNorm folded into the convolutions (:func:`fold_batchnorm`)
and incremental inference when an image changed only inside a box per row (:class:`LocalForward`: a pasted patch,
a grey mask, an occlusion window, a transplanted region; :func:`local_engine` gives None for any other model, whose
callers run the full forward). Same values as the unfolded network on the full input up to float rounding
(tests/test_models_fast.py, tests/test_incremental.py)."""
from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from .models import Classifier

__all__ = ["FoldedConv", "fold_batchnorm", "LocalForward", "local_engine", "patch_boxes", "CLEAN_CACHE"]

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


# ---------------------------------------------------------------- incremental inference for a local change
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


def _digest(image: torch.Tensor) -> bytes:
    t = image.detach().to("cpu").contiguous()
    return hashlib.blake2b(t.view(torch.uint8).numpy().tobytes(), digest_size=16).digest() + \
        repr((tuple(t.shape), t.dtype)).encode()


class _CleanCache:
    """Clean activations kept between calls: blocks of images computed together (one forward of a batch), found
    per (network, image) key, the least recently used block out beyond ``max_bytes``. Thread-safe. A block is kept
    as computed, so an instance over the same images (or a subset) uses it without copying."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.nbytes = int(max_bytes), 0
        self._blocks: OrderedDict = OrderedDict()  # id -> (tensors, nbytes, keys)
        self._where: dict = {}  # key -> (block id, index in the block)
        self._tokens: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._next = 0

    def token(self, net: nn.Module) -> int:
        with self._lock:
            if net not in self._tokens:
                self._tokens[net], self._next = self._next, self._next + 1
                weakref.finalize(net, self._drop, self._next - 1)
            return self._tokens[net]

    def _drop(self, token: int) -> None:
        with self._lock:
            for bid in [b for b, (_, _, keys) in self._blocks.items() if keys[0][0] == token]:
                self._evict(bid)

    def _evict(self, bid) -> None:
        _, size, keys = self._blocks.pop(bid)
        self.nbytes -= size
        for k in keys:
            if self._where.get(k, (None,))[0] == bid:  # a later block may hold the same image
                del self._where[k]

    def find(self, keys: list) -> list:
        """For each key: (block tensors, index) or None."""
        with self._lock:
            out = []
            for k in keys:
                hit = self._where.get(k)
                if hit is None:
                    out.append(None)
                    continue
                self._blocks.move_to_end(hit[0])
                out.append((self._blocks[hit[0]][0], hit[1]))
            return out

    def put(self, keys: list, tensors: list[torch.Tensor]) -> None:
        size = sum(t.numel() * t.element_size() for t in tensors)
        if size > self.max_bytes or not keys:
            return
        with self._lock:
            bid, self._next = self._next, self._next + 1
            self._blocks[bid] = (tensors, size, list(keys))
            self._where.update({k: (bid, i) for i, k in enumerate(keys)})
            self.nbytes += size
            while self.nbytes > self.max_bytes:
                self._evict(next(iter(self._blocks)))

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._where.clear()
            self.nbytes = 0


# Clean activations of the last images seen (16 MiB each for Lite0 at 224), shared by every LocalForward:
# the trainer's chunks, a page's repeated calls and PatchCleanser's second round reuse them instead of
# recomputing them. ``CLEAN_CACHE.max_bytes = 0`` turns it off.
CLEAN_CACHE = _CleanCache(192 * 2 ** 20)


class LocalForward:
    """Logits of images that differ from known clean images only inside a box per row (a pasted patch, a grey
    mask, an occlusion window, a transplanted region), computing the early, high-resolution layers only where
    each row's box can reach and reusing the clean images' activations elsewhere (incremental inference, as for
    occlusion maps: Nakandala et al., SIGMOD 2019). Same values as ``model`` on the full input up to float rounding
    (tests/test_incremental.py), in a fraction of the early layers' work.

    Folded EfficientNet-Lite only (:func:`fold_batchnorm`; anything else raises ValueError: see
    :func:`local_engine` for the silent fall-back). ``images`` (M,3,H,W) are the clean images, in [0,1]
    (``domain="image"``) or normalised (``"network"``); equal images share one set of activations, and activations
    are kept across instances (:data:`CLEAN_CACHE`), so a repeated image costs no second forward. ``clean_logits``
    (M,1000) are the clean images' logits.

    ``lf(x, rows, box)`` takes the changed inputs ``x`` (N,3,H,W) (normalised for ``domain="network"``, as for
    ``model.net``; [0,1] for ``"image"``, as for ``model``), ``rows`` (N,) the clean image of each row, and ``box``:
    one ``(top, bottom, left, right)`` for every row, an ``(N,4)`` tensor of them (one box per row: rows are
    grouped by box size, so mixed locations gain), or None to find each row's box by comparing ``x`` with its
    clean image (no gradient then). Outside its box a row must equal its clean image; the gradient reaches ``x``
    inside the boxes only. Layers stay local while a group's region covers at most ``max_share`` of their map.
    Example: >>> lf = LocalForward(model, images); logits = lf(x, torch.arange(len(images)), (0, 63, 0, 63))
    """

    def __init__(self, model: Classifier, images: torch.Tensor, max_share: float = 0.7, domain: str = "image",
                 cache: bool = True):
        net = model.net
        if not isinstance(getattr(net, "_conv_stem", None), FoldedConv):
            raise ValueError("LocalForward needs a folded EfficientNet-Lite (load_model(..., fold=True))")
        if domain not in ("image", "network"):
            raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
        if images.dim() == 3:
            images = images.unsqueeze(0)
        self.model, self.net, self.max_share = model, net, float(max_share)
        side = images.shape[-1]
        if images.shape[-2] != side:
            raise ValueError("LocalForward: square images only")
        self._plan(side)
        # one slot per distinct image; rows of equal images share it
        keys = [(CLEAN_CACHE.token(net), self.n_local, domain, _digest(im)) for im in images]
        slot_of: dict = {}
        slot = torch.tensor([slot_of.setdefault(k, len(slot_of)) for k in keys], dtype=torch.long)
        uniq = list(slot_of)
        first = {k: i for i, k in reversed(list(enumerate(keys)))}
        hits = CLEAN_CACHE.find(uniq) if cache else [None] * len(uniq)
        todo = [j for j, hit in enumerate(hits) if hit is None]
        dev = model.device
        if todo:
            z = images[[first[uniq[j]] for j in todo]].to(dev)
            fresh = self._clean(model.normalize(z) if domain == "image" else z)
            if cache:
                CLEAN_CACHE.put([uniq[j] for j in todo], fresh)
            for n, j in enumerate(todo):
                hits[j] = (fresh, n)
        if len({id(t) for t, _ in hits}) == 1:  # one block holds them all: used as it is
            maps, pos = hits[0][0], torch.tensor([n for _, n in hits], dtype=torch.long)
        else:
            maps = [torch.stack([t[i][n] for t, n in hits]) for i in range(len(hits[0][0]))]
            pos = torch.arange(len(hits))
        self.slot = pos[slot].to(dev)  # image -> its index in the maps
        self.z, self._logits = maps[0], maps[1]  # normalised clean inputs, logits
        self.clean_logits = self._logits[self.slot]  # (M,C) in image order
        self.h = [t.reshape(-1, t.shape[-1]) for t in maps[2:2 + self.n_h]]  # block inputs, pixel rows
        self.dw = [t.reshape(-1, t.shape[-1]) for t in maps[2 + self.n_h:]]  # depthwise inputs, pixel rows

    def _plan(self, side: int) -> None:
        """Geometry of the stem and of every block's depthwise convolution, and how deep local work can go."""
        net = self.net
        self.stem = _geom(net._conv_stem, side)
        n, self.geoms, self.sides = self.stem.n_out, [], []
        for blk in net._blocks:
            if getattr(blk, "has_se", False) or not isinstance(blk._depthwise_conv, FoldedConv):
                raise ValueError("LocalForward: squeeze-excitation or unfolded blocks are not supported")
            g = _geom(blk._depthwise_conv, n)
            self.sides.append(n)
            self.geoms.append(g)
            n = g.n_out
        self.sides.append(n)
        # a one-pixel change reaches at least this much of each block's map: blocks where even that is more than
        # max_share never run locally, so their clean maps are not kept
        a, r = torch.tensor([side // 2]), 1
        a, r = _reach(a, r, self.stem)
        self.n_local = 0
        for g, n in zip(self.geoms, self.sides):
            if r * r > self.max_share * n * n:
                break
            a, r = _reach(a, r, g)
            self.n_local += 1
        self.n_h = self.n_local + 1  # the switch to the full map may come after the last local block

    @torch.no_grad()
    def _clean(self, z: torch.Tensor) -> list[torch.Tensor]:
        """[z, logits, block inputs (N,n,n,C) for blocks 0..n_local, depthwise inputs (N,n,n,C)]: one forward,
        each block run by its own modules in their order (the same values as ``blk(h)``); a channels_last network's
        maps are kept as they are (no copy)."""
        net = self.net
        h = net._swish(net._bn0(net._conv_stem(z)))
        hs, dws = [], []
        for i, blk in enumerate(net._blocks):
            if i < self.n_h:
                hs.append(_nhwc(h))
            if i >= self.n_local:
                h = blk(h)
                continue
            e = blk._swish(blk._bn0(blk._expand_conv(h))) if blk._block_args.expand_ratio != 1 else h
            dws.append(_nhwc(e))
            out = blk._bn2(blk._project_conv(blk._swish(blk._bn1(blk._depthwise_conv(e)))))
            a = blk._block_args
            h = out + h if a.id_skip and a.stride == 1 and a.input_filters == a.output_filters else out
        if self.n_h > len(net._blocks):
            hs.append(_nhwc(h))
        return [z, self._head(h), *hs, *dws]

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        net = self.net
        h = net._swish(net._bn1(net._conv_head(h)))
        return net._fc(net._dropout(net._avg_pooling(h).flatten(1)))

    def boxes(self, x: torch.Tensor, rows: torch.Tensor, domain: str = "network") -> torch.Tensor:
        """``(N,4)`` (top, bottom, left, right) of where each row of ``x`` differs from its clean image (an empty
        box, top = bottom, where it does not)."""
        with torch.no_grad():
            if domain == "image":
                x = self.model.normalize(x)
            diff = (x != self.z[self.slot[rows.to(self.slot.device)]]).any(1)  # (N,H,W)
            return _bounds(diff)

    def __call__(self, x: torch.Tensor, rows, box=None, domain: str = "network") -> torch.Tensor:
        """Logits ``(N,C)``; ``domain="image"`` takes ``x`` in [0,1] (as ``model(x)``), ``"network"`` the
        normalised input (as ``model.net(x)``), like ``attack.patch.domain_logits``."""
        if domain == "image":
            x = self.model.normalize(x)
        elif domain != "network":
            raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
        n, side, dev = x.shape[0], x.shape[-1], x.device
        rows = torch.as_tensor(rows, dtype=torch.long).to(dev)
        if box is None:
            if torch.is_grad_enabled() and x.requires_grad:
                raise ValueError("LocalForward: pass the boxes when differentiating (found boxes carry no gradient)")
            boxes = self.boxes(x, rows)
        else:
            boxes = torch.as_tensor(box, dtype=torch.long).to(dev).reshape(-1, 4).expand(n, 4)
        boxes = boxes.clamp(0, side)
        slots = self.slot[rows]
        hh, ww = (boxes[:, 1] - boxes[:, 0]).clamp(min=0), (boxes[:, 3] - boxes[:, 2]).clamp(min=0)
        empty = (hh == 0) | (ww == 0)
        parts, order = [], []
        if empty.any():
            idx = empty.nonzero().flatten()
            parts.append(self._logits[slots[idx]])
            order.append(idx)
        for (bh, bw), idx in _groups(hh, ww, empty, side):
            t = torch.minimum(boxes[idx, 0], torch.full_like(idx, side - bh))
            l = torch.minimum(boxes[idx, 2], torch.full_like(idx, side - bw))
            parts.append(self._group(x[idx], slots[idx], t, l, bh, bw))
            order.append(idx)
        if len(parts) == 1:
            return parts[0]
        inv = torch.empty(n, dtype=torch.long, device=dev)
        cat = torch.cat(order)
        inv[cat] = torch.arange(n, device=dev)
        return torch.cat(parts)[inv]

    def _group(self, x: torch.Tensor, slots: torch.Tensor, t: torch.Tensor, l: torch.Tensor, bh: int,
               bw: int) -> torch.Tensor:
        """Logits of rows whose boxes share one size ``bh × bw`` (tops ``t``, lefts ``l``)."""
        net, n, dev = self.net, x.shape[0], x.device
        own = torch.arange(n, device=dev)
        # the stem reads the input itself: its window comes from x (detached outside the box, so the gradient
        # reaches x inside the box only, where it is exact)
        g = self.stem
        (oy, ry), (ox, rx) = _reach(t, bh, g), _reach(l, bw, g)
        if self.n_local == 0 or ry * rx > self.max_share * self.sides[0] ** 2:
            return net(x)  # the box reaches most of the first map: nothing to gain
        wy, wx = (ry - 1) * g.s + g.k, (rx - 1) * g.s + g.k
        xp = _to_rows(F.pad(x.detach(), (g.before, g.after, g.before, g.after)))
        win = _window(xp, g.n_pad, own, oy * g.s, ox * g.s, wy, wx)
        inside = _to_rows(_crop(x, t, l, bh, bw))
        win = _paste_(win, wy, wx, t + g.before - oy * g.s, l + g.before - ox * g.s, bh, bw, inside)
        h = net._swish(net._bn0(_to_rows(_valid_conv(net._conv_stem, _to_map(win, n, wy, wx)))))
        i = 0
        for i, blk in enumerate(net._blocks):
            side = self.sides[i]
            if i >= self.n_local or ry * rx > self.max_share * side * side:
                break
            e = blk._swish(blk._bn0(_pointwise(blk._expand_conv, h))) if blk._block_args.expand_ratio != 1 else h
            g = self.geoms[i]
            (py, qy), (px, qx) = _reach(oy, ry, g), _reach(ox, rx, g)
            wy, wx = (qy - 1) * g.s + g.k, (qx - 1) * g.s + g.k
            win = _window(self.dw[i], g.n_in, slots, py * g.s, px * g.s, wy, wx, g.before)
            win = _paste_(win, wy, wx, oy + g.before - py * g.s, ox + g.before - px * g.s, ry, rx, e)
            d = blk._swish(blk._bn1(_to_rows(_valid_conv(blk._depthwise_conv, _to_map(win, n, wy, wx)))))
            out = blk._bn2(_pointwise(blk._project_conv, d))
            a = blk._block_args
            if a.id_skip and a.stride == 1 and a.input_filters == a.output_filters:
                skip = _window(self.h[i], side, slots, py, px, qy, qx)
                out = out + _paste_(skip, qy, qx, oy - py, ox - px, ry, rx, h)
            h, oy, ry, ox, rx = out, py, qy, px, qx
        else:
            i = len(net._blocks)
        side = self.sides[i]
        full = _window(self.h[i], side, slots, torch.zeros_like(oy), torch.zeros_like(ox), side, side)
        h = _to_map(_paste_(full, side, side, oy, ox, ry, rx, h), n, side, side)
        for blk in net._blocks[i:]:
            h = blk(h)
        return self._head(h)


def _crop(x: torch.Tensor, t: torch.Tensor, l: torch.Tensor, bh: int, bw: int) -> torch.Tensor:
    """``x[i, :, t_i:t_i+bh, l_i:l_i+bw]`` for every row (N,C,bh,bw), differentiable."""
    if bool((t == t[0]).all()) and bool((l == l[0]).all()):
        t0, l0 = int(t[0]), int(l[0])
        return x[:, :, t0:t0 + bh, l0:l0 + bw]
    return torch.stack([x[i, :, a:a + bh, b:b + bw] for i, (a, b) in enumerate(zip(t.tolist(), l.tolist()))])


def _bounds(diff: torch.Tensor) -> torch.Tensor:
    """(N,4) (top, bottom, left, right) of the True pixels of ``diff`` (N,H,W); (0,0,0,0) where none."""
    n, h, w = diff.shape
    ry, rx = diff.any(2), diff.any(1)
    ar_h, ar_w = torch.arange(h, device=diff.device), torch.arange(w, device=diff.device)
    top = torch.where(ry, ar_h, h).min(1).values
    bottom = torch.where(ry, ar_h + 1, 0).max(1).values
    left = torch.where(rx, ar_w, w).min(1).values
    right = torch.where(rx, ar_w + 1, 0).max(1).values
    out = torch.stack([top, bottom, left, right], 1)
    return torch.where(ry.any(1, keepdim=True), out, torch.zeros_like(out))


def _groups(hh: torch.Tensor, ww: torch.Tensor, skip: torch.Tensor, side: int, most: int = 4):
    """Rows grouped by box size ``[((h, w), rows)]``; beyond ``most`` sizes, sizes are rounded up to a multiple of
    16 px (a larger box is still a valid box) so that rows share batches."""
    keep = (~skip).nonzero().flatten()
    if len(keep) == 0:
        return []
    sizes = torch.stack([hh[keep], ww[keep]], 1)
    if len(torch.unique(sizes, dim=0)) > most:
        sizes = (-(-sizes // 16) * 16).clamp(max=side)
    uniq, inv = torch.unique(sizes, dim=0, return_inverse=True)
    return [((int(u[0]), int(u[1])), keep[inv == j]) for j, u in enumerate(uniq)]


def patch_boxes(locs, size: int) -> torch.Tensor:
    """``(N,4)`` (top, bottom, left, right) boxes of ``size``-px squares at ``locs`` ((top, left) or (N,2)): the
    ``box`` argument of :class:`LocalForward` for patches pasted at those locations."""
    t = torch.as_tensor(locs, dtype=torch.long).reshape(-1, 2)
    return torch.stack([t[:, 0], t[:, 0] + size, t[:, 1], t[:, 1] + size], 1)


def local_engine(model, images: torch.Tensor, domain: str = "image", device_types=("cpu",)) -> LocalForward | None:
    """A :class:`LocalForward` over the clean ``images`` where it applies (a folded EfficientNet-Lite on a device of
    ``device_types``: on a GPU the full forward of a batch is cheap and the local path's many small kernels are
    not), else None: the caller then runs the plain full forward (any other classifier)."""
    net = getattr(model, "net", None)
    if not isinstance(getattr(net, "_conv_stem", None), FoldedConv):
        return None
    if device_types is not None and model.device.type not in device_types:
        return None
    try:
        return LocalForward(model, images, domain=domain)
    except (ValueError, AttributeError, TypeError, RuntimeError):
        return None
