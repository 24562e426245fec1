"""How a lesson step looks: the step list and the page's CSS, the enlarged picture, the prediction in large type,
the top-5 bars, the "Try it yourself" link into the full page, and the Back / Next header."""
from __future__ import annotations

import html

import streamlit as st
import torch
from PIL import Image, ImageDraw

import attack

from .. import deeplink, widgets

PICTURE_PX = 360  # shown side of each picture: with the text column beside it, a step fits 1280x720
STEPS = [("photo", "What the model sees"), ("patch", "A patch in the corner"), ("nudge", "Nudge it by one pixel"),
         ("place", "Where the square sits"), ("transfer", "The patch on another photo"), ("universal", "One patch for every photo"),
         ("gradients", "Where does the network look?"), ("models", "Another network"),
         ("defend", "Masking recovers the label")]
CSS = """<style>
.stMainBlockContainer {padding-top: 2.2rem; padding-bottom: 1rem;}
.stMainBlockContainer [data-testid="stMarkdownContainer"] p {font-size: 1.2rem; line-height: 1.45;}
.lesson-big {font-size: 2.9rem; font-weight: 800; line-height: 1.1; margin: 0.1rem 0 0.2rem 0;}
.lesson-mid {font-size: 1.75rem; font-weight: 650; line-height: 1.2;}
.lesson-small {font-size: 1.05rem; color: #555;}
.lesson-hit {color: #c62828;} .lesson-miss {color: #1565c0;}
.lesson-dots {font-size: 1.6rem; letter-spacing: 0.25rem;}
.lesson-bar {display: flex; align-items: center; gap: 0.6rem; font-size: 1.15rem; margin: 0.1rem 0;}
.lesson-bar .name {width: 45%; overflow: hidden; white-space: nowrap; text-overflow: ellipsis;}
.lesson-bar .bar {height: 0.9rem; background: #1565c0; border-radius: 3px;}
</style>"""


def picture(image: torch.Tensor, caption: str = "", box: tuple[int, int, int] | None = None,
            rings: list[tuple[float, float]] = ()) -> None:
    """One picture, enlarged without smoothing (a one-pixel move stays visible); ``box`` = (top, left, side) outline;
    ``rings``: (y, x) points (image px) marked with a red dot."""
    side = image.shape[-1]
    big = widgets.to_pil(image).resize((2 * side, 2 * side), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(big)
    if box is not None:
        t, l, s = (2 * v for v in box)
        draw.rectangle((l, t, l + s - 1, t + s - 1), outline=(255, 255, 255), width=2)
    for y, x in rings:
        draw.ellipse((2 * x - 8, 2 * y - 8, 2 * x + 8, 2 * y + 8), fill=(229, 57, 53), outline=(255, 255, 255),
                     width=3)  # a red dot ringed in white: visible on the patch's noise too
    st.image(big, caption=caption or None, width=PICTURE_PX)


def prediction(step: int, top: list[tuple[int, str, float]], target: int, probs: torch.Tensor | None = None,
               note: str = "", lead: str = "the model says") -> dict:
    """The top-1 class and p(target) in large type; the target in red when it wins."""
    cid, name, p = top[0]
    p_t = float(probs[target]) if probs is not None else next((q for i, _, q in top if i == target), 0.0)
    hit = cid == target
    tname = attack.class_names()[target]
    with st.container(key=f"lesson_pred_{step}"):
        st.markdown(
            f"<div class='lesson-small'>{html.escape(lead)}</div>"
            f"<div class='lesson-big {'lesson-hit' if hit else 'lesson-miss'}'>{'🎯 ' if hit else ''}"
            f"{html.escape(name)} <span class='lesson-mid'>{p:.0%}</span></div>"
            f"<div class='lesson-mid'>p({html.escape(tname)}) = {p_t:.2f}</div>"
            + (f"<div class='lesson-small'>{html.escape(note)}</div>" if note else ""), unsafe_allow_html=True)
    return {"label": name, "class": cid, "p": p, "p_target": p_t, "hit": hit}


# the full pages' files (as registered in app.py's PAGES); st.page_link finds a registered page by its file
PAGE_FILES = {"attack": "pages/1_attack.py", "fragility": "pages/2_fragility.py", "transfer": "pages/3_transfer.py",
              "universal": "pages/4_universal.py", "gradients": "pages/5_gradients.py", "models": "pages/6_models.py",
              "defend": "pages/8_defend.py"}


def top5(top: list[tuple[int, str, float]]) -> None:
    """The five best guesses as bars (plain HTML: drawn at once, unlike a data grid)."""
    rows = "".join(f"<div class='lesson-bar'><span class='name'>{html.escape(n)}</span>"
                   f"<span class='bar' style='width:{max(p, 0.005) * 40:.1f}%'></span><span>{p:.1%}</span></div>"
                   for _, n, p in top)
    st.markdown(rows, unsafe_allow_html=True)


def try_it(page: str, title: str, **link) -> None:
    """"Try it yourself": the full page, opened with this step's photo and patch (``ui/deeplink.py``)."""
    st.page_link(PAGE_FILES[page], label=f"Try it yourself: {title} →", icon="🧪",
                 query_params=deeplink.params(**link))


def header(step: int, on_move) -> None:
    """Back / step indicator / Next on one line."""
    n = len(STEPS)
    c1, c2, c3 = st.columns([1, 6, 1], vertical_alignment="center")
    c1.button("← Back", key="lesson_back", on_click=on_move, args=(-1,), disabled=step <= 1, width="stretch")
    dots = "".join("●" if i == step else "○" for i in range(1, n + 1))
    c2.markdown(f"<span class='lesson-dots'>{dots}</span> &nbsp; <b>Step {step} of {n}</b> — "
                f"{html.escape(STEPS[step - 1][1])}", unsafe_allow_html=True)
    c3.button("Next →", key="lesson_next", on_click=on_move, args=(1,), disabled=step >= n, type="primary",
              width="stretch")
