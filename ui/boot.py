"""Make every page run through app.py, even for the very first deep link to a fresh server.

Streamlit decides per process whether an app uses the old ``pages/`` directory mode: the flag is set when the
first session starts (``pages/`` exists) and only cleared when ``st.navigation`` runs. So the first browser that
opens ``/attack`` on a fresh server gets ``pages/1_attack.py`` executed on its own (no sidebar model picker, no
page config, no job bookkeeping), until someone opens the home page. Each page calls :func:`ensure_app` first:
in that situation it clears the flag and reruns, and the rerun goes through app.py's ``st.navigation``, which
finds the same page (the url paths equal the file names for exactly this reason).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import uuid
from typing import Iterator

import streamlit as st

# Unexpected errors: the visitor sees a short message with an id, the server log (stderr) the traceback under it.
# A handler of our own on stderr: Streamlit configures only its own loggers, so the root logger would drop the
# traceback (propagate stays on, so a root handler such as pytest's caplog sees the record too).
ERROR_LOG = logging.getLogger("lavan.errors")
if not ERROR_LOG.handlers:
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ERROR_LOG.addHandler(_handler)
    ERROR_LOG.setLevel(logging.INFO)


# ---------------------------------------------------------------- cold start
# A fresh server's first page must not wait for PyTorch (~2.5 s of CPU to import here) and the model. Home draws
# from what needs no torch while cold() says so, and only then starts warm_up() (from its polling fragment, i.e.
# once the browser shows the page: loading torch's libraries holds the GIL for seconds, which would also hold up
# the server sending the page); when the imports are done Home reruns with the model's line. Any other page, or
# any later run, calls warm_up() from app.py and imports what it needs itself.
_WARM: dict = {"thread": None, "cold": None, "error": None, "imported": threading.Event(),
               "done": threading.Event(), "seconds": {}}
_WARM_LOCK = threading.Lock()


def warm_up() -> None:
    """Start the background warm-up once per process: import torch, the attack library and the ui modules, then
    load the default model into the shared cache (``ui.cache.get_model``), so the page opened next finds them
    ready. A failure is logged; pages then import and load as they always did."""
    with _WARM_LOCK:
        if _WARM["thread"] is not None:
            return
        _WARM["cold"] = "torch" not in sys.modules  # an AppTest process (torch already there) is never cold
        _WARM["thread"] = threading.Thread(target=_warm, name="lavan-warm-up", daemon=True)
        _WARM["thread"].start()


def _warm() -> None:
    t0 = time.perf_counter()
    try:
        import torch  # noqa: F401

        _WARM["seconds"]["import torch"] = time.perf_counter() - t0
        from attack.models import DEFAULT_MODEL
        from ui import cache, deeplink, jobs, widgets  # noqa: F401 - what every page imports

        _WARM["seconds"]["imports"] = time.perf_counter() - t0
        _WARM["imported"].set()
        if DEFAULT_MODEL in cache.available_models():
            cache.get_model(DEFAULT_MODEL)
        _WARM["seconds"]["model"] = time.perf_counter() - t0
        print("lavan warm-up: " + ", ".join(f"{k} done at {v:.1f} s" for k, v in _WARM["seconds"].items()),
              file=sys.stderr, flush=True)
    except Exception as exc:  # noqa: BLE001 - only a head start: pages load what they need themselves
        _WARM["error"] = exc
        ERROR_LOG.warning("lavan warm-up failed: %s: %s", type(exc).__name__, exc)
    finally:
        _WARM["imported"].set()
        _WARM["done"].set()


def wait_for_imports(timeout: float = 120.0) -> None:
    """Block until the warm-up thread has imported torch, ``attack`` and the ui modules. A page thread that imports
    ``attack`` while the warm-up thread is half-way through it gets a partially initialised module (Python's import
    deadlock avoidance: "cannot import name 'MODELS' from partially initialized module 'attack.models'", seen on a
    deep link to a fresh server); the page would import the same modules anyway, so waiting costs nothing."""
    if _WARM["thread"] is not None and threading.current_thread() is not _WARM["thread"]:
        _WARM["imported"].wait(timeout)


def cold() -> bool:
    """True in a fresh server until the warm-up has imported torch and the ui modules: Home then draws its light
    version (no torch, no model) and polls until this turns False. Never True in a process that had torch
    imported before the warm-up started (AppTest)."""
    if _WARM["imported"].is_set():
        return False
    if _WARM["thread"] is None:
        return "torch" not in sys.modules
    return bool(_WARM["cold"])


def ensure_app() -> None:
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the old mode: nothing to do
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


def report_error(exc: BaseException, where: str = "") -> str:
    """Log ``exc`` with its traceback under a new short id (stderr) and show the visitor only that id."""
    error_id = uuid.uuid4().hex[:8]
    ERROR_LOG.error("lavan error %s%s: %s", error_id, f" in {where}" if where else "", type(exc).__name__,
                    exc_info=(type(exc), exc, exc.__traceback__))
    st.error(f"Something went wrong here (error id **{error_id}**). The rest of the app keeps working; if it "
             f"happens again, give this id to whoever runs the server — its log has the details.", icon="⚠️")
    return error_id


@contextlib.contextmanager
def guard(where: str = "") -> Iterator[None]:
    """Run a page (app.py wraps ``page.run()``) or a fragment's body (``ui.jobs.live_view``): an unexpected
    exception becomes :func:`report_error`'s short message instead of a traceback on the page. Streamlit's own
    control flow (``st.rerun``, ``st.stop``, ``st.switch_page``) derives from BaseException and passes through; so
    does an error a nested ``st.fragment`` has already shown (Streamlit's FragmentHandledException)."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the whole point: nothing internal reaches the visitor
        if type(exc).__name__ == "FragmentHandledException":
            raise
        report_error(exc, where)


def fragment(func=None, **kwargs):
    """``st.fragment`` whose body runs under :func:`guard`: an error in a fragment rerun (a drag, a poll), which does
    not pass through app.py, is shown as an error id too. Use as ``@boot.fragment`` or ``@boot.fragment(...)``."""
    import functools

    def wrap(f):
        @functools.wraps(f)
        def guarded(*a, **k):
            with guard(f"fragment {f.__name__}"):
                return f(*a, **k)
        return st.fragment(guarded, **kwargs)

    return wrap(func) if func is not None else wrap


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
