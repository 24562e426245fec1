"""Widgets shared by the pages. Each ``*_picker`` returns plain values (a tensor, ints, a class id); state that
several pages share (model, image, current patch) lives in ``st.session_state`` under the names below.

* ``model_name``: picked in the sidebar (app.py); :func:`current_model` returns the cached model.
* ``image_src``: ``{"kind": "sample", "name", "path"}`` or ``{"kind": "upload", "name", "data"}``.
* ``result`` / ``result_image``: the last single-image patch (PatchResult) and the image it was trained on.
"""
from __future__ import annotations

import io
import time

import streamlit as st
import torch
from PIL import Image

import attack
import attack.meter
from attack.models import DEFAULT_MODEL

from . import cache

PAPER_SIZE, PAPER_INPUT = 42, 299  # the paper's 42x42 patch on 299x299 Inception v3 inputs (1.97% of the area)
DEFAULT_SAMPLE = "skimage/coffee"
GALLERY = ("skimage/coffee", "skimage/chelsea", "ai-benchmark/3", "ai-benchmark/1", "ai-benchmark/5",
           "sklearn/flower", "skimage/rocket", "matplotlib/grace_hopper")
SUGGESTED_TARGETS = (859, 1, 107, 954, 409, 779)  # toaster, goldfish, jellyfish, banana, analog clock, school bus
CANVAS_PX = 448


def current_model() -> attack.Classifier:
    """The sidebar's model (shared copy, ``ui.cache.get_model``). A model whose weights cannot be read (a file gone
    from the hub cache, a truncated download) is one line of warning, and the page goes on with the default model."""
    names = cache.available_models()
    name = st.session_state.get("model_name") or DEFAULT_MODEL
    if name not in names:
        name = names[0] if names else DEFAULT_MODEL
    try:
        return cache.get_model(name)
    except attack.ModelError as exc:
        if name == DEFAULT_MODEL:
            raise
        said = exc.public_message() if isinstance(exc, attack.WeightsMissing) else str(exc)
        if name == "inception-v3":
            said = "the operator's weights file does not match Inception v3"  # its message may name the server path
        st.warning(f"{name} could not be loaded — {said}. This page uses {DEFAULT_MODEL}.")
        return cache.get_model(DEFAULT_MODEL)


PICKED = "_lavan_picked_model"  # a model loaded by model_request: app.py's sidebar selects it on the next run


def model_request(available: list[str]) -> None:
    """The sidebar's request for any torchvision classifier (all of ``torchvision.models.list_models()``): *Load*
    selects it when its weights are in the hub cache, else downloads them first, with a progress bar. Nothing is
    downloaded before the visitor presses *Load*. Offline (or any failed download) it is one line, naming no server
    path (``WeightsMissing.public_message``), and the app goes on with the model it had."""
    box = st.expander("Another torchvision model", key="model_request_open", on_change="rerun")
    if not box.open:  # lazy: the list of names imports torchvision (seconds on a cold server)
        return
    with box:
        options = [attack.sources.PREFIX + n for n in attack.sources.torchvision_names()]
        name = st.selectbox("torchvision classifier", options, index=None, key="model_request",
                            format_func=cache.model_label, placeholder=f"Type to search {len(options)} models")
        if name is not None:
            st.caption(("Weights in the hub cache: loads at once." if name in available else
                        "Weights not on this server: *Load* downloads them once (the server needs internet).")
                       + f" {attack.model_spec(name).description}.")
        if st.button("Load", key="model_request_load", disabled=name is None, width="stretch"):
            _load_requested(name, available)


def _load_requested(name: str, available: list[str]) -> None:
    if name not in available:
        bar = st.progress(0.0, text=f"Downloading {name}…")

        def progress(done: int, total: int) -> None:
            bar.progress(min(done / total, 1.0) if total else 0.0,
                         text=f"Downloading {name}: {done / 2**20:.0f}" + (f" / {total / 2**20:.0f}" if total else "")
                              + " MB")
        try:
            cache.download_model(name, progress)
        except attack.WeightsMissing as exc:
            bar.empty()
            st.error(exc.public_message())
            return
        except attack.ModelError as exc:  # not a torchvision classifier (the list holds only those)
            bar.empty()
            st.error(str(exc))
            return
        bar.empty()
    st.session_state[PICKED] = name
    st.rerun()


def to_pil(image: torch.Tensor) -> Image.Image:
    arr = (image.detach().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


def png_bytes(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def label(class_id: int | None) -> str:
    return "—" if class_id is None else f"{attack.class_names()[class_id]} ({class_id})"


# ---------------------------------------------------------------------------------------------------- images
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


# ---------------------------------------------------------------------------------------------------- targets
def _on_suggest(key: str, class_id: int) -> None:
    st.session_state[key] = cache.class_options()[class_id]


def target_picker(key: str = "target", default: int = 859, exclude: int | None = None) -> int:
    """Searchable selectbox of the 1,000 classes with a few one-click suggestions; returns the class id."""
    options = cache.class_options()
    if key not in st.session_state:
        st.session_state[key] = options[default]
    st.selectbox("Target class (type to search the 1,000 ImageNet classes)", options, key=key)
    with st.container(horizontal=True, gap="small"):
        st.caption("Try:")
        for cid in SUGGESTED_TARGETS:
            st.button(attack.class_names()[cid], key=f"{key}_sugg_{cid}", on_click=_on_suggest, args=(key, cid),
                      disabled=cid == exclude, type="tertiary")
    return int(st.session_state[key].split(" · ")[0])


# ---------------------------------------------------------------------------------------------------- patch size
def paper_size(input_size: int) -> int:
    """The paper's 42-on-299 area (1.97%) at this input size."""
    return attack.size_for_area(PAPER_SIZE ** 2 / PAPER_INPUT ** 2, input_size)


def input_note(model) -> str:
    """One line: the input size the model runs at and how a photo gets there (its own resize, then centre crop)."""
    n, r = model.input_size, model.resize_size
    how = (f"resized to {r} px on the short side, then centre-cropped to {n}×{n}" if r > n else
           f"centre-cropped to a square and resized to {n}×{n}")
    return f"Input size **{n}×{n}** for {model.name}: photos are {how} (the model's own preprocessing)."


def default_patch(model) -> tuple[int, str]:
    """(side in px, where it comes from) of the model's default patch: the library's default area, measured on
    EfficientNet-Lite0, for the embedded models; the paper's 42×42-on-299 area for the others (never measured
    there), i.e. 42 px on Inception v3's 299 and 31 px on 224 (``attack.model_spec(name).default_area``)."""
    n, area = model.input_size, model.spec.default_area
    if area is None:
        return (int(attack.train.default_patch_size(n)),
                f"the default area {attack.train.DEFAULT_AREA:.2%}, measured on EfficientNet-Lite0 (docs/ATTACK_STRENGTH.md)")
    side = attack.size_for_area(area, n)
    if abs(area - PAPER_SIZE ** 2 / PAPER_INPUT ** 2) < 1e-9:
        return side, "the paper's 42×42 on 299×299 (no default was measured on this model)"
    return side, f"{area:.2%} of the image"


def _set_size(key: str, value: int) -> None:
    st.session_state[key] = value


def size_picker(input_size: int, key: str = "size", default: int | None = None, model=None) -> int:
    """Patch side in pixels, the paper's area one click away. The default is ``default``, else the ``model``'s
    (:func:`default_patch`), else the measured default area (EfficientNet-Lite0). With ``model``, the value
    follows a change of the sidebar's model (back to that model's default)."""
    why = f"the default area {attack.train.DEFAULT_AREA:.2%}, measured on EfficientNet-Lite0 (docs/ATTACK_STRENGTH.md)"
    if model is not None and default is None:
        default, why = default_patch(model)
    default = int(default or attack.train.default_patch_size(input_size))
    paper = paper_size(input_size)
    if model is not None:
        if st.session_state.get(f"{key}_for", model.name) != model.name:
            st.session_state[key] = default  # the sidebar's model changed: its own default
        st.session_state[f"{key}_for"] = model.name
    if key in st.session_state and not 4 <= st.session_state[key] <= input_size // 2:
        st.session_state[key] = default  # another model's size
    c1, c2, c3 = st.columns([2, 1, 1])
    with c1:
        # value=default on every run (the buttons below still set it through session state; config.toml turns
        # off Streamlit's warning about using both). Without it the widget's own default is min_value, and the
        # first session on a cold server sometimes got its square reset to 4 px by the browser.
        size = st.number_input("Patch side (px)", min_value=4, max_value=input_size // 2, step=1, key=key,
                               value=default)
    c2.button(f"Paper: {paper}px", key=f"{key}_paper", on_click=_set_size, args=(key, paper),
              help=f"The paper's 42x42 on 299x299 ({PAPER_SIZE**2 / PAPER_INPUT**2:.2%} of the image)",
              width="stretch")
    c3.button(f"Default: {default}px", key=f"{key}_default", on_click=_set_size, args=(key, default),
              help=f"This model's default: {why}", width="stretch")
    st.caption(f"**{size}×{size} px = {attack.area_fraction(size, input_size):.2%} of the "
               f"{input_size}×{input_size} image** (paper: 42×42 on 299×299 = 1.97%) · default {default} px: {why}")
    return int(size)


# ---------------------------------------------------------------------------------------------------- location
def _clamp_loc(key: str, size: int, n: int) -> None:
    hi = n - size
    for k in (f"{key}_x", f"{key}_y"):
        st.session_state[k] = int(min(max(int(st.session_state.get(k, 0)), 0), hi))


def _on_corner(key: str, corner: str, size: int, n: int, grid: tuple[int, float] | None = None) -> None:
    top, left = attack.corner_loc(corner, n, size)
    if grid is not None and st.session_state.get(f"{key}_cells"):  # in from the corner, onto the grid's cells
        top, left = attack.meter.grid_loc((top, left), size, n, *grid)
    st.session_state[f"{key}_x"], st.session_state[f"{key}_y"] = left, top


def _on_canvas(key: str, size: int, n: int, scale: float) -> None:
    """The canvas sent a drawing: a moved square gives its top-left, a newly drawn box (or click) its centre."""
    state = st.session_state.get(f"{key}_canvas") or {}
    drawing = state.get("drawing") if hasattr(state, "get") else None
    objects = ((drawing or {}).get("raw") or {}).get("objects") or []
    if not objects:
        return
    obj = objects[-1]
    w = float(obj.get("width", 0)) * float(obj.get("scaleX", 1))
    h = float(obj.get("height", 0)) * float(obj.get("scaleY", 1))
    left = float(obj.get("left", 0)) - {"center": 0.5, "right": 1.0}.get(obj.get("originX", "left"), 0.0) * w
    top = float(obj.get("top", 0)) - {"center": 0.5, "bottom": 1.0}.get(obj.get("originY", "top"), 0.0) * h
    if len(objects) > 1:  # a new box: centre the patch on it
        left, top = left + w / 2 - size * scale / 2, top + h / 2 - size * scale / 2
    x, y = round(left / scale), round(top / scale)
    hi = n - size
    st.session_state[f"{key}_x"] = int(min(max(x, 0), hi))
    st.session_state[f"{key}_y"] = int(min(max(y, 0), hi))
    st.session_state[f"{key}_moved"] = time.perf_counter()


def patch_square(x: int, y: int, size: int, scale: float, color: str = "#ff2b2b") -> dict:
    return {"objects": [{
        "type": "Rect", "left": x * scale, "top": y * scale, "width": size * scale, "height": size * scale,
        "originX": "left", "originY": "top", "scaleX": 1, "scaleY": 1, "angle": 0,
        "fill": "rgba(255, 43, 43, 0.25)", "stroke": color, "strokeWidth": 2, "strokeUniform": True,
        "hasControls": False, "lockScalingX": True, "lockScalingY": True, "lockRotation": True,
    }]}


def grid_overlay(image: torch.Tensor, stride: float, color=(1.0, 0.85, 0.0)) -> torch.Tensor:
    """A copy of ``image`` (3,H,W) with 1 px lines on the borders of the network's last-grid cells (every
    ``stride`` px) and a dot on each cell's centre: where a patch must sit to cover a cell."""
    out = image.clone()
    c = torch.tensor(color, dtype=out.dtype).view(3, 1)
    n = out.shape[-1]
    edges = [int(round(stride * i)) for i in range(1, int(n / stride) + 1) if round(stride * i) < n]
    for e in edges:
        out[:, e, :] = c
        out[:, :, e] = c
    mids = [int(stride * i + stride / 2) for i in range(int(round(n / stride))) if stride * i + stride / 2 < n]
    for y in mids:
        for x in mids:
            out[:, max(0, y - 1):y + 2, max(0, x - 1):x + 2] = c.view(3, 1, 1)
    return out


def location_picker(image: torch.Tensor, size: int, key: str = "loc", patch_image: torch.Tensor | None = None,
                    canvas_px: int = CANVAS_PX, grid: tuple[int, float] | None = None,
                    cells_default: bool = False) -> tuple[int, int]:
    """Drag the patch square on the image (canvas), or use the x/y inputs and corner buttons; all stay in sync.

    ``patch_image``: optional displayable patch (3,s,s) drawn into the background at the current place.
    ``grid``: the network's last grid (cells per side, cell px; :func:`attack.meter.last_grid`): a checkbox then moves
    the corner buttons in by up to 16 px, onto the most cell centres (ticked by default when ``cells_default``: the
    page passes ``attack.meter.default_place(model) == "grid"``).
    Returns ``(top, left)`` in model pixels.
    """
    from streamlit_drawable_canvas import st_canvas

    n = image.shape[-1]
    _clamp_loc(key, size, n)
    scale = canvas_px / n
    x, y = st.session_state[f"{key}_x"], st.session_state[f"{key}_y"]
    shown = image if patch_image is None else attack.paste(image, patch_image.clamp(0, 1), (y, x))
    buf = io.BytesIO()  # JPEG: ~10x smaller than PNG, so a drag round-trip ships ~40 kB instead of ~400 kB
    to_pil(shown).resize((canvas_px, canvas_px), Image.Resampling.NEAREST).save(buf, format="JPEG", quality=90)
    st_canvas(background_image=buf.getvalue(), drawing_mode="rect", initial_drawing=patch_square(x, y, size, scale),
              width=canvas_px, height=canvas_px, stroke_width=2, stroke_color="#ff2b2b",
              fill_color="rgba(255, 43, 43, 0.25)", key=f"{key}_canvas",
              on_change=lambda: _on_canvas(key, size, n, scale))
    st.caption("Click on the image to centre the patch there, or switch on ✎ *Edit* in the canvas toolbar and "
               "drag the square. The inputs below move it by exact pixels.")
    c1, c2 = st.columns(2)
    c1.number_input("x (left, px)", min_value=0, max_value=n - size, step=1, key=f"{key}_x")
    c2.number_input("y (top, px)", min_value=0, max_value=n - size, step=1, key=f"{key}_y")
    cols = st.columns(4)
    for col, corner in zip(cols, attack.CORNERS):
        col.button(corner, key=f"{key}_corner_{corner}", on_click=_on_corner, args=(key, corner, size, n, grid),
                   width="stretch")
    if grid is not None:
        if f"{key}_cells" not in st.session_state:
            st.session_state[f"{key}_cells"] = bool(cells_default)
        top, left = attack.meter.grid_loc((0, 0), size, n, *grid)
        st.checkbox(f"Corners: {top} px in, onto the network's cells" if top else
                    "Corners: onto the network's cells (at this size: the corner itself)", key=f"{key}_cells",
                    help=f"The corner buttons move the patch up to 16 px in from the corner so that it covers the "
                         f"most {grid[1]:g} px cells of the network's last grid (the exact corner when unticked). "
                         "Measured: docs/ATTACK_STRENGTH.md, Before you train.")
    return int(st.session_state[f"{key}_y"]), int(st.session_state[f"{key}_x"])


# ---------------------------------------------------------------------------------------------------- patches
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


def topk_table(rows: list[tuple[int, str, float]], highlight: tuple[int, ...] = ()) -> None:
    import pandas as pd

    df = pd.DataFrame([{"class": f"{'▶ ' if i in highlight else ''}{name}", "id": i, "p": p} for i, name, p in rows])
    st.dataframe(df, hide_index=True, width="stretch",
                 column_config={"p": st.column_config.ProgressColumn("p", min_value=0.0, max_value=1.0,
                                                                     format="%.3f")})
