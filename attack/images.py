"""One loader for every image source, and the sample photo sets.

:func:`load_image` accepts a path, bytes, a file-like upload or a PIL image; applies EXIF orientation; converts
any mode (CMYK, 16-bit, RGBA, palette, grayscale) to RGB; resizes the short side and centre-crops to a square.
Anything that is not a usable photo raises :class:`ImageError` (a ``ValueError``) with a message for the user.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageError", "load_image", "decode_image", "to_tensor", "sample_images", "SampleImage", "image_hash",
           "MAX_BYTES", "MAX_PIXELS", "MIN_SIDE", "MAX_ASPECT", "extract_gcompris", "gcompris_rcc_dir", "photos_dir"]

MAX_BYTES = 25 * 1024 * 1024  # refuse files larger than this before decoding
MAX_PIXELS = 40_000_000  # decoded pixels; PIL's own bomb limit is set to the same value
MIN_SIDE = 16  # a 1x1 or 10x10 "photo" cannot be classified meaningfully
MAX_ASPECT = 20.0  # a 10x10000 strip would be cropped to nothing
ALLOWED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO"}

ImageSource = Union[str, Path, bytes, bytearray, BinaryIO, Image.Image]


class ImageError(ValueError):
    """An input that is not a usable image; the message says what is wrong in words a user understands."""


def _read_bytes(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "upload"
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"no such image file: {path}")
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ImageError(f"{path.name}: file is {size / 2**20:.1f} MiB, the limit is {MAX_BYTES / 2**20:.0f} MiB")
        return path.read_bytes(), path.name
    if hasattr(source, "getvalue"):
        return bytes(source.getvalue()), getattr(source, "name", "upload")
    if hasattr(source, "read"):
        data = source.read(MAX_BYTES + 1)
        return bytes(data), getattr(source, "name", "upload")
    raise ImageError(f"cannot read an image from a {type(source).__name__}")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        return Image.fromarray(np.nan_to_num(arr).astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")  # CMYK, YCbCr, L, 1, P, RGB …


def decode_image(source: ImageSource) -> Image.Image:
    """Decode and validate any supported source into an upright RGB PIL image (no resizing)."""
    if isinstance(source, Image.Image):
        img = source
        name = "image"
    else:
        data, name = _read_bytes(source)
        if len(data) == 0:
            raise ImageError(f"{name}: the file is empty (0 bytes)")
        if len(data) > MAX_BYTES:
            raise ImageError(f"{name}: file is larger than {MAX_BYTES / 2**20:.0f} MiB")
        head = data[:512].lstrip().lower()
        if head.startswith((b"<svg", b"<?xml", b"<!doctype", b"<html")):
            raise ImageError(f"{name}: this is an SVG/HTML/XML text file, not a photo (use JPEG, PNG, GIF, BMP or WebP)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(io.BytesIO(data))
                img.MAX_IMAGE_PIXELS = MAX_PIXELS
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"{name}: image dimensions are too large (decompression bomb guard)") from None
        except UnidentifiedImageError:
            raise ImageError(f"{name}: not an image file, or a format this app cannot read "
                             "(use JPEG, PNG, GIF, BMP or WebP)") from None
        except Exception as exc:  # noqa: BLE001
            raise ImageError(f"{name}: cannot open image ({type(exc).__name__}: {exc})") from None
        if img.format not in ALLOWED_FORMATS:
            raise ImageError(f"{name}: {img.format} images are not supported (use JPEG, PNG, GIF, BMP or WebP)")
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name}: {w}x{h} pixels is too large (limit {MAX_PIXELS / 1e6:.0f} megapixels)")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name}: {w}x{h} pixels is too small (each side needs at least {MIN_SIDE} pixels)")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        raise ImageError(f"{name}: {w}x{h} is too elongated (aspect ratio above {MAX_ASPECT:.0f}:1)")
    try:
        if getattr(img, "is_animated", False):
            img.seek(0)  # animated GIF/WebP: the first frame is the photo
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc)
        if "truncated" in msg or "broken" in msg or "image file is" in msg:
            raise ImageError(f"{name}: the file is truncated or damaged ({msg})") from None
        raise ImageError(f"{name}: cannot decode image ({type(exc).__name__}: {msg})") from None


def to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


def load_image(source: ImageSource, size: int | None = 224, resize: int | None = None) -> torch.Tensor:
    """Load any image source as a ``(3,size,size)`` float tensor in ``[0,1]``.

    Args: source: path, bytes, file-like upload or PIL image; size: square output side, short side resized then
    centre-cropped (None keeps the original size); resize: short side before the crop when a model crops a margin
    off, as torchvision's preprocessing does (256 then 224; ``model.resize_size``). (Default: None, no margin)
    Raises ImageError for anything that is not a usable photo.
    Example: >>> img = load_image("cat.jpg", size=224)
    """
    img = decode_image(source)
    if size is not None:
        if not 8 <= int(size) <= 2048:
            raise ImageError(f"requested size {size} out of range 8..2048")
        if resize is not None and int(resize) > int(size):
            w, h = img.size
            scale = int(resize) / min(w, h)
            img = img.resize((max(int(size), round(w * scale)), max(int(size), round(h * scale))),
                             Image.Resampling.BICUBIC)
        img = ImageOps.fit(img, (int(size), int(size)), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return to_tensor(img)


def image_hash(image: torch.Tensor) -> str:
    """Stable SHA-256 (first 16 hex digits) of an image tensor's float32 bytes and shape."""
    t = image.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(str(tuple(t.shape)).encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class SampleImage:
    name: str  # unique, e.g. "ai-benchmark/17" or "skimage/chelsea"
    path: Path
    collection: str
    label: tuple[int, ...] = ()  # acceptable ImageNet ids where the true class is known


# Photos shipped by scientific Python packages, with the ImageNet classes that count as correct.
_KNOWN_SAMPLES = [
    ("skimage", "skimage", "data/chelsea.png", (281, 282, 285, 287)),  # tabby / tiger cat / Egyptian cat / lynx
    ("skimage", "skimage", "data/coffee.png", (967, 968, 504)),  # espresso / cup / coffee mug
    ("skimage", "skimage", "data/astronaut.png", ()),
    ("skimage", "skimage", "data/rocket.jpg", (657, 744, 812)),  # missile / projectile / space shuttle
    ("sklearn", "sklearn", "datasets/images/china.jpg", (698, 832, 483)),  # palace / stupa / castle
    ("sklearn", "sklearn", "datasets/images/flower.jpg", (985, 738, 883)),  # daisy / pot / vase
    ("matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", (652, 457, 906)),  # uniform / bow tie / tie
]


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


# Debian's gcompris-qt-data packs ~240 public-domain photos (monuments, animals, fish, tools, instruments, wind and
# solar power …) into Qt resource bundles. Only these folders hold photos; drawings, paintings, cut-outs with alpha
# and puzzle backgrounds elsewhere in the package are left out.
GCOMPRIS_FOLDERS = (
    "categorization/resource/images/fishes", "categorization/resource/images/monuments",
    "categorization/resource/images/others", "categorization/resource/images/renewable",
    "categorization/resource/images/tools", "erase/resource", "explore_monuments/resource",
    "explore_world_animals/resource/animals", "explore_farm_animals/resource/animals",
    "explore_world_music/resource/music",
)
GCOMPRIS_MIN_SIDE = 200
GCOMPRIS_MIN_STD = 12.0  # grey levels; drops the flat card-board backgrounds in erase/
_GCOMPRIS_INDEX = "index.json"
_GCOMPRIS_VERSION = 1


def gcompris_rcc_dir() -> Path:
    """Where gcompris-qt-data's bundles are (``LAVAN_GCOMPRIS_RCC`` overrides the Debian path)."""
    return Path(os.environ.get("LAVAN_GCOMPRIS_RCC", "/usr/share/gcompris-qt/rcc"))


def photos_dir() -> Path:
    """Where extracted photos live (``LAVAN_PHOTOS_DIR``; default ``.lavan-photos`` in the checkout, git-ignored).

    Written only by :func:`extract_gcompris` (``python -m attack photos``, run by ``make setup``); the app and the
    experiments only read it.
    """
    return Path(os.environ.get("LAVAN_PHOTOS_DIR", Path(__file__).resolve().parent.parent / ".lavan-photos"))


def _read_index(dest: Path) -> list[Path] | None:
    try:
        meta = json.loads((dest / _GCOMPRIS_INDEX).read_text())
        files = [dest / f for f in meta["files"]]
        if meta.get("version") == _GCOMPRIS_VERSION and all(f.is_file() for f in files):
            return files
    except (ValueError, KeyError, TypeError, OSError):
        pass
    return None


def extract_gcompris(rcc_dir: Path | None = None, dest: Path | None = None) -> list[Path]:
    """Extract gcompris-qt-data's photos once into ``dest`` (default: ``photos_dir()/gcompris``); return their paths.

    Keeps RGB WebP/JPEG/PNG files from :data:`GCOMPRIS_FOLDERS` whose short side is at least 200 px and that are not
    flat, skipping exact duplicates. A second call reads the index written by the first. Returns [] when the package
    is not installed. The photos are written as-is (no re-encoding), named ``<activity>-<file>``.
    """
    from .rcc import RccError, iter_rcc

    rcc_dir = gcompris_rcc_dir() if rcc_dir is None else Path(rcc_dir)
    dest = photos_dir() / "gcompris" if dest is None else Path(dest)
    done = _read_index(dest)
    if done is not None:
        return done
    bundles = sorted(rcc_dir.glob("*.rcc")) if rcc_dir.is_dir() else []
    if not bundles:
        return []
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gcompris-", dir=dest.parent))
    names: set[str] = set()
    seen: set[str] = set()
    try:
        for bundle in bundles:
            try:
                entries = list(iter_rcc(bundle))
            except (RccError, OSError):
                continue
            for path, data in entries:
                rel = path.split("/activities/", 1)[-1]
                if not (rel.startswith(GCOMPRIS_FOLDERS) and rel.lower().endswith((".webp", ".jpg", ".jpeg", ".png"))):
                    continue
                digest = hashlib.sha256(data).hexdigest()
                if digest in seen:
                    continue
                try:
                    img = Image.open(io.BytesIO(data))
                    if img.mode != "RGB" or min(img.size) < GCOMPRIS_MIN_SIDE:
                        continue
                    small = img.convert("L").resize((64, 64))
                    if float(np.asarray(small, dtype=np.float32).std()) < GCOMPRIS_MIN_STD:
                        continue
                except Exception:  # noqa: BLE001 - a damaged entry is skipped, not fatal
                    continue
                seen.add(digest)
                stem, ext = rel.rsplit("/", 1)[-1].rsplit(".", 1)
                name = f"{rel.split('/', 1)[0]}-{stem}".replace(" ", "_")
                base, k = name, 2
                while name in names:
                    name, k = f"{base}-{k}", k + 1
                names.add(name)
                (tmp / f"{name}.{ext.lower()}").write_bytes(data)
        files = sorted(p.name for p in tmp.iterdir())
        (tmp / _GCOMPRIS_INDEX).write_text(json.dumps({"version": _GCOMPRIS_VERSION, "files": files}))
        if dest.exists():
            shutil.rmtree(dest, ignore_errors=True)
        try:
            os.replace(tmp, dest)
        except OSError:  # another process finished first
            pass
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _read_index(dest) or []


def sample_images(collections: tuple[str, ...] | None = None) -> list[SampleImage]:
    """List the sample photos available here: ai-benchmark's 100 ImageNet-class photos (found without importing
    the package), the few photos scikit-image / scikit-learn / matplotlib ship, and gcompris-qt-data's photos once
    :func:`extract_gcompris` has extracted them (``python -m attack photos``). Missing packages are skipped; this
    function never writes.
    """
    out: list[SampleImage] = []
    want = set(collections) if collections else None
    if want is None or "ai-benchmark" in want:
        base = _package_dir("ai_benchmark")
        if base is not None:
            folder = base / "data" / "classification"
            files = sorted(folder.glob("*.jpg"), key=lambda p: (int(p.stem) if p.stem.isdigit() else 10**9, p.stem))
            out += [SampleImage(f"ai-benchmark/{p.stem}", p, "ai-benchmark") for p in files]
    for collection, module, rel, label in _KNOWN_SAMPLES:
        if want is not None and collection not in want:
            continue
        base = _package_dir(module)
        if base is not None and (base / rel).is_file():
            out.append(SampleImage(f"{collection}/{Path(rel).stem}", base / rel, collection, label))
    if want is None or "gcompris" in want:
        out += [SampleImage(f"gcompris/{p.stem}", p, "gcompris") for p in _read_index(photos_dir() / "gcompris") or []]
    return out


def universal_split(photos: list, n_train: int, n_test: int, generator: torch.Generator | None = None
                    ) -> tuple[list, list]:
    """Training and held-out photos of a universal patch: ``photos`` shuffled by ``generator``, the first
    ``n_train`` to train on and the next ``n_test`` held out. ``python -m attack universal`` and the Universal page
    split the ai-benchmark photos with ``torch.Generator().manual_seed(seed)``, so they agree for the same seed; the
    lab's ``reproduce universal``/``brown`` split every sample collection at hand (100/100 with at least 200 photos,
    else half and half) with a generator derived from ``--seed``, so their photos differ from the CLI's.
    Example: >>> train, test = universal_split(sample_images(("ai-benchmark",)), 50, 50, torch.Generator().manual_seed(0))"""
    if n_train + n_test > len(photos):
        raise ValueError(f"only {len(photos)} photos available for {n_train}+{n_test}")
    order = torch.randperm(len(photos), generator=generator).tolist()
    return [photos[i] for i in order[:n_train]], [photos[i] for i in order[n_train:n_train + n_test]]
