"""Pure helpers the experiments' statistics share: CSV cells to numbers, fractions, medians, the paper's three
criteria, success curves, and the number formats of the reports. No torch, no files."""
from __future__ import annotations

import math
import statistics
from typing import Iterable

from ..fmt import pct  # noqa: F401  (re-exported: the experiments' tables)


def f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def b(v) -> bool:
    return str(v) in ("1", "True", "true")


def frac(rows: list[dict], key: str) -> float | None:
    return sum(b(r[key]) for r in rows) / len(rows) if rows else None


def median(xs: Iterable[float]) -> float | None:
    xs = [x for x in xs if not math.isnan(x)]
    return float(statistics.median(xs)) if xs else None


def mean(xs) -> float | None:
    xs = [float(x) for x in xs if x is not None and not math.isnan(float(x))]
    return sum(xs) / len(xs) if xs else None


def quartiles(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def criteria(rows: list[dict]) -> dict:
    """The paper's three criteria over training rows, and the iterations to p ≥ 0.9 of the successes."""
    its = [spent(r) for r in rows if b(r["success_0_9"])]
    return {"configs": len(rows), "success_0_9": frac(rows, "success_0_9"),
            "argmax_target": frac(rows, "argmax_target"), "not_source": frac(rows, "not_source"),
            "median_iterations": median(its),
            "iterations_q1_q3": [float(x) for x in quartiles(its)] if len(its) >= 2 else None}


def spent(row: dict) -> float:
    """Forward+backward evaluations a training row spent (restarts × iterations); rows written before restarts
    existed trained one patch, so their iterations are their evaluations."""
    ev = row.get("evaluations")
    return f(ev) if ev not in (None, "") else f(row["iterations"])


def success_curve(rows: list[dict], cap: int, points: int = 50) -> dict:
    if not rows or cap <= 0:
        return {"iterations": [], "success": []}
    ks = sorted({int(round(cap * i / points)) for i in range(points + 1)})
    its = [(spent(r), b(r["success_0_9"])) for r in rows]
    return {"iterations": ks, "success": [sum(1 for it, ok in its if ok and it <= k) / len(rows) for k in ks]}


def successful(rows: list[dict], quick: bool) -> tuple[list[dict], bool]:
    """Successful configs; a quick run with none falls back to every config (flagged) so the pipeline still runs."""
    ok = [r for r in rows if b(r["success_0_9"])]
    if ok or not quick:
        return ok, False
    return list(rows), True


def cap_text(rows: list[dict], key: str, label: str) -> str:
    """"5000" or "5000; cut by --time-budget at 3691 for baseball": the largest cap and the rows that ran less."""
    caps = [int(f(r[key])) for r in rows]
    if not caps:
        return "none yet"
    top = max(caps)
    short = [f"{c} for {r[label]}" for r, c in zip(rows, caps) if c < top]
    return f"{top}" + (f"; cut by --time-budget at {', '.join(short)}" if short else "")


def ranks(keys: dict) -> dict:
    """Competition ranks (1, 1, 3, …) of sortable keys, smallest first: equal keys share a rank."""
    return {k: 1 + sum(1 for o in keys.values() if o < v) for k, v in keys.items()}


def num(v, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}"
