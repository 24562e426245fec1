"""Single-image LaVAN training: one loop that trains a batch of independent configs.

Each config (image, target, source, location) owns its own patch and stops on its own when p(target) reaches
``stop_at``; finished configs leave the batch, so the remaining ones run faster. The optimiser state lives in
plain tensors indexed by config, which is what lets rows leave without disturbing the others.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from .losses import target_minus_source
from .optim import RULES, Polish, halving_schedule, make_rule, relu6_backward
from .patch import apply_patch, as_locs, check_loc, from_domain, patched_logits, size_for_area, to_domain
from .results import PatchResult

__all__ = ["train_patch", "train_patches", "StepInfo", "Cancelled", "OPTIMIZERS", "DEFAULT_AREA",
           "default_patch_size", "default_lr", "default_param", "default_restarts", "RESTARTS_SMALL",
           "default_relu6_leak", "default_loss", "resolve_loss", "LOSS_SMALL", "default_fields", "resolve_relu6_leak", "resolve_leak_last", "leak_fields", "LEAK_SMALL", "is_cancelled", "start_params", "single_row_rule", "check_options", "DEFAULTS", "INITS"]

OPTIMIZERS = RULES
# Default patch area for the app and CLI, chosen by measurement (README: smallest area where >= 80% of random
# corner configs reach p >= 0.9 within 1,000 iterations on the default model).
DEFAULT_AREA = 0.08
# The default attack (update rule, restarts, loss, initialisation). See README "Attack strength" and
# bench/ablation.py for the measurements behind each choice.
DEFAULTS = {"optimizer": "adam", "restarts": "auto", "loss": "auto", "init": "mixed", "rule_options": {},
            "relu6_leak": "auto", "leak_last_stage": True}
# "auto" restarts: one patch at the default area or larger (Adam alone reached p >= 0.9 on 9/10 configs at 8%),
# RESTARTS_SMALL under successive halving below it (42x42 on 224, 2,000 evaluations: README "Attack strength").
RESTARTS_SMALL = 8
# "auto" ReLU6 leak: none at the default area or larger, LEAK_SMALL below it (42x42 on 224, image domain, 2,000
# evaluations, seeds 1 and 2: 7/20 reach p >= 0.9 with adam-r8-lk5 against 5/20 for adam-r8; README "Attack strength").
LEAK_SMALL = 0.05
# "auto" loss: logprob at the default area or larger, LOSS_SMALL below it. margin_ce equals logprob while the source
# leads and pushes down a third class when one leads; paired with logprob (42x42 on 224, 8 restarts with the leak,
# 2,000 evaluations) it ended with a higher p(target) on most configs where they differ (README "loss-paired").
LOSS_SMALL = "margin_ce"
INITS = ("random", "gray", "mixed")


def default_patch_size(input_size: int) -> int:
    return size_for_area(DEFAULT_AREA, input_size)


def default_restarts(size: int, input_size: int) -> int:
    """Restarts for ``restarts="auto"``: 1 at the default area or larger, :data:`RESTARTS_SMALL` below it."""
    return 1 if size >= default_patch_size(input_size) else RESTARTS_SMALL


def default_relu6_leak(size: int, input_size: int) -> float:
    """ReLU6 backward leak for ``relu6_leak="auto"``: 0 at the default area or larger, :data:`LEAK_SMALL` below it."""
    return 0.0 if size >= default_patch_size(input_size) else LEAK_SMALL


def default_loss(size: int, input_size: int) -> str:
    """Objective for ``loss="auto"``: "logprob" at the default area or larger, :data:`LOSS_SMALL` below it."""
    return "logprob" if size >= default_patch_size(input_size) else LOSS_SMALL


def resolve_loss(loss: str | None, size: int, input_size: int) -> str:
    """The objective a training uses: None = ``DEFAULTS["loss"]``, "auto" = :func:`default_loss`."""
    loss = loss or DEFAULTS["loss"]
    return default_loss(size, input_size) if loss == "auto" else loss


def default_fields(size: int, input_size: int) -> dict:
    """What a training with default options uses at this patch side: ``restarts``, ReLU6 ``leak``, the ``loss`` and
    Adam's step size per domain, ``lr`` (the area table of the defaults, :func:`lab.tables.default_area_cells`,
    reads rows trained with exactly these)."""
    return dict(restarts=default_restarts(size, input_size), leak=default_relu6_leak(size, input_size),
                loss=default_loss(size, input_size),
                lr={d: default_lr(DEFAULTS["optimizer"], d) for d in ("image", "network")})


def resolve_relu6_leak(relu6_leak, size: int, input_size: int) -> float:
    """The leak a training uses: None = ``DEFAULTS["relu6_leak"]``, "auto" = :func:`default_relu6_leak`."""
    leak = DEFAULTS["relu6_leak"] if relu6_leak is None else relu6_leak
    leak = default_relu6_leak(size, input_size) if leak == "auto" else float(leak)
    if not 0.0 <= leak <= 1.0:
        raise ValueError(f"relu6_leak must be in [0, 1] (or 'auto'), got {relu6_leak}")
    return leak


def resolve_leak_last(leak_last_stage: bool | None) -> bool:
    """Whether the last halving stage leaks too: None = ``DEFAULTS["leak_last_stage"]``."""
    return DEFAULTS["leak_last_stage"] if leak_last_stage is None else bool(leak_last_stage)


def leak_fields(size: int, input_size: int, relu6_leak=None, leak_last_stage: bool | None = None) -> dict:
    """The ReLU6-leak options a training with these arguments uses, as cache-key fields and ``train_patch``
    keywords (a field left out is the default the training resolves to itself): empty without a leak, so the keys
    of trainings from before the leak existed stay valid."""
    leak = resolve_relu6_leak(relu6_leak, size, input_size)
    if not leak:
        return {}
    last = resolve_leak_last(leak_last_stage)
    return {"relu6_leak": leak, **({} if last else {"leak_last_stage": False})}


def default_param(optimizer: str) -> str:
    """Image-domain parametrisation: Adam and plain gradient train sigmoid parameters, signed rules train the
    pixels themselves with a projection to [0,1] (a signed step in sigmoid space is not a pixel step)."""
    return "clamp" if optimizer in ("sign", "apgd") else "sigmoid"


def default_lr(optimizer: str, domain: str) -> float:
    """Default step sizes. Adam: probed with bench/tune_lr.py (network domain, 6 corner configs at 6.25% area:
    lr 0.03 -> 4/6 ok, median 219 it; 0.1 -> 4/6, 261 it; 0.3 -> 3/6; the default 0.05 lies between the two best
    probed values and was not itself probed; image domain, sigmoid space: 0.1 -> 3/6, 0.3 -> 4/6, median 245 it).
    Plain gradient ("sgd", the paper's method): lr chosen so that the first step has the same mean size as Adam's
    (mean |grad| at a random patch is ~0.007 in the network domain and ~0.0025 in sigmoid space). "apgd": the
    initial signed step in pixel units (0.2 of the [0,1] range; in the network domain it is scaled by 1/std so that
    it is the same pixel step)."""
    table = {("adam", "network"): 0.05, ("adam", "image"): 0.3,
             ("sgd", "network"): 7.0, ("sgd", "image"): 120.0,
             ("sign", "network"): 0.01, ("sign", "image"): 0.05,
             ("apgd", "network"): 0.2, ("apgd", "image"): 0.2}
    if (optimizer, domain) not in table:
        raise ValueError(f"unknown optimizer/domain {optimizer!r}/{domain!r}")
    return table[(optimizer, domain)]


def check_options(optimizer: str, param: str, steps: int, stop_at: float) -> None:
    """The training options every trainer of this module's rows shares (train_patches, attack.scheduler)."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if param not in ("sigmoid", "clamp"):
        raise ValueError("param must be 'sigmoid' or 'clamp'")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if not 0.0 < stop_at <= 1.0:
        raise ValueError("stop_at must lie in (0, 1]")


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
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def _init_images(n: int, restarts: int, size: int, init: str, generator, seeds) -> torch.Tensor:
    """(n*restarts,3,s,s) starting patches in [0,1], config-major. ``"mixed"``: the first half of each config's
    restarts uniform noise, the rest flat colours with every channel 0 or 1 (corners of the RGB cube)."""
    if init not in INITS:
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


def train_patches(model, images: torch.Tensor, targets, locs, *, size: int | None = None, sources=None,
                  domain: str = "network", loss: str | None = None, steps: int = 10_000, lr: float | None = None,
                  optimizer: str | None = None, restarts: int | str | None = None, halving: int = 4,
                  stop_at: float = 0.9, param: str | None = None, init: str | None = None,
                  generator: torch.Generator | None = None, seeds=None,
                  callback: Callable[[int, list[int], torch.Tensor], None] | None = None,
                  on_step: Callable[[dict], None] | None = None,
                  cancel=None, record_top5: bool = False, progress=None,
                  pad_batches: bool | None = None, st_relu6: bool = False,
                  relu6_leak: float | str | None = None, leak_last_stage: bool | None = None,
                  relu6_tau: float = 0.0, tau_last_stage: bool = True, rule_options: dict | None = None,
                  local: bool | None = None) -> list[PatchResult]:
    """Train one LaVAN patch per config in a single batched loop (Karmon et al. 2018, arXiv:1801.02608).

    Every config trains ``restarts`` patches side by side (rows of one batch) under successive halving
    (:func:`attack.optim.halving_schedule`): at the end of each stage only the best ``1/halving`` of a config's
    restarts (by best p(target) so far) go on, each from its best point. A config stops as soon as any of its
    restarts reaches ``stop_at``, or when its budget of ``steps`` forward+backward evaluations (restarts ×
    iterations) is spent; it then returns its best patch.

    Args:
        images: (N,3,H,W) in [0,1] at the model's input size. targets, sources: int or (N,) class ids
            (sources default to each clean image's argmax). locs: (top, left) or (N,2).
        size: patch side (Default: ``default_patch_size(H)``). domain: "network" | "image". loss: see
            :mod:`attack.losses`, or "auto" (:func:`default_loss`; Default: ``DEFAULTS["loss"]``). steps: budget of
            forward+backward evaluations per config, summed over its restarts (paper: 10,000 iterations of one patch).
        lr: step size (Default: :func:`default_lr`). optimizer: an update rule of :mod:`attack.optim` — "adam",
            "sgd" (the paper's plain gradient steps), "sign" or "apgd" (Default: ``DEFAULTS["optimizer"]``).
        restarts: patches per config, or "auto" (:func:`default_restarts`; Default: ``DEFAULTS["restarts"]``);
            halving: keep 1/halving at each stage.
        stop_at: p(target) threshold that ends a config (paper: 0.9).
        param: image domain only — "sigmoid" reparametrisation or "clamp" projection (Default: by rule).
        init: "random" (uniform noise), "gray" or "mixed" (half noise, half flat 0/1 colours).
        generator / seeds: randomness of the initial patches; ``seeds`` (one int per config) makes each config's
            start independent of the batch it runs in.
        callback(iteration, config_ids, probs): every iteration, the probabilities of each active config's leading
            restart. on_step(dict): every iteration, per active config its restarts' p(target) (None when dropped),
            leading restart, evaluations so far and that restart's current patch.
        cancel: a threading.Event (or callable) — when set, every active config stops and is marked cancelled.
        pad_batches: pad the shrinking batch to powers of two (Default: on CUDA only; see bench/speed.py).
        st_relu6: back-propagate through ReLU6 as through ReLU (:func:`attack.optim.straight_through_relu6`).
        relu6_leak: back-propagate this share of the gradient through both clips of every ReLU6 (units off or
            saturated; :func:`attack.optim.relu6_backward`); with ``st_relu6`` the clip at 6 passes all of it.
            "auto": :func:`default_relu6_leak` (0 at the default area or larger). Default: ``DEFAULTS``.
        relu6_tau: with a leak, units outside ReLU6's range also pass exp(−distance/relu6_tau) of the gradient
            (:func:`attack.optim.relu6_backward`; 0 = off, the default). tau_last_stage: False = not in the last
            halving stage (there only the flat leak, as ``leak_last_stage`` allows).
        leak_last_stage: False = the last halving stage follows the true gradient (the leak only in the stages
            before it). Default: ``DEFAULTS``.
        rule_options: fields of the update rule (e.g. ``{"patience": 20}`` halves Adam's step on a stall).
        local: run the early layers only where the patches reach (:class:`attack.models.LocalForward`, the same
            logits and gradients up to float rounding). Default: on a CPU whenever the model supports it; any
            failure to set it up falls back to the full forward.
    Returns: list of PatchResult in config order; ``steps`` counts iterations, ``evaluations`` forward+backward
    evaluations (the two are equal with one restart); ``history["restarts"]`` holds every restart's p(target) curve.
    Example: >>> res = train_patches(model, imgs, targets=859, locs=[(0, 0), (0, 168)], steps=500)
    """
    optimizer = optimizer or DEFAULTS["optimizer"]
    init = init or DEFAULTS["init"]
    restarts = restarts if restarts is not None else DEFAULTS["restarts"]
    param = param or default_param(optimizer)
    if domain not in ("network", "image"):
        raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
    check_options(optimizer, param, steps, stop_at)
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N,3,H,W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    if getattr(model, "input_size", h) != h:
        raise ValueError(f"images are {h}x{w} but the model runs at {model.input_size}x{model.input_size}")
    if seeds is not None and len(seeds) != n:
        raise ValueError(f"seeds: expected {n} values, got {len(seeds)}")
    size = default_patch_size(h) if size is None else int(size)  # size=0 is an error (check_loc), not "default"
    locs_t = as_locs(locs, n)
    for top, left in locs_t.tolist():
        check_loc((top, left), size, h)
    restarts = default_restarts(size, h) if restarts == "auto" else int(restarts)
    loss = resolve_loss(loss, size, h)
    relu6_leak = resolve_relu6_leak(relu6_leak, size, h)
    leak_last_stage = resolve_leak_last(leak_last_stage)
    if restarts < 1:
        raise ValueError("restarts must be >= 1 (or 'auto')")
    if not relu6_tau >= 0:
        raise ValueError(f"relu6_tau must be >= 0, got {relu6_tau}")
    device = next(model.buffers()).device
    images = images.to(device)
    targets_t = _ids(targets, n, "target")
    if sources is None:
        with torch.no_grad():
            sources_t = model(images).argmax(1).cpu()
    else:
        sources_t = _ids(sources, n, "source")
    lr = float(lr if lr is not None else default_lr(optimizer, domain))
    schedule = halving_schedule(restarts, steps, halving)
    R = schedule[0][0]  # the schedule uses fewer restarts when the budget is too small for all of them

    # Rows: config-major, R per config. Row state lives in tensors indexed by row id.
    W = start_params(n, size, domain, param, model, generator, device, init, R, seeds)
    rule_options = dict(DEFAULTS["rule_options"].get(optimizer, {}) if rule_options is None else rule_options)
    rule = _domain_rule(optimizer, lr, domain, param, model, **rule_options)
    rule.init(W)
    rule.begin_stage(torch.arange(n * R, device=device), schedule[0][1], len(schedule) == 1)
    best_w = W.clone()
    best_p = torch.full((n * R,), -1.0)
    best_ps = torch.zeros(n * R)
    best_arg = torch.zeros(n * R, dtype=torch.long)
    conf_of = torch.arange(n * R) // R
    alive = torch.ones(n * R, dtype=torch.bool)
    conf_done = torch.zeros(n, dtype=torch.bool)
    evals = [0] * n
    hist_pt: list[list[float]] = [[] for _ in range(n)]
    hist_ps: list[list[float]] = [[] for _ in range(n)]
    hist_ev: list[list[int]] = [[] for _ in range(n)]
    hist_rows: list[list[list[float]]] = [[[] for _ in range(R)] for _ in range(n)]
    hist_top5: list[list] = [[] for _ in range(n)]
    results: list[PatchResult | None] = [None] * n
    t0 = time.perf_counter()
    tgt_rows, src_rows = targets_t[conf_of].to(device), sources_t[conf_of].to(device)
    img_rows = conf_of.to(device)
    pad = (device.type == "cuda") if pad_batches is None else bool(pad_batches)
    lf = _local_forward(model, images, device, local)
    stage, stage_it, it = 0, 0, 0

    def finish(c: int, row: int, use_best: bool, cancelled: bool) -> None:
        patch_w = best_w[row] if use_best else W[row]
        p_t = float(best_p[row]) if use_best else float(cur_pt[row])
        p_s = float(best_ps[row]) if use_best else float(cur_ps[row])
        arg = int(best_arg[row]) if use_best else int(cur_arg[row])
        tgt, src = int(targets_t[c]), int(sources_t[c])
        hist = {"p_target": hist_pt[c], "p_source": hist_ps[c], "evaluations": hist_ev[c]}
        if R > 1:
            hist["restarts"] = hist_rows[c]
        if record_top5:
            hist["top5"] = hist_top5[c]
        results[c] = PatchResult(
            patch=to_domain(patch_w.detach(), domain, param).cpu().clone(), loc=tuple(locs_t[c].tolist()),
            target=tgt, source=src, domain=domain, size=size, steps=it,
            success={"confident": p_t >= stop_at, "argmax": arg == tgt, "not_source": arg != src},
            p_target=p_t, p_source=p_s, seconds=time.perf_counter() - t0, history=hist,
            model_name=getattr(model, "name", type(model).__name__), input_size=h, loss=loss,
            stop_at=stop_at, cancelled=cancelled, evaluations=evals[c],
            meta={"optimizer": optimizer, "lr": lr, "param": param if domain == "image" else None,
                  "init": init, "restarts": R, "halving": halving, "schedule": schedule, "st_relu6": st_relu6,
                  "relu6_leak": relu6_leak, "leak_last_stage": leak_last_stage,
                  **({"relu6_tau": relu6_tau, "tau_last_stage": tau_last_stage} if relu6_tau else {}),
                  "rule_options": rule_options, "local": lf is not None,
                  "leader": int(row % R)})
        conf_done[c] = True
        alive[conf_of == c] = False

    cur_pt = torch.zeros(n * R)
    cur_ps = torch.zeros(n * R)
    cur_arg = torch.zeros(n * R, dtype=torch.long)
    while True:
        idx = torch.nonzero(alive).flatten()
        k = len(idx)
        stage_rows, stage_iters = schedule[stage]
        last_stage = stage == len(schedule) - 1
        boundary = stage_it >= stage_iters  # this forward only checks the stage's final point
        need_grad = not boundary
        run = torch.cat([idx, idx[:1].expand(_bucket(k, n * R) - k)]) if pad else idx
        run_dev = run.to(device)
        wv = W[run_dev].detach().requires_grad_(need_grad)
        leak = relu6_leak if (leak_last_stage or not last_stage) else 0.0
        below, above = (leak, 1.0 if st_relu6 else leak) if need_grad else (0.0, 0.0)
        tau = relu6_tau if (need_grad and leak and (tau_last_stage or not last_stage)) else 0.0
        with torch.set_grad_enabled(need_grad), relu6_backward(model, below, above, tau):
            delta = to_domain(wv, domain, param)
            if lf is None:
                logits = patched_logits(model, images[img_rows[run_dev]], delta, locs_t[conf_of[run]], domain)
            else:
                run_locs = locs_t[conf_of[run]]
                box = (int(run_locs[:, 0].min()), int(run_locs[:, 0].max()) + size,
                       int(run_locs[:, 1].min()), int(run_locs[:, 1].max()) + size)
                x = apply_patch(images[img_rows[run_dev]], delta, run_locs, domain, model)
                logits = lf(x, img_rows[run_dev], box, domain)
            score = target_minus_source(logits, tgt_rows[run_dev], src_rows[run_dev], loss) if need_grad else None
        # The backward pass is queued before the probabilities are read back, so the GPU never waits for the
        # host between the two; rows that finish this step simply do not use their gradient.
        grad = torch.autograd.grad(score[:k].sum(), wv)[0][:k] if need_grad else None  # hooks hold no state
        probs = torch.softmax(logits.detach()[:k].float(), dim=1)
        rr = torch.arange(k, device=device)
        idx_dev = run_dev[:k]
        stats = torch.stack([probs[rr, tgt_rows[idx_dev]], probs[rr, src_rows[idx_dev]],
                             probs.argmax(1).to(probs.dtype)]).cpu()
        pt, ps, arg = stats[0], stats[1], stats[2].long()
        cur_pt[idx], cur_ps[idx], cur_arg[idx] = pt, ps, arg
        improved = pt > best_p[idx]
        if improved.any():
            up = idx[improved]
            best_p[up], best_ps[up], best_arg[up] = pt[improved], ps[improved], arg[improved]
            best_w[up.to(device)] = W[up.to(device)]
        confs = sorted(set(conf_of[idx].tolist()))
        lead_row = {}
        for c in confs:
            rows_c = idx[conf_of[idx] == c]
            lead = int(rows_c[cur_pt[rows_c].argmax()])
            lead_row[c] = lead
            hist_pt[c].append(float(cur_pt[lead]))
            hist_ps[c].append(float(cur_ps[lead]))
            hist_ev[c].append(evals[c])
            for r in range(R):
                row = c * R + r
                if alive[row]:
                    hist_rows[c][r].append(float(cur_pt[row]))
        pos = {int(r): j for j, r in enumerate(idx.tolist())}
        if record_top5:
            for c in confs:
                top = probs[pos[lead_row[c]]].topk(5)
                hist_top5[c].append([[int(a), round(float(b), 6)] for a, b in
                                     zip(top.indices.tolist(), top.values.tolist())])
        if callback is not None:
            callback(it, confs, probs[[pos[lead_row[c]] for c in confs]].cpu())
        if on_step is not None:
            on_step({"iteration": it, "configs": confs,
                     "restarts": {c: [float(cur_pt[c * R + r]) if alive[c * R + r] else None for r in range(R)]
                                  for c in confs},
                     "leader": {c: lead_row[c] % R for c in confs},
                     "evaluations": {c: evals[c] for c in confs},
                     "probs": {c: probs[pos[lead_row[c]]].cpu() for c in confs},
                     "patch": {c: to_domain(W[lead_row[c]].detach(), domain, param).cpu() for c in confs}})
        cancelled = is_cancelled(cancel)
        for c in confs:
            rows_c = idx[conf_of[idx] == c]
            ok = cur_pt[rows_c] >= stop_at
            if ok.any():
                finish(c, int(rows_c[cur_pt[rows_c].argmax()]), use_best=False, cancelled=False)
            elif cancelled or (boundary and last_stage):
                finish(c, int(rows_c[best_p[rows_c].argmax()]), use_best=True,
                       cancelled=cancelled and not (boundary and last_stage))
        if conf_done.all():
            break
        idx_keep = torch.nonzero(alive).flatten()
        if boundary:
            # Successive halving: each remaining config keeps its best restarts, which go on from their best point.
            next_rows, next_iters = schedule[stage + 1]
            for c in sorted(set(conf_of[idx_keep].tolist())):
                rows_c = idx_keep[conf_of[idx_keep] == c]
                order = best_p[rows_c].argsort(descending=True, stable=True)
                alive[rows_c[order[next_rows:]]] = False
                keep = rows_c[order[:next_rows]]
                W[keep.to(device)] = best_w[keep.to(device)]
                rule.reset(keep.to(device), best_w[keep.to(device)])
                rule.begin_stage(keep.to(device), next_iters, stage + 1 == len(schedule) - 1)
            stage, stage_it = stage + 1, 0
        else:
            keep_mask = alive[idx]
            rows_dev = idx[keep_mask].to(device)
            W[rows_dev] = rule.step(rows_dev, W[rows_dev], grad[keep_mask.to(device)],
                                    improved[keep_mask].to(device), best_w[rows_dev])
            for c in conf_of[idx[keep_mask]].tolist():
                evals[c] += 1
            stage_it += 1
        it += 1
        if progress is not None:
            progress(it - 1, int((~conf_done).sum()))
    return [r for r in results]  # type: ignore[return-value]


def _local_forward(model, images: torch.Tensor, device: torch.device, local: bool | None):
    """A :class:`attack.models.LocalForward` over the clean ``images`` when asked (or by default on a CPU, where
    the early layers' full maps dominate a step), else None; a model it does not support gives None."""
    if local is False or (local is None and device.type != "cpu"):
        return None
    try:
        from .models import LocalForward
        return LocalForward(model, images)
    except (ValueError, AttributeError, TypeError, RuntimeError):
        if local:
            raise
        return None


def start_params(n: int, size: int, domain: str, param: str, model, generator, device,
                 init: str = "random", restarts: int = 1, seeds=None) -> torch.Tensor:
    """The optimised tensor ``w`` for ``n`` configs × ``restarts`` fresh patches (config-major), in the space the
    trainers step in: normalised pixels (network domain), sigmoid logits or pixels (image domain)."""
    start = _init_images(n, restarts, size, init, generator, seeds).to(device)
    return model.normalize(start) if domain == "network" else from_domain(start, "image", param)


def _domain_rule(optimizer: str, lr: float, domain: str, param: str, model, **options):
    """The update rule for a patch in ``domain``: projected to [0,1] when image-domain pixels are trained directly;
    APGD's step scaled by 1/std in the network domain so that ``lr`` is the same pixel step in either domain."""
    project = (lambda x: x.clamp(0, 1)) if (domain == "image" and param == "clamp") else (lambda x: x)
    scale = (1.0 / model.std) if (domain == "network" and optimizer == "apgd") else 1.0
    options = dict(options)
    polish = int(options.pop("polish", 0) or 0)
    polish_seed = int(options.pop("polish_seed", 0))
    rule = make_rule(optimizer, lr, project, scale, **options)
    if polish > 0:
        # Random-search polish: its 0/1 colours in the space the rule steps in (a pixel 0/1 is a sigmoid logit ±3.9).
        def colour(rgb: torch.Tensor) -> torch.Tensor:
            if domain == "network":
                return model.normalize(rgb)
            return from_domain(rgb * 0.98 + 0.01, "image", param)
        rule = Polish(lr=lr, project=project, inner=rule, colour=colour, patience=polish, seed=polish_seed)
    return rule


def single_row_rule(optimizer: str, lr: float, domain: str, param: str, model, w: torch.Tensor):
    """An update rule for trainers of one patch (universal, Brown/EOT): returns ``step(w, grad, improved) -> w``
    with the rule's state kept in the closure, so every trainer shares :mod:`attack.optim`."""
    rule = _domain_rule(optimizer, lr, domain, param, model)
    rule.init(w.unsqueeze(0))
    row = torch.zeros(1, dtype=torch.long, device=w.device)
    best = {"w": w.detach().clone()}

    def step(w_now: torch.Tensor, grad: torch.Tensor, improved: bool) -> torch.Tensor:
        if improved:
            best["w"] = w_now.detach().clone()
        imp = torch.tensor([bool(improved)], device=w_now.device)
        return rule.step(row, w_now.unsqueeze(0), grad.unsqueeze(0), imp, best["w"].unsqueeze(0))[0]
    return step


def train_patch(model, image: torch.Tensor, target, loc=(0, 0), *, size: int | None = None, source=None,
                domain: str = "network", loss: str | None = None, steps: int = 10_000, lr: float | None = None,
                optimizer: str | None = None, restarts: int | str | None = None, stop_at: float = 0.9,
                param: str | None = None, init: str | None = None, generator: torch.Generator | None = None,
                seed: int | None = None, callback: Callable[[StepInfo], None] | None = None,
                cancel=None, relu6_leak: float | str | None = None,
                leak_last_stage: bool | None = None) -> PatchResult:
    """Train a LaVAN patch for one image at one location (Karmon et al. 2018, arXiv:1801.02608).

    Args: image (3,H,W) in [0,1]; target, source: class ids (source defaults to the clean argmax);
    loc: (top, left); steps: budget of forward+backward evaluations (restarts × iterations); seed: the config's
    own seed (same start as in any batch given the same seed); other arguments as :func:`train_patches`.
    ``callback`` receives a :class:`StepInfo` (iteration, p_target, p_source, top-5 of the leading restart, every
    restart's p(target), evaluations, the leading patch) every iteration. ``cancel``: threading.Event or callable.
    Returns: PatchResult(patch, loc, history, steps, evaluations, success, …) with ``history["top5"]``.
    Example: >>> res = train_patch(model, img, target=859, loc=(0, 0))
    """
    if image.dim() != 3:
        raise ValueError(f"image must be (3,H,W), got {tuple(image.shape)}")
    on_step = None
    if callback is not None:
        def on_step(d):
            p = d["probs"][0]
            top = p.topk(5)
            callback(StepInfo(d["iteration"], float(p[res_target]), float(p[res_source[0]]),
                              [(int(c), float(v)) for c, v in zip(top.indices.tolist(), top.values.tolist())],
                              restarts=d["restarts"][0], leader=d["leader"][0], evaluations=d["evaluations"][0],
                              patch=d["patch"][0]))
    res_target = int(_ids(target, 1, "target")[0])
    if source is None:
        with torch.no_grad():
            dev = next(model.buffers()).device
            res_source = [int(model(image.unsqueeze(0).to(dev)).argmax(1)[0])]
    else:
        res_source = [int(_ids(source, 1, "source")[0])]
    return train_patches(model, image.unsqueeze(0), res_target, [tuple(loc)], size=size, sources=res_source,
                         domain=domain, loss=loss, steps=steps, lr=lr, optimizer=optimizer, restarts=restarts,
                         stop_at=stop_at, param=param, init=init, generator=generator,
                         seeds=None if seed is None else [seed], on_step=on_step, cancel=cancel,
                         record_top5=True, relu6_leak=relu6_leak, leak_last_stage=leak_last_stage)[0]
