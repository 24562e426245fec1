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
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .fold import (  # noqa: F401 - FoldedConv and fold_batchnorm re-exported (attack.fast was their home)
    FoldedConv,
    _FrozenConv,
    _geom,
    _nhwc,
    _paste_,
    _pointwise,
    _reach,
    _to_map,
    _to_rows,
    _valid_conv,
    _window,
    fold_batchnorm,
)

if TYPE_CHECKING:
    from .models import Classifier

__all__ = ["FoldedConv", "fold_batchnorm", "LocalForward", "local_engine", "patch_boxes", "CLEAN_CACHE"]

# ---------------------------------------------------------------- incremental inference for a local change
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
