"""Universal (transferable) LaVAN patches: one patch for many images at random locations (paper section 4.3)."""
from __future__ import annotations

import time
from typing import Callable

import torch

from .losses import target_minus_source
from .patch import patched_logits, random_locs, to_domain
from .results import PatchResult
from .train import (
    OPTIMIZERS,
    default_lr,
    default_param,
    default_patch_size,
    is_cancelled,
    single_row_rule,
    start_params,
)

__all__ = ["train_universal", "UniversalStep"]


class UniversalStep(dict):
    """Callback payload: iteration, p_target (mean over the mini-batch), streak (consecutive successes)."""


def train_universal(model, images: torch.Tensor, target: int, *, size: int | None = None, domain: str = "image",
                    loss: str = "logprob", stop_at: float = 0.9, patience: int = 30, max_steps: int = 5_000,
                    batch_size: int = 1, lr: float | None = None, optimizer: str = "adam", param: str | None = None,
                    generator: torch.Generator | None = None, callback: Callable[[dict], None] | None = None,
                    cancel=None) -> PatchResult:
    """Train one patch over a training set (Karmon et al. 2018, §4.3).

    Each step draws ``batch_size`` random training images and a random location for each; it stops once
    p(target) ≥ ``stop_at`` on every drawn image for ``patience`` consecutive steps (paper: 0.9 and 30), or at
    ``max_steps``. Images whose clean prediction already is the target are left out.
    Args: images (N,3,H,W) in [0,1]; target: class id; other arguments as :func:`attack.train_patches`.
    Returns: PatchResult with ``loc=None`` and history ``p_target`` (mean per step) and ``streak``.
    Example: >>> res = train_universal(model, train_imgs, target=859, size=56, max_steps=2000)
    """
    if patience < 1 or max_steps < 1 or batch_size < 1:
        raise ValueError("patience, max_steps and batch_size must be >= 1")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}")
    if domain not in ("image", "network"):
        raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
    device = next(model.buffers()).device
    n, _, h, _ = images.shape
    size = default_patch_size(h, model) if size is None else int(size)  # size=0 is an error (check_loc)
    lr = float(lr if lr is not None else default_lr(optimizer, domain))
    with torch.no_grad():
        clean = torch.cat([model(images[i:i + 64].to(device)).argmax(1).cpu() for i in range(0, n, 64)])
    usable = torch.nonzero(clean != target).flatten()
    if len(usable) == 0:
        raise ValueError("every training image is already classified as the target")
    param = param or default_param(optimizer)
    w = start_params(1, size, domain, param, model, generator, device)[0]
    update = single_row_rule(optimizer, lr, domain, param, model, w)
    best_pt = -1.0
    hist_pt, hist_ps, hist_streak = [], [], []
    streak, t0 = 0, time.perf_counter()
    step = 0
    cancelled = False
    for step in range(1, max_steps + 1):
        pick = usable[torch.randint(0, len(usable), (batch_size,), generator=generator)]
        locs = random_locs(batch_size, h, size, generator)
        x = images[pick].to(device)
        src = clean[pick].to(device)
        wv = w.detach().requires_grad_(True)
        delta = to_domain(wv, domain, param)
        logits = patched_logits(model, x, delta, locs, domain)
        score = target_minus_source(logits, target, src, loss)
        probs = torch.softmax(logits.detach().float(), 1)
        pt = probs[:, target]
        rows = torch.arange(batch_size, device=device)
        streak = streak + 1 if bool((pt >= stop_at).all()) else 0
        hist_pt.append(float(pt.mean()))
        hist_ps.append(float(probs[rows, src].mean()))
        hist_streak.append(streak)
        if callback is not None:
            callback(UniversalStep(iteration=step, p_target=hist_pt[-1], p_source=hist_ps[-1], streak=streak,
                                   patience=patience))
        if streak >= patience:
            break
        if is_cancelled(cancel):
            cancelled = True
            break
        (g,) = torch.autograd.grad(score.sum(), wv)
        improved = hist_pt[-1] > best_pt
        best_pt = max(best_pt, hist_pt[-1])
        w = update(wv.detach(), g, improved)
    patch = to_domain(w.detach(), domain, param).cpu()
    ok = streak >= patience
    return PatchResult(patch=patch, loc=None, target=int(target), source=None, domain=domain, size=size,
                       steps=step, success={"converged": ok},
                       p_target=hist_pt[-1] if hist_pt else 0.0, p_source=hist_ps[-1] if hist_ps else 0.0,
                       seconds=time.perf_counter() - t0,
                       history={"p_target": hist_pt, "p_source": hist_ps, "streak": hist_streak},
                       model_name=getattr(model, "name", ""), input_size=h, loss=loss, stop_at=stop_at,
                       cancelled=cancelled,
                       meta={"universal": True, "patience": patience, "batch_size": batch_size, "lr": lr,
                             "optimizer": optimizer, "train_images": int(len(usable)), "max_steps": max_steps})
