"""The Lesson page's logic: nine screens of the paper's findings, each one picture, two or three sentences and a
prediction in large type, computed with forwards only on the patches shipped in ``assets/`` (``lesson.json`` says
which; ``make lesson-assets`` regenerates them with the CLI).

Every ``step_*`` draws one screen into two columns and returns what it shows (``label``: the top-1 class,
``p_target``: the probability of the patch's target), so that the tests can check that a control changes it.
The prediction sits in a container keyed ``lesson_pred_<n>``, which the browser test and ``bench/lesson.py`` wait for.
"""
from __future__ import annotations

import html
import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import streamlit as st
import torch
from PIL import Image, ImageDraw

import attack
import attack.meter
from attack.evaluate import cross_model_eval

from . import cache, deeplink, widgets

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = ROOT / "assets" / "lesson" / "lesson.json"
PICTURE_PX = 360  # shown side of each picture: with the text column beside it, a step fits 1280x720
STEPS = [("photo", "What the model sees"), ("patch", "A patch in the corner"), ("nudge", "Nudge it by one pixel"),
         ("place", "Where the square sits"), ("transfer", "The patch on another photo"), ("universal", "One patch for every photo"),
         ("gradients", "Where does the network look?"), ("models", "Another network"),
         ("defend", "Masking recovers the label")]
METHODS = {"saliency": "plain gradients (saliency)", "grad_cam": "Grad-CAM"}
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


# ---------------------------------------------------------------------------------------------------- assets
@st.cache_data(show_spinner=False)
def _manifest(mtime: float) -> dict:
    return json.loads(MANIFEST.read_text())


def manifest() -> dict:
    """``assets/lesson/lesson.json`` (re-read when the file changes)."""
    return _manifest(MANIFEST.stat().st_mtime)


@st.cache_resource(show_spinner=False, max_entries=8)
def _patch(rel: str, mtime: float) -> attack.PatchResult:
    return attack.load_patch(ROOT / rel)


def patch(rel: str) -> attack.PatchResult:
    """A shipped patch file (relative to the repository root), loaded once per process. Treat it as read-only."""
    return _patch(rel, (ROOT / rel).stat().st_mtime)


def photo(name: str, size: int) -> torch.Tensor:
    path = next(s[1] for s in cache.samples() if s[0] == name)
    return cache.sample_tensor(path, size)


# ---------------------------------------------------------------------------------------------------- drawing
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


# ---------------------------------------------------------------------------------------------------- steps
def _model(m: dict):
    return cache.get_model(m["model"])


def _single(m: dict):
    model = _model(m)
    res = patch(m["single"]["file"])
    img = photo(m["single"]["image"], model.input_size)
    return model, res, img


def _probs(model, img: torch.Tensor, res: attack.PatchResult, loc) -> torch.Tensor:
    return cache.patched_probs(model, model.name, model.input_size, attack.image_hash(img), img,
                               attack.image_hash(res.patch), res.patch, tuple(loc), res.domain)


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
                    f"{mg.cells_centre}, and still stays in the corner.")
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


@st.cache_resource(show_spinner=False)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="lesson-maps")


@st.cache_resource(show_spinner=False, max_entries=16)
def _heat(model_name: str, patch_rel: str, photo_name: str, method: str) -> Future:
    """The attribution map of the patched photo for the target, computed once per process in a worker thread
    (started when the lesson opens, so that Captum's ~4 s import and the backward pass are done by step 7)."""
    model, res = cache.get_model(model_name), patch(patch_rel)
    img = photo(photo_name, model.input_size)

    def work() -> torch.Tensor:
        x = attack.apply_patch(img, res.patch, res.loc, res.domain, model)
        return attack.attribution_map(model, x, res.target, method=method, domain=res.domain)[0]

    return _pool().submit(work)


# Step 8's choice, whatever the sidebar's model: opening the lesson loads these two beside its own model (prefetch),
# as the step asks "does the patch fool another network"; they stay loaded and show in the sidebar's memory line.
OTHER_MODELS = ("efficientnet-lite1", "efficientnet-lite2")


@st.cache_resource(show_spinner=False)
def _warm_models(names: tuple[str, ...]) -> Future:
    """Load step 8's networks once per process in the lesson's worker thread, after step 7's maps: loading one
    costs 0.5-1.5 s here, which was step 8's (and its Lite2 switch's) whole wait on a cold server. The worker fills
    the shared cache (ui.cache.get_model), so the pages get the same copies; it has no page, so the cache's
    "Loading model…" spinner goes nowhere (Streamlit logs a "missing ScriptRunContext" line for it)."""
    return _pool().submit(lambda: [cache.get_model(name) for name in names])


def prefetch(m: dict) -> None:
    """Start step 7's maps and step 8's networks in the background (a no-op once they exist)."""
    for method in METHODS:
        _heat(m["model"], m["single"]["file"], m["single"]["image"], method)
    _warm_models(tuple(n for n in OTHER_MODELS if n in cache.available_models()))


def overlay(image: torch.Tensor, heat: torch.Tensor) -> torch.Tensor:
    """The map (scaled to its 99th percentile) in a black-red-yellow palette over a dimmed image."""
    h = heat / heat.flatten().quantile(0.99).clamp(min=1e-12)
    h = h.clamp(0, 1)
    rgb = torch.stack([(3 * h).clamp(0, 1), (3 * h - 1).clamp(0, 1), (3 * h - 2).clamp(0, 1)])
    return (0.35 * image + 0.65 * rgb).clamp(0, 1)


@st.cache_data(show_spinner=False)
def _measured_ratios() -> str:
    """One line from reports/saliency.json: the median mass-in-patch / area of each lesson method, if measured."""
    try:
        report = json.loads((ROOT / "reports" / "saliency.json").read_text())
        summary = report["summary"]
        ratios = {k: float(summary["by_method"][k]["median_ratio"]) for k in METHODS}
        n = int(summary["configs"])
        on = str(report.get("model") or "efficientnet-lite0")
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    said = ", ".join(f"{METHODS[k].split(' (')[0]} {v:.1f}×" for k, v in ratios.items())
    return (f"<div class='lesson-small'>Median over {n} patches trained on {html.escape(on)} "
            "(reports/saliency.md): "
            f"{html.escape(said)}.</div>")


def step_gradients(m: dict, left, right) -> dict:
    model, res, img = _single(m)
    probs = _probs(model, img, res, res.loc)
    with right:
        st.markdown("If the network *knew* that the square is to blame, the pixels its answer depends on would pile "
                    "up inside it. The paper found that gradients do not single the patch out. Two ways of asking "
                    "give two answers here:")
        method = st.radio("Map", list(METHODS), format_func=METHODS.get, horizontal=True, key="lesson_method")
    job = _heat(m["model"], m["single"]["file"], m["single"]["image"], method)
    if job.exception() is not None:  # not kept: the next run tries again
        _heat.clear()
        raise job.exception()
    heat = job.result()
    share = float(attack.mass_in_patch(heat, attack.patch_mask(model.input_size, res.size, res.loc))[0])
    area = attack.area_fraction(res.size, model.input_size)
    with left:
        picture(overlay(cache.patched_view(model, img, res.patch, res.loc, res.domain), heat),
                f"{METHODS[method]} for '{attack.class_names()[res.target]}' (white: the patch)",
                box=(res.loc[0], res.loc[1], res.size))
    with right:
        st.markdown(f"<div class='lesson-big'>{share:.0%} <span class='lesson-mid'>of the map is in the patch"
                    f"</span></div><div class='lesson-mid'>which is {area:.0%} of the image "
                    f"({share / area:.1f}× its share)</div>" + _measured_ratios(), unsafe_allow_html=True)
        out = prediction(7, cache.topk_from_probs(probs), res.target, probs)
        out["share"] = share
        try_it("gradients", "four methods, both classes", photo=m["single"]["image"], patch=m["single"]["file"])
    return out


@st.cache_data(show_spinner=False, max_entries=16)
def _other(model_name: str, src_model: str, patch_key: str, _patch, domain: str, loc: tuple, target: int,
           image_key: str, _image: torch.Tensor) -> dict:
    """attack.evaluate.cross_model_eval (the Models page's computation) plus the picture that network sees."""
    other, src = cache.get_model(model_name), cache.get_model(src_model)
    out = cross_model_eval(other, _image, _patch, loc, target, from_size=src.input_size, domain=domain,
                           src_model=src)
    shown = _patch if out["pasted_as"] == domain else src.denormalize(_patch.unsqueeze(0))[0].clamp(0, 1)
    moved, _ = attack.evaluate.transplant(shown, loc, src.input_size, other.input_size,
                                          clamp=out["pasted_as"] == "image")
    img = torch.nn.functional.interpolate(_image.unsqueeze(0), size=(other.input_size,) * 2, mode="bicubic",
                                          align_corners=False).clamp(0, 1)[0]
    out["view"] = cache.patched_view(other, img, moved, out["loc"], out["pasted_as"])
    return out


def step_models(m: dict, left, right) -> dict:
    model, res, img = _single(m)
    others = [n for n in OTHER_MODELS if n in cache.available_models()]
    with right:
        st.markdown("The same patch at the same place, shown to **a sibling network** trained on the same "
                    "ImageNet photos. It is not fooled: a LaVAN patch is tailored to the network it was trained on "
                    "(the paper saw no transfer between networks).")
        name = st.radio("Other network", others, horizontal=True, key="lesson_other")
    out = _other(name, model.name, attack.image_hash(res.patch), res.patch, res.domain, tuple(res.loc), res.target,
                 attack.image_hash(img), img)
    own = _probs(model, img, res, res.loc)
    with left:
        picture(out["view"], f"as {name} sees it ({out['view'].shape[-1]}×{out['view'].shape[-1]})")
    with right:
        pred = prediction(8, cache.topk_from_probs(out["patched"]), res.target, out["patched"],
                          note=f"{model.name}, which the patch was trained on: "
                               f"{attack.class_names()[int(own.argmax())]}"
                               f", p({attack.class_names()[res.target]}) = {float(own[res.target]):.2f}")
        try_it("models", "every network side by side", photo=m["single"]["image"], patch=m["single"]["file"])
    pred["model"] = name
    return pred


DEFENCES = {"cleanser": "PatchCleanser", "occlusion": "occlusion", "none": "no defence"}


@st.cache_data(show_spinner=False, max_entries=16)
def _masked_probs(_model, model_name: str, image_key: str, _image: torch.Tensor, patch_key: str, _patch,
                  loc: tuple, domain: str, box: tuple | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(probs (C,), displayable image) of the patched image with a grey square ``box`` = (top, left, side) over it
    (the defence's mask; grey 0.5 as attack.defend fills it): one forward."""
    with torch.no_grad():
        dev = _model.device
        x = attack.apply_patch(_image.to(dev), _patch.to(dev), loc, domain, _model).unsqueeze(0)
        if box is not None:
            t, l, side = box
            grey = torch.full((1, 3, 1, 1), 0.5, device=dev)
            grey = _model.normalize(grey) if domain == "network" else grey
            x = x.clone()
            x[:, :, t:t + side, l:l + side] = grey.to(x.dtype)
        probs = torch.softmax(attack.patch.domain_logits(_model, x, domain).float(), 1)[0].cpu()
        return probs, cache.model_view(_model, x, domain)[0].cpu()


def step_defend(m: dict, left, right) -> dict:
    """Step 9: the defended prediction beside the undefended one. Double masking costs ``d["forwards"]`` forwards
    (45 s here), so its answer comes from lesson.json (scripts/lesson_assets.py --defend-only); the step runs one
    forward: the patched photo under the mask that answer came from (or the occlusion window, or no mask)."""
    d = m.get("defend")
    if not d:
        st.info("This step's precomputed defence is missing from lesson.json: run `make lesson-assets`.")
        return {}
    model, res, img = _single(m)
    names = attack.class_names()
    und = _probs(model, img, res, res.loc)
    c = d["clean"]
    with right:
        st.markdown(f"**PatchCleanser** (Xiang et al. 2022) asks the network again under {d['masks']} grey masks, "
                    f"each big enough to hide any {d['size']}×{d['size']} patch, and settles disagreements with pairs "
                    f"of masks. **Guaranteed** only for a *certified* photo (every pair agrees): then no "
                    f"{d['size']}-px patch anywhere can change the answer. "
                    + ("This photo is certified." if c["certified"] else
                       "This photo is not, so here the recovery is observed, not promised")
                    + " — and the occlusion heuristic promises nothing.")
        choice = st.radio("Defence", list(DEFENCES), format_func=DEFENCES.get, horizontal=True,
                          key="lesson_defence", label_visibility="collapsed")
    if choice == "cleanser":
        box = (*d["mask_loc"], d["mask_size"])
        caption = f"under mask {d['mask'] + 1} of {d['masks']}, the one the defended label came from"
        note = (f"its answer took {d['forwards']} forwards ({d['seconds']:.0f} s here), so it is precomputed "
                f"(scripts/lesson_assets.py --defend-only); shown: one forward under its mask")
    elif choice == "occlusion":
        box = (*d["occlusion"]["loc"], d["size"])
        caption = "grey over the window that hurts the top guess most"
        note = f"{d['occlusion']['forwards']} forwards to find the window (precomputed), then this one"
    else:
        box, caption, note = None, "the patched photo, as it is", "no defence: the patch wins"
    probs, view = _masked_probs(model, model.name, attack.image_hash(img), img, attack.image_hash(res.patch),
                                res.patch, tuple(res.loc), res.domain, box)
    with left:
        picture(view, f"{m['single']['image']}: {caption}", box=box)
    with right:
        u = int(und.argmax())
        a, b = st.columns([1, 2])
        a.markdown(f"<div class='lesson-small'>without defence</div><div class='lesson-mid "
                   f"{'lesson-hit' if u == res.target else ''}'>{'🎯 ' if u == res.target else ''}"
                   f"{html.escape(names[u])} {float(und[u]):.0%}</div>", unsafe_allow_html=True)
        with b:
            out = prediction(9, cache.topk_from_probs(probs), res.target, probs, note=note,
                             lead=f"with {DEFENCES[choice]}" if choice != "none" else "no defence")
        try_it("defend", "every mask, and the certificate", photo=m["single"]["image"], patch=m["single"]["file"])
    out.update(defence=choice, undefended=names[u])
    return out


STEP_FUNCS = [step_photo, step_patch, step_nudge, step_place, step_transfer, step_universal, step_gradients, step_models,
              step_defend]
