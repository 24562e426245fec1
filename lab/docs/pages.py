"""Blocks from the page bench's printouts (``bench/pages.py``, issue 26): the slowest page for each way of arriving,
before (at 4fb2af4) and after, read from the two committed printouts (their tables go in through
``registry.PRINTED_TABLES``)."""
from __future__ import annotations

from pathlib import Path

from .. import tables
from .registry import RESULTS, block

AFTER, BEFORE = "pages_2026-12-06.txt", "pages_2026-12-06_before.txt"


def page_rows(path: Path) -> dict[str, dict[str, float]]:
    """page -> {column: seconds} of a printout's first table ("never" is infinity, "–" is left out)."""
    lines = tables.printed_table(path, 0)[1]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = {h: (float("inf") if v == "never" else float(v)) for h, v in zip(head[1:], cells[1:])
                         if v not in ("–", "")}
    return out


def slowest(rows: dict[str, dict[str, float]], column: str) -> tuple[str, float]:
    page = max(rows, key=lambda p: rows[p].get(column, -1.0))
    return page, rows[page][column]


@block("pages-slowest")
def _pages_slowest(root: Path) -> str:
    before, after = page_rows(root / RESULTS / BEFORE), page_rows(root / RESULTS / AFTER)
    lines = ["| arriving | visit | slowest before: ready (s) | slowest after: ready (s) | "
             "slowest after: done, background result drawn (s) |", "|---|---|---|---|---|"]
    for way, label in (("sidebar", "sidebar, one session"), ("URL", "URL, a fresh session")):
        for visit in ("1st", "2nd"):
            b = slowest(before, f"{way} {visit} ready")
            a = slowest(after, f"{way} {visit} ready")
            d = slowest(after, f"{way} {visit} done")
            lines.append(f"| {label} | {visit} | {b[0]} {b[1]:.2f} | {a[0]} {a[1]:.2f} | {d[0]} {d[1]:.2f} |")
    return "\n".join(lines)
