"""Universal patch: one patch, many photos, random places (paper §4.3), and a live drag view."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import streamlit as st
import torch

import attack
from lab import findings
from ui import boot, cache, charts, jobs, widgets

PAGE, JOB = "universal", "universal"
PAPER = {k: round(100 * findings.PAPER["universal"][k], 1) for k in ("confident", "argmax", "not_source")}  # held-out, Inception v3
ASSETS = Path(__file__).resolve().parent.parent / "assets"

boot.header("🌐 Universal patch", (
    "Instead of one photo and one place, train **one patch over many photos at random places**; training stops "
    "once it has fooled the network on 30 draws in a row (the paper's rule). On held-out photos the paper got "
    f"p(target) ≥ 0.9 on **{PAPER['confident']}%**, the target as top-1 on **{PAPER['argmax']}%** and the source "
    f"class lost on **{PAPER['not_source']}%**. "
    "Then drag the patch over any photo and watch the prediction change."))

model = widgets.current_model()


@st.cache_data(show_spinner=False)
def _asset_patches(model_name: str, input_size: int) -> dict[str, attack.PatchResult]:
    found = {}
    for path in sorted(ASSETS.glob("*.safetensors")):
        try:
            res = attack.load_patch(path, model_name=model_name, input_size=input_size)
        except attack.PatchFileError:
            continue
        found[f"{path.name} ({widgets.label(res.target)})"] = res
    return found


def _split(n_train: int, n_test: int, seed: int) -> tuple[list[str], list[str]]:
    """The same photo split as ``python -m attack universal`` (:func:`attack.images.universal_split` of the
    ai-benchmark photos, shuffled by the seed)."""
    photos = [s[1] for s in cache.samples() if s[2] == "ai-benchmark"]
    n_train = min(n_train, len(photos))
    return attack.images.universal_split(photos, n_train, min(n_test, len(photos) - n_train),
                                         torch.Generator().manual_seed(seed))


def _stack(paths: list[str]) -> torch.Tensor:
    return torch.stack([cache.sample_tensor(p, model.input_size, model.resize_size) for p in paths])


# -------------------------------------------------------------------------------------------------- choose/train
assets = _asset_patches(model.name, model.input_size)
tab_load, tab_train = st.tabs(["Use a ready patch", "Train one"])
with tab_load:
    if assets:
        pick = st.selectbox("Patches shipped in assets/ (trained with the project's CLI)", list(assets),
                            key="uni_asset")
        if st.button("Use this patch", key="uni_use_asset"):
            st.session_state["universal"] = assets[pick]
    else:
        st.caption("No patch for this model in assets/ — train one, or load a file. (See assets/README.md for "
                   "the command that regenerates them.)")
    loaded = widgets.patch_loader(model, key="uni_patch_file", label_text="Load a universal patch (.safetensors)")
    if loaded is not None:
        st.session_state["universal"] = loaded
with tab_train:
    target = widgets.target_picker("uni_target", default=859)
    size = widgets.size_picker(model.input_size, "uni_size", model=model)
    c1, c2, c3, c4 = st.columns(4)
    domain = c1.radio("Domain", ["image", "network"], key="uni_domain", help="image: a printable patch")
    n_train = int(c2.number_input("Training photos", 2, 60, 20, key="uni_train"))
    max_steps = int(c3.number_input("Max steps", 1, 20_000, 1000, step=100, key="uni_steps"))
    seed = int(c4.number_input("Seed", 0, 2**31 - 1, 0, key="uni_seed"))
    patience = 30
    job = jobs.get(JOB)
    b1, b2 = st.columns([1, 4])
    if b1.button("Train", type="primary", key="uni_train_btn", disabled=bool(job and job.active)):
        train_paths, _ = _split(n_train, 0, seed)
        job = jobs.start(JOB, attack.train_universal, model, _stack(train_paths), target, size=size, domain=domain,
                         patience=patience, max_steps=max_steps, generator=torch.Generator().manual_seed(seed),
                         page=PAGE, meta={"seed": seed, "n_train": n_train})
    b2.button("Stop", key="uni_stop", on_click=jobs.stop, args=(JOB,), disabled=not (job and job.active))

    def _draw(job: jobs.Job, prog: list) -> None:
        last = prog[-1]
        m1, m2, m3 = st.columns(3)
        m1.metric("step", last["iteration"])
        m2.metric("consecutive successes", f"{last['streak']} / {last['patience']}")
        m3.metric("seconds", f"{job.elapsed():.1f}")
        st.plotly_chart(charts.universal_curve([p["p_target"] for p in prog], [p["streak"] for p in prog],
                                               last["patience"], target), key="uni_live", width="stretch")

    def _keep(result: attack.PatchResult, job: jobs.Job) -> None:
        result.meta.update(seed=job.meta["seed"], n_train=job.meta["n_train"])
        st.session_state["universal"] = result

    jobs.live_view(JOB, _draw, _keep)

res: attack.PatchResult | None = st.session_state.get("universal")
if res is None or res.model_name != model.name or res.input_size != model.input_size:
    st.info("Pick a ready patch or train one to see the held-out evaluation and the live view.")
    st.stop()

# -------------------------------------------------------------------------------------------------- evaluation
st.divider()
conv = res.success.get("converged")
st.markdown(f"**Patch:** target **{widgets.label(res.target)}**, {res.size}px "
            f"({attack.area_fraction(res.size, model.input_size):.2%} of the image), {res.domain} domain, "
            f"{res.steps} steps, {'converged (30 in a row)' if conv else 'not converged'}")
c_png, c_dl = st.columns([1, 4])
c_png.image(attack.patch_png(res, model), width=96)
c_dl.download_button("Download (.safetensors)", attack.io.patch_bytes(res), f"universal_{res.target}.safetensors",
                     key="uni_dl")
seed = int(res.meta.get("seed", 0))
n_train = int(res.meta.get("n_train", res.meta.get("train_images", 20)))
n_test = st.slider("Held-out photos", 4, 50, 16, key="uni_test")
_, test_paths = _split(n_train, n_test, seed)


@st.cache_data(show_spinner="Evaluating on held-out photos…", max_entries=16)
def _evaluate(_model, model_name: str, input_size: int, patch_key: str, _patch, paths: tuple, target: int,
              domain: str, seed: int) -> dict:
    imgs = _stack(list(paths))
    locs = attack.random_locs(len(paths), input_size, _patch.shape[-1], torch.Generator().manual_seed(seed + 1))
    ev = attack.evaluate_patch(_model, imgs, _patch, locs, target, domain=domain)
    ev["locs"] = locs.tolist()
    return ev


ev = _evaluate(model, model.name, model.input_size, attack.image_hash(res.patch), res.patch, tuple(test_paths),
               res.target, res.domain, seed)
table = pd.DataFrame([
    {"criterion": t, "ours (%)": round(100 * ev[k], 1), "paper (%)": PAPER[k]}
    for k, t in (("confident", "p(target) ≥ 0.9"), ("argmax", "target is top-1"),
                 ("not_source", "source no longer top-1"))])
st.dataframe(table, hide_index=True, width="content")
st.caption(f"{ev['n']} held-out photos (not used for training), random places; paper: Inception v3, 42×42.")
with torch.no_grad():
    imgs = _stack(test_paths[:8])
    x = attack.apply_patch(imgs.to(model.device), res.patch.to(model.device), ev["locs"][:8], res.domain, model)
    views = cache.model_view(model, x, res.domain).cpu()
cols = st.columns(8)
for j in range(views.shape[0]):
    pred = ev["pred"][j]
    cols[j].image(widgets.to_pil(views[j]), width="stretch",
                  caption=f"{'🎯' if pred == res.target else '·'} {attack.class_names()[pred]}")

# -------------------------------------------------------------------------------------------------- live drag
st.subheader("Drag it onto any photo")


@boot.fragment  # a drag reruns only this part of the page: one forward pass, no re-evaluation above; errors: an id
def live_view(res: attack.PatchResult) -> None:
    image, name = widgets.image_picker(model, key="uni_img", gallery=False)
    if image is None:
        return
    left, right = st.columns([1.15, 1], gap="large")
    patch_view = cache.model_view(model, res.patch.unsqueeze(0), res.domain)[0]
    with left:
        loc = widgets.location_picker(image, res.size, key="uni_loc", patch_image=patch_view)
    with right:
        t0 = time.perf_counter()
        with torch.no_grad():
            logits = attack.patch.patched_logits(model, image.to(model.device), res.patch.to(model.device), loc,
                                                 res.domain)
        probs = torch.softmax(logits.float(), 1)[0].cpu()
        ms = (time.perf_counter() - t0) * 1000
        moved = st.session_state.pop("uni_loc_moved", None)
        top = cache.topk_from_probs(probs)
        st.markdown(f"### {'🎯' if top[0][0] == res.target else '·'} **{top[0][1]}** ({top[0][2]:.1%})")
        widgets.topk_table(top, (res.target,))
        lat = f" · drag to prediction {1000 * (time.perf_counter() - moved):.0f} ms on the server" if moved else ""
        st.caption(f"prediction for x={loc[1]}, y={loc[0]} in {ms:.0f} ms{lat}")
        st.session_state["uni_latency_ms"] = ms


live_view(res)
