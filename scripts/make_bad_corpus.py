"""Generate the bad-input corpus (issue 6) deterministically, and say what each file must do.

    python scripts/make_bad_corpus.py [DIR]        # default: tests/data/bad/ (generated, never committed)

Every file is made here with PIL / numpy / safetensors; nothing is hand-collected. :func:`build_corpus` writes the
files and returns one :class:`Case` per file, so both the library tests (tests/test_images.py, tests/test_io.py)
and the app's upload tests can run the same table:

* ``kind="image"`` cases go through ``attack.load_image(path)`` (or ``load_image(bytes)`` for an upload);
* ``kind="patch"`` cases go through ``attack.load_patch(path, model_name=PATCH_MODEL, input_size=PATCH_INPUT_SIZE)``.

``expect="error"``: the loader raises ``attack.ImageError`` / ``attack.PatchFileError`` (both ``ValueError``) and
``message_fragment`` appears in the message (case-insensitive). ``expect="ok"``: the load succeeds; for images every
``Probe`` must hold on ``load_image(path, size=None)`` (an RGB (3,H,W) tensor in [0,1]) and ``shape`` (H, W),
when given, is the decoded size — this is how CMYK colours, 16-bit depth (not clipped to white), RGBA composited on
white, palette transparency, the first GIF frame and EXIF orientation (upright) are checked.
"""
from __future__ import annotations

import io
import json
import pickle
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["Case", "Probe", "build_corpus", "PATCH_MODEL", "PATCH_INPUT_SIZE", "DEFAULT_DIR"]

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "bad"
PATCH_MODEL = "efficientnet-lite0"  # patch cases are loaded as if for this model …
PATCH_INPUT_SIZE = 224  # … at this input size

# Distinct colours (RGB, 0..255) used for orientation / frame / composite checks.
RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)
YELLOW, CYAN = (255, 255, 0), (0, 255, 255)


@dataclass(frozen=True)
class Probe:
    """Mean colour (0..255 RGB) of the pixels around (row, col), given as fractions of H and W, within ``tol``."""
    row: float
    col: float
    rgb: tuple[int, int, int]
    tol: int = 12


@dataclass(frozen=True)
class Case:
    name: str  # short kind, e.g. "truncated_jpeg"
    filename: str  # file name inside the corpus directory (extensions may lie on purpose)
    kind: str  # "image" | "patch"
    expect: str  # "ok" | "error"
    message_fragment: str = ""  # for errors: text the exception message must contain (case-insensitive)
    probes: tuple[Probe, ...] = field(default=())  # for ok images: content checks on load_image(path, size=None)
    shape: tuple[int, int] | None = None  # for ok images: decoded (H, W)
    description: str = ""


# ------------------------------------------------------------------ helpers
def _quadrants(w: int, h: int, colours=(RED, GREEN, BLUE, WHITE)) -> Image.Image:
    """Asymmetric test card: top-left, top-right, bottom-left, bottom-right quadrants in four colours."""
    arr = np.zeros((h, w, 3), np.uint8)
    arr[: h // 2, : w // 2] = colours[0]
    arr[: h // 2, w // 2:] = colours[1]
    arr[h // 2:, : w // 2] = colours[2]
    arr[h // 2:, w // 2:] = colours[3]
    return Image.fromarray(arr, "RGB")


QUAD_PROBES = (Probe(0.25, 0.25, RED), Probe(0.25, 0.75, GREEN), Probe(0.75, 0.25, BLUE), Probe(0.75, 0.75, WHITE))


def _photo_like(w: int, h: int, seed: int = 0) -> Image.Image:
    """A smooth, deterministic, photo-like RGB image (gradients plus mild noise) that compresses realistically."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    arr = np.stack([x / w, y / h, 0.5 + 0.5 * np.sin(x / 9.0 + y / 13.0)], axis=-1) * 230
    arr += rng.normal(0, 8, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG assembled by hand (valid CRCs): lets us declare any dimensions and 16-bit RGB."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(rows if rows is not None else b"\x00" * 16)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _png16_rgb(w: int, h: int) -> tuple[bytes, np.ndarray]:
    """16-bit RGB PNG: a mid-grey-ish ramp whose 16-bit values are far above 255 (clipping would give white)."""
    r = np.full((h, w), 0x4000, np.uint16)  # 0.25
    g = np.full((h, w), 0x8000, np.uint16)  # 0.50
    b = np.full((h, w), 0xC000, np.uint16)  # 0.75
    pix = np.stack([r, g, b], axis=-1).astype(">u2")
    rows = b"".join(b"\x00" + pix[i].tobytes() for i in range(h))
    return _raw_png(w, h, 16, 2, rows), pix


def _safetensors(tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """safetensors bytes with a sorted header (the library's writer orders keys by hash: not byte-reproducible)."""
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.float64): "F64"}
    header: dict = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    offset, blobs = 0, []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name]).astype(tensors[name].dtype.newbyteorder("<"))
        data = arr.tobytes()
        header[name] = {"dtype": dtypes[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def _patch_bytes(shape=(3, 8, 8), fill: float | None = 0.5, meta: dict | None = None, tensor_name: str = "patch",
                 dtype=np.float32) -> bytes:
    """A safetensors patch file in the library's format (lavan-patch/1 metadata), written byte-reproducibly."""
    save = _safetensors
    arr = np.full(shape, 0.5 if fill is None else fill, dtype=dtype)
    size = shape[-1]
    base = {"lavan_format": "lavan-patch/1", "model": PATCH_MODEL, "input_size": str(PATCH_INPUT_SIZE),
            "domain": "image", "size": str(size), "target": "859", "source": "", "loc": json.dumps([0, 0]),
            "loss": "logprob", "steps": "10", "success": json.dumps({"confident": False}), "p_target": "0.1",
            "p_source": "0.5", "stop_at": "0.9", "seconds": "1.0", "image_hash": "", "extra": "{}"}
    if meta:
        base.update(meta)
    return save({tensor_name: arr}, metadata=base)


class _Harmless:
    """Unpickling this would append to a list; the corpus pickle only contains plain data anyway."""


# ------------------------------------------------------------------ the table
def build_corpus(directory: str | Path) -> list[Case]:
    """Write every bad (and tricky-but-valid) input into ``directory`` and return the expected outcomes."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    def add(case: Case, data: bytes) -> None:
        (d / case.filename).write_bytes(data)
        cases.append(case)

    photo = _photo_like(96, 96)
    jpeg = _encode(photo, "JPEG", quality=90)
    png = _encode(photo, "PNG")

    # ---- not an image at all
    add(Case("empty", "empty.jpg", "image", "error", "empty", description="0-byte file"), b"")
    add(Case("text_as_jpg", "notes.jpg", "image", "error", "not an image",
             description="plain text renamed .jpg"), b"This is not a photo.\nJust some text saved as .jpg\n" * 4)
    add(Case("svg_as_png", "drawing.png", "image", "error", "SVG",
             description="SVG document renamed .png"),
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
        b'<rect width="64" height="64" fill="red"/></svg>\n')
    add(Case("html_as_png", "page.png", "image", "error", "HTML",
             description="HTML page renamed .png"),
        b"<!DOCTYPE html>\n<html><body><script>alert(1)</script><img src=x></body></html>\n")
    add(Case("random_bytes", "noise.jpg", "image", "error", "not an image",
             description="4 KiB of deterministic random bytes"),
        np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    add(Case("pickle_as_png", "model.png", "image", "error", "not an image",
             description="a pickle renamed .png (never unpickled)"), pickle.dumps({"weights": [1, 2, 3]}, protocol=4))

    # ---- damaged images
    add(Case("truncated_jpeg", "truncated.jpg", "image", "error", "truncated",
             description="JPEG cut at 40% of its bytes"), jpeg[: int(len(jpeg) * 0.4)])
    add(Case("truncated_png", "truncated.png", "image", "error", "truncated",
             description="PNG cut at 60% of its bytes"), png[: int(len(png) * 0.6)])
    add(Case("corrupt_png_header", "bad_header.png", "image", "error", "not an image",
             description="PNG whose signature bytes are overwritten"), b"\x89PNX\r\n\x1a\n" + png[8:])
    add(Case("corrupt_jpeg_header", "bad_header.jpg", "image", "error", "not an image",
             description="JPEG whose SOI marker is overwritten"), b"\x00\x00" + jpeg[2:])
    bad_crc = bytearray(png)
    bad_crc[29] ^= 0xFF  # inside the IHDR CRC
    add(Case("png_bad_crc", "bad_crc.png", "image", "error", "cannot",
             description="PNG with a broken IHDR checksum"), bytes(bad_crc))

    # ---- sizes
    add(Case("one_pixel", "1x1.png", "image", "error", "too small", description="1x1 PNG"),
        _encode(Image.new("RGB", (1, 1), RED), "PNG"))
    add(Case("strip_10x10000", "strip.png", "image", "error", "too small",
             description="10x10000 strip (a side below 16 px)"), _encode(Image.new("RGB", (10, 10000), BLUE), "PNG"))
    add(Case("elongated_40x2000", "elongated.png", "image", "error", "elongated",
             description="40x2000 image (aspect 50:1)"), _encode(Image.new("RGB", (2000, 40), GREEN), "PNG"))
    add(Case("decompression_bomb", "bomb.png", "image", "error", "decompression bomb",
             description="tiny PNG whose header declares 100000x100000 pixels"), _raw_png(100_000, 100_000, 1, 0, None))
    add(Case("too_many_pixels", "huge.png", "image", "error", "too large",
             description="PNG header declaring 8000x6000 (48 MP, below PIL's own bomb limit)"),
        _raw_png(8000, 6000, 1, 0, None))
    add(Case("oversized_upload", "oversized.jpg", "image", "error", "25 MiB",
             description="26 MiB upload (valid JPEG followed by padding)"), jpeg + b"\x00" * (26 * 2**20 - len(jpeg)))

    # ---- unusual but valid: must load as RGB with the right content
    add(Case("plain_jpeg", "photo.jpg", "image", "ok", shape=(96, 96), description="ordinary JPEG (control)"), jpeg)
    cmyk = Image.new("CMYK", (64, 64), (255, 0, 0, 0))  # pure cyan ink
    cmyk.paste((0, 0, 255, 0), (0, 32, 64, 64))  # bottom half pure yellow ink
    add(Case("cmyk_jpeg", "cmyk.jpg", "image", "ok", probes=(Probe(0.2, 0.5, CYAN, 20), Probe(0.8, 0.5, YELLOW, 20)),
             shape=(64, 64), description="CMYK JPEG (cyan over yellow)"), _encode(cmyk, "JPEG", quality=95))
    gray16 = np.full((64, 64), 0x8000, np.uint16)
    gray16[:, 32:] = 0x2000
    add(Case("png16_gray", "gray16.png", "image", "ok",
             probes=(Probe(0.5, 0.25, (128, 128, 128), 3), Probe(0.5, 0.75, (32, 32, 32), 3)), shape=(64, 64),
             description="16-bit grayscale PNG (must not be clipped to white)"),
        _encode(Image.fromarray(gray16), "PNG"))
    rgb16, _ = _png16_rgb(48, 48)
    add(Case("png16_rgb", "rgb16.png", "image", "ok", probes=(Probe(0.5, 0.5, (64, 128, 192), 3),), shape=(48, 48),
             description="16-bit RGB PNG"), rgb16)
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:, :32] = (255, 0, 0, 255)  # left: opaque red
    rgba[:, 32:] = (0, 0, 255, 0)  # right: fully transparent (blue underneath must not show)
    add(Case("rgba_png", "rgba.png", "image", "ok", probes=(Probe(0.5, 0.25, RED), Probe(0.5, 0.75, WHITE)),
             shape=(64, 64), description="RGBA PNG, transparent half composited on white"),
        _encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    la = np.zeros((64, 64, 2), np.uint8)
    la[:, :, 0] = 0
    la[:32, :, 1] = 255
    add(Case("la_png", "gray_alpha.png", "image", "ok", probes=(Probe(0.25, 0.5, BLACK), Probe(0.75, 0.5, WHITE)),
             shape=(64, 64), description="grayscale+alpha PNG"), _encode(Image.fromarray(la, "LA"), "PNG"))
    pal = Image.new("P", (64, 64), 1)
    pal.putpalette([0, 0, 0, 0, 255, 0] + [0, 0, 0] * 254)  # index 0 black (made transparent), 1 green
    pal.paste(0, (0, 0, 64, 32))  # top half index 0
    add(Case("palette_transparency", "palette.png", "image", "ok",
             probes=(Probe(0.25, 0.5, WHITE), Probe(0.75, 0.5, GREEN)), shape=(64, 64),
             description="palette PNG whose index 0 is transparent (top half → white)"),
        _encode(pal, "PNG", transparency=0))
    gray = Image.new("L", (64, 64), 200)
    gray.paste(50, (0, 0, 32, 64))
    add(Case("grayscale_jpeg", "gray.jpg", "image", "ok",
             probes=(Probe(0.5, 0.2, (50, 50, 50), 8), Probe(0.5, 0.8, (200, 200, 200), 8)), shape=(64, 64),
             description="8-bit grayscale JPEG"), _encode(gray, "JPEG", quality=95))
    bilevel = Image.new("1", (64, 64), 1)
    bilevel.paste(0, (0, 0, 64, 32))
    add(Case("bilevel_png", "bilevel.png", "image", "ok", probes=(Probe(0.25, 0.5, BLACK), Probe(0.75, 0.5, WHITE)),
             shape=(64, 64), description="1-bit PNG"), _encode(bilevel, "PNG"))
    frames = [Image.new("RGB", (64, 64), c) for c in (RED, BLUE, GREEN)]
    add(Case("animated_gif", "animated.gif", "image", "ok", probes=(Probe(0.5, 0.5, RED),), shape=(64, 64),
             description="3-frame animated GIF (red, blue, green): the first frame is used"),
        _encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0))
    upright = _quadrants(96, 64)  # landscape, four coloured quadrants
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # stored portrait, 64 wide x 96 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": exif_transpose applies ROTATE_270, undoing ROTATE_90
    add(Case("exif_rotated", "exif_rotated.jpg", "image", "ok", probes=QUAD_PROBES, shape=(64, 96),
             description="JPEG stored rotated with EXIF orientation 6; must come out upright (landscape)"),
        _encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    mirrored = upright.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    exif2 = Image.Exif()
    exif2[0x0112] = 2  # mirrored horizontally
    add(Case("exif_mirrored", "exif_mirrored.jpg", "image", "ok", probes=QUAD_PROBES, shape=(64, 96),
             description="JPEG with EXIF orientation 2 (mirrored)"),
        _encode(mirrored, "JPEG", quality=95, exif=exif2.tobytes()))
    add(Case("webp", "photo.webp", "image", "ok", probes=QUAD_PROBES, shape=(64, 96), description="lossless WebP"),
        _encode(upright, "WEBP", lossless=True))
    add(Case("bmp", "photo.bmp", "image", "ok", probes=QUAD_PROBES, shape=(64, 96), description="BMP"),
        _encode(upright, "BMP"))
    add(Case("ico_format", "icon.png", "image", "error", "not supported",
             description="a Windows icon renamed .png (a format PIL reads but the app refuses)"),
        _encode(Image.new("RGB", (32, 32), RED), "ICO", sizes=[(32, 32)]))

    # ---- patch files (loaded with model_name=PATCH_MODEL, input_size=PATCH_INPUT_SIZE)
    add(Case("patch_valid", "valid.safetensors", "patch", "ok", description="a well-formed 8x8 image-domain patch"),
        _patch_bytes())
    add(Case("patch_pickle", "pickle.safetensors", "patch", "error", "pickle",
             description="a pickle renamed .safetensors (never unpickled)"),
        pickle.dumps({"patch": [[0.5] * 8] * 8}, protocol=pickle.HIGHEST_PROTOCOL))
    add(Case("patch_pickle_v2", "pickle2.safetensors", "patch", "error", "pickle",
             description="a protocol-2 pickle renamed .safetensors"), pickle.dumps([0.5] * 8, protocol=2))
    torch_zip = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(torch_zip, "w") as zf:  # what torch.save writes: a zip holding data.pkl
        zf.writestr(zipfile.ZipInfo("archive/data.pkl", date_time=(2018, 1, 1, 0, 0, 0)),  # fixed: reproducible
                    pickle.dumps({"patch": 1}, protocol=2))
    add(Case("patch_torch_zip", "torchsave.safetensors", "patch", "error", "pickle",
             description="a torch.save (zip) file renamed .safetensors"), torch_zip.getvalue())
    add(Case("patch_empty", "empty.safetensors", "patch", "error", "empty", description="0-byte patch file"), b"")
    valid = _patch_bytes()
    add(Case("patch_truncated", "truncated.safetensors", "patch", "error", "not a valid safetensors",
             description="patch file cut in half"), valid[: len(valid) // 2])
    add(Case("patch_text", "notes.safetensors", "patch", "error", "not a valid safetensors",
             description="text renamed .safetensors"), b"hello, this is not a tensor file\n")
    add(Case("patch_wrong_shape", "wrong_shape.safetensors", "patch", "error", "shape",
             description="tensor (3,8,9) while the metadata says size 8"), _patch_bytes(shape=(3, 8, 9)))
    add(Case("patch_wrong_channels", "one_channel.safetensors", "patch", "error", "shape",
             description="tensor (1,8,8)"), _patch_bytes(shape=(1, 8, 8)))
    add(Case("patch_nan", "nan.safetensors", "patch", "error", "NaN", description="patch full of NaN"),
        _patch_bytes(fill=float("nan")))
    add(Case("patch_inf", "inf.safetensors", "patch", "error", "infinite", description="patch full of +inf"),
        _patch_bytes(fill=float("inf"), meta={"domain": "network"}))
    add(Case("patch_other_model", "other_model.safetensors", "patch", "error", "trained on",
             description="metadata names efficientnet-lite2"), _patch_bytes(meta={"model": "efficientnet-lite2"}))
    add(Case("patch_other_input_size", "other_size.safetensors", "patch", "error", "trained at",
             description="metadata says input size 299"), _patch_bytes(meta={"input_size": "299"}))
    add(Case("patch_no_metadata", "plain.safetensors", "patch", "error", "metadata",
             description="a generic safetensors file without LaVAN metadata"),
        _safetensors({"patch": np.zeros((3, 8, 8), np.float32)}))
    add(Case("patch_wrong_tensor_name", "renamed.safetensors", "patch", "error", "exactly one tensor",
             description="tensor stored as 'weights'"), _patch_bytes(tensor_name="weights"))
    add(Case("patch_int_dtype", "int.safetensors", "patch", "error", "dtype",
             description="integer patch tensor"), _patch_bytes(fill=1, dtype=np.int32))
    add(Case("patch_out_of_range", "range.safetensors", "patch", "error", "outside [0,1]",
             description="image-domain patch with values 3.0"), _patch_bytes(fill=3.0))
    add(Case("patch_bad_loc", "bad_loc.safetensors", "patch", "error", "location",
             description="location (220, 220) for an 8-px patch on 224"), _patch_bytes(meta={"loc": "[220, 220]"}))
    add(Case("patch_bad_metadata", "bad_meta.safetensors", "patch", "error", "metadata",
             description="metadata size is not a number"), _patch_bytes(meta={"size": "eight"}))
    for name, meta in [("loc_not_a_list", {"loc": "5"}), ("loc_not_integers", {"loc": '["a", 0.5]'}),
                       ("extra_not_an_object", {"extra": "[]"}), ("steps_not_a_number", {"steps": "many"}),
                       ("success_not_an_object", {"success": "[1]"})]:
        add(Case(f"patch_{name}", f"{name}.safetensors", "patch", "error", "metadata",
                 description=f"hostile metadata {meta}"), _patch_bytes(meta=meta))
    return cases


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else DEFAULT_DIR
    cases = build_corpus(out)
    for c in cases:
        print(f"{c.kind:5s} {c.expect:5s} {c.filename:28s} {c.message_fragment or '-':24s} {c.description}")
    print(f"{len(cases)} files in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
