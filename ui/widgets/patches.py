"""The patch a page works on: one loaded from a ``.safetensors`` file, or the session's last single-image patch and
its photo (``result`` / ``result_image``), with a hint where to get one when there is none."""
from __future__ import annotations

import streamlit as st
import torch

import attack

from .images import image_picker


def patch_loader(model, key: str = "patch_file", label_text: str = "Load a patch file (.safetensors)",
                 check_model: bool = True) -> attack.PatchResult | None:
    """Uploader for a LaVAN patch file; a bad file shows ``st.error`` with the reason and returns None."""
    up = st.file_uploader(label_text, key=key, help="A patch saved by this app or by `python -m attack attack`")
    if up is None:
        return None
    try:
        return attack.io.patch_from_bytes(up.getvalue(), up.name, model_name=model.name if check_model else None,
                                          input_size=model.input_size if check_model else None)
    except attack.PatchFileError as exc:
        st.error(f"Patch file rejected — {exc}")
        return None


def require_patch(model, key: str):
    """:func:`current_patch`, or a hint where to get one and the end of the page's run when there is none."""
    res, image = current_patch(model, key)
    if res is None or image is None:
        st.info("No patch yet: train one on **Attack one image** (it appears here), or load a patch file above.")
        st.stop()
    return res, image


def current_patch(model, key: str) -> tuple[attack.PatchResult | None, torch.Tensor | None]:
    """The session's last single-image patch and its image, or one loaded from a file on this page."""
    loaded = patch_loader(model, key=f"{key}_patch_file")
    if loaded is not None:
        if loaded.loc is None:
            st.error("This is a universal patch (no trained location); open it on the Universal page.")
        else:
            img, _ = image_picker(model, key=f"{key}_img", gallery=False)
            return loaded, img
    res = st.session_state.get("result")
    if res is None:
        return None, None
    if res.model_name != model.name or res.input_size != model.input_size:
        st.warning(f"The last patch was trained on {res.model_name} @ {res.input_size}px; the sidebar model is "
                   f"{model.describe()}. Switch back, or load a patch file for this model.")
        return None, None
    return res, st.session_state.get("result_image")
