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
def _views(_model, model_name: str, input_size: int, src_key: str, _src, dst_key: tuple, _dst, patch_key: str,
           _patch, loc: tuple, border: float, domain: str) -> torch.Tensor:
    """The photos with the border pasted, as shown (no forward: their predictions come from the sweep)."""
    x = attack.transfer.border_paste(_src.to(_model.device), _dst.to(_model.device), _patch.to(_model.device),
                                     loc, border, domain, _model)
    return cache.model_view(_model, x, domain).cpu()


@st.cache_data(show_spinner=False, max_entries=64)
def _predicted(_model, model_name: str, input_size: int, src_key: str, _src, dst_key: tuple, _dst, patch_key: str,
               _patch, loc: tuple, border: float, domain: str, target: int) -> tuple[list, list, list]:
    """(top-1, its probability, p(target)) per photo at one border, for a border the sweep has not reached yet
    (one batched forward)."""
    with torch.no_grad():
        x = attack.transfer.border_paste(_src.to(_model.device), _dst.to(_model.device), _patch.to(_model.device),
                                         loc, border, domain, _model)
        probs = torch.softmax(attack.patch.domain_logits(_model, x, domain).float(), 1).cpu()
    top_p, top = probs.max(1)
    return top.tolist(), top_p.tolist(), probs[:, target].tolist()


def _swept(border: float) -> tuple[list, list, list] | None:
    """The photos' predictions at ``border`` from the sweep (its value, or its partial result while it runs)."""
    out = a.value
    if out is None and a.job is not None and a.job.progress:
        out = a.job.progress[-1].get("partial")
    if not out or "top1" not in out or border not in out["borders"]:
        return None  # a result cached before the sweep kept per-photo predictions, or a border not reached yet
    i = out["borders"].index(border)
    return out["top1"][i], out["top1_p"][i], out["p_target_each"][i]


st.subheader(f"The photos with a {border:.0%} border")
args = (model, model.name, model.input_size, src_key, image, tuple(dst_names), dst, patch_key, res.patch,
        tuple(res.loc), border, res.domain)
views = _views(*args)
top1, top1_p, p_target = _swept(border) or _predicted(*args, int(res.target))
cols = st.columns(4)
for j, nm in enumerate(dst_names):
    cols[j % 4].image(widgets.to_pil(views[j]), width="stretch",
                      caption=f"{'🎯' if top1[j] == res.target else '·'} {attack.class_names()[top1[j]]} "
                              f"({top1_p[j]:.0%}) · p(target) {p_target[j]:.2f}")
