"""Fragility: what happens when a trained patch moves by a few pixels (paper: one pixel undoes it)."""
from __future__ import annotations

import torch

from .fast import local_engine, patch_boxes
from .patch import apply_patch, patched_logits

__all__ = ["shift_map"]


@torch.no_grad()
def shift_map(model, image: torch.Tensor, patch: torch.Tensor, loc, target: int, source: int | None = None,
              radius: int = 2, domain: str = "network", batch_size: int = 64) -> dict[str, torch.Tensor]:
    """Classify the image with the patch shifted by every (dy, dx) in ±radius, in batched forwards.

    Returns (2r+1, 2r+1) maps indexed [dy + r, dx + r]: ``p_target``, ``p_source``, ``argmax`` (long);
    shifts that would leave the image are NaN (-1 in ``argmax``). The centre is the trained location.
    Example: >>> maps = shift_map(model, img, res.patch, res.loc, res.target, radius=3)
    """
    if radius < 0 or radius > 64:
        raise ValueError("radius must lie in 0..64")
    device = next(model.buffers()).device
    h = image.shape[-1]
    size = patch.shape[-1]
    # each shift changes the clean image only inside the patch's box: incremental on a folded EfficientNet-Lite
    engine = local_engine(model, image.unsqueeze(0).to(device), "image")
    if source is None:
        clean = engine.clean_logits if engine is not None else model(image.unsqueeze(0).to(device))
        source = int(clean.argmax(1)[0])
    k = 2 * radius + 1
    pt = torch.full((k, k), float("nan"))
    ps = torch.full((k, k), float("nan"))
    am = torch.full((k, k), -1, dtype=torch.long)
    cells, locs = [], []
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            top, left = loc[0] + dy, loc[1] + dx
            if 0 <= top <= h - size and 0 <= left <= h - size:
                cells.append((dy + radius, dx + radius))
                locs.append((top, left))
    img = image.to(device)
    for i in range(0, len(locs), batch_size):
        chunk = locs[i:i + batch_size]
        x = img.unsqueeze(0).expand(len(chunk), -1, -1, -1)
        if engine is None:
            logits = patched_logits(model, x, patch.to(device), chunk, domain)
        else:
            logits = engine(apply_patch(x, patch.to(device), chunk, domain, model), torch.zeros(len(chunk),
                            dtype=torch.long), patch_boxes(chunk, size), domain)
        probs = torch.softmax(logits.float(), 1).cpu()
        for j, (r, c) in enumerate(cells[i:i + batch_size]):
            pt[r, c] = probs[j, target]
            ps[r, c] = probs[j, source]
            am[r, c] = probs[j].argmax()
    return {"p_target": pt, "p_source": ps, "argmax": am, "radius": radius, "source": source, "target": target}
