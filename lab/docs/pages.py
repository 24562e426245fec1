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


def control_seconds(path: Path, page: str, what: str = "") -> tuple[float, float] | None:
    """(redraw, first answer) seconds of ``page``'s first control whose description contains ``what``, in a
    printout's controls table (None when absent)."""
    for line in tables.printed_table(path, 1)[1][2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] == page and what in cells[1]:
            return float(cells[2]), float(cells[3])
    return None


@block("pages-transfer-ab")
def _pages_transfer_ab(root: Path) -> str:
    """The Transfer page's border slider before and after the photo grid read the sweep (be2ea92), alternating runs
    on the same machine (bench/results/pages_transfer_{before,after}_<round>.txt)."""
    lines = ["| round | load average as the before run started | before: redraw (first answer), s | after: redraw (first answer), s |",
             "|---|---|---|---|"]
    rnd = 1
    while (root / RESULTS / f"pages_transfer_before_{rnd}.txt").is_file():
        cells = []
        for w in ("before", "after"):
            path = root / RESULTS / f"pages_transfer_{w}_{rnd}.txt"
            got = control_seconds(path, "transfer") if path.is_file() else None
            cells.append("–" if got is None else f"{got[0]:.2f} ({got[1]:.2f})")
        note = next((ln for ln in tables.printed_tables(root / RESULTS / f"pages_transfer_before_{rnd}.txt")[0]
                     if ln.startswith("load ")), "load –")
        lines.append(f"| {rnd} | {note.split()[1]} | {cells[0]} | {cells[1]} |")
        rnd += 1
    return "\n".join(lines)
