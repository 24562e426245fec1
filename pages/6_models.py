"""Models: the same patch on other networks (paper: LaVAN patches do not transfer across models)."""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

import attack
from ui import boot, cache, charts, widgets

boot.ensure_app()
st.title("🏛️ Models")
st.markdown(
    "The current patch is pasted at the same relative place on the same photo and shown to each network. "
    "The paper found that a patch trained on one network does **not** fool another. Each photo is resized to "
    "the network's own input size; the patch keeps its pixels (network-domain patches are pasted unchanged "
    "when both networks normalise alike, otherwise as a clipped image).")

model = widgets.current_model()
res, image = widgets.require_patch(model, "models")

# Only the server's operator names a weights file ($LAVAN_INCEPTION_WEIGHTS): a path typed by a visitor would let
# anyone make the server open any file (/dev/zero, other users' files).
weights = cache.inception_weights() or ""
names = cache.available_models()
if not weights:
    st.caption("Inception v3 (the paper's network) joins this table when the server is started with "
               "`LAVAN_INCEPTION_WEIGHTS=/path/to/inception_v3.pth` — a torchvision state_dict; nothing can be "
               "downloaded here.")
src_name = st.session_state.get("image_src", {}).get("name", "")


@st.cache_data(show_spinner="Running every model…", max_entries=32)
def _run(model_name: str, weights: str | None, src_model: str, patch_key: str, _patch, domain: str, loc_frac: tuple,
         target: int, image_key: str, _image_full: torch.Tensor) -> dict:
    m = cache.get_model(model_name, weights)
    src = cache.get_model(src_model) if src_model != "inception-v3" else None
    n = m.input_size
    img = torch.nn.functional.interpolate(_image_full.unsqueeze(0), size=(n, n), mode="bicubic",
                                          align_corners=False).clamp(0, 1)[0]
    size = min(_patch.shape[-1], n)
    patch = _patch[:, :size, :size]
    loc = (min(round(loc_frac[0] * n), n - size), min(round(loc_frac[1] * n), n - size))
    same_norm = src is not None and m.spec.mean == src.spec.mean and m.spec.std == src.spec.std
    if domain == "network" and not same_norm:
        patch, pdomain = (src.denormalize(patch.unsqueeze(0))[0].clamp(0, 1) if src is not None else patch), "image"
    else:
        pdomain = domain
    with torch.no_grad():
        clean = attack.predict(m, img)[0]
        patched = torch.softmax(attack.patch.patched_logits(m, img.to(m.device), patch.to(m.device), loc,
                                                            pdomain).float(), 1)[0].cpu()
    return {"clean": clean, "patched": patched, "pasted_as": pdomain, "loc": loc, "size": size}


rows = []
errors = []
for name in names:
    try:
        out = _run(name, weights.strip() if name == "inception-v3" else None, res.model_name,
                   attack.image_hash(res.patch), res.patch, res.domain,
                   (res.loc[0] / res.input_size, res.loc[1] / res.input_size), res.target, attack.image_hash(image),
                   image)
    except (ValueError, OSError) as exc:  # attack.models.ModelError is a ValueError: a bad weights file
        errors.append(f"{name}: {exc}")
        continue
    top_c, top_p = int(out["clean"].argmax()), int(out["patched"].argmax())
    rows.append({"model": name + (" (trained on)" if name == res.model_name else ""),
                 "p(target) clean": float(out["clean"][res.target]),
                 "p(target) patched": float(out["patched"][res.target]),
                 "top-1 clean": attack.class_names()[top_c], "top-1 patched": attack.class_names()[top_p],
                 "fooled (top-1 = target)": "yes" if top_p == res.target else "no",
                 "pasted as": out["pasted_as"]})
for e in errors:
    st.error(e)
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3g")  # 2e-05, not 0
                                for c in ("p(target) clean", "p(target) patched")})
    st.plotly_chart(charts.model_bars(rows), key="models_bars", width="stretch")
st.caption(f"Patch: {res.size}px, target {widgets.label(res.target)}, trained on {res.model_name} @ "
           f"{res.input_size}px, {res.domain} domain.")
