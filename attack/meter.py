"""Before you train: how far the network's last layers let a patch at one place go (forward passes only).

Many ImageNet CNNs end with ``activation -> global mean over a g×g grid -> one linear layer`` (EfficientNet-Lite:
ReLU6, a 7×7 grid of 32 px cells at 224; MobileNetV2 the same; ResNet: plain ReLU). A patch can drive the cells it
covers anywhere an activation can go, but with ReLU6 no cell can exceed 6, and the other cells keep their clean
values. Fixing every cell at its clean value except a *free* set, the highest p(target) the linear head allows is a
concave maximisation over a box (an affine map followed by log-softmax), solved here by projected Adam with the
gradient written out (``W^T (e_t - softmax(z))``): no autograd, no backward pass. Two sets, as in bench/ceiling.py:

* ``centre``: the cells whose centre lies inside the patch (what it covers);
* ``touched``: every cell whose footprint overlaps the patch (a looser bound).

The band: ``likely`` (the covered cells alone reach p ≥ 0.9), ``possible`` (only the touched cells do),
``unlikely`` (not even those); the best ceiling within ``radius`` px is searched too. Neither set bounds training
strictly (a deep network spreads a patch's effect): the band is a forecast, measured in docs/ATTACK_STRENGTH.md.
No global mean of a last grid (ViT, MobileNetV3's two-layer head): "not available"; an uncapped grid (ReLU): the
geometry, and the ceiling said to be not informative.

Example: >>> m = meter(model, img, target=980, size=42, loc=(0, 0)); m.band, m.reason, m.best_loc
"""
from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .patch import check_loc, corner_loc

__all__ = ["Head", "Meter", "PLACES", "DEFAULT_PLACE", "default_place", "find_head", "grid_features", "last_grid",
           "cells", "head_ceiling", "meter", "place", "grid_loc", "MeterUnavailable"]

THRESHOLD = 0.9  # the trainer's stop_at: "succeeded" means p(target) >= 0.9
RADIUS = 16  # px: how far from the user's place the meter and the placements look
PLACES = ("corner", "grid", "meter")
# Where a named corner puts the patch by default (the app's corner buttons, the CLI's --corner): chosen by the paired
# ablation rows in docs/ATTACK_STRENGTH.md ("Before you train"): 42x42 on Lite0, 2,000 evaluations, grid vs exact
# corner 9/20 vs 8/20 (image), 10/20 vs 9/20 (network) on seeds 1-2 when set; seeds 1-3: 12/30 vs 9/30 in each.
DEFAULT_PLACE = "grid"


def default_place(model) -> str:
    """A named corner's place on ``model``: :data:`DEFAULT_PLACE` where measured (embedded Lite), else the corner."""
    embedded = getattr(getattr(model, "spec", None), "source", None) == "embedded"
    return DEFAULT_PLACE if embedded and find_head(model) is not None else "corner"
BANDS = ("likely", "possible", "unlikely", "not available")


class MeterUnavailable(ValueError):
    """The model's head is not a global mean over a last grid and one linear layer (the message says why)."""


@dataclass(frozen=True)
class Head:
    """``module``'s output (or input: ``use_input``) is the ``(N,C,g,g)`` map whose mean ``fc`` maps to the logits;
    ``cap`` bounds each cell (6.0 for ReLU6, None when unbounded)."""
    module: nn.Module
    fc: nn.Linear
    cap: float | None
    use_input: bool = False


@dataclass(frozen=True)
class Meter:
    """The meter's answer for one (photo, target, size, loc): ceilings are p(target) (None: no cap or no grid);
    ``best_loc``, the best place within ``radius`` px (``loc`` when nothing nearby is better)."""
    band: str
    reason: str
    loc: tuple[int, int]
    size: int
    target: int
    available: bool = True
    informative: bool = True
    p_clean: float | None = None
    ceiling_centre: float | None = None
    ceiling_touched: float | None = None
    cells_centre: int = 0
    cells_touched: int = 0
    grid: int = 0
    stride: float = 0.0
    best_loc: tuple[int, int] = (0, 0)
    best_ceiling_centre: float | None = None
    best_ceiling_touched: float | None = None
    best_band: str = ""
    candidates: list[dict] = field(default_factory=list, repr=False)

    @property
    def moved(self) -> bool:
        return tuple(self.best_loc) != tuple(self.loc)


_HEADS: "weakref.WeakKeyDictionary[nn.Module, Head | str]" = weakref.WeakKeyDictionary()


def _cap_of(module: nn.Module) -> float | None:
    if isinstance(module, nn.ReLU6):
        return 6.0
    if isinstance(module, nn.Hardtanh) and module.min_val == 0:
        return float(module.max_val)
    return None


def _discover(model: nn.Module) -> Head | str:
    """One forward pass with hooks: the last linear layer's input must be the spatial mean of the last (N,C,g,g)
    map a leaf module produced, and its output the logits. Returns the Head, or the reason it is not available."""
    spec = getattr(model, "spec", None)
    net = getattr(model, "net", model)
    if spec is not None and spec.source == "embedded":  # EfficientNet-Lite: ReLU6 -> _avg_pooling -> _fc
        return Head(net._avg_pooling, net._fc, 6.0, use_input=True)
    seen: list[tuple[nn.Module, torch.Size, torch.Tensor, bool]] = []  # module, shape, spatial mean, leaf
    linear: list[tuple[nn.Module, torch.Tensor, torch.Tensor]] = []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Linear) and inp and torch.is_tensor(inp[0]):
            linear.append((mod, inp[0].detach(), out.detach()))
        elif torch.is_tensor(out) and out.dim() == 4 and out.shape[-1] * out.shape[-2] > 1:  # not a pool's 1x1
            seen.append((mod, out.shape, out.detach().float().mean((2, 3)), not list(mod.children())))

    handles = [m.register_forward_hook(hook) for m in net.modules()]  # containers too (e.g. Inception's Mixed_7c)
    size = int(getattr(model, "input_size", 224))
    try:
        with torch.inference_mode():
            logits = model(torch.full((1, 3, size, size), 0.5, device=_device(model)))
    finally:
        for h in handles:
            h.remove()
    if not linear:
        return "it has no final linear layer"
    fc, x, out = linear[-1]
    if x.dim() != 2 or out.shape != logits.shape or not torch.allclose(out, logits, atol=1e-4, rtol=1e-4):
        return "its last linear layer does not give the logits directly"
    x = x.float()
    for mod, shape, mean, _ in reversed(seen):
        if shape[1] == x.shape[1] and torch.allclose(mean, x, atol=1e-4, rtol=1e-3):
            if shape[-1] != shape[-2]:
                return "its last grid is not square"
            # the cap comes from the innermost module that produced this map (MobileNetV2: features[-1]'s ReLU6)
            leaf = next((m for m, sh, mn, is_leaf in reversed(seen) if is_leaf and sh == shape
                         and torch.equal(mn, mean)), mod)
            return Head(mod, fc, _cap_of(leaf))
    return "its head is not a global mean over a last grid followed by one linear layer"


def _device(model: nn.Module) -> torch.device:
    return next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))


def find_head(model: nn.Module) -> Head | None:
    """The model's :class:`Head`, or None where the meter is not available (found once per model, then cached)."""
    if model not in _HEADS:
        _HEADS[model] = _discover(model)
    got = _HEADS[model]
    return got if isinstance(got, Head) else None


def _why_not(model: nn.Module) -> str:
    find_head(model)
    got = _HEADS.get(model)
    return got if isinstance(got, str) else ""


def grid_features(model: nn.Module, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Head]:
    """``(feats (C,g,g), logits (1000,), head)`` of one ``(3,H,W)`` image in [0,1]: the last grid the head averages.
    Raises MeterUnavailable where the model has no such grid."""
    head = find_head(model)
    if head is None:
        raise MeterUnavailable(f"the meter is not available for {getattr(model, 'name', 'this model')}: "
                               f"{_why_not(model)}")
    grab = {}
    if head.use_input:
        h = head.module.register_forward_pre_hook(lambda m, inp: grab.__setitem__("f", inp[0].detach().clone()))
    else:
        h = head.module.register_forward_hook(lambda m, inp, out: grab.__setitem__("f", out.detach().clone()))
    try:
        with torch.inference_mode():
            logits = model(image[None].to(_device(model)))
    finally:
        h.remove()
    return grab["f"][0].float().cpu(), logits[0].float().cpu(), head


def last_grid(model: nn.Module) -> tuple[int, float] | None:
    """``(g, stride px)`` of the grid the head averages (7, 32 for EfficientNet-Lite0 at 224), or None where the meter
    is not available: one forward pass of a grey image."""
    if find_head(model) is None:
        return None
    side = int(getattr(model, "input_size", 224))
    feats, _, _ = grid_features(model, torch.full((3, side, side), 0.5))
    return _grid_of(feats, side)


def cells(loc: tuple[int, int], size: int, grid: int, stride: float) -> tuple[list, list]:
    """(centre cells, touched cells) of a patch at ``loc`` (top, left) on a grid×grid map of ``stride`` px cells."""
    top, left = loc

    def axis(start: int) -> tuple[list[int], list[int]]:
        return _centre(start, size, grid, stride), _touched(start, size, grid, stride)

    (cy, ty), (cx, tx) = axis(top), axis(left)
    return [(i, j) for i in cy for j in cx], [(i, j) for i in ty for j in tx]


def _mid(i: int, stride: float) -> float:
    return stride * i + stride // 2 if float(stride).is_integer() else stride * (i + 0.5)


def _centre(start: int, size: int, grid: int, stride: float) -> list[int]:
    return [i for i in range(grid) if start <= _mid(i, stride) < start + size]


def _touched(start: int, size: int, grid: int, stride: float) -> list[int]:
    return [i for i in range(grid) if stride * i < start + size and start < stride * (i + 1)]


def _balance(start: int, size: int, grid: int, stride: float) -> float:
    """The smallest overlap (px, one axis) of the patch with a cell whose centre it covers: larger = the covered
    centres sit further inside the patch."""
    cov = _centre(start, size, grid, stride)
    return min((min(start + size, stride * (i + 1)) - max(start, stride * i) for i in cov), default=0.0)


def head_ceiling(feats: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, free_sets: list[list],
                 target: int, cap: float, steps: int = 600) -> list[float]:
    """Highest p(target) per free set, with the set's cells anywhere in [0, cap] and the others at their clean
    values. Projected Adam (lr cap·k/40, cosine decay, as bench/ceiling.py) on the sum of the free cells, all sets
    side by side, with the analytic gradient: no autograd graph is built."""
    c, g, _ = feats.shape
    weight = weight.detach().float().cpu()
    bias = torch.zeros(weight.shape[0]) if bias is None else bias.detach().float().cpu()
    with torch.no_grad():
        out = [None] * len(free_sets)
        rows = []
        for n, free in enumerate(free_sets):
            if not free:
                out[n] = float(torch.softmax(F.linear(feats.mean((1, 2)), weight, bias), 0)[target])
            else:
                rows.append(n)
        if not rows:
            return out
        fixed, start, hi = [], [], []
        for n in rows:
            mask = torch.zeros(g, g, dtype=torch.bool)
            for i, j in free_sets[n]:
                mask[i, j] = True
            fixed.append(feats[:, ~mask].sum(1))
            start.append(feats[:, mask].sum(1))
            hi.append(cap * int(mask.sum()))
        fixed, s = torch.stack(fixed), torch.stack(start).clone()  # (K,C)
        hi = torch.tensor(hi).view(-1, 1)
        lr0 = hi / 40
        m, v = torch.zeros_like(s), torch.zeros_like(s)
        b1, b2, eps, n2 = 0.9, 0.999, 1e-8, float(g * g)
        onehot = weight[target]
        for t in range(1, steps + 1):
            p = torch.softmax(F.linear((fixed + s) / n2, weight, bias), 1)  # (K,classes)
            grad = -(onehot - p @ weight) / n2  # d(-log p_t)/ds
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            lr = lr0 * (1 + math.cos(math.pi * (t - 1) / steps)) / 2
            denom = (v.sqrt() / math.sqrt(1 - b2 ** t)).add_(eps)
            s.sub_(lr / (1 - b1 ** t) * m / denom)
            s.clamp_(min=torch.zeros_like(hi), max=hi)
        p = torch.softmax(F.linear((fixed + s) / n2, weight, bias), 1)[:, target]
        for k, n in enumerate(rows):
            out[n] = float(p[k])
    return out


def _grid_of(feats: torch.Tensor, image_size: int) -> tuple[int, float]:
    g = int(feats.shape[-1])
    stride = image_size / g
    return g, (int(stride) if float(stride).is_integer() else stride)


def _axis_options(start: int, size: int, side: int, grid: int, stride: float, radius: int) -> dict:
    """Per (centre cells, touched cells) of one axis, the start to use: the given start when it has that key, else
    the start with the covered centres furthest inside the patch, then the nearest."""
    opts: dict[tuple, list[int]] = {}
    for s in range(max(0, start - radius), min(side - size, start + radius) + 1):
        key = (tuple(_centre(s, size, grid, stride)), tuple(_touched(s, size, grid, stride)))
        opts.setdefault(key, []).append(s)
    pick = {}
    for key, starts in opts.items():
        pick[key] = start if start in starts else max(starts, key=lambda s: (_balance(s, size, grid, stride),
                                                                               -abs(s - start)))
    return pick


def _band(centre: float | None, touched: float | None) -> str:
    if centre is None:
        return "possible"
    return "likely" if centre >= THRESHOLD else "possible" if touched >= THRESHOLD else "unlikely"


def _reason(band: str, nc: int, nt: int, centre, touched, cap) -> str:
    cs = lambda n: f"{n} cell{'s' if n != 1 else ''}"  # noqa: E731
    if centre is None:
        return (f"covers {cs(nc)} of the last grid, touches {nt}; this network's grid has no cap (its last "
                f"activation is not ReLU6), so its head sets no ceiling here")
    if band == "likely":
        return f"the {cs(nc)} it covers can lift p(target) to {centre:.2f} by themselves"
    if band == "possible":
        return (f"the {cs(nc)} it covers reach only p {centre:.2f}; the {cs(nt)} it touches reach {touched:.2f}, "
                f"so it must win through partly covered cells")
    return f"even the {cs(nt)} it touches reach only p {touched:.2f} (each cell is capped at {cap:g})"


def meter(model: nn.Module, image: torch.Tensor, target: int, size: int, loc: tuple[int, int], *,
          radius: int = RADIUS, steps: int = 200) -> Meter:
    """The feasibility meter for one (photo, target, patch size, loc): band, reason, ceilings and the best place
    within ``radius`` px (by the covered cells' ceiling to 2 decimals, then -- while that is below 0.9 -- the
    touched cells', then the smaller move).
    Forward passes only: one through the model, then the head's ceilings on the clean last grid.
    Example: >>> m = meter(model, img, 980, 42, (0, 0)); (m.band, m.best_loc)"""
    side = int(image.shape[-1])
    loc = check_loc(loc, size, (int(image.shape[-2]), side))
    if find_head(model) is None:
        return Meter("not available", f"not available for this network: {_why_not(model)}", loc, size, target,
                     available=False, informative=False, best_loc=loc, best_band="not available")
    feats, logits, head = grid_features(model, image)
    g, stride = _grid_of(feats, side)
    p_clean = float(torch.softmax(logits, 0)[target])
    ys = _axis_options(loc[0], size, int(image.shape[-2]), g, stride, radius)
    xs = _axis_options(loc[1], size, side, g, stride, radius)
    combos = [((ty, tx), (cy, cx)) for (cy, ty) in ys.items() for (cx, tx) in xs.items()]
    sets = lambda cy, cx, k: [(i, j) for i in cy[k] for j in cx[k]]  # noqa: E731
    if head.cap is None:
        ceil = {}
    else:
        unique = sorted({tuple(sets(cy, cx, k)) for _, (cy, cx) in combos for k in (0, 1)})
        got = head_ceiling(feats, head.fc.weight, head.fc.bias, [list(u) for u in unique], target, head.cap, steps)
        ceil = dict(zip(unique, got))
    cands = []
    for (top, left), (cy, cx) in combos:
        cen, tou = tuple(sets(cy, cx, 0)), tuple(sets(cy, cx, 1))
        cands.append(dict(loc=(top, left), cells_centre=len(cen), cells_touched=len(tou),
                          ceiling_centre=ceil.get(cen), ceiling_touched=ceil.get(tou),
                          shift=max(abs(top - loc[0]), abs(left - loc[1]))))

    def rank(c):
        if head.cap is None:
            return (c["cells_centre"], 0, -c["shift"])
        touched = round(c["ceiling_touched"], 2) if c["ceiling_centre"] < THRESHOLD else 1.0  # a tie-break only
        return (round(c["ceiling_centre"], 2), touched, -c["shift"])  # while the covered cells fall short
    here = next(c for c in cands if c["loc"] == loc)
    best = max(cands, key=rank)
    if rank(best) <= rank(here):
        best = here
    band = _band(here["ceiling_centre"], here["ceiling_touched"])
    return Meter(band, _reason(band, here["cells_centre"], here["cells_touched"], here["ceiling_centre"],
                               here["ceiling_touched"], head.cap), loc, size, target,
                 informative=head.cap is not None, p_clean=p_clean, ceiling_centre=here["ceiling_centre"],
                 ceiling_touched=here["ceiling_touched"], cells_centre=here["cells_centre"],
                 cells_touched=here["cells_touched"], grid=g, stride=float(stride), best_loc=best["loc"],
                 best_ceiling_centre=best["ceiling_centre"], best_ceiling_touched=best["ceiling_touched"],
                 best_band=_band(best["ceiling_centre"], best["ceiling_touched"]), candidates=cands)


def grid_loc(loc: tuple[int, int], size: int, image_size: int, grid: int, stride: float,
             radius: int = RADIUS) -> tuple[int, int]:
    """The place within ``radius`` px of ``loc`` whose patch covers the most last-grid cell centres; per axis, when
    a move gains centres, the start with the covered centres furthest inside the patch (42 px at a corner of the
    7×7 grid at 224: 11 px in, covering 2×2 centres), else ``loc`` itself."""
    out = []
    for start in loc:
        lo, hi = max(0, start - radius), min(image_size - size, start + radius)
        here = len(_centre(start, size, grid, stride))
        most = max(len(_centre(s, size, grid, stride)) for s in range(lo, hi + 1))
        if most <= here:
            out.append(int(start))
            continue
        ok = [s for s in range(lo, hi + 1) if len(_centre(s, size, grid, stride)) == most]
        out.append(max(ok, key=lambda s: (_balance(s, size, grid, stride), -abs(s - start))))
    return out[0], out[1]


def place(model: nn.Module, image: torch.Tensor, target: int, size: int, corner: str | tuple[int, int],
          how: str = "corner", *, radius: int = RADIUS) -> tuple[int, int]:
    """Where to put a ``size`` px patch: ``how="corner"`` the corner itself (a name from CORNERS, or a (top, left));
    ``"grid"`` the place within ``radius`` px covering the most last-grid cell centres (:func:`grid_loc`);
    ``"meter"`` the meter's best place within ``radius`` px. Raises MeterUnavailable for grid/meter on a network
    without a last grid. Example: >>> place(model, img, 980, 42, "top-left", "grid")  # (11, 11) on Lite0"""
    if how not in PLACES:
        raise ValueError(f"unknown placement {how!r}; choose one of {', '.join(PLACES)}")
    side = int(image.shape[-1])
    loc = corner_loc(corner, side, size) if isinstance(corner, str) else check_loc(corner, size, side)
    if how == "corner":
        return loc
    if how == "meter":
        m = meter(model, image, target, size, loc, radius=radius)
        if not m.available:
            raise MeterUnavailable(m.reason)
        return m.best_loc
    feats, _, _ = grid_features(model, image)
    g, stride = _grid_of(feats, side)
    return grid_loc(loc, size, side, g, stride, radius)

