"""Moving a patch to other images, optionally with a border of its source image (paper: ~25% per side needed)."""
from __future__ import annotations

import torch

from .evaluate import success
from .fast import local_engine
from .patch import apply_patch, domain_logits

__all__ = ["border_paste", "border_transfer", "border_box"]


def border_box(loc, size: int, image_size: int, border: float) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the patch box grown by ``round(border * image_size)`` px on every side,
    clipped to the image. ``border`` is a fraction of the image side, per side."""
    if not 0.0 <= border <= 1.0:
        raise ValueError("border must be a fraction in [0, 1]")
    m = int(round(border * image_size))
    top, left = int(loc[0]), int(loc[1])
    return max(0, top - m), max(0, left - m), min(image_size, top + size + m), min(image_size, left + size + m)


def border_paste(src: torch.Tensor, dst: torch.Tensor, patch: torch.Tensor, loc, border: float,
                 domain: str = "network", model=None) -> torch.Tensor:
    """Model input for ``dst`` (N,3,H,W) carrying the patched ``src`` region (patch plus border) at the same place.

    Works in the domain's space: for ``network`` the result is normalised (feed it to ``model.net``).
    """
    patched_src = apply_patch(src, patch, loc, domain, model)  # (3,H,W) in the domain's space
    base = dst if domain == "image" else model.normalize(dst)
    t, l, b, r = border_box(loc, patch.shape[-1], src.shape[-1], border)
    out = base.clone()
    out[:, :, t:b, l:r] = patched_src[:, t:b, l:r].unsqueeze(0)
    return out


@torch.no_grad()
def border_transfer(model, src: torch.Tensor, dst: torch.Tensor, patch: torch.Tensor, loc, target: int,
                    borders=(0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5), domain: str = "network") -> dict:
    """Success of the patch (with a border of its source image) on other images, for each border fraction.

    Args: src (3,H,W) the image the patch was trained on; dst (N,3,H,W) other images; loc: where the patch sits.
    Returns: {"borders": [...], "confident": [...], "argmax": [...], "not_source": [...], "mean_p_target": [...],
    "area": [...], "top1": [[...]], "top1_p": [[...]], "p_target_each": [[...]]} — fractions over the destination
    images (each judged against its own clean argmax), the share of the image that was copied, and per border each
    destination image's top-1 class, its probability and p(target).
    """
    device = next(model.buffers()).device
    src, dst, patch = src.to(device), dst.to(device), patch.to(device)
    if dst.dim() == 3:
        dst = dst.unsqueeze(0)
    # a border paste changes each destination image only inside the border box: incremental on a folded
    # EfficientNet-Lite (attack.fast.LocalForward), the full forward on any other model
    engine = local_engine(model, dst, "image")
    clean = (engine.clean_logits if engine is not None else model(dst)).argmax(1).cpu()
    rows = torch.arange(dst.shape[0])
    out = {"borders": [], "confident": [], "argmax": [], "not_source": [], "mean_p_target": [], "area": [],
           "top1": [], "top1_p": [], "p_target_each": []}
    h = src.shape[-1]
    for b in borders:
        x = border_paste(src, dst, patch, loc, float(b), domain, model)
        t, l, bt, r = border_box(loc, patch.shape[-1], h, float(b))
        logits = domain_logits(model, x, domain) if engine is None else engine(x, rows, (t, bt, l, r), domain)
        probs = torch.softmax(logits.float(), 1).cpu()
        crit = success(probs, target, clean)
        out["borders"].append(float(b))
        for k, v in crit.items():
            out[k].append(float(v.float().mean()))
        out["mean_p_target"].append(float(probs[:, target].mean()))
        out["area"].append((bt - t) * (r - l) / float(h * h))
        top_p, top = probs.max(1)
        out["top1"].append(top.tolist())
        out["top1_p"].append([round(float(v), 4) for v in top_p])
        out["p_target_each"].append([round(float(v), 4) for v in probs[:, target]])
    return out
