"""One shared batch for the trainings of many sessions on the same model (issue 14).

:class:`SharedBatch` trains single-patch LaVAN configs (image, target, location and a
:class:`attack.spec.TrainingSpec`) that arrive and leave at any time: :meth:`SharedBatch.add` queues a config, which
joins the running batch at the next :meth:`SharedBatch.step`; each step is one forward+backward over every active row,
after which each row is updated by its own update rule (:mod:`attack.optim`) and finished rows leave. A config
follows exactly the loop of :func:`attack.train.train_patches` with one restart (one stage of ``steps`` evaluations,
stop at ``stop_at``, a final forward-only check of the last point), so its curve and patch match a run of its own
with the same seed up to float rounding, and its :class:`ConfigHandle` ends with the same
:class:`attack.results.PatchResult`.

Rule state lives in per-group tensors of a fixed capacity indexed by slot (a group: rows with the same update rule,
step size and parametrisation); a new config takes a free slot, whose state is initialised from a fresh rule on that
row alone, and the capacity doubles when no slot is free. Other rows' state is never touched.

:func:`shared_options` tells which ``train_patch`` calls a shared batch trains exactly (and with which ``add``
arguments); ui/jobs.py uses it to run the app's eligible trainings of all browser sessions in one batch per model.
Not covered: several restarts per config (use :func:`attack.train.train_patches`), the ReLU6 leak, the local forward.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable

import torch

from .losses import target_minus_source
from .optim import RuleSlots, domain_rule
from .patch import as_locs, check_loc, patched_logits, to_domain
from .results import PatchResult
from .spec import TrainingSpec, default_patch_size
from .train import StepInfo, _ids, start_params

__all__ = ["SharedBatch", "ConfigHandle", "shared_options"]


class ConfigHandle:
    """One config in a :class:`SharedBatch`: progress for a UI, a cancel, and the result when done.

    ``iteration`` (index of the latest point), ``evaluations``, ``p_target``, ``p_source``, ``top5`` (latest point) and
    ``best_p`` are updated by every step; ``done`` is True once ``result`` (a PatchResult) is set. ``cancel()``
    stops the config at the next step (its result is its best point, ``cancelled=True``); ``wait(timeout)`` blocks
    until done.
    """

    def __init__(self, cid: int, steps: int, watch_patch: bool, callback=None):
        self.id = cid
        self.steps_budget = steps
        self.iteration = -1  # index of the latest evaluated point (as StepInfo.iteration); -1 before joining
        self.evaluations, self.best_p = 0, -1.0
        self.p_target = self.p_source = float("nan")
        self.top5: list[tuple[int, float]] = []  # (class id, p) at the latest point
        self.latest_patch: torch.Tensor | None = None  # CPU copy every step when watch_patch=True
        self.result: PatchResult | None = None
        self.watch_patch = watch_patch
        self.callback = callback  # called with a StepInfo by the stepping thread at every evaluated point
        self._cancel, self._done = threading.Event(), threading.Event()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> PatchResult | None:
        self._done.wait(timeout)
        return self.result

    def info(self) -> StepInfo:
        """The latest step as the :class:`attack.train.StepInfo` that ``train_patch``'s callback receives."""
        return StepInfo(self.iteration, self.p_target, self.p_source, list(self.top5), restarts=[self.p_target],
                        leader=0, evaluations=self.evaluations, patch=self.latest_patch)

    def progress(self) -> dict:
        """JSON-friendly progress: iteration, evaluations, budget, latest and best p(target), done."""
        return {"iteration": self.iteration, "evaluations": self.evaluations, "budget": self.steps_budget,
                "p_target": self.p_target, "p_source": self.p_source, "best_p": self.best_p, "done": self.done}


@dataclasses.dataclass(eq=False)
class _Row:
    """A config's bookkeeping (the tensors it trains live in its group's slot, taken when it joins)."""
    handle: ConfigHandle
    spec: TrainingSpec  # resolved
    make_rule: object
    w0: torch.Tensor  # (1,3,s,s) starting point
    image: torch.Tensor  # (3,H,W) on the model's device
    loc: tuple[int, int]
    target: int
    source: int
    t0: float
    group: "_Group | None" = None
    slot: int = -1
    it: int = 0
    best_ps: float = 0.0
    best_arg: int = 0
    cur: tuple[float, float, int] = (0.0, 0.0, 0)
    hist: dict = dataclasses.field(default_factory=lambda: {"p_target": [], "p_source": [], "evaluations": [],
                                                            "top5": []})

    @property
    def gkey(self) -> tuple:
        return (self.spec.optimizer, self.spec.lr, self.spec.param)


class _Group(RuleSlots):
    """Rows sharing one update rule object and parametrisation: W, best_w and the rule's state in slots."""

    def __init__(self, make_rule, param: str, w_like: torch.Tensor, capacity: int):
        super().__init__(make_rule, w_like, capacity)
        self.param = param


class SharedBatch:
    """Train single-patch configs of many sessions on one model in one batch (Karmon et al. 2018, arXiv:1801.02608).

    Every config in a batch shares the model, patch ``size``, ``domain`` and the model's input size; everything else
    (image, target, source, location, budget, step size, update rule, loss, stop_at, seed) is per config. Configs
    asking for more than one restart are refused: use :func:`attack.train.train_patches` for those.

    Args:
        model: the classifier (eval mode; its ``input_size`` fixes the image size).
        size: patch side (Default: ``default_patch_size(model.input_size)``). domain: "network" | "image".
        pad_batches: pad the batch to a power of two rows (Default: on CUDA only, as train_patches).
        capacity: initial slots per update-rule group (doubles when full).
    Thread safety: ``add`` and ``ConfigHandle.cancel`` may be called from any thread while one thread calls
    ``step`` (or ``run``).
    Example:
        >>> batch = SharedBatch(model, size=63, domain="image")
        >>> h = batch.add(img, target=859, loc=(0, 0), steps=500, seed=1)
        >>> batch.run_until_idle(); h.result.p_target
    """

    def __init__(self, model, *, size: int | None = None, domain: str = "network", pad_batches: bool | None = None,
                 capacity: int = 8):
        if domain not in ("network", "image"):
            raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
        self.model, self.domain, self.capacity = model, domain, int(capacity)
        self.input_size = int(getattr(model, "input_size", 224))
        self.size = default_patch_size(self.input_size, model) if size is None else int(size)
        check_loc((0, 0), self.size, self.input_size)
        self.device = next(model.buffers()).device
        self.pad = (self.device.type == "cuda") if pad_batches is None else bool(pad_batches)
        self._groups: dict[tuple, _Group] = {}
        self._rows: list[_Row] = []
        self._pending: list[_Row] = []
        self._lock = threading.Lock()
        self._next_id, self.steps_run = 0, 0  # steps_run: batched forward+backward passes so far

    @property
    def key(self) -> tuple:
        """What configs of one batch share: (model name, input size, patch size, domain)."""
        return (getattr(self.model, "name", type(self.model).__name__), self.input_size, self.size, self.domain)

    def __len__(self) -> int:
        """Configs active or waiting to join."""
        with self._lock:
            return len(self._rows) + len(self._pending)

    def add(self, image: torch.Tensor, target, loc=(0, 0), spec: TrainingSpec | None = None, *, source=None,
            generator: torch.Generator | None = None, watch_patch: bool = False,
            callback: Callable[[StepInfo], None] | None = None, **fields) -> ConfigHandle:
        """Queue one config; it joins the batch at the next step. Arguments as :func:`attack.train.train_patch`:
        ``spec`` (Default: one patch, no leak, this batch's size and domain) with ``fields`` replacing its fields.

        ``size`` / ``domain``, when given, must equal the batch's (a ValueError otherwise: use one SharedBatch per
        (model, input size, patch size, domain)). ``restarts`` must resolve to 1 and ``relu6_leak`` to 0 (the batch
        follows the true gradient: the default at the default patch area, where "auto" gives one restart and no
        leak; use :func:`attack.train.train_patches` below it). ``watch_patch``: keep a CPU copy
        of the current patch in ``handle.latest_patch`` every step. ``callback``: called by the stepping thread with
        the :class:`attack.train.StepInfo` that ``train_patch``'s callback receives at the same point (same
        iteration, evaluations, p, top-5; the current patch when ``watch_patch``).
        """
        spec = TrainingSpec.of(spec if spec is not None else TrainingSpec(domain=self.domain, restarts=1,
                                                                           relu6_leak=0.0), **fields)
        spec = self._check(image, spec)
        loc = tuple(int(v) for v in as_locs([tuple(loc)], 1)[0].tolist())
        check_loc(loc, self.size, self.input_size)
        tgt = int(_ids(target, 1, "target")[0])
        image = image.to(self.device)
        if source is None:
            with torch.no_grad():
                src = int(self.model(image.unsqueeze(0)).argmax(1)[0])
        else:
            src = int(_ids(source, 1, "source")[0])
        w = start_params(1, self.size, self.domain, spec.param, self.model, generator, self.device, spec.init, 1,
                         None if spec.seed is None else [spec.seed])
        make = lambda: domain_rule(spec.optimizer, spec.lr, self.domain, spec.param, self.model)  # noqa: E731
        with self._lock:
            handle = ConfigHandle(self._next_id, spec.steps, watch_patch or callback is not None, callback)
            self._next_id += 1
            self._pending.append(_Row(handle, spec, make, w, image, loc, tgt, src, time.perf_counter()))
        return handle

    def _check(self, image: torch.Tensor, spec: TrainingSpec) -> TrainingSpec:
        """``spec`` resolved for this batch, or a ValueError when the config cannot join it."""
        if spec.size is not None and int(spec.size) != self.size:
            raise ValueError(f"this shared batch trains {self.size} px patches, not {spec.size} px: "
                             f"configs of one batch share patch size, domain and input size")
        if spec.domain != self.domain:
            raise ValueError(f"this shared batch trains {self.domain}-domain patches, not {spec.domain!r}: "
                             f"configs of one batch share patch size, domain and input size")
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"image must be (3,H,W), got {tuple(image.shape)}")
        if tuple(image.shape[1:]) != (self.input_size, self.input_size):
            raise ValueError(f"image is {image.shape[1]}x{image.shape[2]} but this shared batch runs "
                             f"{self.input_size}x{self.input_size}: configs of one batch share the input size")
        spec = spec.replace(size=self.size).resolve(self.model, self.input_size)
        if spec.restarts != 1:
            raise ValueError(f"the shared batch trains one patch per config (restarts=1), not {spec.restarts}: "
                             "use attack.train.train_patches for restarts > 1")
        if spec.relu6_leak:
            raise ValueError(f"the shared batch trains with the true gradient (relu6_leak=0), not "
                             f"{spec.relu6_leak}: use attack.train.train_patches for a leaky ReLU6 backward")
        return spec

    def step(self) -> int:
        """One forward+backward over every active config, then each config's update; returns the configs still
        active or waiting (0: idle)."""
        rows = self._admit()
        if not rows:
            return 0
        # Rows grouped by update rule: one leaf tensor per group, so that every group gets its own gradient.
        by_group: dict[int, list[_Row]] = {}
        for row in rows:
            by_group.setdefault(id(row.group), []).append(row)
        order = [r for g in by_group.values() for r in g]
        boundary = [r.handle.evaluations >= r.spec.steps for r in order]  # budget spent: this forward only checks
        stats, tops, grads = self._forward(list(by_group.values()), order, need=not all(boundary))
        pos, finished, device = 0, [], self.device
        for g_rows, grad in zip(by_group.values(), grads):
            group = g_rows[0].group
            step_j, step_improved = [], []
            for j, row in enumerate(g_rows):
                improved, done = self._observe(row, stats[0][pos + j], stats[1][pos + j], int(stats[2][pos + j]),
                                               tops[pos + j], boundary[pos + j])
                if done:
                    finished.append(row)
                else:
                    step_j.append(j)
                    step_improved.append(improved)
            if step_j:
                slots = torch.tensor([g_rows[j].slot for j in step_j], device=device)
                group.W[slots] = group.rule.step(slots, group.W[slots], grad[torch.tensor(step_j, device=device)],
                                                 torch.tensor(step_improved, device=device), group.best_w[slots])
                for j in step_j:
                    g_rows[j].handle.evaluations += 1
            pos += len(g_rows)
        for row in order:
            if row not in finished:
                row.it += 1
        self.steps_run += 1
        with self._lock:
            for row in finished:
                self._rows.remove(row)
                row.group.free.append(row.slot)
            left = len(self._rows) + len(self._pending)
        for row in finished:
            row.handle._done.set()
        return left

    def _admit(self) -> list[_Row]:
        """Give the configs that arrived since the last step their slots; returns every active row."""
        with self._lock:
            joining = list(self._pending)
            self._pending.clear()
        # Slots are taken here, in the stepping thread, so that no other thread ever touches the state tensors.
        for row in joining:
            group = self._groups.get(row.gkey)
            if group is None:
                group = self._groups[row.gkey] = _Group(row.make_rule, row.spec.param, row.w0, self.capacity)
            row.group, row.slot = group, group.take(row.w0)
            row.w0 = None
        with self._lock:
            self._rows.extend(joining)
            return list(self._rows)

    def _forward(self, groups: list[list[_Row]], order: list[_Row], need: bool):
        """Per row of ``order``: [p(target)], [p(source)], [argmax] and its top-5 (id, p) pairs; and, when
        ``need``, each group's gradient."""
        device, domain, k = self.device, self.domain, len(order)
        leaves, deltas = [], []
        with torch.enable_grad():
            for g_rows in groups:
                group = g_rows[0].group
                wv = group.W[torch.tensor([r.slot for r in g_rows], device=device)].detach().requires_grad_(True)
                leaves.append(wv)
                deltas.append(to_domain(wv, domain, group.param))
            delta = torch.cat(deltas)
            images = torch.stack([r.image for r in order])
            locs = torch.tensor([r.loc for r in order], dtype=torch.long)
            n_run = 1 << max(0, k - 1).bit_length() if self.pad else k  # next power of two
            if n_run > k:
                fill = torch.zeros(n_run - k, dtype=torch.long)
                images = torch.cat([images, images[fill.to(device)]])
                delta = torch.cat([delta, delta[fill.to(device)]])
                locs = torch.cat([locs, locs[fill]])
            logits = patched_logits(self.model, images, delta, locs, domain)[:k]
            tgts = torch.tensor([r.target for r in order], device=device)
            srcs = torch.tensor([r.source for r in order], device=device)
            score = torch.zeros((), device=device)
            for kind in sorted({r.spec.loss for r in order}):
                sel = torch.tensor([j for j, r in enumerate(order) if r.spec.loss == kind], device=device)
                score = score + target_minus_source(logits[sel], tgts[sel], srcs[sel], kind).sum()
            grads = torch.autograd.grad(score, leaves) if need else [None] * len(leaves)
        probs = torch.softmax(logits.detach().float(), dim=1)
        rr = torch.arange(k, device=device)
        stats = torch.stack([probs[rr, tgts], probs[rr, srcs], probs.argmax(1).to(probs.dtype)]).cpu().tolist()
        top = probs.topk(5, dim=1)
        return stats, [list(zip(i, p)) for i, p in zip(top.indices.cpu().tolist(), top.values.cpu().tolist())], grads

    def _observe(self, row: _Row, pt: float, ps: float, arg: int, top5, boundary: bool) -> tuple[bool, bool]:
        """Record one row's step (history, handle, callback) and finish it when it is done: (improved, done)."""
        h, group = row.handle, row.group
        row.cur = (pt, ps, arg)
        improved = pt > h.best_p
        if improved:
            h.best_p, row.best_ps, row.best_arg = pt, ps, arg
            group.best_w[row.slot] = group.W[row.slot]
        h.top5 = [(int(a), float(b)) for a, b in top5]
        for name, value in (("p_target", pt), ("p_source", ps), ("evaluations", h.evaluations),
                            ("top5", [[a, round(b, 6)] for a, b in h.top5])):
            row.hist[name].append(value)
        h.p_target, h.p_source, h.iteration = pt, ps, row.it
        if h.watch_patch:
            h.latest_patch = to_domain(group.W[row.slot].detach(), self.domain, group.param).cpu().clone()
        if h.callback is not None:  # before this step's update: evaluations as train_patch reports them
            h.callback(StepInfo(row.it, pt, ps, list(h.top5), restarts=[pt], leader=0,
                                evaluations=h.evaluations, patch=h.latest_patch))
        cancelled = h.cancelled
        if pt >= row.spec.stop_at:
            self._finish(row, use_best=False, cancelled=False)
        elif cancelled or boundary:
            self._finish(row, use_best=True, cancelled=cancelled and not boundary)
        else:
            return improved, False
        return improved, True

    def _finish(self, row: _Row, use_best: bool, cancelled: bool) -> None:
        h, group = row.handle, row.group
        w = group.best_w[row.slot] if use_best else group.W[row.slot]
        p_t, p_s, arg = (h.best_p, row.best_ps, row.best_arg) if use_best else row.cur
        spec = row.spec
        meta = {**spec.meta(), "restarts": 1, "schedule": [(1, spec.steps)], "local": False, "leader": 0,
                "shared_batch": True}
        h.result = PatchResult(
            patch=to_domain(w.detach(), self.domain, group.param).cpu().clone(), loc=row.loc, target=row.target,
            source=row.source, domain=self.domain, size=self.size, steps=row.it,
            success={"confident": p_t >= spec.stop_at, "argmax": arg == row.target, "not_source": arg != row.source},
            p_target=p_t, p_source=p_s, seconds=time.perf_counter() - row.t0, history=row.hist,
            model_name=getattr(self.model, "name", type(self.model).__name__), input_size=self.input_size,
            loss=spec.loss, stop_at=spec.stop_at, cancelled=cancelled, evaluations=h.evaluations, meta=meta)

    def run_until_idle(self, stop: threading.Event | None = None) -> None:
        """Step until no config is active or waiting (or ``stop`` is set): the loop of a worker thread."""
        while not (stop is not None and stop.is_set()):
            if self.step() == 0:
                return


_SHAREABLE = ({f.name for f in dataclasses.fields(TrainingSpec)} - {"local", "pad_batches"}) | {"spec", "source",
                                                                                              "generator"}


def shared_options(model, image: torch.Tensor, target, loc=(0, 0), **options) -> dict | None:
    """The :meth:`SharedBatch.add` arguments that train exactly what ``train_patch(model, image, target, loc,
    **options)`` trains, or None when a shared batch cannot: restarts resolving to more than one, a ReLU6 leak
    (resolved as train_patch does: "auto" leaks below the default area), an image not at the model's input size,
    an option ``add`` does not take (a callback or cancel, which the caller passes itself), an invalid value (left
    for train_patch to refuse). ``size`` and ``domain`` are always filled in: they pick the batch.
    Example: >>> opts = shared_options(model, img, 859, (0, 0), steps=500); batch.add(**opts)"""
    if set(options) - _SHAREABLE or not isinstance(image, torch.Tensor):
        return None
    input_size = int(getattr(model, "input_size", 224))
    if tuple(image.shape) != (3, input_size, input_size):
        return None
    fields = {k: v for k, v in options.items() if k not in ("spec", "source", "generator")}
    try:
        spec = TrainingSpec.of(options.get("spec"), **fields).resolve(model, input_size)
    except (TypeError, ValueError):
        return None
    if spec.restarts != 1 or spec.relu6_leak:
        return None
    out = {k: v for k, v in options.items() if k != "relu6_leak"}  # resolved to none: add's default
    out.update(image=image, target=target, loc=loc, size=spec.size, domain=spec.domain, restarts=1)
    return out
