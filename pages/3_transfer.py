"""Transfer: the current patch on other photos, with a border of its own photo around it (paper: ≈25%)."""
from __future__ import annotations

import streamlit as st
import torch

import attack
from ui import analyses, background, boot, cache, charts, widgets

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


patch_key = attack.image_hash(res.patch)
# the sweep runs in the background (or comes from the cache any session filled); its curve gains a point per border
a = background.analysis("transfer_sweep", "border_transfer", model, src_key, patch_key, tuple(res.loc),
                        {"target": int(res.target), "domain": res.domain, "dst": list(dst_names),
                         "borders": list(analyses.BORDERS)},
                        analyses.transfer_sweep, model, image, dst, res.patch, tuple(res.loc), res.target,
                        res.domain, first=border, page="transfer", label="Pasting on every photo for each border")


def _curve(out: dict, final: bool) -> None:
    st.plotly_chart(charts.border_chart(out, border), key="transfer_chart" if final else None, width="stretch")
    if border not in out["borders"]:
        return
    i = out["borders"].index(border)
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("copied area", f"{out['area'][i]:.1%}")
    c2.metric("p(target) ≥ 0.9", f"{out['confident'][i]:.0%}")
    c3.metric("target is top-1", f"{out['argmax'][i]:.0%}")
    c4.metric("source lost", f"{out['not_source'][i]:.0%}")


background.live("transfer_sweep", a, lambda out: _curve(out, False))
if a.value is not None:
    _curve(a.value, True)


@st.cache_data(show_spinner=False, max_entries=64)
def _pasted(_model, model_name: str, input_size: int, src_key: str, _src, dst_key: tuple, _dst, patch_key: str,
            _patch, loc: tuple, border: float, domain: str):
    """The photos with the border pasted, their probabilities and views (one batched forward per border)."""
    with torch.no_grad():
        x = attack.transfer.border_paste(_src.to(_model.device), _dst.to(_model.device), _patch.to(_model.device),
                                         loc, border, domain, _model)
        probs = torch.softmax(attack.patch.domain_logits(_model, x, domain).float(), 1).cpu()
        return probs, cache.model_view(_model, x, domain).cpu()


st.subheader(f"The photos with a {border:.0%} border")
probs, views = _pasted(model, model.name, model.input_size, src_key, image, tuple(dst_names), dst, patch_key,
                       res.patch, tuple(res.loc), border, res.domain)
cols = st.columns(4)
for j, nm in enumerate(dst_names):
    top = int(probs[j].argmax())
    cols[j % 4].image(widgets.to_pil(views[j]), width="stretch",
                      caption=f"{'🎯' if top == res.target else '·'} {attack.class_names()[top]} "
                              f"({float(probs[j, top]):.0%}) · p(target) {float(probs[j, res.target]):.2f}")
