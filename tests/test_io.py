"""Patch files: safetensors round trip, PNG export, and every bad patch file refused with a clear PatchFileError."""
from __future__ import annotations

import io
import math
import pickle

import pytest
import torch
from PIL import Image

import attack
from attack.io import MAX_PATCH_BYTES, PatchFileError, load_patch, patch_bytes, patch_from_bytes, patch_png, save_patch
from attack.results import PatchResult


def _result(domain="network", size=12, loc=(3, 4), **meta) -> PatchResult:
    g = torch.Generator().manual_seed(0)
    patch = torch.rand(3, size, size, generator=g) if domain == "image" else torch.randn(3, size, size, generator=g)
    return PatchResult(patch=patch, loc=loc, target=859, source=281, domain=domain, size=size, steps=17,
                       success={"confident": True, "argmax": True, "not_source": True}, p_target=0.93,
                       p_source=0.01, seconds=1.25, history={"p_target": [0.1, 0.93]}, model_name="efficientnet-lite0",
                       input_size=224, loss="logit", stop_at=0.9, meta={"image_hash": "abc123", "lr": 0.1, **meta})


@pytest.mark.parametrize("domain", ["network", "image"])
def test_round_trip(tmp_path, domain):
    res = _result(domain)
    path = save_patch(tmp_path / "sub" / "p.safetensors", res)
    assert path.is_file() and not list(path.parent.glob(".tmp-*"))  # no temp file left behind
    back = load_patch(path, model_name="efficientnet-lite0", input_size=224)
    assert back.patch.dtype == torch.float32 and torch.equal(back.patch, res.patch)
    for field in ("loc", "target", "source", "domain", "size", "steps", "success", "p_target", "p_source",
                  "seconds", "model_name", "input_size", "loss", "stop_at"):
        assert getattr(back, field) == getattr(res, field), field
    assert back.meta["image_hash"] == "abc123" and back.meta["lr"] == 0.1
    assert patch_from_bytes(patch_bytes(res)).summary() == back.summary()


def test_round_trip_universal_patch(tmp_path):
    res = _result("image", loc=None)
    res.source = None
    back = load_patch(save_patch(tmp_path / "u.safetensors", res))
    assert back.loc is None and back.source is None and torch.equal(back.patch, res.patch)


def test_any_header_length_round_trips():
    """Regression: a valid file whose header length starts with the bytes 0x80 0x02/0x04 (640 or 1152 bytes) was
    refused as a pickle. Sweep metadata lengths across those values."""
    seen = set()
    for pad in range(0, 900):
        data = patch_bytes(_result(note="x" * pad))
        seen.add(int.from_bytes(data[:8], "little"))
        patch_from_bytes(data)
    assert {640, 1152} <= seen


def test_png_export_image_domain():
    res = _result("image")
    img = Image.open(io.BytesIO(patch_png(res)))
    assert img.format == "PNG" and img.size == (12, 12) and img.mode == "RGB"
    arr = torch.from_numpy(__import__("numpy").asarray(img).copy()).permute(2, 0, 1).float()
    assert torch.equal(arr, (res.patch * 255 + 0.5).floor())
    assert patch_png(res.patch)[:8] == b"\x89PNG\r\n\x1a\n"  # a bare tensor is treated as an image patch


def test_png_export_network_domain(model):
    res = _result("network")
    with pytest.raises(ValueError, match="needs the model"):
        patch_png(res)
    img = Image.open(io.BytesIO(patch_png(res, model)))
    shown = torch.from_numpy(__import__("numpy").asarray(img).copy()).permute(2, 0, 1).float() / 255
    expected = model.denormalize(res.patch.unsqueeze(0))[0].clamp(0, 1)
    assert (shown - expected).abs().max() <= 1 / 255 + 1e-6


def test_bad_patch_corpus(bad_corpus):
    """Every patch case of the corpus: valid ones load, the others raise PatchFileError naming the problem."""
    directory, cases = bad_corpus
    patch_cases = [c for c in cases if c.kind == "patch"]
    assert len(patch_cases) >= 10
    mod = __import__("make_bad_corpus")
    problems = []
    for c in patch_cases:
        path = directory / c.filename
        try:
            load_patch(path, model_name=mod.PATCH_MODEL, input_size=mod.PATCH_INPUT_SIZE)
            outcome = "ok"
        except PatchFileError as exc:
            outcome = str(exc)
            if c.expect == "error" and c.message_fragment.lower() not in outcome.lower():
                problems.append(f"{c.name}: message {outcome!r} lacks {c.message_fragment!r}")
            if c.filename not in outcome:
                problems.append(f"{c.name}: message does not name the file: {outcome!r}")
        except Exception as exc:  # noqa: BLE001 - anything but PatchFileError is a bug
            problems.append(f"{c.name}: raised {type(exc).__name__}: {exc}")
            continue
        if c.expect == "ok" and outcome != "ok":
            problems.append(f"{c.name}: expected to load, got {outcome!r}")
        if c.expect == "error" and outcome == "ok":
            problems.append(f"{c.name}: loaded, expected an error with {c.message_fragment!r}")
        # the same bytes as an upload behave the same
        if c.expect == "error":
            with pytest.raises(PatchFileError):
                patch_from_bytes(path.read_bytes(), c.filename, mod.PATCH_MODEL, mod.PATCH_INPUT_SIZE)
    assert not problems, "\n".join(problems)


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_malicious_pickle_is_never_unpickled(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"patch": _Exploit(marker)}, protocol=protocol))
    with pytest.raises(PatchFileError, match="pickle"):
        load_patch(path)
    assert not marker.exists()


def test_malicious_torch_save_is_never_unpickled(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.safetensors"
    torch.save({"patch": _Exploit(marker)}, path)
    with pytest.raises(PatchFileError, match="pickle"):
        load_patch(path)
    # model weights files are read with weights_only=True: a hostile .pth is refused, not executed
    pth = tmp_path / "evil.pth"
    torch.save({"fc.weight": _Exploit(marker)}, pth)
    with pytest.raises(ValueError, match="cannot read weights file"):
        attack.load_model("inception-v3", weights=pth, device="cpu")
    assert not marker.exists()


def test_size_and_missing_file(tmp_path):
    with pytest.raises(PatchFileError, match="no such patch file"):
        load_patch(tmp_path / "nope.safetensors")
    big = tmp_path / "big.safetensors"
    with big.open("wb") as f:
        f.truncate(MAX_PATCH_BYTES + 1)
    with pytest.raises(PatchFileError, match="too large"):
        load_patch(big)
    with pytest.raises(PatchFileError, match="too large"):
        patch_from_bytes(b"\x00" * (MAX_PATCH_BYTES + 1))


def test_model_and_size_mismatch_messages(tmp_path):
    path = save_patch(tmp_path / "p.safetensors", _result())
    with pytest.raises(PatchFileError, match="trained on 'efficientnet-lite0', not on 'efficientnet-lite1'"):
        load_patch(path, model_name="efficientnet-lite1")
    with pytest.raises(PatchFileError, match="trained at 224x224"):
        load_patch(path, input_size=299)
    assert load_patch(path).model_name == "efficientnet-lite0"  # no expectation given: loads


def test_non_finite_scalars_in_metadata_do_not_crash(tmp_path):
    res = _result()
    res.p_target = float("nan")
    back = patch_from_bytes(patch_bytes(res))
    assert math.isnan(back.p_target)


# ------------------------------------------------------------------ property tests: hostile bytes and metadata
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st

META_KEYS = ["lavan_format", "model", "input_size", "domain", "size", "target", "source", "loc", "loss", "steps",
             "success", "p_target", "p_source", "stop_at", "seconds", "image_hash", "extra"]
JSONISH = st.one_of(st.text(max_size=12), st.sampled_from(["null", "[]", "{}", "[0, 0]", "[1]", "5", "-3", "1e9",
                                                          "NaN", "[0, 0, 0]", '{"a": 1}', "true", "8", "224"]))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(META_KEYS), JSONISH, max_size=5))
def test_property_hostile_metadata_only_raises_patchfileerror(bad_corpus, meta):
    data = __import__("make_bad_corpus")._patch_bytes(meta=meta)
    try:
        res = patch_from_bytes(data, "x.safetensors")
    except PatchFileError:
        return
    assert res.patch.shape == (3, res.size, res.size) and torch.isfinite(res.patch).all()


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 400))
def test_property_hostile_bytes_only_raise_patchfileerror(tail, header_len):
    for data in (tail, header_len.to_bytes(8, "little") + tail):
        try:
            patch_from_bytes(data, "x.safetensors")
        except PatchFileError:
            pass
