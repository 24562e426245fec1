"""Transfer: the current patch on other photos, with a border of its own photo around it (paper: ≈25%)."""
from __future__ import annotations

import streamlit as st
import torch

import attack
from ui import boot, cache, charts, widgets

model, res, image = boot.patch_page("🧩 Transfer", (
    "Paste the current patch on *other* photos at the same place. Alone it rarely works; the paper found it "
    "needs a border of its **own source photo of about 25% of the image side on each side** before it carries "
    "over. The slider sets the border; the chart sweeps 0–50%."), "transfer")

names = [s[0] for s in cache.samples() if s[0].startswith("ai-benchmark/")] or [s[0] for s in cache.samples()]
paths = {s[0]: s[1] for s in cache.samples()}
n_dst = st.slider("Other photos", 2, min(32, len(names)), min(8, len(names)), key="transfer_n",
                  help="The first photos of the ai-benchmark set (the source photo is left out)")
src_key = attack.image_hash(image)
dst_names = [nm for nm in names
             if attack.image_hash(cache.sample_tensor(paths[nm], model.input_size, model.resize_size)) != src_key]
dst_names = dst_names[:n_dst]
dst = torch.stack([cache.sample_tensor(paths[nm], model.input_size, model.resize_size) for nm in dst_names])
border = st.slider("Border of the source photo, per side (% of image side)", 0, 50, 25, step=5,
                   key="transfer_border") / 100


@st.cache_data(show_spinner="Pasting on every photo for each border…", max_entries=32)
def _sweep(_model, model_name: str, input_size: int, src_key: str, _src, dst_key: tuple, _dst, patch_key: str,
           _patch, loc: tuple, target: int, domain: str) -> dict:
    return attack.border_transfer(_model, _src, _dst, _patch, loc, target,
                                  borders=tuple(b / 100 for b in range(0, 55, 5)), domain=domain)


patch_key = attack.image_hash(res.patch)
out = _sweep(model, model.name, model.input_size, src_key, image, tuple(dst_names), dst, patch_key, res.patch,
             tuple(res.loc), res.target, res.domain)
st.plotly_chart(charts.border_chart(out, border), key="transfer_chart", width="stretch")
i = min(range(len(out["borders"])), key=lambda j: abs(out["borders"][j] - border))
c1, c2, c3, c4 = st.columns(4)
c1.metric("copied area", f"{out['area'][i]:.1%}")
c2.metric("p(target) ≥ 0.9", f"{out['confident'][i]:.0%}")
c3.metric("target is top-1", f"{out['argmax'][i]:.0%}")
c4.metric("source lost", f"{out['not_source'][i]:.0%}")

st.subheader(f"The photos with a {border:.0%} border")
with torch.no_grad():
    x = attack.transfer.border_paste(image.to(model.device), dst.to(model.device), res.patch.to(model.device),
                                     res.loc, border, res.domain, model)
    probs = torch.softmax(attack.patch.domain_logits(model, x, res.domain).float(), 1).cpu()
    views = cache.model_view(model, x, res.domain).cpu()
cols = st.columns(4)
for j, nm in enumerate(dst_names):
    top = int(probs[j].argmax())
    cols[j % 4].image(widgets.to_pil(views[j]), width="stretch",
                      caption=f"{'🎯' if top == res.target else '·'} {attack.class_names()[top]} "
                              f"({float(probs[j, top]):.0%}) · p(target) {float(probs[j, res.target]):.2f}")
