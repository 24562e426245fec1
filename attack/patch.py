"""Patch maths: masks, pasting (x' = (1-m)*x + m*delta), locations and the two domains.

Pasting is exact: every pixel outside the patch is returned bit-for-bit unchanged, and the result is
differentiable with respect to the patch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["CORNERS", "patch_mask", "apply_patch", "paste", "corner_loc", "random_locs", "to_domain", "from_domain",
           "area_fraction", "size_for_area", "check_loc", "as_locs", "patched_logits"]

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")
DOMAINS = ("image", "network")


def area_fraction(size: int, image_size: int) -> float:
    """Share of the image a ``size``x``size`` patch covers (42 on 299: 0.0197)."""
    return (size * size) / float(image_size * image_size)


def size_for_area(fraction: float, image_size: int) -> int:
    """Patch side (px) whose area is closest to ``fraction`` of an ``image_size``² image."""
    if not 0 < fraction < 1:
        raise ValueError(f"area fraction must be in (0, 1), got {fraction}")
    return max(1, int(round(math.sqrt(fraction) * image_size)))


def check_loc(loc: tuple[int, int], size: int, image_size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    top, left = int(loc[0]), int(loc[1])
    if size < 1 or size > min(h, w):
        raise ValueError(f"patch size {size} must be between 1 and the image side {min(h, w)}")
    if not (0 <= top <= h - size and 0 <= left <= w - size):
        raise ValueError(f"patch at (top={top}, left={left}) of size {size} does not fit a {h}x{w} image "
                         f"(top and left must lie in 0..{h - size} and 0..{w - size})")
    return top, left


def corner_loc(name: str, image_size: int, size: int, margin: int = 0) -> tuple[int, int]:
    """``(top, left)`` of a named corner preset: top-left, top-right, bottom-left, bottom-right."""
    far = image_size - size - margin
    table = {"top-left": (margin, margin), "top-right": (margin, far),
             "bottom-left": (far, margin), "bottom-right": (far, far)}
    if name not in table:
        raise ValueError(f"unknown corner {name!r}; choose one of {', '.join(CORNERS)}")
    return check_loc(table[name], size, image_size)


def random_locs(n: int, image_size: int, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``(n,2)`` uniformly random ``(top, left)`` positions where the patch fits entirely."""
    check_loc((0, 0), size, image_size)
    return torch.randint(0, image_size - size + 1, (n, 2), generator=generator)


def as_locs(loc, n: int) -> torch.Tensor:
    """Normalise ``(top,left)``, a list of them, or an ``(N,2)`` tensor to an ``(n,2)`` long tensor on CPU."""
    t = torch.as_tensor(loc, dtype=torch.long).cpu()
    if t.dim() == 1:
        t = t.view(1, 2).expand(n, 2)
    if t.shape != (n, 2):
        raise ValueError(f"expected {n} locations of (top, left), got shape {tuple(t.shape)}")
    return t


def patch_mask(image_size: int | tuple[int, int], size: int, loc) -> torch.Tensor:
    """Binary mask ``(1,H,W)`` (or ``(N,1,H,W)`` for ``(N,2)`` locs) with ones where the patch lies."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    locs = torch.as_tensor(loc, dtype=torch.long)
    single = locs.dim() == 1
    locs = locs.view(-1, 2)
    mask = torch.zeros(locs.shape[0], 1, h, w)
    for i, (top, left) in enumerate(locs.tolist()):
        check_loc((top, left), size, (h, w))
        mask[i, :, top:top + size, left:left + size] = 1.0
    return mask[0] if single else mask


def paste(images: torch.Tensor, patches: torch.Tensor, locs) -> torch.Tensor:
    """Paste ``patches`` into ``images`` at ``locs`` without clamping or domain change.

    images (N,C,H,W) or (C,H,W); patches (C,h,w) or (N,C,h,w) (a single patch is shared); locs (top,left) or (N,2).
    Returns a new tensor; ``images`` is not modified. Outside the patch the output equals ``images`` exactly.
    """
    single = images.dim() == 3
    if single:
        images = images.unsqueeze(0)
    n, c, h, w = images.shape
    if patches.dim() == 3:
        patches = patches.unsqueeze(0).expand(n, -1, -1, -1)
    if patches.shape[0] != n or patches.shape[1] != c:
        raise ValueError(f"patches {tuple(patches.shape)} do not match images {tuple(images.shape)}")
    ph, pw = patches.shape[-2:]
    if ph != pw:
        raise ValueError(f"patches must be square, got {ph}x{pw}")
    locs = as_locs(locs, n)
    canvas, masks = [], []
    for i, (top, left) in enumerate(locs.tolist()):
        check_loc((top, left), ph, (h, w))
        pad = (left, w - left - pw, top, h - top - ph)
        canvas.append(F.pad(patches[i], pad))
        m = torch.zeros(1, h, w, dtype=torch.bool, device=images.device)
        m[:, top:top + ph, left:left + pw] = True
        masks.append(m)
    canvas_t = torch.stack(canvas).to(images.dtype)
    mask_t = torch.stack(masks)
    out = torch.where(mask_t, canvas_t, images)  # == (1-m)*x + m*delta, exact outside and inside
    return out[0] if single else out


def apply_patch(images: torch.Tensor, patch: torch.Tensor, loc, domain: str = "image", model=None) -> torch.Tensor:
    """Paste a patch and return the *model input*.

    ``domain="image"``: ``images`` and ``patch`` in [0,1]; returns [0,1] images (the patch is clamped to [0,1]).
    ``domain="network"``: ``patch`` lives in the model's normalised space; ``model.normalize`` is applied to
    ``images`` first and the result is a normalised tensor for ``model.net``.
    """
    if domain == "image":
        return paste(images, patch.clamp(0, 1), loc)
    if domain == "network":
        if model is None:
            raise ValueError("domain='network' needs the model (its normalisation)")
        single = images.dim() == 3
        base = model.normalize(images.unsqueeze(0) if single else images)
        out = paste(base, patch, loc)
        return out[0] if single else out
    raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")


def domain_logits(model, x: torch.Tensor, domain: str = "image") -> torch.Tensor:
    """Logits of a model input in either domain: ``x`` in [0,1] (``"image"``, the model normalises) or already
    normalised (``"network"``, e.g. from :func:`apply_patch`), fed to ``model.net``. The one place that knows it."""
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if domain == "image":
        return model(x)
    if domain == "network":
        return model.net(x)
    raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")


def patched_logits(model, images: torch.Tensor, patch: torch.Tensor, loc, domain: str = "image") -> torch.Tensor:
    """Logits ``(N,1000)`` of ``model`` on images with the patch pasted (either domain)."""
    return domain_logits(model, apply_patch(images, patch, loc, domain, model), domain)


def to_domain(w: torch.Tensor, domain: str, param: str = "sigmoid") -> torch.Tensor:
    """Map the optimised tensor ``w`` to the patch: image domain ``sigmoid(w)`` (or ``clamp`` for projected
    training), network domain ``w`` itself."""
    if domain == "network":
        return w
    if domain == "image":
        return torch.sigmoid(w) if param == "sigmoid" else w.clamp(0, 1)
    raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")


def from_domain(delta: torch.Tensor, domain: str, param: str = "sigmoid", eps: float = 1e-3) -> torch.Tensor:
    """Inverse of :func:`to_domain` (logit for the sigmoid parametrisation)."""
    if domain == "image" and param == "sigmoid":
        d = delta.clamp(eps, 1 - eps)
        return torch.log(d) - torch.log1p(-d)
    if domain in DOMAINS:
        return delta.clone()
    raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
