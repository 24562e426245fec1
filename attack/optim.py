"""Update rules for every patch trainer, and the successive-halving schedule of restarts.

A rule is a small object whose state lives in tensors indexed by *row* (one row = one patch being trained: a config,
or one restart of a config). ``init(w)`` allocates the state for all rows; ``step(rows, w, grad, improved, best_w)``
returns the next value of ``w[rows]`` for the given row ids (gradient *ascent*: the score is maximised);
``reset(rows, w)`` restarts a row's state from a point (used when successive halving continues a restart from its
best point). Rows that finish are simply never indexed again, so configs and restarts can leave the batch without
disturbing the others.

Rules (``RULES``):

* ``"adam"`` — Adam (Kingma & Ba 2015) with per-row bias correction.
* ``"sgd"`` — the paper's plain gradient steps.
* ``"sign"`` — fixed-size signed steps.
* ``"apgd"`` — signed steps with momentum 0.75 and a per-row step size that is halved, with a reset to the row's
  best point, when the row's best p(target) has not improved for ``patience`` steps (the step-size schedule of
  Croce & Hein's APGD, ICML 2020, simplified to a stall test).

``project`` (given to every rule) maps an unconstrained update back to the feasible set: ``clamp(0,1)`` for the
image domain trained in pixel space, identity otherwise.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

__all__ = ["RULES", "Rule", "Adam", "SGD", "Sign", "APGD", "Polish", "make_rule", "halving_schedule", "DEFAULT_RULE",
           "straight_through_relu6", "relu6_backward"]

RULES = ("adam", "sgd", "sign", "apgd")
DEFAULT_RULE = "apgd"

Project = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _col(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A per-row vector ``(k,)`` shaped to broadcast over ``like`` ``(k,...)``."""
    return v.view(-1, *([1] * (like.dim() - 1))).to(like.dtype)


@dataclass
class Rule:
    """Base class: ``lr`` is the step size; ``scale`` (broadcastable to one row, e.g. ``1/std`` per channel)
    multiplies it so that one value means the same pixel step in either domain."""
    lr: float
    project: Project = _identity
    scale: torch.Tensor | float = 1.0

    def init(self, w: torch.Tensor) -> None:  # noqa: B027 - stateless rules need nothing
        pass

    def reset(self, rows: torch.Tensor, w: torch.Tensor) -> None:  # noqa: B027
        pass

    def begin_stage(self, rows: torch.Tensor, iterations: int, last: bool) -> None:  # noqa: B027
        """Rows ``rows`` start a successive-halving stage of ``iterations`` steps (``last``: the final stage)."""
        pass

    def step(self, rows: torch.Tensor, w: torch.Tensor, grad: torch.Tensor, improved: torch.Tensor,
             best_w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass
class SGD(Rule):
    """Plain gradient ascent, the paper's update: ``w + lr * g``."""

    def step(self, rows, w, grad, improved, best_w):
        return self.project(w + self.lr * self.scale * grad)


@dataclass
class Sign(Rule):
    """Signed gradient steps of fixed size: ``w + lr * sign(g)``."""

    def step(self, rows, w, grad, improved, best_w):
        return self.project(w + self.lr * self.scale * grad.sign())


@dataclass
class Adam(Rule):
    """Adam with per-row bias correction. With ``patience`` > 0, a row whose best p(target) has not improved for
    ``patience`` steps halves its step size (down to ``lr * min_ratio``) and goes back to its best point: the slow
    last stretch from top-1 to p ≥ 0.9 is where a fixed step oscillates."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    patience: int = 0
    min_ratio: float = 1.0 / 16
    decay: str = "none"
    floor: float = 0.05
    m: torch.Tensor | None = field(default=None, repr=False)
    v: torch.Tensor | None = field(default=None, repr=False)
    t: torch.Tensor | None = field(default=None, repr=False)
    lrs: torch.Tensor | None = field(default=None, repr=False)
    stall: torch.Tensor | None = field(default=None, repr=False)
    since: torch.Tensor | None = field(default=None, repr=False)
    horizon: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.decay not in ("none", "cosine"):
            raise ValueError(f"Adam decay must be 'none' or 'cosine', got {self.decay!r}")

    def init(self, w):
        self.m, self.v = torch.zeros_like(w), torch.zeros_like(w)
        k = w.shape[0]
        self.t = torch.zeros(k, dtype=torch.long, device=w.device)
        self.lrs = torch.full((k,), float(self.lr), device=w.device)
        self.stall = torch.zeros(k, dtype=torch.long, device=w.device)
        self.since = torch.zeros(k, dtype=torch.long, device=w.device)
        self.horizon = torch.zeros(k, dtype=torch.long, device=w.device)  # 0: no schedule known, no decay

    def begin_stage(self, rows, iterations, last):
        self.since[rows] = 0
        self.horizon[rows] = int(iterations)

    def _decay(self, rows, like):
        """Cosine decay of the step over the row's current stage, from 1 to ``floor`` (``decay="cosine"``)."""
        if self.decay == "none":
            return 1.0
        h = self.horizon[rows]
        frac = torch.where(h > 0, self.since[rows].to(like.dtype) / h.clamp_min(1).to(like.dtype),
                           torch.zeros((), dtype=like.dtype, device=like.device)).clamp(0, 1)
        self.since[rows] += 1
        return _col(self.floor + (1 - self.floor) * 0.5 * (1 + torch.cos(torch.pi * frac)), like)

    def step(self, rows, w, grad, improved, best_w):
        b1, b2 = self.betas
        lr = self.lrs[rows]
        if self.patience > 0:
            stall = torch.where(improved, torch.zeros_like(self.stall[rows]), self.stall[rows] + 1)
            halve = stall >= self.patience
            lr = torch.where(halve, (lr / 2).clamp_min(self.lr * self.min_ratio), lr)
            self.lrs[rows] = lr
            self.stall[rows] = torch.where(halve, torch.zeros_like(stall), stall)
            w = torch.where(_col(halve, w).bool(), best_w, w)
        t = self.t[rows] + 1
        self.t[rows] = t
        m = self.m[rows].mul_(b1).add_(grad, alpha=1 - b1)
        v = self.v[rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.m[rows], self.v[rows] = m, v
        tf = t.to(w.dtype)
        upd = (m / _col(1 - b1 ** tf, m)) / ((v / _col(1 - b2 ** tf, v)).sqrt() + self.eps)
        return self.project(w + _col(lr, w) * self._decay(rows, w) * self.scale * upd)


@dataclass
class APGD(Rule):
    """Signed steps with momentum and step halving on stall (Croce & Hein 2020, simplified).

    ``z = P(w + eta * sign(g))``; ``w' = P(w + alpha (z - w) + (1 - alpha)(w - w_prev))``. A row whose best
    p(target) has not improved for ``patience`` steps halves its ``eta`` (down to ``lr * min_ratio``) and jumps
    back to its best point with its momentum cleared.
    """
    momentum: float = 0.75
    patience: int = 10
    min_ratio: float = 1.0 / 64
    eta: torch.Tensor | None = field(default=None, repr=False)
    prev: torch.Tensor | None = field(default=None, repr=False)
    stall: torch.Tensor | None = field(default=None, repr=False)

    def init(self, w):
        k = w.shape[0]
        self.eta = torch.full((k,), float(self.lr), device=w.device)
        self.prev = w.detach().clone()
        self.stall = torch.zeros(k, dtype=torch.long, device=w.device)

    def reset(self, rows, w):
        self.prev[rows] = w
        self.stall[rows] = 0

    def step(self, rows, w, grad, improved, best_w):
        stall = torch.where(improved, torch.zeros_like(self.stall[rows]), self.stall[rows] + 1)
        halve = stall >= self.patience
        eta = torch.where(halve, (self.eta[rows] / 2).clamp_min(self.lr * self.min_ratio), self.eta[rows])
        self.eta[rows] = eta
        stall = torch.where(halve, torch.zeros_like(stall), stall)
        self.stall[rows] = stall
        hv = _col(halve, w).bool()
        w = torch.where(hv, best_w, w)
        prev = torch.where(hv, best_w, self.prev[rows])
        z = self.project(w + _col(eta, w) * self.scale * grad.sign())
        new = self.project(w + self.momentum * (z - w) + (1 - self.momentum) * (w - prev))
        # Where the row was just reset, its gradient belongs to the abandoned point: take no step this time.
        new = torch.where(hv, w, new)
        self.prev[rows] = w
        return new


@dataclass
class Polish(Rule):
    """Random-search polish (after Croce et al.'s Sparse-RS / Patch-RS) on top of a gradient rule ``inner``.

    Rows follow ``inner`` until, in the final successive-halving stage, their best p(target) has not improved for
    ``patience`` steps. From then on each step proposes the row's best point with one random square of the patch
    set to a random corner of the RGB cube (every channel 0 or 1, mapped to the optimised space by ``colour``);
    the trainer's next forward scores the proposal and keeps it as the row's best only if p(target) rose — a
    rejected proposal is dropped because the next proposal starts again from the best point. The square covers
    ``p_init`` of the patch at first and halves every ``halve_every`` proposals, down to one pixel. Each proposal
    costs one evaluation like a gradient step (the trainer computes a gradient it does not use: the budget counts
    it anyway)."""
    inner: Rule | None = None
    colour: Callable[[torch.Tensor], torch.Tensor] = _identity
    patience: int = 50
    p_init: float = 0.1
    halve_every: int = 150
    seed: int = 0
    stall: torch.Tensor | None = field(default=None, repr=False)
    mode: torch.Tensor | None = field(default=None, repr=False)
    tries: torch.Tensor | None = field(default=None, repr=False)
    last: torch.Tensor | None = field(default=None, repr=False)
    gen: torch.Generator | None = field(default=None, repr=False)

    def init(self, w):
        self.inner.init(w)
        k = w.shape[0]
        self.stall = torch.zeros(k, dtype=torch.long, device=w.device)
        self.mode = torch.zeros(k, dtype=torch.bool, device=w.device)
        self.tries = torch.zeros(k, dtype=torch.long, device=w.device)
        self.last = torch.zeros(k, dtype=torch.bool, device=w.device)
        self.gen = torch.Generator().manual_seed(self.seed)

    def reset(self, rows, w):
        self.inner.reset(rows, w)

    def begin_stage(self, rows, iterations, last):
        self.inner.begin_stage(rows, iterations, last)
        self.last[rows] = bool(last)
        self.stall[rows] = 0

    def side(self, tries: int, size: int) -> int:
        frac = self.p_init * 0.5 ** (tries // max(1, self.halve_every))
        return max(1, min(size, round((frac * size * size) ** 0.5)))

    def step(self, rows, w, grad, improved, best_w):
        stall = torch.where(improved, torch.zeros_like(self.stall[rows]), self.stall[rows] + 1)
        self.stall[rows] = stall
        mode = self.mode[rows] | (self.last[rows] & (stall >= self.patience))
        self.mode[rows] = mode
        out = self.inner.step(rows, w, grad, improved, best_w) if not bool(mode.all()) else w.clone()
        size = w.shape[-1]
        for j in torch.nonzero(mode).flatten().tolist():
            r = int(rows[j])
            s = self.side(int(self.tries[r]), size)
            self.tries[r] += 1
            top, left = (int(v) for v in torch.randint(0, size - s + 1, (2,), generator=self.gen))
            rgb = torch.randint(0, 2, (w.shape[1], 1, 1), generator=self.gen).to(w.dtype).to(w.device)
            prop = best_w[j].clone()
            prop[:, top:top + s, left:left + s] = self.colour(rgb.unsqueeze(0))[0]
            out[j] = prop
        return out


def make_rule(name: str, lr: float, project: Project = _identity, scale: torch.Tensor | float = 1.0,
              **options) -> Rule:
    """A fresh rule object by name (see :data:`RULES`); ``options`` set the rule's own fields (e.g. ``patience``)."""
    table = {"adam": Adam, "sgd": SGD, "sign": Sign, "apgd": APGD}
    if name not in table:
        raise ValueError(f"unknown update rule {name!r}; choose one of {', '.join(RULES)}")
    return table[name](lr=float(lr), project=project, scale=scale, **options)


def halving_schedule(restarts: int, budget: int, eta: int = 4) -> list[tuple[int, int]]:
    """Successive halving: ``[(rows, iterations), …]`` per stage, with ``sum(rows * iterations) == budget``.

    Stage k trains ``restarts / eta**k`` restarts side by side (at least 1); every stage but the last gets
    ``budget / (stages + 1)`` evaluations, the last one the rest, so the survivor has the longest run (8 restarts,
    budget 2,000: 8 × 62 → 2 × 250 → 1 × 1,004). Where the budget is too small for a stage to run one iteration
    per restart, fewer restarts are used. ``restarts=1`` gives ``[(1, budget)]``.
    """
    if restarts < 1:
        raise ValueError("restarts must be >= 1")
    if budget < 1:
        return [(1, max(0, budget))]
    if eta < 2:
        raise ValueError("eta must be >= 2")
    r = restarts
    while True:
        counts = []
        c = r
        while c > 1:
            counts.append(c)
            c = max(1, c // eta)
        counts.append(1)
        share = budget // (len(counts) + 1) if len(counts) > 1 else budget
        stages = [(c, share // c) for c in counts[:-1]]
        if all(it >= 1 for _, it in stages):
            used = sum(c * it for c, it in stages)
            if budget - used >= 1:
                return stages + [(1, budget - used)]
        if r == 1:
            return [(1, budget)]
        r = max(1, r // 2)


class _ReLU6Grad(torch.autograd.Function):
    """ReLU6 forward; backward with the gradient scaled by ``below`` where the input is ≤ 0 and by ``above`` where
    it is ≥ 6 (1 inside). ReLU6's own backward is (0, 0); a straight-through clip at 6 is (0, 1). With ``tau`` > 0
    a unit outside the range passes at least exp(−d/tau) of the gradient, d its distance from the range: units just
    off or just saturated are told almost as much as active ones, units far out only the flat share."""

    @staticmethod
    def forward(ctx, x, below: float, above: float, tau: float = 0.0):  # noqa: D102
        ctx.save_for_backward(x)
        ctx.below, ctx.above, ctx.tau = below, above, tau
        return x.clamp(0, 6)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (x,) = ctx.saved_tensors
        scale = torch.where(x <= 0, ctx.below, torch.where(x >= 6, ctx.above, 1.0)).to(g.dtype)
        if ctx.tau > 0:
            d = (-x).clamp(min=0) + (x - 6).clamp(min=0)
            scale = torch.maximum(scale, torch.exp(-d / ctx.tau).to(g.dtype))
        return g * scale, None, None, None


@contextlib.contextmanager
def relu6_backward(model: nn.Module, below: float = 0.0, above: float = 0.0, tau: float = 0.0) -> Iterator[None]:
    """Within the block, every ``nn.ReLU6`` of ``model`` computes the same values but back-propagates a share of the
    gradient through its clips: ``below`` of it where the unit is off (input ≤ 0), ``above`` where it is saturated
    (input ≥ 6). A surrogate gradient in the spirit of BPDA (Athalye et al. 2018): predictions are unchanged, only
    the direction the attack is pushed in differs; a leak lets units that are off or saturated — most of them in the
    cells next to a small corner patch — tell the patch which way would turn them. No-op at (0, 0)."""
    handles = []
    if below or above:
        for mod in model.modules():
            if isinstance(mod, nn.ReLU6):
                handles.append(mod.register_forward_hook(
                    lambda m, inp, out: _ReLU6Grad.apply(inp[0], float(below), float(above), float(tau))))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def straight_through_relu6(model: nn.Module, enabled: bool = True):
    """Every ``nn.ReLU6`` of ``model`` back-propagates as a plain ReLU within the block (the gradient passes the clip
    at 6): :func:`relu6_backward` with (0, 1). No-op when ``enabled`` is False."""
    return relu6_backward(model, 0.0, 1.0 if enabled else 0.0)
