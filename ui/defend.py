"""The Defend page's logic: PatchCleanser double masking (attack.defend) on the current patched image and on its
clean photo, computed as background jobs (ui.background) and cached on disk per (model, image, patch, place,
size, k) for every session, and the drawing of the mask set over the image."""
from __future__ import annotations

import streamlit as st
import torch
from PIL import Image, ImageDraw

import attack
from attack.defend import double_masking, mask_set, occlusion_defence

EXPLAIN = (
    "**Guaranteed:** if the clean photo is *certified* for patch size p, then whatever a p×p patch contains and "
    "wherever it is pasted, double masking returns the clean photo's label — some mask hides the whole patch, and "
    "every prediction made under that mask (alone or with a second one) is then exactly a prediction on the clean "
    "photo. "
    "**Not guaranteed:** that this label is *correct* (it is the model's own guess under grey masks), anything "
    "against a larger patch or several patches, and anything for a photo that is not certified — there the defence "
    "may still recover the label, but nothing forbids a patch that keeps the masks disagreeing. "
    "**The price:** at least 1 + k² forwards per image instead of one, and up to k²(k²+1)/2 to certify; masks this "
    "large also change some clean predictions.")


class _Stopped(Exception):
    """Raised in double_masking's first-round callback when the page's job was stopped."""


def defend_patched(model, image: torch.Tensor, patch: torch.Tensor, loc: tuple[int, int], domain: str, size: int,
                   k: int, *, callback=None, cancel=None) -> dict | None:
    """Double masking and the occlusion heuristic on the patched image, as plain values (JSON: the result cache
    keeps them), for a :mod:`ui.background` job. The first round's verdicts are reported mask row by mask row (the
    page's grid fills in as they come: ``double_masking``'s ``on_first``, so the round runs once), then the second
    round and the occlusion heuristic give the result. None when stopped."""
    from attack.patch import domain_logits

    dev = model.device
    x = attack.apply_patch(image.to(dev), patch.to(dev), loc, domain, model).unsqueeze(0)
    ms = mask_set(x.shape[-1], size, k)
    K, per_row = len(ms), max(1, round(len(ms) ** 0.5))
    partial = {"first": [None] * K, "covering": ms.covering(loc), "undefended": None}
    steps = 2 + (K + per_row - 1) // per_row + 1

    def report(done: int, text: str) -> None:
        if callback is not None:
            callback({"done": done, "total": steps, "text": text, "partial": {**partial,
                                                                             "first": list(partial["first"])}})

    def on_first(start: int, labels: list[int]) -> None:
        if cancel is not None and cancel.is_set():
            raise _Stopped
        partial["first"][start:start + len(labels)] = labels
        end = min(K, start + len(labels))
        report(2 + start // per_row, f"First round: masks {start + 1}–{end} of {K}" if end < K else
               "Second round (pairs of masks) and the occlusion heuristic")

    with torch.no_grad():
        partial["undefended"] = int(domain_logits(model, x, domain).argmax(1)[0])
    report(1, "First round: one mask at a time")
    try:
        r = double_masking(model, x, size, k=k, domain=domain, certify=False, on_first=on_first)
    except _Stopped:
        return None
    if cancel is not None and cancel.is_set():
        return None
    o = occlusion_defence(model, x, size, domain=domain)
    return {"label": int(r.label[0]), "undefended": int(r.undefended[0]), "case": int(r.case[0]),
            "first": r.first[0].tolist(), "forwards": int(r.forwards[0]), "covering": r.masks.covering(loc),
            "occlusion_label": int(o.label[0]), "occlusion_loc": o.loc[0].tolist(),
            "occlusion_forwards": int(o.forwards[0])}


def certify_clean(model, image: torch.Tensor, size: int, k: int, *, callback=None, cancel=None) -> dict | None:
    """Whether the clean photo is certified (every pair of masks), for a :mod:`ui.background` job."""
    if callback is not None:
        callback({"done": 0, "total": 1, "text": "Certifying the clean photo: every pair of masks", "partial": None})
    r = double_masking(model, image.to(model.device).unsqueeze(0), size, k=k)
    if cancel is not None and cancel.is_set():
        return None
    return {"label": int(r.label[0]), "undefended": int(r.undefended[0]), "certified": bool(r.certified[0]),
            "case": int(r.case[0]), "forwards": int(r.forwards[0])}


CASES = {1: "all one-mask predictions agree", 2: "a disagreeing mask won the second round",
         3: "no mask won the second round: the first-round majority"}


def mask_overlay(view: torch.Tensor, size: int, k: int, loc: tuple[int, int], patch_size: int,
                 covering: list[int], first: list[int], target: int, scale: int = 2) -> Image.Image:
    """The image with every mask outlined (grey), the masks that contain the whole patch in green, the patch in red,
    and each mask's first-round verdict as a dot at its centre (red: the target class, green: anything else)."""
    from ui import widgets

    ms = mask_set(view.shape[-1], size, k)
    img = widgets.to_pil(view).resize((view.shape[-1] * scale,) * 2, Image.Resampling.NEAREST).convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    for i, (t, l) in enumerate(ms.positions.tolist()):
        box = [l * scale, t * scale, (l + ms.size) * scale - 1, (t + ms.size) * scale - 1]
        d.rectangle(box, outline=(40, 200, 60, 255) if i in covering else (255, 255, 255, 110),
                    width=3 if i in covering else 1)
        cx, cy = (l + ms.size / 2) * scale, (t + ms.size / 2) * scale
        if not first or first[i] is None:  # not classified yet (the first round is still running)
            continue
        col = (230, 40, 40, 255) if first[i] == target else (40, 200, 60, 255)
        d.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=col, outline=(0, 0, 0, 255))
    t, l = loc
    d.rectangle([l * scale, t * scale, (l + patch_size) * scale - 1, (t + patch_size) * scale - 1],
                outline=(255, 43, 43, 255), width=2)
    return Image.alpha_composite(img, layer).convert("RGB")


def masked_view(view: torch.Tensor, size: int, k: int, index: int, fill: float = 0.5) -> torch.Tensor:
    """The displayable image with mask ``index`` of the set greyed out, as the first round sees it."""
    m = mask_set(view.shape[-1], size, k).masks()[index]
    return torch.where(m, torch.tensor(fill), view)


# ------------------------------------------------------------------------------------------ the vulnerability map
MAP_JOB = "defend_map"  # ui.jobs key: one map in flight per browser session


def map_key(model, image_key: str, target: int, size: int, stride: int, steps: int, domain: str) -> str:
    """The map's cache key (attack.cache.cache_key, like a training's): every field that changes the map."""
    return attack.cache.cache_key(kind="vulnerability_map", model=model.name, input_size=model.input_size,
                                  image=image_key, target=int(target), size=int(size), stride=int(stride),
                                  steps=int(steps), domain=domain, seed=0)


def _map_path(key: str):
    from ui import cache

    if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
        raise ValueError("map keys are 64 hex digits (map_key)")
    return cache.cache_dir() / "maps" / f"{key}.json"


def cached_map(key: str) -> dict | None:
    """A finished map from the cache directory (shared by every session of the server), or None."""
    import json

    try:
        vm = json.loads(_map_path(key).read_text())
    except (OSError, ValueError):
        return None
    return vm if isinstance(vm, dict) and vm.get("key") == key else None


def store_map(key: str):
    """An ``on_done`` for :func:`ui.jobs.start`: writes the finished map (runs in the worker thread: no st.*)."""
    import json
    import os

    def put(vm: dict) -> None:
        path = _map_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{id(vm)}.tmp")
        tmp.write_text(json.dumps({**vm, "key": key}))
        os.replace(tmp, path)
    return put


def run_map(model, image: torch.Tensor, target: int, *, size: int, stride: int, steps: int, domain: str,
            callback=None, cancel=None) -> dict | None:
    """:func:`attack.defend.vulnerability_map` (seeded, so a repeat gives the same map) as plain values, for a
    :mod:`ui.jobs` thread: ``callback`` gets ``{"iteration", "steps", "evaluations", "cells", "training",
    "best"}`` every iteration (cells still training, best p(target) of their patches now). None when stopped."""
    from attack.defend import grid_locs, vulnerability_map

    cells = grid_locs(image.shape[-1], size, stride).shape[0] ** 2

    def report(it: int, confs: list[int], probs: torch.Tensor) -> None:
        if callback is not None:
            callback({"iteration": it + 1, "steps": steps, "evaluations": it + 1, "cells": cells,
                      "training": len(confs), "best": float(probs[:, int(target)].max()) if len(confs) else 0.0})

    m = vulnerability_map(model, image.to(model.device), target, size=size, stride=stride, steps=steps,
                          domain=domain, generator=torch.Generator().manual_seed(0), callback=report, cancel=cancel)
    if any(r.cancelled for r in m.results):
        return None
    return {"p_target": m.p_target.tolist(), "evaluations": m.evaluations.tolist(), "locs": m.locs.tolist(),
            "best_loc": list(m.best_loc), "cpu_s": m.cpu_s}


def cells(vm: dict) -> list[tuple[int, int, float]]:
    """Every cell of a map as (top, left, p(target)), in row order (the index the chart and the twin share)."""
    return [(int(loc[0]), int(loc[1]), float(p)) for prow, lrow in zip(vm["p_target"], vm["locs"])
            for p, loc in zip(prow, lrow)]


def best_cell(vm: dict) -> int:
    """Index (row order) of the map's best cell."""
    return next(i for i, (t, l, _) in enumerate(cells(vm)) if [t, l] == list(vm["best_loc"]))


def clicked_cell(vm: dict, size: int, event) -> int | None:
    """The cell a plotly selection event points at (a click selects the nearest heat-map point), or None."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    cs = cells(vm)
    for pt in points:
        x, y = pt.get("x"), pt.get("y")
        if x is None or y is None:
            continue
        return min(range(len(cs)), key=lambda i: (cs[i][1] + size / 2 - float(x)) ** 2
                   + (cs[i][0] + size / 2 - float(y)) ** 2)
    return None


def place_on_attack_page(target: int, size: int, domain: str, top: int, left: int) -> None:
    """Set the Attack page's inputs (the keys ui.deeplink sets too) so that Train there trains this cell."""
    from ui import cache

    st.session_state.update({"attack_target": cache.class_options()[int(target)], "attack_size": int(size),
                             "attack_domain": domain, "attack_loc_x": int(left), "attack_loc_y": int(top)})


def vulnerability_figure(vm: dict, view: torch.Tensor, size: int):
    """The map as a heat-map over the photo: each cell's colour is the p(target) its patch reached, drawn at the
    centre of the patch it trained, with a marker per cell to click (the best cell's is a star)."""
    import numpy as np
    import plotly.graph_objects as go

    locs = vm["locs"]
    ys = [row[0][0] + size / 2 for row in locs]
    xs = [c[1] + size / 2 for c in locs[0]]
    arr = (view.clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
    fig = go.Figure(go.Image(z=np.asarray(arr), hoverinfo="skip"))
    # no hover on the photo and the heat-map: a click then lands on the cells' markers, which can be selected
    fig.add_trace(go.Heatmap(z=vm["p_target"], x=xs, y=ys, zmin=0, zmax=1, opacity=0.55, colorscale="Reds",
                             colorbar=dict(title="p(target)"), hoverinfo="skip",
                             text=[[f"{p:.2f}" for p in row] for row in vm["p_target"]], texttemplate="%{text}"))
    # one clickable marker per cell (a heat-map has no selectable points): st.plotly_chart(on_select="rerun")
    cs = cells(vm)
    best = best_cell(vm)
    fig.add_trace(go.Scatter(x=[c[1] + size / 2 for c in cs], y=[c[0] + size / 2 for c in cs], mode="markers",
                             marker=dict(size=[22 if i == best else 16 for i in range(len(cs))],
                                         symbol=["star" if i == best else "circle" for i in range(len(cs))],
                                         color="rgba(255,255,255,0.35)", line=dict(color="black", width=1)),
                             customdata=list(range(len(cs))), name="cells", showlegend=False,
                             hovertemplate="%{text}<br>click to place the patch here<extra></extra>",
                             text=[f"x={c[1]}, y={c[0]}: p(target) {c[2]:.2f}" for c in cs]))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=10, b=10), clickmode="event+select")
    return fig
