"""Gradients: does the network 'know' the patch is to blame? Attribution mass inside the patch vs its area."""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

import attack
from ui import boot, cache, charts, widgets

model, res, image = boot.patch_page("🔥 Gradients", (
    "Attribution maps show which pixels a class score depends on. If the network *localised* the patch as the "
    "cause of its mistake, the maps of the patched image would pile up inside the square. The table compares "
    "the **share of attribution mass inside the patch** with the **patch's share of the area** for the target "
    "and the source class, on the clean and the patched image (paper §5)."), "grad")

options = [m for m in attack.ATTRIBUTION_METHODS if m != "grad_cam" or model.cam_layer is not None]
if model.cam_layer is None:
    st.caption(f"Grad-CAM is not available for {model.name} (no convolutional feature map to read is known for it, "
               "as for a vision transformer, whose last layers are tokens); the other methods work on any model.")
if "grad_methods" in st.session_state:  # chosen on another model: keep what this one offers
    st.session_state["grad_methods"] = [m for m in st.session_state["grad_methods"] if m in options]
methods = st.multiselect("Methods", options, default=[m for m in ("saliency", "grad_cam") if m in options],
                         key="grad_methods",
                         help="integrated_gradients and occlusion take a few seconds each on a CPU")


@st.cache_data(show_spinner="Computing attributions…", max_entries=32)
def _maps(_model, model_name: str, input_size: int, image_key: str, _image, patch_key: str, _patch, loc: tuple,
          domain: str, target: int, source: int, method: str) -> torch.Tensor:
    """(4,H,W): target-clean, target-patched, source-clean, source-patched."""
    clean = _image if domain == "image" else _model.normalize(_image.unsqueeze(0))[0]
    patched = attack.apply_patch(_image, _patch, loc, domain, _model)
    x = torch.stack([clean, patched, clean, patched])
    return attack.attribution_map(_model, x, torch.tensor([target, target, source, source]), method=method,
                                  domain=domain)


source = res.source if res.source is not None else cache.topk(
    model, model.name, model.input_size, attack.image_hash(image), image)[0][0]
mask = attack.patch_mask(model.input_size, res.size, res.loc)
area = float(mask.mean())
rows, heat, titles = [], [], []
for method in methods:
    m = _maps(model, model.name, model.input_size, attack.image_hash(image), image, attack.image_hash(res.patch),
              res.patch, tuple(res.loc), res.domain, res.target, source, method)
    share = attack.mass_in_patch(m, mask).tolist()
    for j, (cls, which) in enumerate((("target", "clean"), ("target", "patched"), ("source", "clean"),
                                      ("source", "patched"))):
        rows.append({"method": method, "class": f"{cls}: {attack.class_names()[res.target if cls == 'target' else source]}",
                     "image": which, "mass inside patch (%)": round(100 * share[j], 1),
                     "patch area (%)": round(100 * area, 1),
                     "ratio": round(share[j] / area, 2) if share[j] == share[j] else None})
        heat.append(m[j])
        titles.append(f"{method}: {cls}, {which}")
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.plotly_chart(charts.heat_grid(heat, titles), key="grad_heat", width="stretch")
c1, c2 = st.columns(2)
c1.image(widgets.to_pil(image), caption="clean", width=224)
c2.image(widgets.to_pil(cache.patched_view(model, image, res.patch, res.loc, res.domain)), caption="patched",
         width=224)
