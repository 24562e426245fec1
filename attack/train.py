"""Single-image LaVAN training: one loop that trains a batch of independent configs.

Each config (image, target, source, location) owns its own patch and stops on its own when p(target) reaches
``stop_at``; finished configs leave the batch, so the remaining ones run faster. The optimiser state lives in
plain tensors indexed by config, which is what lets rows leave without disturbing the others.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from .losses import target_minus_source
from .patch import as_locs, check_loc, from_domain, patched_logits, size_for_area, to_domain
from .results import PatchResult

__all__ = ["train_patch", "train_patches", "StepInfo", "Cancelled", "OPTIMIZERS", "DEFAULT_AREA",
           "default_patch_size", "default_lr", "is_cancelled"]

OPTIMIZERS = ("adam", "sgd", "sign")
# Default patch area for the app and CLI, chosen by measurement (README: smallest area where >= 80% of random
# corner configs reach p >= 0.9 within 1,000 iterations on the default model).
DEFAULT_AREA = 0.08


def default_patch_size(input_size: int) -> int:
    return size_for_area(DEFAULT_AREA, input_size)


def default_lr(optimizer: str, domain: str) -> float:
    """Default step sizes. Adam: probed with bench/tune_lr.py (network domain, 6 corner configs at 6.25% area:
    lr 0.03 -> 4/6 ok, median 219 it; 0.1 -> 4/6, 261 it; 0.3 -> 3/6; image domain, sigmoid space: 0.1 -> 3/6,
    0.3 -> 4/6, median 245 it). Plain gradient ("sgd", the paper's
    method): lr chosen so that the first step has the same mean size as Adam's (mean |grad| at a random patch
    is ~0.007 in the network domain and ~0.0025 in sigmoid space)."""
    table = {("adam", "network"): 0.05, ("adam", "image"): 0.3,
             ("sgd", "network"): 7.0, ("sgd", "image"): 120.0,
             ("sign", "network"): 0.01, ("sign", "image"): 0.05}
    return table[(optimizer, domain)]


def _bucket(k: int, n: int) -> int:
    """The padded batch size for k active configs out of n: the next power of two, at most n."""
    return min(n, 1 << max(0, k - 1).bit_length())


class Cancelled(Exception):
    """Raised by callers that want to abort; trainers themselves return partial results instead."""


@dataclass
class StepInfo:
    """What a training step reports to the callback."""
    iteration: int
    p_target: float
    p_source: float
    top5: list[tuple[int, float]]
    index: int = 0  # config index in a batched run


def is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return bool(cancel.is_set())
    return bool(cancel())


def _init_w(n: int, size: int, domain: str, param: str, model, generator, device, init: str) -> torch.Tensor:
    if init == "random":
        img = torch.rand(n, 3, size, size, generator=generator)
    elif init == "gray":
        img = torch.full((n, 3, size, size), 0.5)
    else:
        raise ValueError(f"unknown init {init!r}; choose 'random' or 'gray'")
    img = img.to(device)
    if domain == "network":
        return model.normalize(img)
    return from_domain(img, "image", param)


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
                  domain: str = "network", loss: str = "logprob", steps: int = 10_000, lr: float | None = None,
                  optimizer: str = "adam", stop_at: float = 0.9, param: str = "sigmoid", init: str = "random",
                  generator: torch.Generator | None = None,
                  callback: Callable[[int, list[int], torch.Tensor], None] | None = None,
                  cancel=None, record_top5: bool = False, progress=None,
                  pad_batches: bool | None = None) -> list[PatchResult]:
    """Train one LaVAN patch per config in a single batched loop (Karmon et al. 2018, arXiv:1801.02608).

    Args:
        images: (N,3,H,W) in [0,1] at the model's input size. targets, sources: int or (N,) class ids
            (sources default to each clean image's argmax). locs: (top, left) or (N,2).
        size: patch side (Default: ``default_patch_size(H)``). domain: "network" | "image". loss: see
            :mod:`attack.losses`. steps: max gradient updates per config (paper: 10,000).
        lr: step size (Default: :func:`default_lr`). optimizer: "adam" (default), "sgd" (the paper's plain
            gradient steps) or "sign". stop_at: p(target) threshold that ends a config (paper: 0.9).
        param: image domain only — "sigmoid" reparametrisation or "clamp" projection.
        callback(iteration, config_ids, probs): called every iteration with the active configs' probabilities.
        cancel: a threading.Event (or callable) — when set, every active config stops and is marked cancelled.
        pad_batches: pad the shrinking batch to powers of two (Default: on CUDA only; see bench/speed.py).
    Returns: list of PatchResult in config order; ``steps`` counts the updates applied before the final patch.
    Example: >>> res = train_patches(model, imgs, targets=859, locs=[(0, 0), (0, 168)], steps=500)
    """
    if domain not in ("network", "image"):
        raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if param not in ("sigmoid", "clamp"):
        raise ValueError("param must be 'sigmoid' or 'clamp'")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if not 0.0 < stop_at <= 1.0:
        raise ValueError("stop_at must lie in (0, 1]")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (N,3,H,W), got {tuple(images.shape)}")
    n, _, h, w = images.shape
    if h != w:
        raise ValueError(f"images must be square, got {h}x{w}")
    if getattr(model, "input_size", h) != h:
        raise ValueError(f"images are {h}x{w} but the model runs at {model.input_size}x{model.input_size}")
    size = default_patch_size(h) if size is None else int(size)  # size=0 is an error (check_loc), not "default"
    locs_t = as_locs(locs, n)
    for top, left in locs_t.tolist():
        check_loc((top, left), size, h)
    device = next(model.buffers()).device
    images = images.to(device)
    targets_t = _ids(targets, n, "target")
    if sources is None:
        with torch.no_grad():
            sources_t = model(images).argmax(1).cpu()
    else:
        sources_t = _ids(sources, n, "source")
    lr = float(lr if lr is not None else default_lr(optimizer, domain))

    W = _init_w(n, size, domain, param, model, generator, device, init)
    M = torch.zeros_like(W)
    V = torch.zeros_like(W)
    b1, b2, eps = 0.9, 0.999, 1e-8
    hist_pt: list[list[float]] = [[] for _ in range(n)]
    hist_ps: list[list[float]] = [[] for _ in range(n)]
    hist_top5: list[list] = [[] for _ in range(n)]
    results: list[PatchResult | None] = [None] * n
    active = torch.arange(n)
    t0 = time.perf_counter()
    tgt_dev, src_dev = targets_t.to(device), sources_t.to(device)
    pad = (device.type == "cuda") if pad_batches is None else bool(pad_batches)
    for it in range(steps + 1):
        idx = active
        k = len(idx)
        # On a GPU every new batch shape costs cuDNN a fresh plan search for each convolution, and configs leave
        # one by one; padding the batch to the next power of two (repeats of the first row, whose outputs are
        # dropped) keeps the shapes to a handful.
        run = torch.cat([idx, idx[:1].expand(_bucket(k, n) - k)]) if pad else idx
        run_dev = run.to(device)
        idx_dev = run_dev[:k]
        wv = W[run_dev].detach().requires_grad_(True)
        delta = to_domain(wv, domain, param)
        logits = patched_logits(model, images[run_dev], delta, locs_t[run], domain)
        score = target_minus_source(logits, tgt_dev[run_dev], src_dev[run_dev], loss)
        # The backward pass is queued before the probabilities are read back, so the GPU never waits for the
        # host between the two; rows that finish this step simply do not use their gradient.
        grad = torch.autograd.grad(score[:k].sum(), wv)[0][:k] if it < steps else None
        probs = torch.softmax(logits.detach()[:k].float(), dim=1)
        rows = torch.arange(k, device=device)
        pt_ps = torch.stack([probs[rows, tgt_dev[idx_dev]], probs[rows, src_dev[idx_dev]]]).cpu()
        pt, ps = pt_ps[0], pt_ps[1]
        top = probs.topk(5, dim=1) if record_top5 else None
        for i, a, b in zip(idx.tolist(), pt.tolist(), ps.tolist()):
            hist_pt[i].append(a)
            hist_ps[i].append(b)
        if top is not None:
            for j, i in enumerate(idx.tolist()):
                hist_top5[i].append([[int(c), round(float(p), 6)] for c, p in
                                     zip(top.indices[j].tolist(), top.values[j].tolist())])
        if callback is not None:
            callback(it, idx.tolist(), probs.cpu())
        cancelled = is_cancelled(cancel)
        finished = (pt >= stop_at) | cancelled | (it == steps)
        if finished.any():
            argmax = probs.argmax(1).cpu()
            now = time.perf_counter() - t0
            for j in torch.nonzero(finished).flatten().tolist():
                i = int(idx[j])
                tgt, src = int(targets_t[i]), int(sources_t[i])
                results[i] = PatchResult(
                    patch=delta[j].detach().cpu().clone(), loc=tuple(locs_t[i].tolist()), target=tgt, source=src,
                    domain=domain, size=size, steps=it,
                    success={"confident": bool(pt[j] >= stop_at), "argmax": int(argmax[j]) == tgt,
                             "not_source": int(argmax[j]) != src},
                    p_target=float(pt[j]), p_source=float(ps[j]), seconds=now,
                    history={"p_target": hist_pt[i], "p_source": hist_ps[i],
                             **({"top5": hist_top5[i]} if record_top5 else {})},
                    model_name=getattr(model, "name", type(model).__name__), input_size=h, loss=loss,
                    stop_at=stop_at, cancelled=bool(cancelled and pt[j] < stop_at and it < steps),
                    meta={"optimizer": optimizer, "lr": lr, "param": param if domain == "image" else None,
                          "init": init})
        keep = ~finished
        if not keep.any():
            break
        keep_dev = keep.to(device)
        g = grad[keep_dev]
        rows_k = idx_dev[keep_dev]
        if optimizer == "adam":
            step = it + 1
            m = M[rows_k].mul_(b1).add_(g, alpha=1 - b1)
            v = V[rows_k].mul_(b2).addcmul_(g, g, value=1 - b2)
            M[rows_k], V[rows_k] = m, v
            upd = (m / (1 - b1 ** step)) / ((v / (1 - b2 ** step)).sqrt() + eps)
        elif optimizer == "sgd":
            upd = g
        else:
            upd = g.sign()
        new_w = W[rows_k] + lr * upd  # ascent: the score is maximised
        if domain == "image" and param == "clamp":
            new_w = new_w.clamp(0, 1)
        W[rows_k] = new_w
        active = idx[keep]
        if progress is not None:
            progress(it, int(keep.sum()))
    return [r for r in results]  # type: ignore[return-value]


def train_patch(model, image: torch.Tensor, target, loc=(0, 0), *, size: int | None = None, source=None,
                domain: str = "network", loss: str = "logprob", steps: int = 10_000, lr: float | None = None,
                optimizer: str = "adam", stop_at: float = 0.9, param: str = "sigmoid", init: str = "random",
                generator: torch.Generator | None = None, callback: Callable[[StepInfo], None] | None = None,
                cancel=None) -> PatchResult:
    """Train a LaVAN patch for one image at one location (Karmon et al. 2018, arXiv:1801.02608).

    Args: image (3,H,W) in [0,1]; target, source: class ids (source defaults to the clean argmax);
    loc: (top, left); other arguments as :func:`train_patches`. ``callback`` receives a :class:`StepInfo`
    (iteration, p_target, p_source, top-5) every iteration. ``cancel``: threading.Event or callable.
    Returns: PatchResult(patch, loc, history, steps, success, …) with ``history["top5"]`` per iteration.
    Example: >>> res = train_patch(model, img, target=859, loc=(0, 0))
    """
    if image.dim() != 3:
        raise ValueError(f"image must be (3,H,W), got {tuple(image.shape)}")
    cb = None
    if callback is not None:
        def cb(it, ids, probs):
            p = probs[0]
            top = p.topk(5)
            callback(StepInfo(it, float(p[res_target]), float(p[res_source[0]]),
                              [(int(c), float(v)) for c, v in zip(top.indices.tolist(), top.values.tolist())]))
    res_target = int(_ids(target, 1, "target")[0])
    if source is None:
        with torch.no_grad():
            dev = next(model.buffers()).device
            res_source = [int(model(image.unsqueeze(0).to(dev)).argmax(1)[0])]
    else:
        res_source = [int(_ids(source, 1, "source")[0])]
    return train_patches(model, image.unsqueeze(0), res_target, [tuple(loc)], size=size, sources=res_source,
                         domain=domain, loss=loss, steps=steps, lr=lr, optimizer=optimizer, stop_at=stop_at,
                         param=param, init=init, generator=generator, callback=cb, cancel=cancel,
                         record_top5=True)[0]
