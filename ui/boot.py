"""Make every page run through app.py, even for the very first deep link to a fresh server.

Streamlit decides per process whether an app uses the old ``pages/`` directory mode: the flag is set when the
first session starts (``pages/`` exists) and only cleared when ``st.navigation`` runs. So the first browser that
opens ``/attack`` on a fresh server gets ``pages/1_attack.py`` executed on its own (no sidebar model picker, no
page config, no job bookkeeping), until someone opens the home page. Each page calls :func:`ensure_app` first:
in that situation it clears the flag and reruns, and the rerun goes through app.py's ``st.navigation``, which
finds the same page (the url paths equal the file names for exactly this reason).
"""
from __future__ import annotations

import streamlit as st


def ensure_app() -> None:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the old mode: nothing to do
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def header(title: str, intro: str) -> None:
    """The top of every page: run through app.py (:func:`ensure_app`), then the title and the one-paragraph intro."""
    ensure_app()
    st.title(title)
    st.markdown(intro)


def patch_page(title: str, intro: str, key: str):
    """:func:`header` for a page that works on the current patch: returns (model, PatchResult, image), or stops the
    page with the widgets' prompt when there is no patch yet (``ui.widgets.require_patch``)."""
    from ui import widgets

    header(title, intro)
    model = widgets.current_model()
    res, image = widgets.require_patch(model, key)
    return model, res, image
