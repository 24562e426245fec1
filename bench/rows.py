"""Rows of a bench CSV that a rerun replaces: the one writer bench/meter.py and bench/ceiling.py share."""
from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path


def replace_rows(path: Path, fields: list[str], rows: list[dict], key: Callable[[dict], tuple]) -> None:
    """Write ``rows`` into the CSV at ``path``: rows already there under another ``key`` stay, rows under one of
    these keys are replaced; the file is sorted by ``key``."""
    mine = {key(r) for r in rows}
    kept = []
    if path.exists():
        with path.open(newline="") as f:
            kept = [r for r in csv.DictReader(f) if key(r) not in mine]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fields)
        w.writeheader()
        w.writerows(sorted(kept + rows, key=key))
