"""Deep links: open any page with a photo and a shipped patch already loaded, e.g.
``/fragility?photo=skimage/coffee&patch=lesson/single.safetensors&dx=1``.

app.py calls :func:`apply` on every run, before the sidebar and the page, so each page finds the state it already
reads (``ui/widgets/``): ``image_src`` (the photo), ``result``/``result_image`` (a single-image patch and its photo)
or ``universal`` (a universal patch), ``model_name`` (the patch's model), plus a few page inputs (:data:`EXTRAS`).
A link is applied once per distinct set of parameters, so the page's own controls work afterwards. ``patch`` names
a file under ``assets/`` only (no other path is opened); ``photo`` a sample photo name.
"""
from __future__ import annotations

import copy
from pathlib import Path
from urllib.parse import urlencode

import streamlit as st

import attack

from . import cache

ASSETS = Path(__file__).resolve().parent.parent / "assets"
# query parameter -> (session-state key, lowest, highest) of a page input it sets
EXTRAS = {"x": ("uni_loc_x", 0, 1024), "y": ("uni_loc_y", 0, 1024), "dx": ("frag_dx", -1024, 1024),
          "dy": ("frag_dy", -1024, 1024), "border": ("transfer_border", 0, 50),
          "ax": ("attack_loc_x", 0, 1024), "ay": ("attack_loc_y", 0, 1024)}  # ax/ay: the Defend map's chosen cell
_APPLIED = "_deeplink_applied"


def params(photo: str | None = None, patch: str | Path | None = None, **extra: int) -> dict[str, str]:
    """Query parameters for a link (``st.page_link(..., query_params=params(...))``); ``patch`` relative to assets/."""
    out = {}
    if photo:
        out["photo"] = photo
    if patch:
        p = Path(patch)  # absolute, relative to the repository ("assets/…") or to assets/
        p = p.relative_to(ASSETS) if p.is_absolute() else Path(*p.parts[1:]) if p.parts[0] == "assets" else p
        out["patch"] = p.as_posix()
    out.update({k: str(int(v)) for k, v in extra.items() if k in EXTRAS})
    return out


def url(page: str, **kw) -> str:
    """``/page?photo=…&patch=…`` for a link outside Streamlit (the browser test, a printed handout)."""
    q = params(**kw)
    return f"/{page}" + (f"?{urlencode(q)}" if q else "")


def _asset(name: str) -> Path | None:
    path = (ASSETS / name).resolve()
    if path.suffix != ".safetensors" or not path.is_file() or ASSETS.resolve() not in path.parents:
        return None
    return path


@st.cache_resource(show_spinner=False, max_entries=16)
def _load(path: str, mtime: float) -> attack.PatchResult:
    return attack.load_patch(path)


def apply() -> None:
    """Copy the link's photo, patch and inputs into the session state (once per link); warn about what is unknown."""
    q = {k: st.query_params.get(k) for k in ("photo", "patch", *EXTRAS) if st.query_params.get(k)}
    if not q:
        st.session_state.pop(_APPLIED, None)
        return
    sig = tuple(sorted(q.items()))
    if st.session_state.get(_APPLIED) == sig:
        return
    st.session_state[_APPLIED] = sig
    problems = []
    res = None
    if "patch" in q:
        path = _asset(q["patch"])
        try:
            res = copy.deepcopy(_load(str(path), path.stat().st_mtime)) if path else None  # pages may annotate it
        except attack.PatchFileError as exc:
            problems.append(str(exc))
        if res is None and not problems:
            problems.append(f"no patch file {q['patch']!r} in assets/")
    photo = None
    if "photo" in q:
        photo = next((s for s in cache.samples() if s[0] == q["photo"]), None)
        if photo is None:
            problems.append(f"no sample photo {q['photo']!r}")
        else:
            st.session_state["image_src"] = {"kind": "sample", "name": photo[0], "path": photo[1]}
    if res is not None:
        if res.model_name in cache.available_models():
            st.session_state["model_name"] = res.model_name
        if res.loc is None:
            st.session_state["universal"] = res
        elif photo is not None:
            st.session_state["result"] = res
            st.session_state["result_image"] = cache.sample_tensor(photo[1], res.input_size,
                                                                   cache.resize_for(res.model_name, res.input_size))
            # the Attack page's inputs, so that Train there reproduces this patch's configuration
            st.session_state.update({"attack_target": cache.class_options()[res.target], "attack_size": res.size,
                                     "attack_size_for": res.model_name,  # the size is this model's (size_picker)
                                     "attack_loc_x": res.loc[1], "attack_loc_y": res.loc[0],
                                     "attack_domain": res.domain})
        else:
            problems.append("a single-image patch needs its photo (photo=…)")
    for k, (key, lo, hi) in EXTRAS.items():
        if k in q:
            try:
                st.session_state[key] = min(max(int(q[k]), lo), hi)
            except ValueError:
                problems.append(f"{k}={q[k]!r} is not a whole number")
    for p in problems:
        st.warning(f"Link not fully applied — {p}")
