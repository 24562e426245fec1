"""Lesson: the paper's findings in nine instant screens (shipped patches, forwards only), each with a door into
the full page."""
from __future__ import annotations

import streamlit as st

from ui import boot, lesson

boot.ensure_app()
st.markdown(lesson.CSS, unsafe_allow_html=True)

n = len(lesson.STEPS)
if "lesson_step" not in st.session_state:
    asked = st.query_params.get("step", "1")
    st.session_state["lesson_step"] = min(max(int(asked), 1), n) if asked.isdigit() else 1


def _move(delta: int) -> None:
    st.session_state["lesson_step"] = min(max(st.session_state["lesson_step"] + delta, 1), n)


try:
    m = lesson.manifest()
except (OSError, ValueError) as exc:
    st.error(f"The lesson's patches are missing ({exc}); run `make lesson-assets`.")
    st.stop()
step = st.session_state["lesson_step"]
st.query_params["step"] = str(step)  # a reload (or a bookmark) comes back to this step
lesson.header(step, _move)
if st.session_state.get("model_name", m["model"]) != m["model"]:  # the sidebar's model is another one: say so
    st.caption(f"The lesson runs on {m['model']}, the network its ready-made patches were trained on, whatever the "
               f"sidebar's model ({st.session_state['model_name']}); the full pages use the sidebar's.")
left, right = st.columns([1, 1.25], gap="large")
st.session_state["lesson_shown"] = lesson.STEP_FUNCS[step - 1](m, left, right)
lesson.prefetch(m)  # step 7's maps, in the background, after this step is drawn
