"""On-disk cache of analysis results (defences, transfer curves, fragility maps, …), shared by every session and
process that uses the same cache directory, as :class:`attack.cache.PatchCache` shares trained patches.

A result is plain JSON (numbers, strings, lists, dicts; NaN allowed), keyed by :func:`result_key` over everything
that determines it: the kind of analysis, the model's name and input size, the image hash, the patch hash, the
place and the analysis' parameters. Entries are written atomically (temp file + rename), carry their own key and a
SHA-256 of their value, and a corrupt, truncated or foreign entry is deleted and reported as a miss (the caller
recomputes it). Never pickle: a cache directory may be shared. The ``results/`` folder is size-capped like the
patch cache ($LAVAN_CACHE_MAX_MB, default 2048 MiB, or ``max_bytes=``; least recently used entries are evicted after
a put, by the same :class:`attack.disk_lru.DiskLRU`).

Example: >>> rc = ResultCache(); key = result_key("fragility", model, image_hash, patch_hash, loc, radius=3)
>>> rc.get(key) or rc.put(key, compute())
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .cache import cache_key, default_cache_dir
from .disk_lru import Capped, DiskLRU

__all__ = ["ResultCache", "result_key", "RESULTS_VERSION"]

RESULTS_VERSION = "1"  # bump when an analysis changes in a way that changes its results


def result_key(kind: str, model, image_hash: str | None = None, patch_hash: str | None = None, loc=None,
               **params) -> str:
    """64 hex digits over (kind, model name, input size, image hash, patch hash, loc, params). ``model`` is a
    Classifier (its ``name`` and ``input_size``) or a ``(name, input_size)`` pair."""
    name, size = (model.name, model.input_size) if hasattr(model, "name") else model
    return cache_key(results=RESULTS_VERSION, kind=kind, model=name, input_size=int(size), image=image_hash,
                     patch=patch_hash, loc=None if loc is None else [int(v) for v in loc], **params)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class ResultCache(Capped):
    """``get(key) -> value | None`` and ``put(key, value) -> value`` under ``<root>/results/``; safe to share
    between threads and processes (a reader sees a whole entry or none). ``max_bytes``: the size cap of
    ``results/`` (None: $LAVAN_CACHE_MAX_MB or 2048 MiB; 0: unbounded)."""

    def __init__(self, root: str | Path | None = None, *, max_bytes: int | None = None):
        self.root = (Path(root) if root is not None else default_cache_dir()) / "results"
        self.lru = DiskLRU(self.root, depth=1, suffixes=(".json",), max_bytes=max_bytes)

    def path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("result keys are 64 hex digits (use result_key)")
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> Any | None:
        path = self.path(key)
        try:
            text = path.read_text()
        except OSError:
            return None
        try:
            entry = json.loads(text)
            if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
                raise ValueError("entry does not carry its own key")
            if entry.get("sha256") != hashlib.sha256(_canonical(entry["value"]).encode()).hexdigest():
                raise ValueError("value does not match its checksum")
        except ValueError:  # corrupt, truncated or tampered: recomputed by the caller
            try:
                path.unlink()
            except OSError:
                pass
            return None
        self.lru.touch(path)
        return entry["value"]

    def put(self, key: str, value: Any) -> Any:
        path = self.path(key)
        text = _canonical(value)
        entry = {"key": key, "sha256": hashlib.sha256(text.encode()).hexdigest(), "value": json.loads(text)}
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(entry))
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        self.lru.after_put(key, path)
        return value
