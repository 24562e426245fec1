"""Steps 7-9: the network's side. Where its attribution maps put the blame (computed ahead in the lesson's worker
thread: :func:`prefetch`), a sibling network shown the same patch, and PatchCleanser's masks recovering the label."""
from __future__ import annotations

import html
import json
from concurrent.futures import Future, ThreadPoolExecutor

import streamlit as st
import torch

import attack
from attack.evaluate import cross_model_eval

from .. import cache
from .assets import ROOT, _probs, _single, patch, photo
from .view import picture, prediction, try_it

METHODS = {"saliency": "plain gradients (saliency)", "grad_cam": "Grad-CAM"}


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
