"""Steps 1-6: one patch on photos. The photo and its guesses, the shipped patch in the corner, a one-pixel nudge,
the corner against the network's grid, the patch on another photo with a border of its own, and the universal
patch anywhere on any photo."""
from __future__ import annotations

import streamlit as st
import torch

import attack
import attack.meter

from .. import cache, widgets
from .assets import _model, _probs, _single, patch, photo
from .view import picture, prediction, top5, try_it


def step_photo(m: dict, left, right) -> dict:
    model, res, img = _single(m)
    top = cache.topk(model, model.name, model.input_size, attack.image_hash(img), img)
    with left:
        picture(img, f"{m['single']['image']} · {model.input_size}×{model.input_size}")
    with right:
        st.markdown(f"A photo, shown to **{model.spec.name}**, a small network trained on 1,000 ImageNet classes "
                    f"(the paper used Inception v3). It is **{top[0][2]:.0%}** sure it sees **{top[0][1]}**. "
                    "Below are its five best guesses.")
        out = prediction(1, top, res.target, note="(the red class of the next steps is the attacker's target)")
        top5(top)
        try_it("attack", "attack this photo", photo=m["single"]["image"])
    return out


def step_patch(m: dict, left, right) -> dict:
    model, res, img = _single(m)
    probs = _probs(model, img, res, res.loc)
    source = m["single"]["source_label"]
    with left:
        picture(cache.patched_view(model, img, res.patch, res.loc, res.domain),
                f"{res.size}×{res.size} patch at x={res.loc[1]}, y={res.loc[0]}")
    with right:
        st.markdown(f"Only the pixels of this **{res.size}×{res.size}** square were changed "
                    f"({attack.area_fraction(res.size, model.input_size):.0%} of the image); the {source} itself "
                    "is untouched. The square was trained to make the network say "
                    f"**{attack.class_names()[res.target]}**"
                    " — and it does, with p ≥ 0.9 (the paper's criterion).")
        out = prediction(2, cache.topk_from_probs(probs), res.target, probs,
                         note=f"p({source}) = {float(probs[res.source]):.3f}")
        try_it("attack", "train your own patch", photo=m["single"]["image"], patch=m["single"]["file"])
    return out


def _nudge(dy: int, dx: int) -> None:
    if dy == dx == 0:
        st.session_state["lesson_dy"] = st.session_state["lesson_dx"] = 0
    else:
        st.session_state["lesson_dy"] = max(-3, min(3, st.session_state.get("lesson_dy", 0) + dy))
        st.session_state["lesson_dx"] = max(-3, min(3, st.session_state.get("lesson_dx", 0) + dx))


def step_nudge(m: dict, left, right) -> dict:
    model, res, img = _single(m)
    dy, dx = st.session_state.get("lesson_dy", 0), st.session_state.get("lesson_dx", 0)
    hi = model.input_size - res.size
    loc = (min(max(res.loc[0] + dy, 0), hi), min(max(res.loc[1] + dx, 0), hi))
    probs = _probs(model, img, res, loc)
    with left:
        picture(cache.patched_view(model, img, res.patch, loc, res.domain),
                f"patch at x={loc[1]}, y={loc[0]} (trained at x={res.loc[1]}, y={res.loc[0]})")
    with right:
        st.markdown("The patch was trained for one exact place. **Move it by a single pixel** with the buttons and "
                    "the network changes its mind back. The paper found the same: LaVAN patches are fragile.")
        b = st.columns(5)
        for col, (lbl, key, args) in zip(b, (("←", "left", (0, -1)), ("→", "right", (0, 1)), ("↑", "up", (-1, 0)),
                                              ("↓", "down", (1, 0)), ("reset", "reset", (0, 0)))):
            col.button(lbl, key=f"lesson_nudge_{key}", on_click=_nudge, args=args, width="stretch")
        moved = abs(loc[0] - res.loc[0]) + abs(loc[1] - res.loc[1])
        out = prediction(3, cache.topk_from_probs(probs), res.target, probs,
                         note=f"moved by {loc[1] - res.loc[1]:+d} px across, {loc[0] - res.loc[0]:+d} px down"
                              if moved else "at the trained place: press → to move it one pixel")
        try_it("fragility", "every shift at once", photo=m["single"]["image"], patch=m["single"]["file"],
               dx=loc[1] - res.loc[1], dy=loc[0] - res.loc[0])
    return out


PLACES = {"corner": "exact corner", "grid": "{offset} px in"}  # step 4's toggle (the offset from lesson.json)


def step_place(m: dict, left, right) -> dict:
    """Step 4: the same-size patch trained at the exact corner and at the grid place (lesson.json's ``place``, made by
    scripts/lesson_assets.py --place-only); the picture shows the network's last grid and the cell centres covered,
    counted by attack.meter on the photo (forwards only)."""
    pl = m.get("place")
    if not pl:
        st.info("This step's patches are missing from lesson.json: run `make lesson-assets LESSON_ARGS=--place-only`.")
        return {}
    model = _model(m)
    img = photo(pl["image"], model.input_size)
    key = attack.image_hash(img)
    meters = {how: cache.feasibility(model, model.name, model.input_size, key, img, pl["target"], pl["size"],
                                     tuple(q["loc"])) for how, q in pl["patches"].items()}
    mc, mg = meters["corner"], meters["grid"]
    names = {how: label.format(offset=pl["offset"]) for how, label in PLACES.items()}
    with right:
        st.markdown(f"The same **{pl['size']}×{pl['size']}** patch, trained twice on this photo with the same budget: "
                    f"once at the exact corner, once **{pl['offset']} px in**. The network's last layer averages a "
                    f"**{mc.grid}×{mc.grid} grid of {mc.stride:g} px cells**, each capped at 6 (ReLU6), so a patch "
                    f"can only push the cells it covers: at the corner it covers {mc.cells_centre} cell "
                    f"centre{'s' if mc.cells_centre != 1 else ''}, {pl['offset']} px in it covers "
                    f"{mg.cells_centre}, and still lies within "
                    f"{(pl['offset'] + pl['size']) / model.input_size:.0%} of the image side from its corner, "
                    "across and down.")
        how = st.radio("Where the patch was trained", list(PLACES), format_func=names.get, horizontal=True,
                       key="lesson_place", label_visibility="collapsed")
    q, mt = pl["patches"][how], meters[how]
    res = patch(q["file"])
    probs = _probs(model, img, res, res.loc)
    centres, _ = attack.meter.cells(tuple(res.loc), res.size, mt.grid, mt.stride)
    with left:
        picture(widgets.grid_overlay(cache.patched_view(model, img, res.patch, res.loc, res.domain), mt.stride),
                f"{pl['image']}: patch at x={res.loc[1]}, y={res.loc[0]} ({names[how]}); yellow: the "
                f"{mt.grid}×{mt.grid} cells and their centres, red: the centres it covers",
                rings=[(mt.stride * (i + 0.5), mt.stride * (j + 0.5)) for i, j in centres])
    with right:
        p_t = float(probs[res.target])
        out = prediction(4, cache.topk_from_probs(probs), res.target, probs,
                         note=f"trained with {q['evaluations']:,} forward+backward evaluations (restarts × "
                              f"iterations; budget {pl['budget']:,}): "
                              + ("reaches p ≥ 0.9, the paper's criterion" if p_t >= 0.9
                                 else "stops short of p 0.9, the paper's criterion"))
        st.markdown(f"<div class='lesson-mid'>covers {mt.cells_centre} cell centre{'s' if mt.cells_centre != 1 else ''}"
                    f" <span class='lesson-small'>(touches {mt.cells_touched} cells)</span></div>",
                    unsafe_allow_html=True)
        try_it("attack", "train it at any place", photo=pl["image"], patch=q["file"])
    out.update(place=how, cells_centre=mt.cells_centre, cells_touched=mt.cells_touched, loc=list(res.loc))
    return out


@st.cache_data(show_spinner=False, max_entries=64)
def _border_probs(_model, model_name: str, src_key: str, _src, dst_key: str, _dst, patch_key: str, _patch,
                  loc: tuple, border: float, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs (C,), displayable image) of ``dst`` carrying the patch with a ``border`` of its source photo."""
    with torch.no_grad():
        x = attack.border_paste(_src, _dst.unsqueeze(0), _patch, loc, border, domain, _model)
        probs = torch.softmax(attack.patch.domain_logits(_model, x, domain).float(), 1)[0].cpu()
        return probs, cache.model_view(_model, x, domain)[0].cpu()


def step_transfer(m: dict, left, right) -> dict:
    model, res, src = _single(m)
    dst_name = m["transfer"]["image"]
    dst = photo(dst_name, model.input_size)
    with right:
        st.markdown("The same patch, pasted at the same place on **another photo**, does nothing. Give it a border "
                    "of **its own photo** (slider): at about a quarter of the image side per side it works again "
                    "(paper: ≈25%). The patch needs its context.")
        border = st.slider("Border of the patch's own photo, per side (% of the image side)", 0, 50, 0, step=5,
                           key="lesson_border")
    probs, view = _border_probs(model, model.name, attack.image_hash(src), src, attack.image_hash(dst), dst,
                                attack.image_hash(res.patch), res.patch, tuple(res.loc), border / 100, res.domain)
    t, l, b, r = attack.transfer.border_box(res.loc, res.size, model.input_size, border / 100)
    with left:
        picture(view, f"{dst_name} with the patch and a {border}% border", box=(t, l, max(b - t, r - l)))
    with right:
        out = prediction(5, cache.topk_from_probs(probs), res.target, probs,
                         note=f"copied from {m['single']['image']}: {(b - t) * (r - l) / model.input_size ** 2:.0%}"
                              " of the image")
        try_it("transfer", "the border sweep", photo=m["single"]["image"],
               patch=m["single"]["file"], border=border)
    return out


def step_universal(m: dict, left, right) -> dict:
    u = m["universal"]
    model = _model(m)
    res = patch(u["file"])
    hi = model.input_size - res.size
    show = u["showcase"]
    if "lesson_uni_photo" not in st.session_state:
        st.session_state.update(lesson_uni_photo=show["image"], lesson_uni_x=show["loc"][1],
                                lesson_uni_y=show["loc"][0])
    with right:
        held = u.get("heldout") or {}
        st.markdown(f"This patch was trained on {held.get('n', 50)} other photos at random places. Put it **anywhere "
                    f"on any photo**: on {held.get('n', 50)} photos it had never seen it made "
                    f"**{u['target_label']}** the top guess on **{held.get('argmax', float('nan')):.0%}** "
                    "(paper: 74%).")
        name = st.selectbox("Photo", u["photos"], key="lesson_uni_photo")
        c1, c2 = st.columns(2)
        x = int(c1.number_input("x (left, px)", 0, hi, step=8, key="lesson_uni_x"))
        y = int(c2.number_input("y (top, px)", 0, hi, step=8, key="lesson_uni_y"))
    img = photo(name, model.input_size)
    probs = _probs(model, img, res, (y, x))
    with left:
        picture(cache.patched_view(model, img, res.patch, (y, x), res.domain), f"{name}, patch at x={x}, y={y}")
    with right:
        out = prediction(6, cache.topk_from_probs(probs), res.target, probs)
        try_it("universal", "drag it with the mouse", photo=name, patch=u["file"], x=x, y=y)
    return out
