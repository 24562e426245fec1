"""Attack one image: train a LaVAN patch for a photo, a target class and a place, and watch it work."""
from __future__ import annotations

import functools

import streamlit as st
import torch

import attack
import lab.findings
from ui import boot, cache, charts, jobs, widgets

PAGE, JOB = "attack", "attack"
RULE_NAMES = {"adam": "Adam", "sgd": "plain gradient (paper)", "sign": "signed steps",
              "apgd": "signed steps + momentum, step halving (APGD-style)"}

boot.ensure_app()
st.title("🎯 Attack one image")
st.markdown(
    "Pick a photo, a target class and where the square goes. **Train** optimises only the pixels inside the "
    "square until the classifier is ≥ 90% sure the photo shows the target (the paper's criterion) — the rest of "
    "the image is untouched. In the paper, a 42×42 patch (2% of a 299×299 image) reached p ≥ 0.9 on "
    f"{lab.findings.PAPER['single']['success_0_9']:.0%} of images within 10,000 iterations on Inception v3; on "
    "EfficientNet-Lite0, the embedded default, a patch needs a larger area or restarts for the same share (measured: "
    "docs/ATTACK_STRENGTH.md).")

model = widgets.current_model()
with st.expander("Photo", expanded=True):
    image, image_name = widgets.image_picker(model, key="attack_img")
if image is None:
    st.stop()
image_key = attack.image_hash(image)
clean_top = cache.topk(model, model.name, model.input_size, image_key, image)
source = clean_top[0][0]

left, right = st.columns([1.15, 1], gap="large")
with right:
    st.markdown(f"**{image_name}** — the model sees: **{clean_top[0][1]}** ({clean_top[0][2]:.1%})")
    widgets.topk_table(clean_top)
    target = widgets.target_picker("attack_target", exclude=source)
    size = widgets.size_picker(model.input_size, "attack_size", model=model)  # the model's default patch
    auto = attack.TrainingSpec(size=size).resolve(model)  # the measured defaults at this patch size
    c1, c2 = st.columns(2)
    domain = c1.radio("Domain", ["network", "image"], horizontal=True, key="attack_domain",
                      help="network: the patch lives after normalisation, unbounded (the paper's main setting). "
                           "image: a printable patch with pixel values in [0,1].")
    loss = c2.selectbox("Loss", ["auto", *attack.LOSSES], key="attack_loss",
                        format_func=lambda k: f"auto ({auto.loss})" if k == "auto" else k,
                        help="logprob: log p(target) − log p(source) (the paper's objective, source term floored). "
                             "margin_ce: the target's logit margin over every other class until it is top-1, then "
                             "log p(target). auto: logprob at the measured default area "
                             f"({attack.spec.DEFAULT_AREA:.0%}) or larger, {attack.spec.LOSS_SMALL} below it "
                             "(measured on EfficientNet-Lite0: docs/ATTACK_STRENGTH.md).")
    c3, c4, c5 = st.columns(3)
    rule = c3.selectbox("Update rule", attack.optim.RULES, key="attack_rule",
                        index=attack.optim.RULES.index(auto.optimizer),
                        format_func=lambda r: RULE_NAMES.get(r, r),
                        help="How each step changes the patch. sgd = the paper's plain gradient steps.")
    restarts = c4.selectbox("Restarts", ["auto", 1, 2, 4, 8, 16], key="attack_restarts",
                            format_func=lambda r: f"auto ({auto.restarts})" if r == "auto" else str(r),
                            help="Patches trained side by side from different starts; at each stage only the best "
                                 "quarter goes on (successive halving). auto: 1 at the measured default area "
                                 f"({attack.spec.DEFAULT_AREA:.0%}) or larger, {attack.spec.RESTARTS_SMALL} below it "
                                 "(measured on EfficientNet-Lite0: docs/ATTACK_STRENGTH.md).")
    steps = int(c5.number_input("Max evaluations", min_value=1, max_value=10_000, value=2000, step=100,
                                key="attack_steps",
                                help="Budget of forward+backward evaluations of the model: restarts × iterations. "
                                     "The paper allowed up to 10,000 iterations of one patch."))
    seed = int(st.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="attack_seed"))
    spec = attack.TrainingSpec(size=size, domain=domain, optimizer=rule, restarts=restarts, loss=loss, steps=steps,
                               stop_at=0.9, seed=seed).resolve(model)
    st.caption(f"{RULE_NAMES.get(rule, rule)}, step size {spec.lr:g} (default for the {domain} domain), "
               f"{spec.restarts} restart(s), at most {steps:,} forward+backward evaluations; "
               "stops at p(target) ≥ 0.9."
               + (f" Below the default area the gradient leaks {spec.relu6_leak:g} through ReLU6's clips "
                  "(measured on EfficientNet-Lite0: docs/ATTACK_STRENGTH.md)." if spec.relu6_leak else ""))
with left:
    grid = cache.last_grid(model, model.name, model.input_size)
    show_grid = st.checkbox(f"Show the network's {grid[1]:g} px cell grid" if grid else "Show the network's cell grid",
                            key="attack_grid", disabled=grid is None,
                            help="The head of this network averages a grid of cells; a patch acts most directly "
                                 "on the cells whose centre (dot) it covers." if grid else
                                 "This network's head is not a mean over a grid of cells.")
    shown = widgets.grid_overlay(image, grid[1]) if show_grid and grid else image
    loc = widgets.location_picker(shown, size, key="attack_loc", grid=grid,
                                  cells_default=attack.meter.default_place(model) == "grid")

key = spec.key(model, image_key, target, loc)
reading = cache.feasibility(model, model.name, model.input_size, image_key, image, target, size, loc)
BAND_ICONS = {"likely": "🟢", "possible": "🟡", "unlikely": "🔴", "not available": "⚪"}


def _move_to(top: int, left: int) -> None:
    st.session_state["attack_loc_x"], st.session_state["attack_loc_y"] = left, top


def _store(res: attack.PatchResult, img: torch.Tensor, from_cache: bool) -> None:
    st.session_state["result"], st.session_state["result_image"] = res, img
    st.session_state["result_from_cache"] = from_cache


def _train(model, image, image_key: str, target: int, loc, spec, key: str) -> None:
    """Train's on_click: it runs before the script, so the run the press causes already draws Train disabled, Stop
    enabled and the live view (one run, not two). A press that raced the redraw never replaces the running
    training. Its arguments are the inputs of the run that drew the button: a click is its own interaction."""
    running = jobs.get(JOB)
    if running is not None and running.active:
        return
    hit = cache.patch_cache().get(key)
    if hit is not None:
        jobs.forget(JOB)
        _store(hit, image, True)
        return
    st.session_state.pop("result", None)
    # on_done runs in the worker thread (no st.* calls): the one store rule of the CLI's cache too
    jobs.start(JOB, attack.train_patch, model, image, target, loc, **spec.kwargs(), page=PAGE,
               on_done=functools.partial(attack.cache.store, cache.patch_cache(), key, image_hash=image_key),
               meta={"image": image, "loc": loc, "domain": spec.domain})


job = jobs.get(JOB)
b1, b2, b3 = st.columns([1, 1, 3])
b1.button("Train", type="primary", key="attack_train", width="stretch", disabled=bool(job and job.active),
          on_click=_train, args=(model, image, image_key, target, loc, spec, key))
b2.button("Stop", key="attack_stop", on_click=jobs.stop, args=(JOB,), width="stretch",
          disabled=not (job and job.active))
with b3:
    st.markdown(f"{BAND_ICONS[reading.band]} **{reading.band.capitalize()} at this place** — {reading.reason}")
    if reading.moved:
        bt, bl = reading.best_loc
        st.button(f"Move to the best place nearby (x={bl}, y={bt}: {reading.best_band})", key="attack_meter_move",
                  on_click=_move_to, args=(bt, bl),
                  help="The place within 16 px whose cells let the last layer go furthest (the feasibility "
                       "meter: forward passes only, no training).")
    st.caption("The meter reads the network's last layers only: a forecast (measured in docs/ATTACK_STRENGTH.md). "
               "The same configuration again is answered from the cache at once.")


def _draw(job: jobs.Job, prog: list) -> None:
    last = prog[-1]
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("iteration", last.iteration)
    m2.metric("evaluations", f"{last.evaluations:,}", help="forward+backward evaluations: restarts × iterations")
    m3.metric("p(target)", f"{last.p_target:.3f}")
    m4.metric("p(source)", f"{last.p_source:.3f}")
    m5.metric("seconds", f"{job.elapsed():.1f}")
    if job.active:
        c1, c2 = st.columns([1, 2.2])
        if job.latest_patch is not None and "image" in job.meta:
            c1.image(widgets.to_pil(cache.patched_view(model, job.meta["image"], job.latest_patch,
                                                                 job.meta["loc"], job.meta["domain"])),
                     caption="the leading restart's patch as it forms", width="stretch")
        series, leader = charts.restart_series(prog)
        with c2:
            if len(series) > 1:
                st.plotly_chart(charts.restart_curves(series, leader), key="attack_restarts_live", width="stretch")
            st.plotly_chart(charts.confidence_curve([s.p_target for s in prog], [s.p_source for s in prog],
                                                    [s.top5 for s in prog], target, source), key="attack_live",
                            width="stretch")


jobs.live_view(JOB, _draw, lambda result, job: _store(result, job.meta["image"], False))

res: attack.PatchResult | None = st.session_state.get("result")
img = st.session_state.get("result_image")
if res is not None and img is not None and res.model_name == model.name and res.input_size == model.input_size:
    st.divider()
    st.subheader("Result")
    ok = res.success
    crit = " · ".join(f"{'✅' if ok.get(k) else '❌'} {t}" for k, t in
                      (("confident", "p(target) ≥ 0.9"), ("argmax", "target is top-1"),
                       ("not_source", "source no longer top-1")))
    origin = "answered from the cache" if st.session_state.get("result_from_cache") else (
        "stopped" if res.cancelled else "trained")
    evals = res.evaluations or res.steps
    st.markdown(f"{crit}  \n**{evals:,} forward+backward evaluations ({res.steps} iterations, "
                f"{res.meta.get('restarts', 1)} restart(s)), {res.seconds:.1f} s** ({origin}) · "
                f"{widgets.label(res.source)} → **{widgets.label(res.target)}** · patch {res.size}px at "
                f"x={res.loc[1]}, y={res.loc[0]}, {res.domain} domain")
    img_key = attack.image_hash(img)
    patched = cache.patched_view(model, img, res.patch, res.loc, res.domain)
    probs = cache.patched_probs(model, model.name, model.input_size, img_key, img, attack.image_hash(res.patch),
                                res.patch, tuple(res.loc), res.domain)
    c1, c2, c3, c4 = st.columns([1, 1, 1, 1.2])
    c1.image(widgets.to_pil(img), caption="clean", width="stretch")
    c2.image(widgets.to_pil(patched), caption="with the patch", width="stretch")
    with c3:
        st.markdown("**top-5 before**")
        widgets.topk_table(cache.topk(model, model.name, model.input_size, img_key, img), (res.target,))
    with c4:
        st.markdown("**top-5 after**")
        widgets.topk_table(cache.topk_from_probs(probs), (res.target,))
    hist = res.history or {}
    if len(hist.get("restarts") or []) > 1:
        st.plotly_chart(charts.restart_curves(hist["restarts"], int(res.meta.get("leader", 0)), res.stop_at,
                                              hist.get("evaluations")), key="attack_result_restarts",
                        width="stretch")
    if hist.get("p_target"):
        st.plotly_chart(charts.confidence_curve(hist["p_target"], hist.get("p_source", []), hist.get("top5"),
                                                res.target, res.source), key="attack_result_curve",
                        width="stretch")
    stem = f"lavan_{res.model_name}_{res.target}_x{res.loc[1]}_y{res.loc[0]}_{res.size}_{res.domain}"
    d1, d2, d3 = st.columns(3)
    d1.download_button("Patch (.safetensors)", attack.io.patch_bytes(res), f"{stem}.safetensors",
                       mime="application/octet-stream", key="dl_patch", width="stretch")
    d2.download_button("Patch (.png)", attack.patch_png(res, model), f"{stem}_patch.png", mime="image/png",
                       key="dl_patch_png", width="stretch")
    d3.download_button("Patched image (.png)", widgets.png_bytes(patched), f"{stem}.png", mime="image/png",
                       key="dl_image_png", width="stretch")
    st.caption("Next: see how fragile it is on **Fragility**, paste it elsewhere on **Transfer**, or try other "
               "networks on **Models**.")
