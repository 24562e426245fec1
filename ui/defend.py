"""The Defend page's logic: PatchCleanser double masking (attack.defend) on the current patched image and on its
clean photo, cached per (model, image, patch, place, size, k), and the drawing of the mask set over the image."""
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


@st.cache_data(show_spinner="Masking: first and second round…", max_entries=32)
def defend_patched(_model, model_name: str, input_size: int, image_key: str, _image: torch.Tensor, patch_key: str,
                   _patch: torch.Tensor, loc: tuple[int, int], domain: str, size: int, k: int) -> dict:
    """Double masking and the occlusion heuristic on the patched image (plain values, so the result caches)."""
    dev = _model.device
    x = attack.apply_patch(_image.to(dev), _patch.to(dev), loc, domain, _model).unsqueeze(0)
    r = double_masking(_model, x, size, k=k, domain=domain, certify=False)
    o = occlusion_defence(_model, x, size, domain=domain)
    return {"label": int(r.label[0]), "undefended": int(r.undefended[0]), "case": int(r.case[0]),
            "first": r.first[0].tolist(), "forwards": int(r.forwards[0]), "covering": r.masks.covering(loc),
            "occlusion_label": int(o.label[0]), "occlusion_loc": o.loc[0].tolist(),
            "occlusion_forwards": int(o.forwards[0])}


@st.cache_data(show_spinner="Certifying the clean photo: every pair of masks…", max_entries=32)
def certify_clean(_model, model_name: str, input_size: int, image_key: str, _image: torch.Tensor, size: int,
                  k: int) -> dict:
    r = double_masking(_model, _image.to(_model.device).unsqueeze(0), size, k=k)
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
        col = (230, 40, 40, 255) if first and first[i] == target else (40, 200, 60, 255)
        d.ellipse([cx - 5, cy - 5, cx + 5, cy + 5], fill=col, outline=(0, 0, 0, 255))
    t, l = loc
    d.rectangle([l * scale, t * scale, (l + patch_size) * scale - 1, (t + patch_size) * scale - 1],
                outline=(255, 43, 43, 255), width=2)
    return Image.alpha_composite(img, layer).convert("RGB")


def masked_view(view: torch.Tensor, size: int, k: int, index: int, fill: float = 0.5) -> torch.Tensor:
    """The displayable image with mask ``index`` of the set greyed out, as the first round sees it."""
    m = mask_set(view.shape[-1], size, k).masks()[index]
    return torch.where(m, torch.tensor(fill), view)


@st.cache_data(show_spinner="Training a short attack at every cell of the grid (one batch)…", max_entries=16)
def vulnerability(_model, model_name: str, input_size: int, image_key: str, _image: torch.Tensor, target: int,
                  size: int, stride: int, steps: int, domain: str) -> dict:
    """:func:`attack.defend.vulnerability_map` as plain values (seeded, so a repeat gives the same map)."""
    from attack.defend import vulnerability_map

    m = vulnerability_map(_model, _image.to(_model.device), target, size=size, stride=stride, steps=steps,
                          domain=domain, generator=torch.Generator().manual_seed(0))
    return {"p_target": m.p_target.tolist(), "evaluations": m.evaluations.tolist(), "locs": m.locs.tolist(),
            "best_loc": list(m.best_loc), "cpu_s": m.cpu_s}


def vulnerability_figure(vm: dict, view: torch.Tensor, size: int):
    """The map as a heat-map over the photo: each cell's colour is the p(target) its patch reached, drawn at the
    centre of the patch it trained."""
    import numpy as np
    import plotly.graph_objects as go

    locs = vm["locs"]
    ys = [row[0][0] + size / 2 for row in locs]
    xs = [c[1] + size / 2 for c in locs[0]]
    arr = (view.clamp(0, 1) * 255).byte().permute(1, 2, 0).cpu().numpy()
    fig = go.Figure(go.Image(z=np.asarray(arr)))
    fig.add_trace(go.Heatmap(z=vm["p_target"], x=xs, y=ys, zmin=0, zmax=1, opacity=0.55, colorscale="Reds",
                             colorbar=dict(title="p(target)"),
                             text=[[f"{p:.2f}" for p in row] for row in vm["p_target"]], texttemplate="%{text}"))
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=10, b=10))
    return fig
