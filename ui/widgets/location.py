"""Where the patch sits: the location picker (a canvas to drag or click the square on, x/y inputs, corner buttons,
optionally onto the network's last-grid cells), the square drawn on the canvas, and the grid overlay."""
from __future__ import annotations

import io
import time

import streamlit as st
import torch
from PIL import Image

import attack
import attack.meter

from .display import to_pil

CANVAS_PX = 448


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
