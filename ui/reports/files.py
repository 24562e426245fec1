"""Where the Paper page reads from (``reports/`` or ``$LAVAN_REPORTS_DIR``, the area table, the ablation CSV), how a
path is shown without the server's folders, and the process-wide cache that keeps a value built from files until
one of them changes on disk."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from lab import tables
from lab.reproduce import stats

ROOT = Path(__file__).resolve().parents[2]


def reports_dir() -> Path:
    return Path(os.environ.get("LAVAN_REPORTS_DIR") or ROOT / "reports")


def shown(path: str | Path) -> str:
    """A file's name as a page may show it: relative to the project (``reports/single.json``), never the server's
    absolute path (an operator's LAVAN_REPORTS_DIR elsewhere shows as its last folder and the name)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT.resolve()))
    except ValueError:
        return str(Path(path.parent.name) / path.name)


def area_table_path() -> Path:
    return Path(os.environ.get("LAVAN_AREA_TABLE") or ROOT / "bench" / "results" / "area_table.csv")


def ablation_path() -> Path:
    return Path(os.environ.get("LAVAN_ABLATION") or ROOT / "bench" / "results" / "ablation.csv")


_csv_rows = tables.read_rows  # complete rows; none when the file is missing; a torn last line is dropped
_f, _ok, _mean = stats.f, stats.b, stats.mean

_kept_lock = threading.Lock()
_kept: dict[str, tuple[tuple, object]] = {}  # name -> (signature of the files it was built from, value)


def _kept_until_changed(name: str, sig: tuple, build):
    """``build()``'s value for ``name``, built again only when ``sig`` (what its files look like on disk now)
    differs from the one it was built from. One value per name, shared by all sessions: it must not be modified."""
    with _kept_lock:
        hit = _kept.get(name)
    if hit is not None and hit[0] == sig:
        return hit[1]
    value = build()
    with _kept_lock:
        _kept[name] = (sig, value)
    return value


def _fingerprint(out: Path) -> tuple:
    """Name, size and modification time of every file in ``out``: what :func:`load_view` may read."""
    sig = []
    try:
        entries = sorted(out.iterdir())
    except OSError:
        entries = []
    for p in entries:
        try:
            st_ = p.stat()
        except OSError:
            continue
        sig.append((p.name, st_.st_size, st_.st_mtime_ns))
    return (str(out.resolve()), tuple(sig))


def _by_files(name: str, paths: tuple[Path, ...], build) -> tuple[list[dict], str | None]:
    """``build()``'s table, rebuilt only when one of ``paths`` changed (size, mtime) or appeared: like
    :func:`load_all`, so the Paper page does not re-read and re-summarise the CSVs on every visit."""
    sig = []
    for p in paths:
        try:
            st_ = p.stat()
            sig.append((str(p.resolve()), st_.st_size, st_.st_mtime_ns))
        except OSError:
            sig.append((str(p), None, None))
    return _kept_until_changed(name, tuple(sig), build)
