"""Expectation over transformation (EOT) for Brown et al.'s adversarial patch (arXiv:1712.09665).

Brown's patch is trained to survive random scale, rotation and location; LaVAN's is not. This module places a
square patch on an image canvas with a differentiable affine warp (``affine_grid`` + ``grid_sample``) and trains a
universal patch with the target cross-entropy objective over such random placements.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .losses import target_minus_source
from .patch import to_domain
from .results import PatchResult
from .train import default_lr, is_cancelled, single_row_rule, start_params

__all__ = ["EOTParams", "random_eot_params", "eot_paste", "train_brown"]


@dataclass
class EOTParams:
    """Per-image placement: ``scale`` (side multiplier), ``angle`` (radians), ``center`` (N,2) (row, col) px."""
    scale: torch.Tensor
    angle: torch.Tensor
    center: torch.Tensor


def random_eot_params(n: int, image_size: int, size: int, scale=(0.8, 1.2), max_angle: float = 22.5,
                      generator: torch.Generator | None = None) -> EOTParams:
    """Random scale in ``scale``, angle in ±``max_angle`` degrees, and a centre that keeps the (unrotated,
    scaled) patch inside the image. Brown et al. use rotations up to 22.5° and a range of scales."""
    lo, hi = float(scale[0]), float(scale[1])
    if not 0 < lo <= hi:
        raise ValueError("scale must be (lo, hi) with 0 < lo <= hi")
    s = lo + (hi - lo) * torch.rand(n, generator=generator)
    a = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(max_angle)
    half = (s * size / 2).clamp(max=image_size / 2)
    u = torch.rand(n, 2, generator=generator)
    c = half.unsqueeze(1) + u * (image_size - 2 * half).unsqueeze(1)
    return EOTParams(s, a, c)


def eot_paste(images: torch.Tensor, patch: torch.Tensor, params: EOTParams) -> torch.Tensor:
    """Warp ``patch`` (3,s,s) or (N,3,s,s) onto ``images`` (N,3,H,W) by scale, rotation and centre; differentiable
    in the patch. Outside the warped square the images are unchanged: ``x' = (1 - m) x + m T(δ)``."""
    n, c, h, w = images.shape
    if patch.dim() == 3:
        patch = patch.unsqueeze(0).expand(n, -1, -1, -1)
    s = patch.shape[-1]
    dev, dt = images.device, images.dtype
    side = params.scale.to(dev, dt) * s  # displayed side in px
    cos, sin = torch.cos(params.angle).to(dev, dt), torch.sin(params.angle).to(dev, dt)
    # output normalised (xo, yo) -> pixel offset from centre d = (w/2*xo + ax, h/2*yo + ay) (align_corners=False)
    cy, cx = params.center[:, 0].to(dev, dt), params.center[:, 1].to(dev, dt)
    ax, ay = w / 2 - 0.5 - cx, h / 2 - 0.5 - cy
    k = 2.0 / side
    # patch coords = k * R(-angle) d
    theta = torch.stack([
        torch.stack([k * cos * w / 2, k * sin * h / 2, k * (cos * ax + sin * ay)], 1),
        torch.stack([-k * sin * w / 2, k * cos * h / 2, k * (-sin * ax + cos * ay)], 1)], 1)
    grid = F.affine_grid(theta, [n, c + 1, h, w], align_corners=False)
    src = torch.cat([patch.to(dt), torch.ones_like(patch[:, :1], dtype=dt)], 1)
    warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    canvas, mask = warped[:, :c], warped[:, c:]
    return images * (1 - mask) + canvas * mask


def train_brown(model, images: torch.Tensor, target: int, *, size: int, steps: int = 1000, batch_size: int = 1,
                scale=(0.8, 1.2), max_angle: float = 22.5, loss: str = "target_ce", lr: float | None = None,
                stop_at: float = 0.9, patience: int = 30, generator: torch.Generator | None = None,
                cancel=None) -> PatchResult:
    """Universal image-domain patch trained Brown-style: maximise log p(target) (``loss="target_ce"``) over random
    images and random EOT placements (scale, rotation, location), Adam on a sigmoid-parametrised patch.

    Stops like :func:`attack.train_universal`: p(target) ≥ ``stop_at`` on every drawn image for ``patience``
    consecutive steps, or ``steps``. Returns a PatchResult with ``loc=None``.
    Example: >>> res = train_brown(model, train_imgs, target=859, size=56, steps=500)
    """
    device = next(model.buffers()).device
    n, _, h, _ = images.shape
    lr = float(lr if lr is not None else default_lr("adam", "image"))
    with torch.no_grad():
        clean = torch.cat([model(images[i:i + 64].to(device)).argmax(1).cpu() for i in range(0, n, 64)])
    usable = torch.nonzero(clean != target).flatten()
    if len(usable) == 0:
        raise ValueError("every training image is already classified as the target")
    w = start_params(1, size, "image", "sigmoid", model, generator, device)[0]
    update = single_row_rule("adam", lr, "image", "sigmoid", model, w)
    hist, streak, t0, step = [], 0, time.perf_counter(), 0
    for step in range(1, steps + 1):
        pick = usable[torch.randint(0, len(usable), (batch_size,), generator=generator)]
        prm = random_eot_params(batch_size, h, size, scale, max_angle, generator)
        x = images[pick].to(device)
        wv = w.detach().requires_grad_(True)
        logits = model(eot_paste(x, to_domain(wv, "image"), prm))
        score = target_minus_source(logits, target, clean[pick].to(device), loss)
        pt = torch.softmax(logits.detach().float(), 1)[:, target]
        streak = streak + 1 if bool((pt >= stop_at).all()) else 0
        hist.append(float(pt.mean()))
        if streak >= patience or is_cancelled(cancel):
            break
        (g,) = torch.autograd.grad(score.sum(), wv)
        w = update(wv.detach(), g, False)
    return PatchResult(patch=to_domain(w.detach(), "image").cpu(), loc=None, target=int(target), source=None,
                       domain="image", size=size, steps=step, success={"converged": streak >= patience},
                       p_target=hist[-1] if hist else 0.0, p_source=0.0, seconds=time.perf_counter() - t0,
                       history={"p_target": hist}, model_name=getattr(model, "name", ""), input_size=h, loss=loss,
                       stop_at=stop_at,
                       meta={"method": "brown-eot", "scale": list(scale), "max_angle": max_angle, "lr": lr,
                             "batch_size": batch_size, "patience": patience})
