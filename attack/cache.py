"""On-disk cache of trained patches, keyed by everything that determines the result.

Entries are safetensors patch files written atomically (temp file + rename) and named by the key; the history
is kept in a JSON side file. Each entry records its own key and SHA-256 digests of its patch tensor and history, so a
corrupted, truncated or tampered entry is detected, deleted and reported as a miss, never served.

The directory is size-capped ($LAVAN_CACHE_MAX_MB, default 2048 MiB, or ``max_bytes=``): a hit marks its entry as
used, and a put evicts the least recently used entries when over the cap (:mod:`attack.disk_lru`, shared with
:class:`attack.result_cache.ResultCache`).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch

from .disk_lru import Capped, DiskLRU
from .io import PatchFileError, load_patch, save_patch
from .results import PatchResult

__all__ = ["PatchCache", "cache_key", "training_key", "get_or_train", "store", "default_cache_dir", "CACHE_VERSION"]

CACHE_VERSION = "3"  # bump when the trainer changes in a way that changes results


def default_cache_dir() -> Path:
    """Where trained patches are cached (the CLI and the app share it): $LAVAN_CACHE_DIR or .lavan-cache/."""
    return Path(os.environ.get("LAVAN_CACHE_DIR", Path(__file__).resolve().parent.parent / ".lavan-cache"))


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _patch_digest(result: PatchResult) -> str:
    return _digest(result.patch.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())


def cache_key(**fields) -> str:
    """SHA-256 of the canonical JSON of every field that determines a training result (model, input size, image
    hash, target, source, loc, size, domain, loss, steps, lr, optimizer, stop_at, seed, …)."""
    payload = json.dumps({"v": CACHE_VERSION, **fields}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


class PatchCache(Capped):
    """``get(key) -> PatchResult | None`` and ``put(key, result)``; safe to share between threads/processes.
    ``max_bytes``: the directory's size cap (None: $LAVAN_CACHE_MAX_MB or 2048 MiB; 0: unbounded); least recently
    used entries are evicted after a put (:class:`attack.disk_lru.DiskLRU`). Only ``<key>.safetensors`` /
    ``<key>.json`` files in the directory itself are counted (not ``results/`` or other folders)."""

    def __init__(self, root: str | Path | None = None, *, max_bytes: int | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        self.lru = DiskLRU(self.root, depth=0, suffixes=(".safetensors", ".json"), complete=".safetensors",
                           max_bytes=max_bytes)

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not all(c in "0123456789abcdef" for c in key) or len(key) != 64:
            raise ValueError("cache keys are 64 hex digits (use cache_key)")
        return self.root / f"{key}.safetensors", self.root / f"{key}.json"

    def get(self, key: str) -> PatchResult | None:
        patch_path, hist_path = self._paths(key)
        if not patch_path.exists():
            return None
        try:
            result = load_patch(patch_path)
            if result.meta.get("cache_key") != key:
                raise PatchFileError("entry does not carry its own key")
            if result.meta.get("patch_sha256") != _patch_digest(result):
                raise PatchFileError("patch tensor does not match its checksum")
            hist_text = hist_path.read_text()
            if result.meta.get("history_sha256") != _digest(hist_text.encode()):
                raise PatchFileError("history does not match its checksum")
            result.history = json.loads(hist_text)
        except (PatchFileError, ValueError, OSError):
            for p in (patch_path, hist_path):
                try:
                    p.unlink()
                except OSError:
                    pass
            return None
        self.lru.touch(patch_path, hist_path)
        result.meta["cached"] = True
        return result

    def put(self, key: str, result: PatchResult) -> Path:
        patch_path, hist_path = self._paths(key)
        self.root.mkdir(parents=True, exist_ok=True)
        hist_text = json.dumps(result.history)
        result.meta["cache_key"] = key
        result.meta["patch_sha256"] = _patch_digest(result)
        result.meta["history_sha256"] = _digest(hist_text.encode())
        # history first, patch last: the patch file's presence marks a complete entry
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            f.write(hist_text)
        os.replace(tmp, hist_path)
        save_patch(patch_path, result)
        self.lru.after_put(key, hist_path, patch_path)
        return patch_path


def training_key(model, image_hash: str, target: int, loc, size: int, *, domain: str, loss: str, steps: int,
                 lr: float, optimizer: str = "adam", stop_at: float = 0.9, seed: int = 0, source: int | None = None,
                 init: str = "random", **extra) -> str:
    """The cache key of one single-image training (``train_patch``): the one list of fields that the CLI's
    ``attack`` command and the Attack page both key by (through :meth:`attack.spec.TrainingSpec.key`), so an entry
    one writes the other finds. ``extra``: further fields that change the result (e.g. ``restarts``); leave out a
    field at its default so old keys stay valid."""
    return cache_key(model=model.name, input_size=model.input_size, image=image_hash, target=int(target),
                     source=source, loc=[int(v) for v in loc], size=int(size), domain=domain, loss=loss,
                     steps=int(steps), lr=lr, optimizer=optimizer, stop_at=stop_at, seed=int(seed), init=init,
                     **extra)


def get_or_train(cache: "PatchCache | None", key: str, train, image_hash: str) -> tuple[PatchResult, bool]:
    """``(result, from_cache)``: the cached entry for ``key``, or ``train()``'s result, stored unless it was
    cancelled (a stopped run is not the answer to its configuration). ``cache=None`` always trains."""
    hit = cache.get(key) if cache is not None else None
    if hit is not None:
        return hit, True
    res = train()
    store(cache, key, res, image_hash)
    return res, False


def store(cache: "PatchCache | None", key: str, result: PatchResult, image_hash: str) -> bool:
    """Record ``image_hash`` in ``result.meta`` and put the result under ``key`` unless it was cancelled (a stopped
    run is not the answer to its configuration); returns whether it was stored. The one store rule of
    :func:`get_or_train` and of the app's background trainings."""
    result.meta["image_hash"] = image_hash
    if cache is None or result.cancelled:
        return False
    cache.put(key, result)
    return True
