"""The Transfer and Fragility pages' computations as :mod:`ui.background` jobs: each calls the library function
(``attack.border_transfer``, ``attack.shift_map``) in pieces, reports every piece as a partial result (the transfer
curve gains a point per border; the fragility map grows from the 1-px ring to the full radius), and returns plain
values (JSON: the result cache keeps them for every session). No st.* here: this runs in a worker thread."""
from __future__ import annotations

import torch

import attack

BORDERS = tuple(b / 100 for b in range(0, 55, 5))  # the Transfer page's sweep: 0–50 % per side


def transfer_sweep(model, src: torch.Tensor, dst: torch.Tensor, patch: torch.Tensor, loc, target: int, domain: str,
                   first: float = 0.25, *, callback=None, cancel=None) -> dict | None:
    """``attack.border_transfer`` over :data:`BORDERS`, one border at a time, ``first`` (the slider's) first; the
    result (and each partial one) lists the borders in increasing order. None when stopped."""
    order = sorted(BORDERS, key=lambda b: (abs(b - first), b))
    points: dict[float, dict] = {}

    def merged() -> dict:
        keys = ("borders", "confident", "argmax", "not_source", "mean_p_target", "area", "top1", "top1_p",
                "p_target_each")
        out = {k: [] for k in keys}
        for b in sorted(points):
            for k in keys:
                out[k].append(points[b][k][0])
        return out

    for n, b in enumerate(order):
        if cancel is not None and cancel.is_set():
            return None
        points[b] = attack.border_transfer(model, src, dst, patch, loc, target, borders=(b,), domain=domain)
        if callback is not None:
            callback({"done": n + 1, "total": len(order), "partial": merged(),
                      "text": f"Pasting on every photo: {n + 1} of {len(order)} borders"})
    return merged()


def _plain(maps: dict) -> dict:
    return {"p_target": maps["p_target"].tolist(), "p_source": maps["p_source"].tolist(),
            "argmax": maps["argmax"].tolist(), "radius": int(maps["radius"]), "source": int(maps["source"]),
            "target": int(maps["target"])}


def tensors(maps: dict) -> dict:
    """A plain (cached) shift map back as the tensors ``attack.shift_map`` returns."""
    return {**maps, "p_target": torch.tensor(maps["p_target"], dtype=torch.float32),
            "p_source": torch.tensor(maps["p_source"], dtype=torch.float32),
            "argmax": torch.tensor(maps["argmax"], dtype=torch.long)}


def shift_sweep(model, image: torch.Tensor, patch: torch.Tensor, loc, target: int, source: int | None, radius: int,
                domain: str, *, callback=None, cancel=None) -> dict | None:
    """``attack.shift_map`` at radius 1 first (the 1-px ring the page's metrics read), then at ``radius``."""
    radii = [1, radius] if radius > 1 else [radius]
    maps = None
    for n, r in enumerate(radii):
        if cancel is not None and cancel.is_set():
            return None
        maps = _plain(attack.shift_map(model, image, patch, loc, target, source=source, radius=r, domain=domain))
        if callback is not None:
            callback({"done": n + 1, "total": len(radii), "partial": maps,
                      "text": f"Classifying every shift up to ±{r} px"})
    return maps
