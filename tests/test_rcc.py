"""Qt resource bundle reader and the gcompris photo extraction (synthetic bundles, plus the real package if present)."""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import attack
from attack.images import extract_gcompris, load_image
from attack.rcc import RccError, iter_rcc, read_rcc


def make_rcc(files: dict[str, bytes], version: int = 2, compress: set[str] = frozenset()) -> bytes:
    """Write a bundle the way Qt's rcc lays it out: breadth-first tree, children of a directory contiguous."""
    tree: dict = {}
    for path, data in files.items():
        node = tree
        *dirs, leaf = path.split("/")
        for d in dirs:
            node = node.setdefault(d, {})
        node[leaf] = path
    names, name_off = bytearray(), {}
    payload, data_off = bytearray(), {}

    def name_of(n: str) -> int:
        if n not in name_off:
            name_off[n] = len(names)
            names.extend(struct.pack(">HI", len(n), 0) + n.encode("utf-16-be"))
        return name_off[n]

    nodes: list[tuple] = [("", tree)]  # (name, dict | path)
    out_nodes: list[bytes] = []
    i = 0
    next_free = 1
    while i < len(nodes):
        name, content = nodes[i]
        if isinstance(content, dict):
            kids = sorted(content.items())
            rec = struct.pack(">IHII", name_of(name) if name else 0, 0x02, len(kids), next_free)
            nodes.extend(kids)
            next_free += len(kids)
        else:
            data = files[content]
            flags = 0
            if content in compress:
                data = struct.pack(">I", len(data)) + zlib.compress(data)
                flags = 0x01
            data_off[content] = len(payload)
            payload.extend(struct.pack(">I", len(data)) + data)
            rec = struct.pack(">IHHHI", name_of(name), flags, 0, 0, data_off[content])
        if version >= 2:
            rec += struct.pack(">Q", 0)
        out_nodes.append(rec)
        i += 1
    header_len = 20 if version < 3 else 24
    tree_b = b"".join(out_nodes)
    tree_at = header_len
    data_at = tree_at + len(tree_b)
    names_at = data_at + len(payload)
    header = b"qres" + struct.pack(">IIII", version, tree_at, data_at, names_at)
    if version >= 3:
        header += struct.pack(">I", 0)
    return header + tree_b + bytes(payload) + bytes(names)


def photo(seed: int, size=(320, 240), mode="RGB", flat=False, fmt="WEBP") -> bytes:
    rng = np.random.default_rng(seed)  # a colour ramp plus noise: photo-like contrast that survives downscaling
    ramp = np.linspace(0, 200, size[0])[None, :, None] * rng.uniform(0.3, 1.0, 3)[None, None, :]
    noise = rng.integers(0, 40, (size[1], size[0], 3))
    arr = np.full((size[1], size[0], 3), 128, np.uint8) if flat else (ramp + noise).clip(0, 255).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode)
    if mode == "RGBA":  # a real cut-out: transparent background
        alpha = np.zeros((size[1], size[0]), np.uint8)
        alpha[size[1] // 4: -size[1] // 4, size[0] // 4: -size[0] // 4] = 255
        img.putalpha(Image.fromarray(alpha))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_roundtrip_nested_and_compressed(version):
    files = {"a/b/c.txt": b"hello", "a/d.bin": bytes(range(256)) * 10, "top.txt": b"", "a/b/e.txt": b"x" * 5000}
    blob = make_rcc(files, version=version, compress={"a/d.bin", "a/b/e.txt"})
    assert read_rcc(blob) == files


def test_rejects_non_bundles_and_truncation(tmp_path):
    with pytest.raises(RccError, match="qres"):
        read_rcc(b"PK\x03\x04 not a qt resource file at all")
    blob = make_rcc({"x/y.txt": b"payload" * 100})
    for cut in (12, 30, len(blob) - 20):
        with pytest.raises(RccError):
            read_rcc(blob[:cut])
    bad_version = blob[:4] + struct.pack(">I", 9) + blob[8:]
    with pytest.raises(RccError, match="version"):
        read_rcc(bad_version)
    p = tmp_path / "x.rcc"
    p.write_bytes(blob)
    assert dict(iter_rcc(p)) == {"x/y.txt": b"payload" * 100}


def test_cyclic_tree_is_refused():
    blob = bytearray(make_rcc({"d/f.txt": b"1"}))
    # node 1 is directory "d" whose first child is node 2; point it back at node 0 (the root): a cycle
    tree_at = struct.unpack_from(">I", blob, 8)[0]
    struct.pack_into(">I", blob, tree_at + 22 + 10, 0)
    with pytest.raises(RccError, match="cyclic"):
        read_rcc(bytes(blob))


def _bundle_dir(tmp_path: Path) -> Path:
    base = "gcompris/src/activities"
    files = {
        f"{base}/erase/resource/fox.webp": photo(1),                       # kept
        f"{base}/erase/resource/owl.jpg": photo(2, fmt="JPEG"),            # kept
        f"{base}/erase/resource/fox2.webp": photo(1),                      # exact duplicate: dropped
        f"{base}/erase/resource/cardboard.webp": photo(3, flat=True),      # flat: dropped
        f"{base}/erase/resource/tiny.webp": photo(4, size=(120, 90)),      # too small: dropped
        f"{base}/erase/resource/cutout.webp": photo(5, mode="RGBA"),       # alpha cut-out: dropped
        f"{base}/paintings/resource/image/art.webp": photo(6),             # not a photo folder: dropped
        f"{base}/erase/resource/erase.qml": b"import QtQuick 2.12",        # not an image: dropped
        f"{base}/explore_monuments/resource/india/tajMahal.webp": photo(7),  # kept (sub-folder of an allowed one)
        f"{base}/erase/resource/broken.webp": b"RIFF\x00\x00\x00\x00WEBPVP8 garbage",  # undecodable: dropped
    }
    d = tmp_path / "rcc"
    d.mkdir()
    (d / "one.rcc").write_bytes(make_rcc({k: v for k, v in files.items() if "monuments" not in k},
                                         compress={f"{base}/erase/resource/owl.jpg"}))
    (d / "two.rcc").write_bytes(make_rcc({k: v for k, v in files.items() if "monuments" in k}, version=3))
    (d / "junk.rcc").write_bytes(b"this is not a bundle")  # skipped, not fatal
    return d


def test_extract_filters_and_is_idempotent(tmp_path, monkeypatch):
    rcc = _bundle_dir(tmp_path)
    dest = tmp_path / "photos" / "gcompris"
    got = extract_gcompris(rcc, dest)
    assert sorted(p.name for p in got) == ["erase-fox.webp", "erase-owl.jpg", "explore_monuments-tajMahal.webp"]
    for p in got:
        assert load_image(p, 64).shape == (3, 64, 64)
    stamp = {p: p.stat().st_mtime_ns for p in got}
    assert extract_gcompris(tmp_path / "no-such-dir", dest) == got  # the index answers; nothing re-extracted
    assert {p: p.stat().st_mtime_ns for p in got} == stamp
    monkeypatch.setenv("LAVAN_PHOTOS_DIR", str(tmp_path / "photos"))
    names = {s.name for s in attack.sample_images(("gcompris",))}
    assert names == {"gcompris/erase-fox", "gcompris/erase-owl", "gcompris/explore_monuments-tajMahal"}
    (dest / "erase-fox.webp").unlink()  # a damaged extraction is not listed and is redone on the next extract
    assert attack.sample_images(("gcompris",)) == []
    assert len(extract_gcompris(rcc, dest)) == 3


def test_missing_package_gives_no_photos_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVAN_PHOTOS_DIR", str(tmp_path / "photos"))
    assert extract_gcompris(tmp_path / "absent") == []
    assert attack.sample_images(("gcompris",)) == []
    assert not (tmp_path / "photos").exists()


def test_cli_photos(tmp_path, monkeypatch, capsys):
    from attack.cli import main

    monkeypatch.setenv("LAVAN_PHOTOS_DIR", str(tmp_path / "photos"))
    assert main(["photos", "--rcc", str(_bundle_dir(tmp_path)), "--json"]) == 0
    assert '"photos": 3' in capsys.readouterr().out
    monkeypatch.setenv("LAVAN_PHOTOS_DIR", str(tmp_path / "elsewhere"))
    assert main(["photos", "--rcc", str(tmp_path / "absent")]) == 0
    assert "gcompris-qt-data" in capsys.readouterr().out


REAL = Path("/usr/share/gcompris-qt/rcc")


@pytest.mark.skipif(not REAL.is_dir() and not os.environ.get("CI"),
                    reason="Debian's gcompris-qt-data is not installed (`make test` installs it)")
def test_real_gcompris_package(tmp_path):
    """`make test` installs the package, so under CI this must run: ≥ 200 real photos, each loads as a photo."""
    got = extract_gcompris(REAL, tmp_path / "g")
    assert len(got) >= 200, len(got)
    assert len({p.name for p in got}) == len(got)
    for p in got[::10]:
        x = load_image(p, 224)
        assert x.shape == (3, 224, 224) and float(x.std()) > 0.05
