"""Models: the same patch on other networks (paper: LaVAN patches do not transfer across models)."""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

import attack
from ui import boot, cache, charts, widgets

model, res, image = boot.patch_page("🏛️ Models", (
    "The current patch is pasted at the same relative place on the same photo and shown to each network. "
    "The paper found that a patch trained on one network does **not** fool another. Each photo is resized to "
    "the network's own input size and the patch to the same share of its area (`attack.evaluate."
    "cross_model_eval`, the same definition as `python -m lab reproduce crossmodel`); network-domain patches "
    "are pasted unchanged when both networks normalise alike, otherwise as a clipped image."), "models")

# Only the server's operator names a weights file ($LAVAN_INCEPTION_WEIGHTS): a path typed by a visitor would let
# anyone make the server open any file (/dev/zero, other users' files).
weights = cache.inception_weights() or ""
available = cache.available_models()
if not weights and "torchvision:inception_v3" not in available:
    st.caption("Inception v3 (the paper's network) can join this table: request `torchvision:inception_v3` under "
               "*Another torchvision model* in the sidebar (downloaded once when the server is online), or start "
               "the server with `LAVAN_INCEPTION_WEIGHTS=/path/to/inception_v3.pth`.")
# A network loads beside the ones in memory only when it is asked for here (each stays loaded, shared by every
# session: the sidebar says how much they take). Chosen unless changed: the patch's own network, the embedded
# EfficientNet-Lite models and the operator's Inception v3, as this page always compared; a torchvision model from
# the hub cache when added.
default = [n for n in available if n == res.model_name or attack.model_spec(n).source in ("embedded", "file")]
if "models_pick" in st.session_state:  # picked on another server state: keep what is still there
    st.session_state["models_pick"] = [n for n in st.session_state["models_pick"] if n in available]
names = st.multiselect("Networks to compare", available, default=default, key="models_pick",
                       format_func=cache.model_label,
                       help="Each network is loaded once per server process and stays loaded beside the others "
                            "(the sidebar says how much memory the loaded models take).")
src_name = st.session_state.get("image_src", {}).get("name", "")


@st.cache_data(show_spinner="Running every model…", max_entries=32)
def _run(model_name: str, weights: str | None, src_model: str, patch_key: str, _patch, domain: str, loc: tuple,
         from_size: int, target: int, image_key: str, _image_full: torch.Tensor) -> dict:
    return attack.evaluate.cross_model_eval(cache.get_model(model_name, weights), _image_full, _patch, loc, target,
                                            from_size=from_size, domain=domain, src_model=cache.get_model(src_model))


rows = []
errors = []
for name in names:
    try:
        out = _run(name, weights.strip() if name == "inception-v3" else None, res.model_name,
                   attack.image_hash(res.patch), res.patch, res.domain, tuple(res.loc), res.input_size, res.target,
                   attack.image_hash(image), image)
    except (ValueError, OSError) as exc:  # attack.models.ModelError is a ValueError: a bad weights file
        said = exc.public_message() if isinstance(exc, attack.WeightsMissing) else str(exc)
        errors.append(f"{name}: {said.replace(weights, 'the weights file') if weights else said}")  # no server path
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
