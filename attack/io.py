"""Patch files: safetensors (tensors only, never executable) plus JSON metadata; PNG export.

A patch file holds one tensor ``patch`` (3,s,s) float32 and string metadata: ``lavan_format`` (version),
``model``, ``input_size``, ``domain``, ``size``, ``target``, ``source``, ``loc``, ``image_hash``, ``loss``,
``steps``, ``success`` (JSON), ``p_target``, ``stop_at``.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

import torch

from .results import PatchResult

__all__ = ["PatchFileError", "save_patch", "load_patch", "patch_bytes", "patch_from_bytes", "patch_png",
           "MAX_PATCH_BYTES"]

FORMAT = "lavan-patch/1"
MAX_PATCH_BYTES = 16 * 1024 * 1024


class PatchFileError(ValueError):
    """A patch file that cannot be used; the message says why (not safetensors, wrong shape, NaN, other model…)."""


def _metadata(result: PatchResult, extra: dict | None = None) -> dict[str, str]:
    meta = {
        "lavan_format": FORMAT, "model": result.model_name, "input_size": str(result.input_size),
        "domain": result.domain, "size": str(result.size), "target": str(result.target),
        "source": "" if result.source is None else str(result.source),
        "loc": json.dumps(list(result.loc) if result.loc is not None else None),
        "loss": result.loss, "steps": str(result.steps), "evaluations": str(result.evaluations), "success": json.dumps(result.success),
        "p_target": repr(float(result.p_target)), "p_source": repr(float(result.p_source)),
        "stop_at": repr(float(result.stop_at)), "seconds": repr(float(result.seconds)),
        "image_hash": str(result.meta.get("image_hash", "")),
        "extra": json.dumps({k: v for k, v in result.meta.items() if k != "image_hash"}, default=str),
    }
    if extra:
        meta.update({k: str(v) for k, v in extra.items()})
    return meta


def patch_bytes(result: PatchResult) -> bytes:
    """Serialise a result to safetensors bytes (for downloads)."""
    from safetensors.torch import save

    return save({"patch": result.patch.detach().to("cpu", torch.float32).contiguous()}, metadata=_metadata(result))


def save_patch(path: str | Path, result: PatchResult) -> Path:
    """Write ``result`` as a safetensors patch file atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = patch_bytes(result)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".safetensors")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a saved patch is an ordinary readable file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_safetensors(data: bytes, name: str) -> tuple[dict, dict]:
    """(tensors, metadata) of a LaVAN patch file's bytes; PatchFileError for anything else (pickles are refused
    before any parsing)."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    if len(data) == 0:
        raise PatchFileError(f"{name}: the file is empty")
    if len(data) > MAX_PATCH_BYTES:
        raise PatchFileError(f"{name}: {len(data) / 2**20:.1f} MiB is too large for a patch file")
    # A safetensors file starts with its header length (u64 LE) followed by a JSON header: only when that structure
    # is absent can the first bytes be read as a pickle (b"\x80" + protocol 2..5) or zip (torch.save) signature.
    header_len = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    looks_safetensors = 2 <= header_len <= len(data) - 8 and data[8:9] == b"{"
    if not looks_safetensors and ((data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"))
                                  or data[:4] == b"PK\x03\x04"):
        raise PatchFileError(f"{name}: this is a pickle / torch.save file; patch files must be safetensors "
                             "(pickles can run code and are never loaded)")
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError, OverflowError, Exception) as exc:  # noqa: BLE001
        raise PatchFileError(f"{name}: not a valid safetensors file ({type(exc).__name__}: {str(exc)[:200]})") from None
    meta = header.get("__metadata__") or {}
    if meta.get("lavan_format") != FORMAT:
        raise PatchFileError(f"{name}: safetensors file without LaVAN patch metadata (lavan_format={FORMAT!r})")
    if set(tensors) != {"patch"}:
        raise PatchFileError(f"{name}: expected exactly one tensor named 'patch', found {sorted(tensors)[:5]}")
    return tensors, meta


def _parse_meta(meta: dict, name: str) -> dict:
    """The typed fields of a patch file's metadata (PatchFileError when one is missing or malformed)."""
    try:
        out = dict(size=int(meta["size"]), isz=int(meta["input_size"]), target=int(meta["target"]),
                   domain=meta["domain"], loc=json.loads(meta.get("loc", "null")),
                   success=json.loads(meta.get("success", "{}")), extra=json.loads(meta.get("extra", "{}")),
                   steps=int(meta.get("steps", "0") or 0), evaluations=int(meta.get("evaluations", "0") or 0))
        loc = out["loc"]
        if loc is not None and not (isinstance(loc, list) and all(type(v) is int for v in loc)):
            raise ValueError(f"loc must be a list of integers, got {str(loc)[:40]!r}")
        if not isinstance(out["success"], dict) or not isinstance(out["extra"], dict):
            raise ValueError("'success' and 'extra' must be JSON objects")
    except (KeyError, ValueError, TypeError) as exc:
        raise PatchFileError(f"{name}: metadata is incomplete or malformed ({exc})") from None
    return out


def _check_patch(patch: torch.Tensor, m: dict, name: str) -> None:
    size, isz, domain, loc = m["size"], m["isz"], m["domain"], m["loc"]
    if patch.dim() != 3 or patch.shape[0] != 3 or patch.shape[1] != patch.shape[2] or patch.shape[1] != size:
        raise PatchFileError(f"{name}: patch has shape {tuple(patch.shape)}, expected (3,{size},{size})")
    if not 1 <= size <= isz:
        raise PatchFileError(f"{name}: patch size {size} does not fit input size {isz}")
    if not torch.isfinite(patch).all():
        raise PatchFileError(f"{name}: patch contains NaN or infinite values")
    if domain not in ("image", "network"):
        raise PatchFileError(f"{name}: unknown domain {domain!r}")
    if domain == "image" and (patch.min() < -1e-6 or patch.max() > 1 + 1e-6):
        raise PatchFileError(f"{name}: image-domain patch has values outside [0,1]")
    if not 0 <= m["target"] < 1000:
        raise PatchFileError(f"{name}: target {m['target']} is not an ImageNet class id")
    if loc is not None and (len(loc) != 2 or not all(0 <= int(v) <= isz - size for v in loc)):
        raise PatchFileError(f"{name}: location {loc} does not fit a {isz}x{isz} input")


def _finite(meta: dict, key: str) -> float:
    try:
        v = float(meta.get(key, "nan"))
        return v if math.isfinite(v) else float("nan")
    except ValueError:
        return float("nan")


def patch_from_bytes(data: bytes, name: str = "patch file", model_name: str | None = None,
                     input_size: int | None = None) -> PatchResult:
    """Parse and validate safetensors bytes into a PatchResult (see :func:`load_patch`)."""
    tensors, meta = _read_safetensors(data, name)
    patch = tensors["patch"]
    if patch.dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise PatchFileError(f"{name}: patch dtype {patch.dtype} is not a float type")
    patch = patch.float()
    m = _parse_meta(meta, name)
    _check_patch(patch, m, name)
    if model_name is not None and meta.get("model") != model_name:
        raise PatchFileError(f"{name}: patch was trained on {meta.get('model')!r}, not on {model_name!r} "
                             "(open it on the Models page to test it across models)")
    if input_size is not None and m["isz"] != input_size:
        raise PatchFileError(f"{name}: patch was trained at {m['isz']}x{m['isz']}, the model runs at "
                             f"{input_size}x{input_size}")
    extra = m["extra"]
    extra["image_hash"] = meta.get("image_hash", "")
    loc = m["loc"]
    return PatchResult(patch=patch, loc=tuple(int(v) for v in loc) if loc is not None else None, target=m["target"],
                       source=int(meta["source"]) if re.fullmatch(r"[0-9]+", meta.get("source", "")) else None,
                       domain=m["domain"], size=m["size"], steps=m["steps"], success=m["success"],
                       p_target=_finite(meta, "p_target"), p_source=_finite(meta, "p_source"),
                       seconds=_finite(meta, "seconds"), model_name=meta.get("model", ""), input_size=m["isz"],
                       loss=meta.get("loss", ""), stop_at=_finite(meta, "stop_at"), evaluations=m["evaluations"],
                       meta=extra)


def load_patch(path: str | Path, model_name: str | None = None, input_size: int | None = None) -> PatchResult:
    """Load and validate a patch file. Checks: safetensors (never unpickles), LaVAN metadata, one float tensor of
    shape (3,s,s) matching its metadata, finite values, image-domain range, and — when given — the model name and
    input size it must match. Raises :class:`PatchFileError` with the reason."""
    path = Path(path)
    if not path.is_file():
        raise PatchFileError(f"no such patch file: {path}")
    if path.stat().st_size > MAX_PATCH_BYTES:
        raise PatchFileError(f"{path.name}: too large for a patch file")
    return patch_from_bytes(path.read_bytes(), path.name, model_name, input_size)


def patch_png(result_or_patch, model=None) -> bytes:
    """PNG bytes of a patch. Image-domain patches are exact; network-domain patches are mapped back with the
    model's normalisation (``model`` required) and clipped to [0,1] for display."""
    from PIL import Image

    if isinstance(result_or_patch, PatchResult):
        patch, domain = result_or_patch.patch, result_or_patch.domain
    else:
        patch, domain = result_or_patch, "image"
    if domain == "network":
        if model is None:
            raise ValueError("a network-domain patch needs the model to be shown as an image")
        patch = model.denormalize(patch.to(model.mean.device).unsqueeze(0))[0].cpu()
    arr = (patch.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()
