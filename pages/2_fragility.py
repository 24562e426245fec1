"""Fragility: the same patch moved by a pixel or two (paper: the attack mostly stops working)."""
from __future__ import annotations

import streamlit as st

import attack
from ui import analyses, background, boot, cache, charts, widgets

model, res, image = boot.patch_page("🫨 Fragility", (
    "A LaVAN patch is trained for one exact place. Here the current patch is pasted at every shift of up to "
    "±k pixels from that place and the image is classified again. The paper found that **moving the patch by "
    "a single pixel is often enough to undo the attack** — the centre cell is red, its neighbours are not."), "frag")


radius = st.slider("Shift radius k (px)", 1, 8, 3, key="frag_radius")
image_key, patch_key = attack.image_hash(image), attack.image_hash(res.patch)
loc = tuple(res.loc)
# the map is classified in the background (or read from the cache any session filled): 1-px ring first
a = background.analysis("frag_map", "shift_map", model, image_key, patch_key, loc,
                        {"target": int(res.target), "source": res.source, "radius": radius, "domain": res.domain},
                        analyses.shift_sweep, model, image, res.patch, loc, res.target, res.source, radius,
                        res.domain, page="fragility", label="Classifying every shift")


def _map(plain: dict, final: bool) -> None:
    maps = analyses.tensors(plain)
    r = int(maps["radius"])
    st.plotly_chart(charts.shift_heatmaps(maps), key="frag_heat" if final else None, width="stretch")
    pt = maps["p_target"]
    ring1 = [float(pt[r + dy, r + dx]) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    ring1 = [v for v in ring1 if v == v]
    c1, c2, c3 = st.columns(3)
    c1.metric("p(target) at the trained place", f"{float(pt[r, r]):.3f}")
    c2.metric("mean p(target), 1-px shifts", f"{sum(ring1) / max(1, len(ring1)):.3f}")
    c3.metric("1-px shifts still top-1 target",
              f"{sum(int(maps['argmax'][r + dy, r + dx]) == res.target for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))} / 8")


background.live("frag_map", a, lambda plain: _map(plain, False))
if a.value is not None:
    _map(a.value, True)

st.subheader("Nudge it yourself")
st.caption("Move the patch one pixel at a time and watch the prediction snap back to the original class.")


def _nudge(dy: int, dx: int) -> None:
    if dy == 0 and dx == 0:
        st.session_state["frag_dy"] = st.session_state["frag_dx"] = 0
        return
    st.session_state["frag_dy"] = st.session_state.get("frag_dy", 0) + dy
    st.session_state["frag_dx"] = st.session_state.get("frag_dx", 0) + dx


n, size = model.input_size, res.size
for k, lo, hi in (("frag_dy", -loc[0], n - size - loc[0]), ("frag_dx", -loc[1], n - size - loc[1])):
    st.session_state[k] = int(min(max(st.session_state.get(k, 0), lo), hi))
left, right = st.columns([1, 1.2], gap="large")
with left:
    b = st.columns(5)
    b[0].button("← 1px", key="frag_left", on_click=_nudge, args=(0, -1), width="stretch")
    b[1].button("→ 1px", key="frag_right", on_click=_nudge, args=(0, 1), width="stretch")
    b[2].button("↑ 1px", key="frag_up", on_click=_nudge, args=(-1, 0), width="stretch")
    b[3].button("↓ 1px", key="frag_down", on_click=_nudge, args=(1, 0), width="stretch")
    b[4].button("reset", key="frag_reset", on_click=_nudge, args=(0, 0), width="stretch")
    c1, c2 = st.columns(2)
    dx = int(c1.number_input("dx (px)", min_value=-loc[1], max_value=n - size - loc[1], step=1, key="frag_dx"))
    dy = int(c2.number_input("dy (px)", min_value=-loc[0], max_value=n - size - loc[0], step=1, key="frag_dy"))
    shifted = (loc[0] + dy, loc[1] + dx)
    st.image(widgets.to_pil(cache.patched_view(model, image, res.patch, shifted, res.domain)), width=336)
    st.caption(f"patch at x={shifted[1]}, y={shifted[0]} (trained at x={loc[1]}, y={loc[0]})")
with right:
    probs = cache.patched_probs(model, model.name, model.input_size, image_key, image, patch_key, res.patch,
                                shifted, res.domain)
    top = cache.topk_from_probs(probs)
    hit = top[0][0] == res.target
    st.markdown(f"### {'🎯' if hit else '↩️'} top-1: **{top[0][1]}** ({top[0][2]:.1%})")
    st.caption(f"target {widgets.label(res.target)}: p = {float(probs[res.target]):.3f} · source "
               f"{widgets.label(res.source)}: p = {float(probs[res.source]) if res.source is not None else float('nan'):.3f}")
    widgets.topk_table(top, (res.target,))
