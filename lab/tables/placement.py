"""``bench/placement.py``'s rows (``bench/results/placement.csv``): the location map's best cell against the corners."""
from __future__ import annotations

from pathlib import Path

from ..fmt import pct
from .rows import RESULTS, fmt, median, read_rows

PLACEMENT_KINDS = ("best", "top-left", "top-right", "bottom-left", "bottom-right")


def read_placement(path: str | Path = RESULTS / "placement.csv") -> list[dict]:
    """Rows of bench/placement.py; a config counts only once all six of its rows (map, best, 4 corners) exist."""
    rows = read_rows(path)
    key = lambda r: (r["seed"], r["config"], r["stride"], r["map_steps"], r["budget"])  # noqa: E731
    n: dict[tuple, int] = {}
    for r in rows:
        n[key(r)] = n.get(key(r), 0) + 1
    return [r for r in rows if n[key(r)] >= 1 + len(PLACEMENT_KINDS)]


def summarise_placement(rows: list[dict]) -> list[dict]:
    """One dict per (stride, map_steps, budget, size, domain) setting: the map's best cell against the corners.

    Keys: stride, map_steps, budget, size, domain, configs, cells, best_ok, best_median, corner_ok, corner_runs,
    corner_median, any_corner_ok, best_is_corner, map_evals, map_p_median (the map's best cell's p(target) after
    its short run), map_cpu_s (medians over configs), map_cpu_max,
    best_p_median, corner_p_median (p(target) reached, over all runs)."""
    settings = sorted({(int(r["stride"]), int(r["map_steps"]), int(r["budget"]), int(r["size"]), r["domain"])
                       for r in rows})
    out = []
    for st, ms, b, size, dom in settings:
        rs = [r for r in rows if (int(r["stride"]), int(r["map_steps"]), int(r["budget"]), int(r["size"]),
                                  r["domain"]) == (st, ms, b, size, dom)]
        maps = [r for r in rs if r["kind"] == "map"]
        best = [r for r in rs if r["kind"] == "best"]
        corner = [r for r in rs if r["kind"] in PLACEMENT_KINDS[1:]]
        by_cfg: dict[tuple, bool] = {}
        for r in corner:
            k = (r["seed"], r["config"])
            by_cfg[k] = by_cfg.get(k, False) or r["success"] == "1"
        ok = lambda xs: [int(r["evaluations"]) for r in xs if r["success"] == "1"]  # noqa: E731
        out.append(dict(stride=st, map_steps=ms, budget=b, size=size, domain=dom, configs=len(maps),
                        cells=int(maps[0]["cells"]) if maps else 0,
                        best_ok=len(ok(best)), best_median=median(ok(best)),
                        corner_ok=len(ok(corner)), corner_runs=len(corner), corner_median=median(ok(corner)),
                        any_corner_ok=sum(by_cfg.values()),
                        best_is_corner=sum(r["best_is_corner"] == "1" for r in maps),
                        map_evals=median([int(r["evaluations"]) for r in maps]),
                        map_p_median=median([float(r["p_target"]) for r in maps]),
                        map_cpu_s=median([float(r["cpu_s"]) for r in maps]),
                        map_cpu_max=max((float(r["cpu_s"]) for r in maps), default=None),
                        best_p_median=median([float(r["p_target"]) for r in best]),
                        corner_p_median=median([float(r["p_target"]) for r in corner])))
    return out


def placement_markdown(cells: list[dict]) -> str:
    """The placement table of docs/ATTACK_STRENGTH.md: success (p >= 0.9) and median evaluations at the map's best
    cell vs the corners, and what the map cost."""
    head = ("| patch, domain | map: grid, evaluations per cell | budget per location | configs | p ≥ 0.9 at the "
            "map's best cell | p ≥ 0.9 at a corner (runs) | ≥ 1 of 4 corners | median evaluations (successes): "
            "best / corner | median p reached: best / corner | best cell is a corner | map cost: evaluations, "
            "CPU s (median, max) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for c in cells:
        share = lambda a, b: f"{a}/{b} ({pct(a / b, 0, ' %')})" if b else "–"  # noqa: E731
        lines.append(
            f"| {c['size']}×{c['size']}, {c['domain']} | {c['cells']} cells every {c['stride']} px, "
            f"{c['map_steps']} | {c['budget']} | {c['configs']} | {share(c['best_ok'], c['configs'])} | "
            f"{share(c['corner_ok'], c['corner_runs'])} | {share(c['any_corner_ok'], c['configs'])} | "
            f"{fmt(c['best_median'])} / {fmt(c['corner_median'])} | "
            f"{fmt(c['best_p_median'], 2)} / {fmt(c['corner_p_median'], 2)} | {c['best_is_corner']}/{c['configs']} | "
            f"{fmt(c['map_evals'])}, {fmt(c['map_cpu_s'])} s ({fmt(c['map_cpu_max'])} s) |")
    return head + "\n".join(lines) + ("\n" if lines else "| – | | | 0 | | | | | | | |\n")
