"""LaVAN studio: see every finding of Karmon, Zoran & Goldberg (ICML 2018, arXiv:1801.02608) on a laptop CPU.

Run with ``make run`` (``streamlit run app.py``). Pages are listed with ``st.navigation`` so that deep links
(``/attack``, ``/universal`` …) work on a freshly started server. All attack logic is in the ``attack`` library.
"""
from __future__ import annotations

import time

_T0 = time.perf_counter()

import streamlit as st  # noqa: E402

from ui import boot  # noqa: E402  (streamlit only)

st.set_page_config(page_title="LaVAN studio", page_icon="🟥", layout="wide")

# File names are lower case on purpose: before app.py has run once, a fresh server still lists pages/ the old way
# (url = file name without its number), and a deep link such as /attack must match that name too.
PAGES = {
    "lesson": ("pages/0_lesson.py", "Lesson", "🎓"),
    "attack": ("pages/1_attack.py", "Attack one image", "🎯"),
    "fragility": ("pages/2_fragility.py", "Fragility", "🫨"),
    "transfer": ("pages/3_transfer.py", "Transfer", "🧩"),
    "universal": ("pages/4_universal.py", "Universal patch", "🌐"),
    "gradients": ("pages/5_gradients.py", "Gradients", "🔥"),
    "models": ("pages/6_models.py", "Models", "🏛️"),
    "paper": ("pages/7_paper.py", "Paper vs us", "📄"),
    "defend": ("pages/8_defend.py", "Defend", "🛡️"),
}


def _findings():
    """:mod:`lab.findings` (json and math only; ``lab`` imports neither torch nor ``attack`` on import): a fresh
    server's Home draws before torch is loaded."""
    from lab import findings
    return findings


@st.fragment(run_every=0.5)
def _until_warm() -> None:
    """Home's last section on a fresh server: rerun the whole app (Home with the model line, the sidebar) as soon
    as the background imports are done."""
    if not boot.cold():
        st.rerun()
    polls = st.session_state["_lavan_cold_polls"] = st.session_state.get("_lavan_cold_polls", 0) + 1
    if polls > 1:  # a rerun the browser asked for, so it has the page (ui/boot.py says why not before)
        boot.warm_up()
    st.caption("Loading PyTorch and the model in the background…")


def home() -> None:
    st.title("LaVAN studio")
    st.markdown(
        "**LaVAN** (*Localized and Visible Adversarial Noise*, Karmon, Zoran & Goldberg, ICML 2018) shows that a "
        "small square of noise — about **2% of the image**, pasted anywhere, even in a corner, without touching "
        "the object — makes an ImageNet classifier say whatever class the attacker chose. This studio lets you "
        "train such patches yourself and check each of the paper's findings on your own images.")
    c1, c2 = st.columns([8, 2], vertical_alignment="center")
    c1.markdown("**Teaching a class?** The *Lesson* walks through the findings in eight instant screens, "
                "with ready-made patches and a door into each full page.")
    c2.page_link(PAGE_OBJECTS["lesson"], label="Start the lesson", icon=PAGES["lesson"][2])
    st.subheader("The paper's findings, and where to see them here")
    rows = [(page, claim, f"paper: {paper} · ours (EfficientNet-Lite0): {ours}") for page, claim, paper, ours
            in _findings().home_rows()]  # the README's "Paper vs us" figures, from reports/*.json
    rows.append(("paper", "Every experiment rerun here, the paper's figure beside ours (EfficientNet-Lite0, reduced "
                          "scale)", "see each report"))
    for path, finding, number in rows:
        c1, c2, c3 = st.columns([5, 3, 2])
        c1.markdown(finding)
        c2.markdown(f"*{number}*")
        c3.page_link(PAGE_OBJECTS[path], label=PAGES[path][1], icon=PAGES[path][2])
    st.subheader("What runs here")
    if boot.cold():
        _until_warm()
        return
    import torch

    import attack
    from ui import cache, jobs

    # named from the registry, not the loaded model: Home never waits for the model (loading in the background)
    name = st.session_state.get("model_name") or attack.models.DEFAULT_MODEL
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    st.markdown(
        f"- Model: **{attack.models.describe(name)}** — {attack.model_spec(name).description}.\n"
        f"- Device: **{'GPU (' + gpu + ')' if gpu else 'CPU'}**, {cache.torch_threads()} threads.\n"
        "- The paper attacked **Inception v3** at 299×299. The default here is **EfficientNet-Lite**, a smaller "
        "network that trains patches in seconds on a laptop CPU — *not the paper's model*, so numbers differ. "
        "The model picker in the sidebar lists every torchvision classifier whose weights are in this server's torch "
        "hub cache (Inception v3 is `torchvision:inception_v3`) and loads another when you ask for it (downloaded "
        "once, when the server is online); the operator can also give Inception v3 as a file "
        "(`LAVAN_INCEPTION_WEIGHTS=/path/to/inception_v3.pth`).\n"
        "- Trained patches are cached on the server; the same configuration again is answered at once. "
        f"Trainings run in the background, at most {jobs.MAX_JOBS} at a time on this server.")
    st.caption(f"Server start to this page: {time.perf_counter() - _T0:.2f} s for this run.")


def sidebar():
    """The model picker (the cached models, and a request for any torchvision model) and the server's load. Returns
    the slot of the "Loaded models" line, filled after the page has run (the page may load its model)."""
    import attack
    from attack.models import DEFAULT_MODEL
    from ui import cache, jobs, widgets

    names = cache.available_models()
    picked = st.session_state.pop(widgets.PICKED, None)  # a model the visitor just loaded (widgets.model_request)
    if picked in names:
        st.session_state["model_name"] = picked
    if st.session_state.get("model_name") not in names:
        st.session_state["model_name"] = DEFAULT_MODEL if DEFAULT_MODEL in names else names[0]
    with st.sidebar:
        st.selectbox("Model", names, key="model_name", format_func=cache.model_label,
                     help="The embedded EfficientNet-Lite models, Inception v3 from the operator's file, and every "
                          "torchvision model whose weights are in this server's torch hub cache. Loaded once per "
                          "server process and shared by every session.")
        name = st.session_state["model_name"]  # described from the registry: the page loads the model if it needs it
        source = attack.model_spec(name).source
        paper = name in ("inception-v3", "torchvision:inception_v3")
        st.caption(attack.models.describe(name) + (" · the paper's model" if paper else
                                                   " · EfficientNet-Lite is not the paper's Inception v3"
                                                   if source == "embedded" else " · not the paper's Inception v3"))
        widgets.model_request(names)
        memory = st.empty()
        if jobs.running():
            st.caption(f"Trainings running on this server: {jobs.running()} / {jobs.MAX_JOBS}")
    return memory


def loaded_line(slot) -> None:
    """"Loaded models: 2 (64 MB)": the models in the server's shared cache and what their weights take."""
    from ui import cache

    n, nbytes = cache.loaded_memory()
    names = ", ".join(m.name for m in cache.loaded_models())
    slot.caption(f"Loaded models: {n} ({nbytes / 2**20:.0f} MB)",
                 help=f"In this server's memory, shared by every session: {names or 'none yet'}. Another model "
                      "loads beside them only when it is picked or a page is asked to compare networks.")


PAGE_OBJECTS = {"home": st.Page(home, title="Home", icon="🏠", url_path="home", default=True)}
PAGE_OBJECTS.update({k: st.Page(f, title=t, icon=i, url_path=k) for k, (f, t, i) in PAGES.items()})

page = st.navigation(list(PAGE_OBJECTS.values()))
with boot.guard(f"page {page.url_path}"):  # an unexpected error: a short message with an id, the traceback in the log
    if page is PAGE_OBJECTS["home"] and not st.query_params and boot.cold():
        # a fresh server's first Home: no torch yet (no link to apply, no job to stop); reruns when it is loaded
        with st.sidebar:
            st.caption("Loading PyTorch and the model…")
        page.run()
    else:
        boot.warm_up()  # torch, attack, ui modules and the default model, in the background (once per process)
        boot.wait_for_imports()  # never import attack beside the warm-up thread (a half-initialised module)
        from ui import deeplink, jobs

        deeplink.apply()  # ?photo=…&patch=… (ui/deeplink.py): before the sidebar, which reads the model it may set
        memory = sidebar()
        jobs.leave_page(page.url_path)
        try:
            page.run()
        finally:  # after the page, which may have loaded its model (also when it stopped early)
            loaded_line(memory)
