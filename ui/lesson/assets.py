"""What every lesson step loads: ``assets/lesson/lesson.json`` (the manifest), the shipped patches and the sample
photos, each cached once per process, and the one forward most steps show (the patched photo's probabilities)."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st
import torch

import attack

from .. import cache

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "assets" / "lesson" / "lesson.json"


@st.cache_data(show_spinner=False)
def _manifest(mtime: float) -> dict:
    return json.loads(MANIFEST.read_text())


def manifest() -> dict:
    """``assets/lesson/lesson.json`` (re-read when the file changes)."""
    return _manifest(MANIFEST.stat().st_mtime)


@st.cache_resource(show_spinner=False, max_entries=8)
def _patch(rel: str, mtime: float) -> attack.PatchResult:
    return attack.load_patch(ROOT / rel)


def patch(rel: str) -> attack.PatchResult:
    """A shipped patch file (relative to the repository root), loaded once per process. Treat it as read-only."""
    return _patch(rel, (ROOT / rel).stat().st_mtime)


def photo(name: str, size: int) -> torch.Tensor:
    path = next(s[1] for s in cache.samples() if s[0] == name)
    return cache.sample_tensor(path, size)


def _model(m: dict):
    return cache.get_model(m["model"])


def _single(m: dict):
    model = _model(m)
    res = patch(m["single"]["file"])
    img = photo(m["single"]["image"], model.input_size)
    return model, res, img


def _probs(model, img: torch.Tensor, res: attack.PatchResult, loc) -> torch.Tensor:
    return cache.patched_probs(model, model.name, model.input_size, attack.image_hash(img), img,
                               attack.image_hash(res.patch), res.patch, tuple(loc), res.domain)
