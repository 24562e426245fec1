"""Single-image LaVAN training: one loop that trains a batch of independent configs.

Each config (image, target, source, location) owns its own patches and stops on its own when p(target) reaches
``stop_at``; finished configs leave the batch, so the remaining ones run faster. Row state (one row = one restart of
one config) lives in plain tensors indexed by row id, which is what lets rows leave without disturbing the others.

Three pieces: the *stage loop* (:func:`_stage_loop`: evaluate, report, stop, update), the *update rule* (an
:mod:`attack.optim` rule, :func:`attack.optim.domain_rule`) and the *schedule* (:func:`attack.optim.halving_schedule`,
applied at each stage boundary by :meth:`_Batch.next_stage`). Every setting comes from an
:class:`attack.spec.TrainingSpec`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .fast import LocalForward, patch_boxes
from .losses import target_minus_source
from .optim import RULES, domain_rule, halving_schedule, relu6_backward, single_row_rule
from .patch import apply_patch, as_locs, check_loc, from_domain, patched_logits, to_domain
from .results import PatchResult
from .spec import INITS, TrainingSpec

__all__ = ["train_patch", "train_patches", "TrainingSpec", "StepInfo", "Cancelled", "OPTIMIZERS", "is_cancelled",
           "start_params", "single_row_rule"]

OPTIMIZERS = RULES


def __getattr__(name: str):
    """The defaults (``default_patch_size``, ``DEFAULTS``, …) live in :mod:`attack.spec`; imports from here work."""
    from . import spec
    if name in spec.__all__:
        return getattr(spec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _bucket(k: int, n: int) -> int:
    """The padded batch size for k active rows out of n: the next power of two, at most n."""
    return min(n, 1 << max(0, k - 1).bit_length())


class Cancelled(Exception):
    """Raised by callers that want to abort; trainers themselves return partial results instead."""


@dataclass
class StepInfo:
    """What a training step reports to the callback. ``restarts``: p(target) of every restart of the config
    (None once dropped by successive halving); ``leader``: index of the restart with the highest p; ``evaluations``:
    forward+backward evaluations spent so far; ``patch``: the leading restart's current patch (CPU), or None."""
    iteration: int
    p_target: float
    p_source: float
    top5: list[tuple[int, float]]
    index: int = 0  # config index in a batched run
    restarts: list[float | None] = field(default_factory=list)
    leader: int = 0
    evaluations: int = 0
    patch: torch.Tensor | None = None


def is_cancelled(cancel) -> bool:
    """Whether ``cancel`` (None, a threading.Event or a callable) says stop."""
    return cancel is not None and bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


def _init_images(n: int, restarts: int, size: int, init: str, generator, seeds) -> torch.Tensor:
    """(n*restarts,3,s,s) starting patches in [0,1], config-major. ``"mixed"``: the first half of each config's
    restarts uniform noise, the rest flat colours with every channel 0 or 1 (corners of the RGB cube)."""
    if init not in INITS:  # checked by TrainingSpec.resolve too; start_params has other callers
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    out = []
    for c in range(n):
        gen = torch.Generator().manual_seed(int(seeds[c])) if seeds is not None else generator
        if init == "gray":
            out.append(torch.full((restarts, 3, size, size), 0.5))
            continue
        noise = torch.rand(restarts, 3, size, size, generator=gen)
        if init == "mixed" and restarts > 1:
            n_flat = restarts // 2
            colours = torch.randint(0, 2, (n_flat, 3, 1, 1), generator=gen).float()
            noise[restarts - n_flat:] = colours.expand(n_flat, 3, size, size)
        out.append(noise)
    return torch.cat(out)


def _ids(value, n: int, name: str) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.long).cpu()
    if t.dim() == 0:
        t = t.expand(n)
    if t.shape != (n,):
        raise ValueError(f"{name}: expected one id or {n} ids, got shape {tuple(t.shape)}")
    if ((t < 0) | (t >= 1000)).any():
        raise ValueError(f"{name}: class ids must lie in 0..999")
    return t.clone()


def start_params(n: int, size: int, domain: str, param: str, model, generator, device,
                 init: str = "random", restarts: int = 1, seeds=None) -> torch.Tensor:
    """The optimised tensor ``w`` for ``n`` configs × ``restarts`` fresh patches (config-major), in the space the
    trainers step in: normalised pixels (network domain), sigmoid logits or pixels (image domain)."""
    start = _init_images(n, restarts, size, init, generator, seeds).to(device)
    return model.normalize(start) if domain == "network" else from_domain(start, "image", param)


def _local_forward(model, images: torch.Tensor, device: torch.device, local: bool | None):
    """A :class:`attack.models.LocalForward` over the clean ``images`` when asked (or by default on a CPU, where
    the early layers' full maps dominate a step), else None; a model it does not support gives None."""
    if local is False or (local is None and device.type != "cpu"):
        return None
    try:
        return LocalForward(model, images)
    except (ValueError, AttributeError, TypeError, RuntimeError):
        if local:
            raise
    return None


class _Batch:
    """The rows of one batched run, config-major (``R`` restarts per config), and what each step does to them."""

    def __init__(self, model, images, targets, sources, locs, spec: TrainingSpec, schedule, W, record_top5: bool):
        n, R, device = images.shape[0], schedule[0][0], W.device
        self.model, self.images, self.targets, self.sources, self.locs = model, images, targets, sources, locs
        self.spec, self.schedule, self.R, self.record_top5, self.W = spec, schedule, R, record_top5, W
        self.rule = domain_rule(spec.optimizer, spec.lr, spec.domain, spec.param, model)
        self.rule.init(W)
        self.best_w, self.best_p = W.clone(), torch.full((n * R,), -1.0)
        self.best_ps, self.cur_pt, self.cur_ps = torch.zeros(n * R), torch.zeros(n * R), torch.zeros(n * R)
        self.best_arg, self.cur_arg = torch.zeros(n * R, dtype=torch.long), torch.zeros(n * R, dtype=torch.long)
        self.conf_of, self.alive = torch.arange(n * R) // R, torch.ones(n * R, dtype=torch.bool)
        self.conf_done, self.evals = torch.zeros(n, dtype=torch.bool), [0] * n
        self.hist = [{"p_target": [], "p_source": [], "evaluations": []} for _ in range(n)]
        self.hist_rows: list[list[list[float]]] = [[[] for _ in range(R)] for _ in range(n)]
        self.hist_top5: list[list] = [[] for _ in range(n)]
        self.results: list[PatchResult | None] = [None] * n
        self.tgt_rows, self.src_rows = targets[self.conf_of].to(device), sources[self.conf_of].to(device)
        self.img_rows = self.conf_of.to(device)
        self.pad = (device.type == "cuda") if spec.pad_batches is None else bool(spec.pad_batches)
        self.lf = _local_forward(model, images, device, spec.local)
        self.t0 = time.perf_counter()

    def evaluate(self, idx: torch.Tensor, need_grad: bool):
        """Logits of the active rows ``idx`` (k,C) and, when ``need_grad``, the score's gradient for each row."""
        k, spec, device = len(idx), self.spec, self.W.device
        run = torch.cat([idx, idx[:1].expand(_bucket(k, len(self.alive)) - k)]) if self.pad else idx
        run_dev = run.to(device)
        wv = self.W[run_dev].detach().requires_grad_(need_grad)
        leak = spec.relu6_leak if need_grad else 0.0
        with torch.set_grad_enabled(need_grad), relu6_backward(self.model, leak, leak):
            delta = to_domain(wv, spec.domain, spec.param)
            run_locs = self.locs[self.conf_of[run]]
            if self.lf is None:
                logits = patched_logits(self.model, self.images[self.img_rows[run_dev]], delta, run_locs, spec.domain)
            else:
                # one box per row where places differ (reproduce chunks, vulnerability map): their union is the image
                boxes = patch_boxes(run_locs, spec.size)
                box = tuple(boxes[0].tolist()) if bool((boxes == boxes[:1]).all()) else boxes
                x = apply_patch(self.images[self.img_rows[run_dev]], delta, run_locs, spec.domain, self.model)
                logits = self.lf(x, self.img_rows[run_dev], box, spec.domain)
            score = (target_minus_source(logits, self.tgt_rows[run_dev], self.src_rows[run_dev], spec.loss)
                     if need_grad else None)
        # The backward pass is queued before the probabilities are read back, so the GPU never waits for the
        # host between the two; rows that finish this step simply do not use their gradient.
        grad = torch.autograd.grad(score[:k].sum(), wv)[0][:k] if need_grad else None  # hooks hold no state
        return logits.detach()[:k], grad

    def observe(self, idx: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Record each row's p(target), p(source) and argmax, and its best point so far: (probs, improved)."""
        probs = torch.softmax(logits.float(), dim=1)
        rr = torch.arange(len(idx), device=probs.device)
        idx_dev = idx.to(self.W.device)
        stats = torch.stack([probs[rr, self.tgt_rows[idx_dev]], probs[rr, self.src_rows[idx_dev]],
                             probs.argmax(1).to(probs.dtype)]).cpu()
        pt, ps, arg = stats[0], stats[1], stats[2].long()
        self.cur_pt[idx], self.cur_ps[idx], self.cur_arg[idx] = pt, ps, arg
        improved = pt > self.best_p[idx]
        if improved.any():
            up = idx[improved]
            self.best_p[up], self.best_ps[up], self.best_arg[up] = pt[improved], ps[improved], arg[improved]
            self.best_w[up.to(self.W.device)] = self.W[up.to(self.W.device)]
        return probs, improved

    def report(self, it: int, idx: torch.Tensor, probs: torch.Tensor, callback, on_step) -> list[int]:
        """Append each active config's leading restart to its history and call the callbacks; returns the configs."""
        R, cur_pt, alive = self.R, self.cur_pt, self.alive
        confs = sorted(set(self.conf_of[idx].tolist()))
        lead_row = {}
        for c in confs:
            rows_c = idx[self.conf_of[idx] == c]
            lead = lead_row[c] = int(rows_c[cur_pt[rows_c].argmax()])
            h = self.hist[c]
            h["p_target"].append(float(cur_pt[lead]))
            h["p_source"].append(float(self.cur_ps[lead]))
            h["evaluations"].append(self.evals[c])
            for r in range(R):
                if alive[c * R + r]:
                    self.hist_rows[c][r].append(float(cur_pt[c * R + r]))
        pos = {int(r): j for j, r in enumerate(idx.tolist())}
        if self.record_top5:
            for c in confs:
                top = probs[pos[lead_row[c]]].topk(5)
                self.hist_top5[c].append([[int(a), round(float(b), 6)] for a, b in
                                          zip(top.indices.tolist(), top.values.tolist())])
        if callback is not None:
            callback(it, confs, probs[[pos[lead_row[c]] for c in confs]].cpu())
        if on_step is not None:
            spec = self.spec
            on_step({"iteration": it, "configs": confs,
                     "restarts": {c: [float(cur_pt[c * R + r]) if alive[c * R + r] else None for r in range(R)]
                                  for c in confs},
                     "leader": {c: lead_row[c] % R for c in confs},
                     "evaluations": {c: self.evals[c] for c in confs},
                     "probs": {c: probs[pos[lead_row[c]]].cpu() for c in confs},
                     "patch": {c: to_domain(self.W[lead_row[c]].detach(), spec.domain, spec.param).cpu()
                               for c in confs}})
        return confs

    def settle(self, it: int, idx: torch.Tensor, confs: list[int], cancelled: bool, final: bool) -> None:
        """Finish every config that reached ``stop_at`` (at its best current restart), or, when cancelled or at the
        end of the last stage, at its best point so far."""
        for c in confs:
            rows_c = idx[self.conf_of[idx] == c]
            if (self.cur_pt[rows_c] >= self.spec.stop_at).any():
                self.finish(it, c, int(rows_c[self.cur_pt[rows_c].argmax()]), use_best=False, cancelled=False)
            elif cancelled or final:
                self.finish(it, c, int(rows_c[self.best_p[rows_c].argmax()]), use_best=True,
                            cancelled=cancelled and not final)

    def finish(self, it: int, c: int, row: int, use_best: bool, cancelled: bool) -> None:
        spec = self.spec
        patch_w = self.best_w[row] if use_best else self.W[row]
        p_t = float(self.best_p[row] if use_best else self.cur_pt[row])
        p_s = float(self.best_ps[row] if use_best else self.cur_ps[row])
        arg = int(self.best_arg[row] if use_best else self.cur_arg[row])
        tgt, src = int(self.targets[c]), int(self.sources[c])
        hist = dict(self.hist[c])
        if self.R > 1:
            hist["restarts"] = self.hist_rows[c]
        if self.record_top5:
            hist["top5"] = self.hist_top5[c]
        self.results[c] = PatchResult(
            patch=to_domain(patch_w.detach(), spec.domain, spec.param).cpu().clone(),
            loc=tuple(self.locs[c].tolist()), target=tgt, source=src, domain=spec.domain, size=spec.size, steps=it,
            success={"confident": p_t >= spec.stop_at, "argmax": arg == tgt, "not_source": arg != src},
            p_target=p_t, p_source=p_s, seconds=time.perf_counter() - self.t0, history=hist,
            model_name=getattr(self.model, "name", type(self.model).__name__), input_size=self.images.shape[-1],
            loss=spec.loss, stop_at=spec.stop_at, cancelled=cancelled, evaluations=self.evals[c],
            meta={**spec.meta(), "restarts": self.R, "schedule": self.schedule, "local": self.lf is not None,
                  "leader": int(row % self.R)})
        self.conf_done[c] = True
        self.alive[self.conf_of == c] = False

    def next_stage(self, rows: int) -> None:
        """Successive halving: each remaining config keeps its ``rows`` best restarts (by best p so far), which go
        on from their best point with fresh rule state."""
        idx = torch.nonzero(self.alive).flatten()
        device = self.W.device
        for c in sorted(set(self.conf_of[idx].tolist())):
            rows_c = idx[self.conf_of[idx] == c]
            order = self.best_p[rows_c].argsort(descending=True, stable=True)
            self.alive[rows_c[order[rows:]]] = False
            keep = rows_c[order[:rows]].to(device)
            self.W[keep] = self.best_w[keep]
            self.rule.reset(keep, self.best_w[keep])

    def update(self, idx: torch.Tensor, grad: torch.Tensor, improved: torch.Tensor) -> None:
        """One step of the update rule for the rows of ``idx`` that are still alive."""
        keep = self.alive[idx]
        rows = idx[keep].to(self.W.device)
        self.W[rows] = self.rule.step(rows, self.W[rows], grad[keep.to(self.W.device)],
                                      improved[keep].to(self.W.device), self.best_w[rows])
        for c in self.conf_of[idx[keep]].tolist():
            self.evals[c] += 1


def _stage_loop(b: _Batch, cancel, callback, on_step, progress) -> list[PatchResult]:
    """Step every active row until each config has finished: evaluate (a forward-only check of the final point at
    each stage boundary), record, report, stop, then halve the restarts (boundary) or update them."""
    schedule = b.schedule
    stage, stage_it, it = 0, 0, 0
    while True:
        idx = torch.nonzero(b.alive).flatten()
        boundary = stage_it >= schedule[stage][1]
        logits, grad = b.evaluate(idx, need_grad=not boundary)
        probs, improved = b.observe(idx, logits)
        confs = b.report(it, idx, probs, callback, on_step)
        b.settle(it, idx, confs, is_cancelled(cancel), final=boundary and stage == len(schedule) - 1)
        if b.conf_done.all():
            break
        if boundary:
            stage, stage_it = stage + 1, 0
            b.next_stage(schedule[stage][0])
        else:
            b.update(idx, grad, improved)
            stage_it += 1
        it += 1
        if progress is not None:
            progress(it - 1, int((~b.conf_done).sum()))
    return list(b.results)  # type: ignore[arg-type]


def _prepare(model, images: torch.Tensor, targets, locs, spec: TrainingSpec, sources, seeds, generator,
           record_top5: bool) -> _Batch:
    """Check the inputs, resolve ``spec`` and set up the batch (starting points drawn here)."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N,3,H,W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    if getattr(model, "input_size", h) != h:
        raise ValueError(f"images are {h}x{w} but the model runs at {model.input_size}x{model.input_size}")
    spec = spec.resolve(model, input_size=h)
    if seeds is None and spec.seed is not None:
        seeds = [spec.seed] * n
    if seeds is not None and len(seeds) != n:
        raise ValueError(f"seeds: expected {n} values, got {len(seeds)}")
    locs_t = as_locs(locs, n)
    for top, left in locs_t.tolist():
        check_loc((top, left), spec.size, h)
    device = next(model.buffers()).device
    images = images.to(device)
    targets_t = _ids(targets, n, "target")
    with torch.no_grad():
        sources_t = model(images).argmax(1).cpu() if sources is None else _ids(sources, n, "source")
    schedule = halving_schedule(spec.restarts, spec.steps, spec.halving)
    R = schedule[0][0]  # the schedule uses fewer restarts when the budget is too small for all of them
    W = start_params(n, spec.size, spec.domain, spec.param, model, generator, device, spec.init, R, seeds)
    return _Batch(model, images, targets_t, sources_t, locs_t, spec, schedule, W, record_top5)


def train_patches(model, images: torch.Tensor, targets, locs, spec: TrainingSpec | None = None, *, sources=None,
                  seeds=None, generator: torch.Generator | None = None,
                  callback: Callable[[int, list[int], torch.Tensor], None] | None = None,
                  on_step: Callable[[dict], None] | None = None, cancel=None, progress=None,
                  **fields) -> list[PatchResult]:
    """Train one LaVAN patch per config in a single batched loop (Karmon et al. 2018, arXiv:1801.02608).

    Every config trains ``spec.restarts`` patches side by side (rows of one batch) under successive halving
    (:func:`attack.optim.halving_schedule`): at the end of each stage only the best ``1/halving`` of a config's
    restarts (by best p(target) so far) go on, each from its best point. A config stops as soon as any of its
    restarts reaches ``stop_at``, or when its budget of ``steps`` forward+backward evaluations (restarts ×
    iterations) is spent; it then returns its best patch.

    Args:
        images: (N,3,H,W) in [0,1] at the model's input size. targets, sources: int or (N,) class ids
            (sources default to each clean image's argmax). locs: (top, left) or (N,2).
        spec: a :class:`attack.spec.TrainingSpec` (Default: every default, resolved for this model and patch
            size); ``fields``: TrainingSpec fields that replace the spec's (``size=42, steps=500``).
        generator / seeds: randomness of the initial patches; ``seeds`` (one int per config; Default: ``spec.seed``
            for every config) makes each config's start independent of the batch it runs in.
        callback(iteration, config_ids, probs): every iteration, the probabilities of each active config's leading
            restart. on_step(dict): every iteration, per active config its restarts' p(target) (None when dropped),
            leading restart, evaluations so far and that restart's current patch.
        cancel: a threading.Event (or callable) — when set, every active config stops and is marked cancelled.
        progress(iteration, configs_left): after every iteration.
    Returns: list of PatchResult in config order; ``steps`` counts iterations, ``evaluations`` forward+backward
    evaluations (the two are equal with one restart); ``history["restarts"]`` holds every restart's p(target) curve.
    Example: >>> res = train_patches(model, imgs, targets=859, locs=[(0, 0), (0, 168)], steps=500)
    """
    batch = _prepare(model, images, targets, locs, TrainingSpec.of(spec, **fields), sources, seeds, generator,
                   record_top5=False)
    return _stage_loop(batch, cancel, callback, on_step, progress)


def train_patch(model, image: torch.Tensor, target, loc=(0, 0), spec: TrainingSpec | None = None, *, source=None,
                generator: torch.Generator | None = None, callback: Callable[[StepInfo], None] | None = None,
                cancel=None, **fields) -> PatchResult:
    """Train a LaVAN patch for one image at one location (Karmon et al. 2018, arXiv:1801.02608).

    Args: image (3,H,W) in [0,1]; target, source: class ids (source defaults to the clean argmax); loc: (top, left);
    spec: a :class:`attack.spec.TrainingSpec` (``spec.seed``: the config's own seed, the same start as in any batch
    given the same seed), ``fields`` replacing its fields (``size=42, steps=500, seed=0``).
    ``callback`` receives a :class:`StepInfo` (iteration, p_target, p_source, top-5 of the leading restart, every
    restart's p(target), evaluations, the leading patch) every iteration. ``cancel``: threading.Event or callable.
    Returns: PatchResult(patch, loc, history, steps, evaluations, success, …) with ``history["top5"]``.
    Example: >>> res = train_patch(model, img, target=859, loc=(0, 0))
    """
    if image.dim() != 3:
        raise ValueError(f"image must be (3,H,W), got {tuple(image.shape)}")
    tgt = int(_ids(target, 1, "target")[0])
    with torch.no_grad():
        src = int(model(image.unsqueeze(0).to(next(model.buffers()).device)).argmax(1)[0] if source is None
                  else _ids(source, 1, "source")[0])
    on_step = None
    if callback is not None:
        def on_step(d):
            p = d["probs"][0]
            top = p.topk(5)
            callback(StepInfo(d["iteration"], float(p[tgt]), float(p[src]),
                              [(int(c), float(v)) for c, v in zip(top.indices.tolist(), top.values.tolist())],
                              restarts=d["restarts"][0], leader=d["leader"][0], evaluations=d["evaluations"][0],
                              patch=d["patch"][0]))
    batch = _prepare(model, image.unsqueeze(0), tgt, [tuple(loc)], TrainingSpec.of(spec, **fields), [src], None,
                   generator, record_top5=True)
    return _stage_loop(batch, cancel, None, on_step, None)[0]
