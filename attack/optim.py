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
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import nn

__all__ = ["RULES", "Rule", "Adam", "SGD", "Sign", "APGD", "make_rule", "domain_rule", "single_row_rule", "RuleSlots",
           "halving_schedule", "relu6_backward"]

RULES = ("adam", "sgd", "sign", "apgd")

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
    """Adam with per-row bias correction. A restart that successive halving sends on from its best point keeps its
    moments (as in every measured run)."""
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    m: torch.Tensor | None = field(default=None, repr=False)
    v: torch.Tensor | None = field(default=None, repr=False)
    t: torch.Tensor | None = field(default=None, repr=False)

    def init(self, w):
        self.m, self.v = torch.zeros_like(w), torch.zeros_like(w)
        self.t = torch.zeros(w.shape[0], dtype=torch.long, device=w.device)

    def step(self, rows, w, grad, improved, best_w):
        b1, b2 = self.betas
        t = self.t[rows] + 1
        self.t[rows] = t
        m = self.m[rows].mul_(b1).add_(grad, alpha=1 - b1)
        v = self.v[rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.m[rows], self.v[rows] = m, v
        tf = t.to(w.dtype)
        upd = (m / _col(1 - b1 ** tf, m)) / ((v / _col(1 - b2 ** tf, v)).sqrt() + self.eps)
        return self.project(w + self.lr * self.scale * upd)


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


def make_rule(name: str, lr: float, project: Project = _identity, scale: torch.Tensor | float = 1.0) -> Rule:
    """A fresh rule object by name (see :data:`RULES`) with its measured settings."""
    table = {"adam": Adam, "sgd": SGD, "sign": Sign, "apgd": APGD}
    if name not in table:
        raise ValueError(f"unknown update rule {name!r}; choose one of {', '.join(RULES)}")
    return table[name](lr=float(lr), project=project, scale=scale)


def domain_rule(optimizer: str, lr: float, domain: str, param: str, model):
    """The update rule for a patch in ``domain``: projected to [0,1] when image-domain pixels are trained directly;
    APGD's step scaled by 1/std in the network domain so that ``lr`` is the same pixel step in either domain."""
    project = (lambda x: x.clamp(0, 1)) if (domain == "image" and param == "clamp") else (lambda x: x)
    scale = (1.0 / model.std) if (domain == "network" and optimizer == "apgd") else 1.0
    return make_rule(optimizer, lr, project, scale)


def single_row_rule(optimizer: str, lr: float, domain: str, param: str, model, w: torch.Tensor):
    """An update rule for trainers of one patch (universal, Brown/EOT): returns ``step(w, grad, improved) -> w``
    with the rule's state kept in the closure, so every trainer shares :mod:`attack.optim`."""
    rule = domain_rule(optimizer, lr, domain, param, model)
    rule.init(w.unsqueeze(0))
    row = torch.zeros(1, dtype=torch.long, device=w.device)
    best = {"w": w.detach().clone()}

    def step(w_now: torch.Tensor, grad: torch.Tensor, improved: bool) -> torch.Tensor:
        if improved:
            best["w"] = w_now.detach().clone()
        imp = torch.tensor([bool(improved)], device=w_now.device)
        return rule.step(row, w_now.unsqueeze(0), grad.unsqueeze(0), imp, best["w"].unsqueeze(0))[0]
    return step


def _state_tensors(rule: Rule) -> list[tuple[object, str]]:
    """(owner, name) of every per-row state tensor of a rule (its ``repr=False`` tensor fields)."""
    return [(rule, f.name) for f in dataclasses.fields(rule)
            if isinstance(getattr(rule, f.name), torch.Tensor) and not f.repr]


class RuleSlots:
    """One rule object for rows that come and go (attack.scheduler): ``W``, ``best_w`` and the rule's state have
    ``capacity`` slots (doubling when full); :meth:`take` gives a new row a slot with fresh state, ``free`` lists
    the slots a finished row gave back."""

    def __init__(self, make_rule: Callable[[], Rule], w_like: torch.Tensor, capacity: int):
        self.make_rule = make_rule
        self.rule = make_rule()
        self.W = torch.zeros((capacity, *w_like.shape[1:]), dtype=w_like.dtype, device=w_like.device)
        self.rule.init(self.W)
        self.best_w = self.W.clone()
        self.free = list(range(capacity))

    def _grow(self) -> None:
        cap = self.W.shape[0]
        pad = lambda t: torch.cat([t, torch.zeros((cap, *t.shape[1:]), dtype=t.dtype, device=t.device)])  # noqa: E731
        self.W, self.best_w = pad(self.W), pad(self.best_w)
        for owner, name in _state_tensors(self.rule):
            setattr(owner, name, pad(getattr(owner, name)))
        self.free.extend(range(cap, 2 * cap))

    def take(self, w: torch.Tensor) -> int:
        """A slot for a new row starting at ``w`` (1,…): its state comes from a fresh rule initialised on it alone."""
        if not self.free:
            self._grow()
        slot = self.free.pop(0)
        fresh = self.make_rule()
        fresh.init(w)
        for (owner, name), (f_owner, f_name) in zip(_state_tensors(self.rule), _state_tensors(fresh)):
            getattr(owner, name)[slot] = getattr(f_owner, f_name)[0]
        self.W[slot] = w[0]
        self.best_w[slot] = w[0]
        return slot


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
    it is ≥ 6 (1 inside). ReLU6's own backward is (0, 0)."""

    @staticmethod
    def forward(ctx, x, below: float, above: float):  # noqa: D102
        ctx.save_for_backward(x)
        ctx.below, ctx.above = below, above
        return x.clamp(0, 6)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (x,) = ctx.saved_tensors
        scale = torch.where(x <= 0, ctx.below, torch.where(x >= 6, ctx.above, 1.0)).to(g.dtype)
        return g * scale, None, None


@contextlib.contextmanager
def relu6_backward(model: nn.Module, below: float = 0.0, above: float = 0.0) -> Iterator[None]:
    """Within the block, every ``nn.ReLU6`` of ``model`` computes the same values but back-propagates a share of the
    gradient through its clips: ``below`` of it where the unit is off (input ≤ 0), ``above`` where it is saturated
    (input ≥ 6). A surrogate gradient in the spirit of BPDA (Athalye et al. 2018): predictions are unchanged, only
    the direction the attack is pushed in differs; a leak lets units that are off or saturated — most of them in the
    cells next to a small corner patch — tell the patch which way would turn them. No-op at (0, 0), and on a model
    without ReLU6."""
    handles = []
    if below or above:
        for mod in model.modules():
            if isinstance(mod, nn.ReLU6):
                handles.append(mod.register_forward_hook(
                    lambda m, inp, out: _ReLU6Grad.apply(inp[0], float(below), float(above))))
    try:
        yield
    finally:
        for h in handles:
            h.remove()
