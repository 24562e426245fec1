"""The resumable results table of an experiment: an append-only CSV whose ``config`` column says what is done."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path


class Table:
    """Append-only CSV of finished rows; ``done`` holds the ``config`` keys already written."""

    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = path, fields
        self.rows: list[dict] = []
        if path.is_file():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a process stopped mid-write: drop the partial last line
                with path.open("r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
            with path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.rows = list(reader)
                if reader.fieldnames:  # an older file keeps its own columns, so appended rows stay aligned
                    self.fields = list(reader.fieldnames)
        self.done = {r["config"] for r in self.rows}

    def add(self, rows: list[dict]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow({k: _cell(r.get(k, "")) for k in self.fields})
            f.flush()
            os.fsync(f.fileno())
        self.rows += [{k: _cell(r.get(k, "")) for k in self.fields} for r in rows]
        self.done |= {str(r["config"]) for r in rows}


def _cell(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)
