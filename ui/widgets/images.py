"""The photo a page works on: the sample gallery, a searchable list of every sample, an uploader, and the
session's ``image_src`` that they all set; :func:`input_note` says how a photo reaches the model's input size."""
from __future__ import annotations

import streamlit as st
import torch

import attack

from .. import cache

DEFAULT_SAMPLE = "skimage/coffee"
GALLERY = ("skimage/coffee", "skimage/chelsea", "ai-benchmark/3", "ai-benchmark/1", "ai-benchmark/5",
           "sklearn/flower", "skimage/rocket", "matplotlib/grace_hopper")


def _sample_by_name() -> dict[str, tuple[str, str, str]]:
    return {s[0]: s for s in cache.samples()}


def _set_sample(name: str) -> None:
    s = _sample_by_name().get(name)
    if s is not None:
        st.session_state["image_src"] = {"kind": "sample", "name": s[0], "path": s[1]}


def _on_sample_select(key: str) -> None:
    _set_sample(st.session_state[key])


def image_source() -> dict:
    src = st.session_state.get("image_src")
    if src is None:
        names = _sample_by_name()
        name = DEFAULT_SAMPLE if DEFAULT_SAMPLE in names else next(iter(names), None)
        if name is None:
            st.error("No sample photos are installed (run `make setup`); upload a photo instead.")
            return {}
        _set_sample(name)
        src = st.session_state["image_src"]
    return src


def load_source(src: dict, size: int, resize: int | None = None) -> torch.Tensor | None:
    """The photo ``src`` at ``size``; ``resize``: the short side before the centre crop (``model.resize_size``)."""
    if not src:
        return None
    if src["kind"] == "sample":
        return cache.sample_tensor(src["path"], size, resize)
    return cache.upload_tensor(src["data"], src["name"], size, resize)


def image_picker(model, key: str = "img", gallery: bool = True) -> tuple[torch.Tensor | None, str]:
    """Thumbnail gallery of sample photos, a selectbox of all of them, and an uploader.

    Returns the chosen image as (3,S,S) at the model's input size (None if nothing usable) and its name.
    A bad upload shows ``st.error`` with the loader's message and keeps the previous image.
    """
    names = _sample_by_name()
    if gallery:
        shown = [n for n in GALLERY if n in names]
        cols = st.columns(len(shown) or 1)
        for col, name in zip(cols, shown):
            with col:
                st.image(cache.thumbnail(names[name][1]), width="stretch")
                st.button("Use", key=f"{key}_pick_{name}", on_click=_set_sample, args=(name,), width="stretch",
                          help=name)
    c1, c2 = st.columns(2)
    with c1:
        options = list(names)
        cur = st.session_state.get("image_src", {}).get("name")
        st.selectbox("…or any sample photo", options, index=options.index(cur) if cur in options else None,
                     key=f"{key}_select", on_change=_on_sample_select, args=(f"{key}_select",),
                     placeholder="Type to search 100+ photos")
    with c2:
        up = st.file_uploader("…or upload a photo", type=None, key=f"{key}_upload",
                              help="JPEG, PNG, GIF, BMP, WebP or TIFF up to 25 MB")
    if up is not None:
        data = up.getvalue()
        try:
            cache.upload_tensor(data, up.name, model.input_size, model.resize_size)
        except attack.ImageError as exc:
            st.error(f"Upload rejected — {exc}")
        else:
            if st.session_state.get(f"{key}_upload_id") != up.file_id:
                st.session_state[f"{key}_upload_id"] = up.file_id
                st.session_state["image_src"] = {"kind": "upload", "name": up.name, "data": data}
    src = image_source()
    try:
        image = load_source(src, model.input_size, model.resize_size)
    except attack.ImageError as exc:  # a sample that went missing, or a stored upload that no longer decodes
        st.error(str(exc))
        st.session_state.pop("image_src", None)
        return None, ""
    st.caption(input_note(model))
    return image, src.get("name", "")


def input_note(model) -> str:
    """One line: the input size the model runs at and how a photo gets there (its own resize, then centre crop)."""
    n, r = model.input_size, model.resize_size
    how = (f"resized to {r} px on the short side, then centre-cropped to {n}×{n}" if r > n else
           f"centre-cropped to a square and resized to {n}×{n}")
    return f"Input size **{n}×{n}** for {model.name}: photos are {how} (the model's own preprocessing)."
