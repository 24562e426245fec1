"""The sidebar's model: :func:`current_model` (the page's shared copy, falling back to the default when weights
cannot be read) and :func:`model_request`, which loads (downloading first if needed) any torchvision classifier."""
from __future__ import annotations

import streamlit as st

import attack
from attack.models import DEFAULT_MODEL

from .. import cache


def current_model() -> attack.Classifier:
    """The sidebar's model (shared copy, ``ui.cache.get_model``). A model whose weights cannot be read (a file gone
    from the hub cache, a truncated download) is one line of warning, and the page goes on with the default model."""
    names = cache.available_models()
    name = st.session_state.get("model_name") or DEFAULT_MODEL
    if name not in names:
        name = names[0] if names else DEFAULT_MODEL
    try:
        return cache.get_model(name)
    except attack.ModelError as exc:
        if name == DEFAULT_MODEL:
            raise
        said = exc.public_message() if isinstance(exc, attack.WeightsMissing) else str(exc)
        if name == "inception-v3":
            said = "the operator's weights file does not match Inception v3"  # its message may name the server path
        st.warning(f"{name} could not be loaded — {said}. This page uses {DEFAULT_MODEL}.")
        return cache.get_model(DEFAULT_MODEL)


PICKED = "_lavan_picked_model"  # a model loaded by model_request: app.py's sidebar selects it on the next run


def model_request(available: list[str]) -> None:
    """The sidebar's request for any torchvision classifier (all of ``torchvision.models.list_models()``): *Load*
    selects it when its weights are in the hub cache, else downloads them first, with a progress bar. Nothing is
    downloaded before the visitor presses *Load*. Offline (or any failed download) it is one line, naming no server
    path (``WeightsMissing.public_message``), and the app goes on with the model it had."""
    box = st.expander("Another torchvision model", key="model_request_open", on_change="rerun")
    if not box.open:  # lazy: the list of names imports torchvision (seconds on a cold server)
        return
    with box:
        options = [attack.sources.PREFIX + n for n in attack.sources.torchvision_names()]
        name = st.selectbox("torchvision classifier", options, index=None, key="model_request",
                            format_func=cache.model_label, placeholder=f"Type to search {len(options)} models")
        if name is not None:
            st.caption(("Weights in the hub cache: loads at once." if name in available else
                        "Weights not on this server: *Load* downloads them once (the server needs internet).")
                       + f" {attack.model_spec(name).description}.")
        if st.button("Load", key="model_request_load", disabled=name is None, width="stretch"):
            _load_requested(name, available)


def _load_requested(name: str, available: list[str]) -> None:
    if name not in available:
        bar = st.progress(0.0, text=f"Downloading {name}…")

        def progress(done: int, total: int) -> None:
            bar.progress(min(done / total, 1.0) if total else 0.0,
                         text=f"Downloading {name}: {done / 2**20:.0f}" + (f" / {total / 2**20:.0f}" if total else "")
                              + " MB")
        try:
            cache.download_model(name, progress)
        except attack.WeightsMissing as exc:
            bar.empty()
            st.error(exc.public_message())
            return
        except attack.ModelError as exc:  # not a torchvision classifier (the list holds only those)
            bar.empty()
            st.error(str(exc))
            return
        bar.empty()
    st.session_state[PICKED] = name
    st.rerun()
