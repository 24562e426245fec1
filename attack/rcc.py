"""Read files out of Qt binary resource bundles (``.rcc``), without Qt.

Debian's ``gcompris-qt-data`` ships a few hundred public-domain photos (236 kept by ``extract_gcompris``)
packed inside ``.rcc`` files. This reader walks the bundle's tree and yields each file's bytes, so those photos can
join the sample set for experiments that need more than the 100 ai-benchmark photos (the universal patch's
100/100 split). Format (Qt's ``rcc`` writer, versions 1–3): a big-endian header ``"qres" version tree data names
[flags]``; tree nodes of 14 bytes (22 from version 2 on, with a modification time); names stored as length + hash +
UTF-16BE; data stored as length + bytes, zlib-compressed with a 4-byte size prefix when the node's flag 1 is set,
or a zstd frame when flag 4 is set (read only if the ``zstandard`` package is installed; otherwise skipped).
"""
from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Iterator

__all__ = ["RccError", "iter_rcc", "read_rcc"]

COMPRESSED = 0x01
DIRECTORY = 0x02
COMPRESSED_ZSTD = 0x04
MAX_FILE = 64 * 1024 * 1024  # refuse to inflate one entry beyond this
MAX_DEPTH = 32


class RccError(ValueError):
    """The file is not a Qt resource bundle this reader understands."""


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        if len(data) < 20 or data[:4] != b"qres":
            raise RccError("not a Qt resource file (no 'qres' header)")
        self.version, self.tree, self.payload, self.names = struct.unpack_from(">IIII", data, 4)
        if self.version not in (1, 2, 3):
            raise RccError(f"unsupported Qt resource version {self.version}")
        self.node_size = 14 if self.version == 1 else 22
        for off in (self.tree, self.payload, self.names):
            if off >= len(data):
                raise RccError("truncated Qt resource file (offset past the end)")

    def _u(self, fmt: str, off: int):
        try:
            return struct.unpack_from(fmt, self.data, off)
        except struct.error:
            raise RccError("truncated Qt resource file") from None

    def node(self, index: int) -> tuple[str, int, int, int]:
        """(name, flags, a, b): for a directory a = child count, b = first child index; for a file a = data offset."""
        off = self.tree + index * self.node_size
        name_off, flags = self._u(">IH", off)
        if flags & DIRECTORY:
            count, first = self._u(">II", off + 6)
            return self.name(name_off), flags, count, first
        (data_off,) = self._u(">I", off + 10)
        return self.name(name_off), flags, data_off, 0

    def name(self, off: int) -> str:
        (length,) = self._u(">H", self.names + off)
        start = self.names + off + 6
        raw = self.data[start:start + 2 * length]
        if len(raw) != 2 * length:
            raise RccError("truncated Qt resource file (name)")
        return raw.decode("utf-16-be", errors="replace")

    def blob(self, off: int, flags: int) -> bytes | None:
        (size,) = self._u(">I", self.payload + off)
        start = self.payload + off + 4
        raw = self.data[start:start + size]
        if len(raw) != size:
            raise RccError("truncated Qt resource file (data)")
        if flags & COMPRESSED:
            if size < 4:
                raise RccError("damaged compressed entry")
            (plain,) = struct.unpack_from(">I", raw, 0)
            if plain > MAX_FILE:
                return None
            d = zlib.decompressobj()
            out = d.decompress(raw[4:], MAX_FILE)
            return out
        if flags & COMPRESSED_ZSTD:
            try:
                import zstandard  # optional
            except ImportError:
                return None
            return zstandard.ZstdDecompressor().decompress(raw, max_output_size=MAX_FILE)
        return raw


def iter_rcc(source: str | Path | bytes) -> Iterator[tuple[str, bytes]]:
    """Yield ``(path, content)`` for every file in a ``.rcc`` bundle (paths use ``/``, without the leading ``:/``).

    Entries compressed with a codec that is not available are skipped. Raises :class:`RccError` for a file that is not
    a Qt resource bundle or is truncated.
    """
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    r = _Reader(bytes(data))
    seen: set[int] = set()

    def walk(index: int, prefix: str, depth: int):
        if depth > MAX_DEPTH or index in seen:
            raise RccError("damaged Qt resource file (cyclic or too deep tree)")
        seen.add(index)
        name, flags, a, b = r.node(index)
        path = f"{prefix}/{name}" if prefix else name
        if flags & DIRECTORY:
            for child in range(b, b + a):
                yield from walk(child, path, depth + 1)
        else:
            content = r.blob(a, flags)
            if content is not None:
                yield path, content

    _, flags, count, first = r.node(0)  # the root is a nameless directory
    if not flags & DIRECTORY:
        raise RccError("damaged Qt resource file (root is not a directory)")
    for child in range(first, first + count):
        yield from walk(child, "", 1)


def read_rcc(source: str | Path | bytes) -> dict[str, bytes]:
    """All files of a ``.rcc`` bundle as ``{path: bytes}``."""
    return dict(iter_rcc(source))
