"""Defend: PatchCleanser double masking against the current patch, and whether the clean photo is certified."""
from __future__ import annotations

import streamlit as st

import attack
from attack.defend import grid_locs, mask_set
from ui import background, boot, cache, deeplink, defend, jobs, widgets

PAGE = "defend"

model, res, image = boot.patch_page("🛡️ Defend", (
    "Beyond the paper: can the network be protected? **PatchCleanser** (Xiang, Mahloujifar & Mittal, USENIX "
    "Security 2022) classifies the image again under a k×k set of grey masks, each large enough that *any* patch "
    "of the given size lies entirely inside at least one of them; a second round of two masks settles "
    "disagreements. The simple alternative masks the one window whose occlusion changes the prediction most."),
    "defend")

n = model.input_size
c1, c2 = st.columns(2)
size = int(c1.number_input("Patch size to defend against (px)", min_value=1, max_value=n, value=int(res.size),
                           step=1, key="defend_size",
                           help="The guarantee holds for patches up to this size; the current patch's own size "
                                "by default"))
k = int(c2.slider("Masks per side (k)", 2, 6, 6, key="defend_k",
                  help="PatchCleanser uses 6 × 6 on ImageNet; fewer masks are cheaper but larger"))
ms = mask_set(n, size, k)
st.caption(f"{len(ms)} masks of {ms.size}×{ms.size} px at stride {ms.stride} px "
           f"({attack.area_fraction(ms.size, n):.0%} of the image each).")

image_key, patch_key = attack.image_hash(image), attack.image_hash(res.patch)
loc = tuple(res.loc)
view = cache.patched_view(model, image, res.patch, loc, res.domain)
# the defence is computed in the background (or read from the cache any session filled): the page draws at once
a = background.analysis("defend_patched", "defend_patched", model, image_key, patch_key, loc,
                        {"domain": res.domain, "size": size, "k": k}, defend.defend_patched, model, image, res.patch,
                        loc, res.domain, size, k, page=PAGE, label="Masking: first and second round")


def _grid(out: dict, final: bool) -> None:
    """The mask grid over the image (its dots fill in as the first round runs) and, once final, one mask's view."""
    st.image(defend.mask_overlay(view, size, k, loc, res.size, out["covering"], out["first"], res.target),
             width="stretch",
             caption="Grey outlines: the masks; green: those that hide the whole patch (red square). Dots: each "
                     "mask's first-round verdict — red the target class, green anything else.")
    if final:
        i = st.selectbox("See the image under one mask", range(len(ms)), key="defend_mask",
                         index=out["covering"][0] if out["covering"] else 0,
                         format_func=lambda j: f"mask {j}: {widgets.label(out['first'][j])}"
                                               + (" (covers the patch)" if j in out["covering"] else ""))
        st.image(widgets.to_pil(defend.masked_view(view, size, k, i)), width=224)


def _partial(out: dict) -> None:
    left, right = st.columns([1, 1.1], gap="large")
    with left:
        _grid(out, final=False)
    if out.get("undefended") is not None:
        right.metric("undefended", attack.class_names()[out["undefended"]],
                     "the target" if out["undefended"] == res.target else None, delta_color="inverse")
    right.caption(f"{sum(f is not None for f in out['first'])} of {len(ms)} masks classified so far.")


background.live("defend_patched", a, _partial)
out = a.value
if out is not None:
    left, right = st.columns([1, 1.1], gap="large")
    with left:
        _grid(out, final=True)
    with right:
        und, lab = out["undefended"], out["label"]
        m1, m2 = st.columns(2)
        m1.metric("undefended", attack.class_names()[und], "the target" if und == res.target else None,
                  delta_color="inverse")
        m2.metric("PatchCleanser", attack.class_names()[lab],
                  "the target" if lab == res.target else ("the source" if lab == res.source else None),
                  delta_color="inverse" if lab == res.target else "normal")
        st.markdown(f"Defended by case {out['case']}: *{defend.CASES[out['case']]}* · {out['forwards']} forwards "
                    f"(one without defence).")
        st.markdown(f"Occlusion heuristic: masks the window at x={out['occlusion_loc'][1]}, "
                    f"y={out['occlusion_loc'][0]} and says **{widgets.label(out['occlusion_label'])}** "
                    f"({out['occlusion_forwards']} forwards).")
st.subheader("The clean photo")
if st.toggle("Check whether the clean photo is certified", key="defend_certify",
             help=f"Every pair of masks: up to {len(ms) * (len(ms) + 1) // 2 + 1} forwards"):
    c = background.analysis("defend_certify", "certify_clean", model, image_key, None, None, {"size": size, "k": k},
                            defend.certify_clean, model, image, size, k, page=PAGE,
                            label="Certifying the clean photo: every pair of masks")
    background.live("defend_certify", c)
    cert = c.value
    if cert is not None and cert["certified"]:
        st.success(f"Certified for {size}-px patches: every one- and two-mask prediction is "
                   f"**{widgets.label(cert['label'])}**, so no {size}×{size} patch anywhere can change the "
                   f"defended label ({cert['forwards']} forwards).")
    elif cert is not None:
        st.warning(f"Not certified for {size}-px patches: the masks do not all agree on "
                   f"{widgets.label(cert['undefended'])} (defended label {widgets.label(cert['label'])}, "
                   f"{cert['forwards']} forwards until the first disagreement).")
st.subheader("What is guaranteed, and what is not")
st.markdown(defend.EXPLAIN)

st.subheader("Where should the patch go? A vulnerability map")
st.caption("A short attack for the current target at every cell of a coarse grid, all cells trained side by side "
           "as one batch; each cell shows the p(target) its patch reached. The paper puts its patch anywhere, even "
           "in a corner: does the place matter?")
c1, c2, c3 = st.columns(3)
stride = int(c1.number_input("Grid step (px)", 8, n, max(8, (n - res.size) // 3 + 1), key="defend_map_stride"))
steps = int(c2.number_input("Evaluations per cell", 2, 1000, 50, key="defend_map_steps"))
n_cells = len(grid_locs(n, res.size, stride)) ** 2
c3.metric("cells", n_cells)
mkey = defend.map_key(model, image_key, res.target, res.size, stride, steps, res.domain)
vm = defend.cached_map(mkey)
job = jobs.get(defend.MAP_JOB)
b1, b2 = st.columns([3, 1])
if b1.button(f"Map {n_cells} places ({n_cells * steps:,} forward+backward evaluations)", key="defend_map_go",
             type="primary", disabled=bool(job and job.active)):
    st.session_state["defend_map"] = mkey
    if vm is None:
        job = jobs.start(defend.MAP_JOB, defend.run_map, model, image, res.target, size=res.size, stride=stride,
                         steps=steps, domain=res.domain, page=PAGE, on_done=defend.store_map(mkey),
                         meta={"key": mkey})
    else:
        jobs.forget(defend.MAP_JOB)
        job = None
b2.button("Stop", key="defend_map_stop", on_click=jobs.stop, args=(defend.MAP_JOB,), width="stretch",
          disabled=not (job and job.active))


def _map_progress(job: jobs.Job, prog: list) -> None:
    last = prog[-1]
    if job.active:
        st.progress(min(1.0, last["iteration"] / last["steps"]),
                    text=f"evaluation {last['iteration']} of {last['steps']} per cell · {last['training']} of "
                         f"{last['cells']} cells still training (the others reached p ≥ 0.9) · best p(target) now "
                         f"{last['best']:.2f} · {job.elapsed():.0f} s")


jobs.live_view(defend.MAP_JOB, _map_progress, lambda result, job: st.session_state.update(defend_map=job.meta["key"]))
if st.session_state.get("defend_map") == mkey and vm is not None:
    cs = defend.cells(vm)
    event = st.plotly_chart(defend.vulnerability_figure(vm, cache.model_view(model, image, "image"), res.size),
                            key="defend_map_chart", width="stretch", on_select="rerun", selection_mode="points")
    hit = defend.clicked_cell(vm, res.size, event)
    if hit is not None and st.session_state.get("_defend_map_clicked") != (mkey, hit):
        st.session_state["_defend_map_clicked"] = (mkey, hit)  # a selection stays in the event: act on it once
        st.session_state["defend_map_cell"] = hit
        defend.place_on_attack_page(res.target, res.size, res.domain, cs[hit][0], cs[hit][1])
    best = defend.best_cell(vm)
    st.markdown(f"Best cell: x={vm['best_loc'][1]}, y={vm['best_loc'][0]} with p(target) **{cs[best][2]:.2f}** "
                f"({vm['cpu_s']:.0f} CPU s for the whole map).")
    if st.session_state.get("defend_map_cell") not in range(len(cs)):
        st.session_state["defend_map_cell"] = best
    cell = st.selectbox("Place the patch at (click a cell of the map, or pick it here)", range(len(cs)),
                        key="defend_map_cell",
                        format_func=lambda i: f"x={cs[i][1]}, y={cs[i][0]}: p(target) {cs[i][2]:.2f}"
                                              + (" (best)" if i == best else ""),
                        on_change=lambda: defend.place_on_attack_page(
                            res.target, res.size, res.domain, *cs[st.session_state["defend_map_cell"]][:2]))
    top, left = cs[cell][:2]
    placed = (st.session_state.get("attack_loc_y"), st.session_state.get("attack_loc_x")) == (top, left)
    src = st.session_state.get("image_src") or {}
    same_photo = attack.image_hash(widgets.load_source(src, n, model.resize_size)) == image_key if src else False
    link = deeplink.params(photo=src.get("name") if same_photo and src.get("kind") == "sample" else None,
                           ax=left, ay=top)
    if placed:
        st.success(f"The patch is placed at x={left}, y={top} on the Attack page ({res.size}×{res.size}, target "
                   f"{widgets.label(res.target)}, {res.domain} domain): press Train there.")
    st.page_link("pages/1_attack.py", label=f"Train at x={left}, y={top} on the Attack page →", icon="🎯",
                 query_params=link)
    if src and not same_photo:
        st.caption("The Attack page's current photo is not this patch's photo: pick it there before training.")
