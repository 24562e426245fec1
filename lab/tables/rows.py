"""What every table reader shares: the results folder, the CSV reader, and the two small number helpers."""
from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"


def read_rows(path: str | Path, max_iter: int | None = None) -> list[dict]:
    """Complete rows of a results CSV (all caps, or one ``max_iter``); none when the file is missing; a row cut
    short by a write in progress is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if None not in r.values() and None not in r]
    return [r for r in rows if max_iter is None or str(r.get("max_iter")) == str(max_iter)]


def median(xs) -> float | None:
    """The median of the values that are not None or NaN; None when there are none."""
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else None


def fmt(v, digits: int = 0, unit: str = "") -> str:
    """A number for a table cell: ``digits`` decimals and ``unit``, "–" for None."""
    return "–" if v is None else f"{v:.{digits}f}{unit}"
