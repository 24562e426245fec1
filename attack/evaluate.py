"""The paper's three success criteria, for one image, a batch or a held-out set."""
from __future__ import annotations

import torch

from .patch import as_locs, patched_logits

__all__ = ["success", "evaluate_patch"]


def success(probs: torch.Tensor, target, source) -> dict[str, torch.Tensor]:
    """Boolean ``(N,)`` tensors: ``confident`` p(target) ≥ 0.9, ``argmax`` target is top-1, ``not_source``
    source is no longer top-1. ``source`` may be one id or (N,) ids."""
    n = probs.shape[0]
    t = torch.as_tensor(target, dtype=torch.long).expand(n) if torch.as_tensor(target).dim() == 0 \
        else torch.as_tensor(target, dtype=torch.long)
    s = torch.as_tensor(source, dtype=torch.long).expand(n) if torch.as_tensor(source).dim() == 0 \
        else torch.as_tensor(source, dtype=torch.long)
    top = probs.argmax(1).cpu()
    pt = probs.cpu()[torch.arange(n), t]
    return {"confident": pt >= 0.9, "argmax": top == t, "not_source": top != s}


@torch.no_grad()
def evaluate_patch(model, images: torch.Tensor, patch: torch.Tensor, locs, target: int, sources=None,
                   domain: str = "image", batch_size: int = 32, exclude_target: bool = True,
                   threshold: float = 0.9) -> dict:
    """Paste one patch on each image at its location and score the paper's criteria.

    Args: images (N,3,H,W); locs (top,left) or (N,2); sources: the clean labels (Default: clean argmax).
    Images whose clean prediction already is the target are left out (``exclude_target``).
    Returns: {"n", "confident", "argmax", "not_source", "mean_p_target"} as fractions, plus per-image
    ``p_target`` and ``pred`` lists.
    """
    device = next(model.buffers()).device
    n = images.shape[0]
    locs_t = as_locs(locs, n)
    probs_all, clean_all = [], []
    for i in range(0, n, batch_size):
        x = images[i:i + batch_size].to(device)
        clean_all.append(torch.softmax(model(x).float(), 1).cpu())
        logits = patched_logits(model, x, patch.to(device), locs_t[i:i + batch_size], domain)
        probs_all.append(torch.softmax(logits.float(), 1).cpu())
    probs, clean = torch.cat(probs_all), torch.cat(clean_all)
    src = clean.argmax(1) if sources is None else torch.as_tensor(sources, dtype=torch.long).expand(n)
    keep = (src != target) if exclude_target else torch.ones(n, dtype=torch.bool)
    crit = success(probs, target, src)
    k = int(keep.sum())
    out = {"n": k}
    for name, v in crit.items():
        out[name] = float(v[keep].float().mean()) if k else float("nan")
    out["mean_p_target"] = float(probs[keep, target].mean()) if k else float("nan")
    out["p_target"] = probs[:, target].tolist()
    out["pred"] = probs.argmax(1).tolist()
    out["clean_pred"] = src.tolist()
    out["kept"] = keep.tolist()
    return out
