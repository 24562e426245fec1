"""Image loading: every source type, the bad-input corpus (scripts/make_bad_corpus.py), mode/size properties."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import attack
from attack.images import MAX_ASPECT, MIN_SIDE, ImageError, decode_image, load_image


def _probe(t: torch.Tensor, probe) -> list[float]:
    h, w = t.shape[1:]
    y, x = int(probe.row * h), int(probe.col * w)
    win = t[:, max(0, y - 2):y + 3, max(0, x - 2):x + 3]
    return (win.mean((1, 2)) * 255).tolist()


def test_corpus_has_every_required_kind(bad_corpus):
    _, cases = bad_corpus
    names = {c.name for c in cases}
    required = {"empty", "text_as_jpg", "truncated_jpeg", "truncated_png", "corrupt_png_header", "cmyk_jpeg",
                "png16_gray", "rgba_png", "palette_transparency", "grayscale_jpeg", "animated_gif", "one_pixel",
                "strip_10x10000", "decompression_bomb", "exif_rotated", "svg_as_png", "html_as_png",
                "oversized_upload", "patch_pickle", "patch_wrong_shape", "patch_nan", "patch_inf",
                "patch_other_model"}
    assert required <= names, required - names
    assert len(cases) >= 20 and len(names) == len(cases)
    assert all(c.kind in ("image", "patch") and c.expect in ("ok", "error") for c in cases)
    assert all(c.message_fragment for c in cases if c.expect == "error")


def test_corpus_is_deterministic(bad_corpus, tmp_path):
    directory, cases = bad_corpus
    mod = __import__("make_bad_corpus")
    again = mod.build_corpus(tmp_path)
    assert again == cases
    for c in cases:
        assert (directory / c.filename).read_bytes() == (tmp_path / c.filename).read_bytes(), c.filename


@pytest.mark.parametrize("as_bytes", [False, True], ids=["path", "upload-bytes"])
def test_image_corpus(bad_corpus, as_bytes):
    """Each image case: the documented content, or an ImageError (a ValueError) with the documented reason."""
    directory, cases = bad_corpus
    problems = []
    for c in (c for c in cases if c.kind == "image"):
        path = directory / c.filename
        source = path.read_bytes() if as_bytes else path
        try:
            t = load_image(source, size=None)
        except ImageError as exc:
            if c.expect == "ok":
                problems.append(f"{c.name}: expected to load, got {exc}")
            elif c.message_fragment.lower() not in str(exc).lower():
                problems.append(f"{c.name}: message {str(exc)!r} lacks {c.message_fragment!r}")
            continue
        except Exception as exc:  # noqa: BLE001 - anything but ImageError is a bug
            problems.append(f"{c.name}: raised {type(exc).__name__}: {exc}")
            continue
        if c.expect == "error":
            problems.append(f"{c.name}: loaded {tuple(t.shape)}, expected an error with {c.message_fragment!r}")
            continue
        if t.dtype != torch.float32 or t.shape[0] != 3 or t.min() < 0 or t.max() > 1:
            problems.append(f"{c.name}: not an RGB [0,1] float tensor: {t.dtype} {tuple(t.shape)}")
        if c.shape is not None and tuple(t.shape[1:]) != c.shape:
            problems.append(f"{c.name}: shape {tuple(t.shape[1:])}, expected {c.shape}")
        for p in c.probes:
            got = _probe(t, p)
            if max(abs(g - e) for g, e in zip(got, p.rgb)) > p.tol:
                problems.append(f"{c.name}: at ({p.row},{p.col}) got {[round(v) for v in got]}, expected {p.rgb}")
        # and it goes through the model-sized path too
        if load_image(source, size=64).shape != (3, 64, 64):
            problems.append(f"{c.name}: resize failed")
    assert not problems, "\n".join(problems)


def test_sixteen_bit_is_not_clipped(bad_corpus):
    directory, _ = bad_corpus
    t = load_image(directory / "gray16.png", size=None)
    assert 0.45 < float(t[:, :, :32].mean()) < 0.55  # 0x8000 / 0xFFFF, not 1.0 (white)


def test_exif_rotation_upright(bad_corpus):
    directory, _ = bad_corpus
    stored = Image.open(directory / "exif_rotated.jpg")
    assert stored.size == (64, 96)  # stored portrait …
    t = load_image(directory / "exif_rotated.jpg", size=None)
    assert t.shape == (3, 64, 96)  # … shown landscape
    red_top_left = t[0, :32, :48].mean() > 0.9 and t[1, :32, :48].mean() < 0.1
    assert red_top_left


def test_all_source_types_agree(samples, tmp_path):
    path = samples[0].path
    data = path.read_bytes()
    ref = load_image(path)
    assert ref.shape == (3, 224, 224) and ref.dtype == torch.float32
    assert torch.equal(load_image(str(path)), ref)
    assert torch.equal(load_image(data), ref)
    assert torch.equal(load_image(bytearray(data)), ref)
    assert torch.equal(load_image(io.BytesIO(data)), ref)

    class Upload(io.BytesIO):  # Streamlit's UploadedFile: a BytesIO with a name
        name = "../../etc/passwd.jpg"

    assert torch.equal(load_image(Upload(data)), ref)
    with Image.open(path) as im:
        assert torch.equal(load_image(im), ref)


def test_upload_name_is_never_opened(tmp_path):
    """An upload's name is only used in messages: a hostile name pointing at a real file is not read."""
    target = tmp_path / "secret.png"
    Image.new("RGB", (32, 32), (255, 0, 0)).save(target)

    class Upload(io.BytesIO):
        name = str(target)

    with pytest.raises(ImageError, match="empty"):
        load_image(Upload(b""))


def test_missing_file_and_bad_source(tmp_path):
    with pytest.raises(ImageError, match="no such image file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="cannot read an image"):
        load_image(12345)
    with pytest.raises(ImageError, match="requested size"):
        load_image(Image.new("RGB", (32, 32)), size=4)


def test_centre_crop_keeps_the_middle():
    arr = np.zeros((100, 300, 3), np.uint8)
    arr[:, :100] = (255, 0, 0)
    arr[:, 100:200] = (0, 255, 0)
    arr[:, 200:] = (0, 0, 255)
    t = load_image(Image.fromarray(arr), size=50)
    assert t.shape == (3, 50, 50)
    assert float(t[1, :, 5:45].mean()) > 0.95 and float(t[0, :, 5:45].mean()) < 0.05  # only the green middle


def test_sample_images(samples):
    assert len(samples) >= 100
    names = [s.name for s in samples]
    assert len(set(names)) == len(names)
    assert all(s.path.is_file() for s in samples)
    every = attack.sample_images()
    assert {s.collection for s in every} >= {"ai-benchmark"}
    assert all(s.label for s in every if s.collection == "skimage" and s.name != "skimage/astronaut")


# ------------------------------------------------------------------ property tests
MODES = ["RGB", "L", "RGBA", "LA", "P", "CMYK", "I;16", "1", "F", "PA"]


@st.composite
def _pil_images(draw):
    w = draw(st.integers(1, 120))
    h = draw(st.integers(1, 120))
    mode = draw(st.sampled_from(MODES))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    if mode == "I;16":
        img = Image.fromarray((rng.integers(0, 65536, (h, w))).astype(np.uint16))
    elif mode == "F":
        img = Image.fromarray(rng.normal(0, 100, (h, w)).astype(np.float32))
    elif mode == "PA":
        img = img.convert("P").convert("PA")
    else:
        img = img.convert(mode)
    formats = {"F": ["TIFF", None], "I;16": ["PNG", "TIFF", None], "CMYK": ["JPEG", "TIFF", None],
               "RGBA": ["PNG", "TIFF", None], "LA": ["PNG", "TIFF", None], "PA": [None]}
    fmt = draw(st.sampled_from(formats.get(mode, ["PNG", "TIFF", "BMP", None])))
    return img, fmt


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_pil_images(), st.sampled_from([None, 16, 33, 224]))
def test_property_any_mode_any_size(pil_fmt, size):
    """Any mode and size either loads as a (3,S,S) RGB tensor in [0,1] or is refused for its size, with
    ImageError — never another exception."""
    img, fmt = pil_fmt
    if fmt is None:
        source = img
    else:
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        source = buf.getvalue()
    w, h = img.size
    refused = min(w, h) < MIN_SIDE or max(w, h) / min(w, h) > MAX_ASPECT
    if refused:
        with pytest.raises(ImageError, match="too small|too elongated"):
            load_image(source, size=size)
        return
    t = load_image(source, size=size)
    expected = (3, h, w) if size is None else (3, size, size)
    assert t.shape == expected and t.dtype == torch.float32
    assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
    assert decode_image(source).mode == "RGB"


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=0, max_size=2048))
def test_property_arbitrary_bytes_never_crash(data):
    """Random bytes are either an image or an ImageError; never another exception type."""
    try:
        t = load_image(data, size=32)
    except ImageError:
        return
    assert t.shape == (3, 32, 32)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**16), st.floats(0.05, 0.95))
def test_property_truncated_files_refused(seed, frac):
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    for fmt in ("JPEG", "PNG"):
        buf = io.BytesIO()
        img.save(buf, format=fmt)
        data = buf.getvalue()
        with pytest.raises(ImageError):
            load_image(data[: max(1, int(len(data) * frac))], size=32)


def test_universal_split_is_one_shuffle_shared_by_every_caller():
    photos = list(range(10))
    train, test = attack.images.universal_split(photos, 4, 3, torch.Generator().manual_seed(0))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0)).tolist()
    assert train == order[:4] and test == order[4:7]
    with pytest.raises(ValueError, match="only 10 photos"):
        attack.images.universal_split(photos, 8, 3)
