"""The paper's three success criteria, for one image, a batch or a held-out set."""
from __future__ import annotations

import torch

from .patch import as_locs, patched_logits

__all__ = ["success", "evaluate_patch", "transplant", "cross_model_eval"]


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


def transplant(patch: torch.Tensor, loc, from_size: int, to_size: int, size: int | None = None,
               clamp: bool = True) -> tuple[torch.Tensor, tuple[int, int]]:
    """A patch trained on ``from_size`` images, moved to ``to_size`` images: resized (bilinear, antialiased) to
    ``size`` px (Default: the same area share) and put at the same fraction of the free range, so a corner patch
    stays in its corner. On the same size it is returned unchanged. Returns (patch (3,size,size), (top, left))."""
    import torch.nn.functional as F

    old = patch.shape[-1]
    size = int(size or max(1, round(old * to_size / from_size)))
    if size != old:
        patch = F.interpolate(patch.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)[0]
        patch = patch.clamp(0, 1) if clamp else patch
    top = round(int(loc[0]) * (to_size - size) / max(1, from_size - old))
    left = round(int(loc[1]) * (to_size - size) / max(1, from_size - old))
    return patch, (top, left)


@torch.no_grad()
def cross_model_eval(model, image: torch.Tensor, patch: torch.Tensor, loc, target: int, *, from_size: int,
                     domain: str = "image", size: int | None = None, src_model=None) -> dict:
    """Show a patch trained on another model (at ``from_size``) to ``model``: the one definition of cross-model
    transfer, used by the Models page and ``reproduce crossmodel``.

    Geometry: :func:`transplant` (same area share unless ``size`` is given, same relative place). A network-domain
    patch is pasted unchanged when both models normalise alike, otherwise as its [0,1] image (``src_model``'s
    denormalisation). Args: image (3,H,W) in [0,1], resized (bicubic) to ``model.input_size`` if it is not.
    Returns: {"clean", "patched": (C,) probabilities, "confident", "argmax", "not_source": bool, "p_target",
    "size", "loc", "pasted_as"}.
    Example: >>> cross_model_eval(lite1, img240, res.patch, res.loc, res.target, from_size=224)["confident"]"""
    same_norm = src_model is not None and (model.spec.mean, model.spec.std) == (src_model.spec.mean,
                                                                                src_model.spec.std)
    if domain == "network" and not same_norm:
        patch = src_model.denormalize(patch.unsqueeze(0))[0].clamp(0, 1) if src_model is not None else patch
        domain = "image"
    n = model.input_size
    patch, loc = transplant(patch, loc, from_size, n, size, clamp=domain == "image")
    device = next(model.buffers()).device
    x = image.unsqueeze(0)
    if x.shape[-2:] != (n, n):  # a photo at another size: resized to the model's input, as the Models page shows it
        x = torch.nn.functional.interpolate(x, size=(n, n), mode="bicubic", align_corners=False).clamp(0, 1)
    x = x.to(device)
    clean = torch.softmax(model(x).float(), 1)[0].cpu()
    patched = torch.softmax(patched_logits(model, x, patch.to(device), [loc], domain).float(), 1)[0].cpu()
    c = success(patched.unsqueeze(0), target, int(clean.argmax()))
    return {"clean": clean, "patched": patched, "p_target": float(patched[target]),
            **{k: bool(v[0]) for k, v in c.items()}, "size": patch.shape[-1], "loc": loc, "pasted_as": domain}
