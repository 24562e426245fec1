"""The target class (a searchable list with one-click suggestions) and the patch side in pixels (the model's
default and the paper's area one click away)."""
from __future__ import annotations

import streamlit as st

import attack

from .. import cache

PAPER_SIZE, PAPER_INPUT = 42, 299  # the paper's 42x42 patch on 299x299 Inception v3 inputs (1.97% of the area)
SUGGESTED_TARGETS = (859, 1, 107, 954, 409, 779)  # toaster, goldfish, jellyfish, banana, analog clock, school bus


def _on_suggest(key: str, class_id: int) -> None:
    st.session_state[key] = cache.class_options()[class_id]


def target_picker(key: str = "target", default: int = 859, exclude: int | None = None) -> int:
    """Searchable selectbox of the 1,000 classes with a few one-click suggestions; returns the class id."""
    options = cache.class_options()
    if key not in st.session_state:
        st.session_state[key] = options[default]
    st.selectbox("Target class (type to search the 1,000 ImageNet classes)", options, key=key)
    with st.container(horizontal=True, gap="small"):
        st.caption("Try:")
        for cid in SUGGESTED_TARGETS:
            st.button(attack.class_names()[cid], key=f"{key}_sugg_{cid}", on_click=_on_suggest, args=(key, cid),
                      disabled=cid == exclude, type="tertiary")
    return int(st.session_state[key].split(" · ")[0])


# ---------------------------------------------------------------------------------------------------- patch size
def paper_size(input_size: int) -> int:
    """The paper's 42-on-299 area (1.97%) at this input size."""
    return attack.size_for_area(PAPER_SIZE ** 2 / PAPER_INPUT ** 2, input_size)


def default_patch(model) -> tuple[int, str]:
    """(side in px, where it comes from) of the model's default patch: the library's default area, measured on
    EfficientNet-Lite0, for the embedded models; the paper's 42×42-on-299 area for the others (never measured
    there), i.e. 42 px on Inception v3's 299 and 31 px on 224 (``attack.model_spec(name).default_area``)."""
    n, area = model.input_size, model.spec.default_area
    if area is None:
        return (int(attack.train.default_patch_size(n)),
                f"the default area {attack.train.DEFAULT_AREA:.2%}, measured on EfficientNet-Lite0 (docs/ATTACK_STRENGTH.md)")
    side = attack.size_for_area(area, n)
    if abs(area - PAPER_SIZE ** 2 / PAPER_INPUT ** 2) < 1e-9:
        return side, "the paper's 42×42 on 299×299 (no default was measured on this model)"
    return side, f"{area:.2%} of the image"


def _set_size(key: str, value: int) -> None:
    st.session_state[key] = value


def size_picker(input_size: int, key: str = "size", default: int | None = None, model=None) -> int:
    """Patch side in pixels, the paper's area one click away. The default is ``default``, else the ``model``'s
    (:func:`default_patch`), else the measured default area (EfficientNet-Lite0). With ``model``, the value
    follows a change of the sidebar's model (back to that model's default)."""
    why = f"the default area {attack.train.DEFAULT_AREA:.2%}, measured on EfficientNet-Lite0 (docs/ATTACK_STRENGTH.md)"
    if model is not None and default is None:
        default, why = default_patch(model)
    default = int(default or attack.train.default_patch_size(input_size))
    paper = paper_size(input_size)
    if model is not None:
        if st.session_state.get(f"{key}_for", model.name) != model.name:
            st.session_state[key] = default  # the sidebar's model changed: its own default
        st.session_state[f"{key}_for"] = model.name
    if key in st.session_state and not 4 <= st.session_state[key] <= input_size // 2:
        st.session_state[key] = default  # another model's size
    c1, c2, c3 = st.columns([2, 1, 1])
    with c1:
        # value=default on every run (the buttons below still set it through session state; config.toml turns
        # off Streamlit's warning about using both). Without it the widget's own default is min_value, and the
        # first session on a cold server sometimes got its square reset to 4 px by the browser.
        size = st.number_input("Patch side (px)", min_value=4, max_value=input_size // 2, step=1, key=key,
                               value=default)
    c2.button(f"Paper: {paper}px", key=f"{key}_paper", on_click=_set_size, args=(key, paper),
              help=f"The paper's 42x42 on 299x299 ({PAPER_SIZE**2 / PAPER_INPUT**2:.2%} of the image)",
              width="stretch")
    c3.button(f"Default: {default}px", key=f"{key}_default", on_click=_set_size, args=(key, default),
              help=f"This model's default: {why}", width="stretch")
    st.caption(f"**{size}×{size} px = {attack.area_fraction(size, input_size):.2%} of the "
               f"{input_size}×{input_size} image** (paper: 42×42 on 299×299 = 1.97%) · default {default} px: {why}")
    return int(size)
