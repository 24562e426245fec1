"""The area blocks: success against patch area (``area_table.csv``), the area table of today's defaults, Adam
against plain gradient steps, the step-size sweep and the placement map against the corners."""
from __future__ import annotations

import statistics
from pathlib import Path

from .. import findings, tables
from .registry import RESULTS, block


@block("area-table")
def _area_table(root: Path) -> str:
    return tables.area_markdown(tables.read_rows(root / RESULTS / "area_table.csv", 2000), 2000)


def _cell(cells: list[dict], opt: str, dom: str, area: float) -> dict:
    return next(c for c in cells if (c["optimizer"], c["domain"], c["area"]) == (opt, dom, area))


@block("area-reading")
def _area_reading(root: Path) -> str:
    """The reading of the area table (docs/ATTACK_STRENGTH.md): the default area and Adam vs plain gradient."""
    cells = tables.summarise_area(tables.read_rows(root / RESULTS / "area_table.csv", 2000))
    c = {(x["optimizer"], x["domain"], x["area"]): x for x in cells}
    areas = sorted({x["area"] for x in cells})
    ok = [a for a in areas if all(c[("adam", d, a)]["within_1000"] >= 0.8 * c[("adam", d, a)]["configs"]
                                  for d in ("image", "network"))]
    default = ok[0] if ok else None

    def frac(o, d, a, key="within_1000"):
        x = c[(o, d, a)]
        return f"{x[key]}/{x['configs']}"
    top = max(areas)
    below = [a for a in areas if a < default][-1] if default and any(a < default for a in areas) else None
    lines = []
    if default is not None:
        lines.append(f"**Default patch: {default:.0%} of the image ({c[('adam', 'image', default)]['size']}×"
                     f"{c[('adam', 'image', default)]['size']} on 224)**, the smallest measured area at which ≥ 80% of "
                     f"configs reach p ≥ 0.9 within 1,000 iterations with Adam ({frac('adam', 'image', default)} "
                     f"image, {frac('adam', 'network', default)} network)."
                     + (f" {below:.0%} reached {frac('adam', 'image', below)} (image) and "
                        f"{frac('adam', 'network', below)} (network), so it does not qualify" if below else "")
                     + " (`attack/train.py: DEFAULT_AREA`).")
    small = min(areas)
    none = all(c[(o, d, small)]["successes"] == 0 for o in ("adam", "sgd") for d in ("image", "network")
               if (o, d, small) in c)
    lines.append(f"The paper's 2% patch is one option away; at {small:.0%} "
                 + ("no config of either optimiser" if none else "few configs")
                 + " reached p ≥ 0.9 within 2,000 iterations on EfficientNet-Lite0 (the paper: "
                   f"{findings.PAPER['single']['success_0_9']:.0%} on Inception v3 within 10,000).")
    lines.append("")
    med = {k: c[k]["median_it"] for k in c}
    lines.append(f"Adam against the paper's plain gradient steps, same configs: at {top:.0%} Adam reaches "
                 f"{frac('adam', 'image', top)} (image) and {frac('adam', 'network', top)} (network) within 1,000 "
                 f"iterations, plain gradient {frac('sgd', 'image', top)} and {frac('sgd', 'network', top)}, with "
                 f"medians {med[('adam', 'image', top)]:.0f} vs {med[('sgd', 'image', top)]:.0f} (image) and "
                 f"{med[('adam', 'network', top)]:.0f} vs {med[('sgd', 'network', top)]:.0f} (network).")
    mid = sorted(a for a in areas if a < top)[-1] if len(areas) > 1 else top
    spread = sorted({c[(o, d, mid)]["successes"] for o in ("adam", "sgd") for d in ("image", "network")})
    n_mid = sorted({c[(o, d, mid)]["configs"] for o in ("adam", "sgd") for d in ("image", "network")})
    fewer = [k for k in c if k[0] == "sgd" and c[k]["successes"] > c[("adam", k[1], k[2])]["successes"]]
    lower = [a for a in (mid, top) if all((med[("adam", d, a)] or 1e9) < (med[("sgd", d, a)] or 1e9)
                                          for d in ("image", "network"))]
    lines[-1] += (f" At {mid:.0%} both reach {spread[0]}–{spread[-1]}/{'–'.join(map(str, sorted({n_mid[0], n_mid[-1]})))} "
                  "within 2,000 iterations. "
                  + ("So Adam is the default: no cell has fewer successes with it"
                     if not fewer else "Adam is the default, though some cells have fewer successes with it")
                  + (f", and its medians are lower at {' and '.join(f'{a:.0%}' for a in lower)}." if lower else "."))
    pooled = [x for x in tables.compare_optimisers(tables.read_rows(root / RESULTS / "area_table.csv", 1000))
              if len(x["seeds"]) > 1]
    if pooled:
        a = next(x for x in pooled if x["optimizer"] == "adam")
        s = next(x for x in pooled if x["optimizer"] == "sgd")
        lines.append(f"Over {a['configs']} further configs (seeds {' and '.join(map(str, a['seeds']))}, "
                     f"{a['domain']} domain, {a['area']:.0%}, cap {a['max_iter']:,}) Adam reached p ≥ 0.9 on "
                     f"{a['successes']}/{a['configs']} and plain gradient on {s['successes']}/{s['configs']}, with "
                     f"medians of {statistics.median(a['its']):.0f} and {statistics.median(s['its']):.0f} iterations "
                     "over their successes (`docs/BENCHMARKS.md`).")
    return "\n".join(lines)


@block("placement")
def _placement(root: Path) -> str:
    cells = tables.summarise_placement(tables.read_placement(root / RESULTS / "placement.csv"))
    return tables.placement_markdown(cells) if cells else "No placement rows yet: run `bench/placement.py`."


@block("placement-reading")
def _placement_reading(root: Path) -> str:
    """The answer to issue 15's question, from the largest measured setting of bench/placement.py."""
    cells = tables.summarise_placement(tables.read_placement(root / RESULTS / "placement.csv"))
    if not cells:
        return "Not measured yet."
    c = max(cells, key=lambda c: c["configs"])
    n, runs = c["configs"], c["corner_runs"]
    best, corner = c["best_ok"] / n, c["corner_ok"] / runs if runs else 0.0
    med = (f"median {tables.fmt(c['best_median'])} vs {tables.fmt(c['corner_median'])} evaluations over the "
           "successes")
    gap = 100 * (best - corner)
    cost = (f"a corner costs the attacker {gap:.0f} percentage points of success" if gap >= 0.5 else
            f"a corner costs the attacker nothing ({-gap:.0f} points more success)")
    return (f"**Does off the object (a corner) cost the attacker much?** Over {n} configs (photo, random target; "
            f"{c['size']}×{c['size']} patch, {c['domain']} domain, {c['budget']} evaluations per place, "
            f"{c['cells']}-cell map of {c['map_steps']} evaluations per cell), the map's best cell reached p ≥ 0.9 on "
            f"{c['best_ok']}/{n} ({best:.0%}) and a corner on {c['corner_ok']}/{runs} runs ({corner:.0%}); {med}. "
            f"At this budget {cost} against the map's pick; an attacker who tries all four corners (4× the budget) "
            f"succeeds on {c['any_corner_ok']}/{n} ({c['any_corner_ok'] / n:.0%}). The map's best cell was itself a "
            f"corner in {c['best_is_corner']}/{n} configs (that corner's run then repeats the best cell's). The map "
            f"cost a median {tables.fmt(c['map_evals'])} evaluations, {tables.fmt(c['map_cpu_s'])} CPU s (1 "
            f"thread; at most {tables.fmt(c['map_cpu_max'])} s) on top of the attack; its short runs leave "
            f"p(target) near the floor (median {tables.fmt(c['map_p_median'], 3)} at the best cell), so its argmax is "
            f"a cheap, noisy guess. Measured at these small, CPU-sized budgets only, not at the paper's 10,000 "
            f"iterations.")


def _default_area_cells(root: Path) -> list[dict]:
    return tables.default_area_cells(tables.read_ablation(root / RESULTS / "ablation.csv"),
                                     tables.read_rows(root / RESULTS / "area_table.csv"),
                                     tables.default_fields_by_area(224))


@block("area-default")
def _area_default(root: Path) -> str:
    return tables.default_area_markdown(_default_area_cells(root))


def _default_patch_line(root: Path) -> str:
    """Issue 12's rule for the default patch, read from the default-training area table: the smallest side whose
    default training reaches p >= 0.9 on >= 80% of configs within 2,000 evaluations in every domain measured."""
    from attack.train import default_patch_size

    cells = _default_area_cells(root)
    grid = _grid_rates(root)
    by_size: dict[int, list[dict]] = {}
    for c in cells:
        by_size.setdefault(c["size"], []).append(c)
    parts, pick = [], None
    for size, cs in sorted(by_size.items()):
        got = [c for c in cs if c["configs"]]

        def cell(c):
            if not c["configs"]:
                return f"{c['domain']} not measured"
            g = grid.get((c["domain"], size))
            return f"{c['domain']} {c['successes']}/{c['configs']}" + (f" (grid place {g[0]}/{g[1]})" if g else "")
        parts.append(f"{size}×{size}: " + ", ".join(cell(c) for c in cs))
        best = lambda c: max([c["successes"] / c["configs"]] + (  # noqa: E731
            [grid[(c["domain"], size)][0] / grid[(c["domain"], size)][1]] if (c["domain"], size) in grid else []))
        if pick is None and len(got) == len(cs) and all(best(c) >= 0.8 for c in got):
            pick = size
    now = default_patch_size(224)
    verdict = (f"none of the measured sizes qualifies in every domain yet; the default stays {now}×{now}"
               if pick is None else
               f"the smallest that qualifies is {pick}×{pick}" + (
                   f", which is the default ({now}×{now})" if pick == now else
                   f"; the default is {now}×{now}" + (" (a smaller side qualifies on these configs: more seeds before "
                                                      "the default moves)" if pick < now else "")))
    return ("- **Default patch** (the smallest whose default training reaches p ≥ 0.9 on ≥ 80% of configs within "
            "2,000 evaluations at the exact corner or, where the grid placement moves the patch, at the grid place "
            f"(issue 27; the grid does not move {_unmoved(sorted(by_size))} px patches on this network), table below): "
            + "; ".join(parts) + f" — {verdict}.")


def _unmoved(sizes: list[int]) -> str:
    """The sizes whose corner patch the grid placement leaves at the corner on EfficientNet-Lite0 at 224 (its last grid:
    7×7 cells of 32 px, :func:`attack.meter.last_grid`)."""
    from attack.meter import grid_loc

    keep = [str(s) for s in sizes if grid_loc((0, 0), s, 224, 7, 32.0) == (0, 0)]
    return ", ".join(keep[:-1]) + " or " + keep[-1] if len(keep) > 1 else "".join(keep) or "any"


def _grid_rates(root: Path) -> dict[tuple[str, int], tuple[int, int]]:
    """(domain, size) -> (successes, configs) of the default training at the grid place (``-pgrid`` rows)."""
    cells = tables.default_area_cells(tables.read_ablation(root / RESULTS / "ablation.csv"), [],
                                      tables.default_fields_by_area(224), place="grid")
    return {(c["domain"], c["size"]): (c["successes"], c["configs"]) for c in cells if c["configs"]}


@block("compare-optimisers")
def _compare(root: Path) -> str:
    return tables.compare_markdown(tables.read_rows(root / RESULTS / "area_table.csv", 1000))


@block("tune-lr")
def _tune_lr(root: Path) -> str:
    from attack.train import default_lr

    cells = tables.summarise_tune_lr(tables.read_rows(root / RESULTS / "tune_lr.csv"))

    def one(c):
        return f"{c['lr']:g} → {c['successes']}/{c['configs']}" + (
            f" (median {c['median_it']:g} it)" if c["median_it"] is not None else "")
    parts = []
    for dom, label in (("network", "Network domain"), ("image", "Image domain (sigmoid parameters)")):
        cs = [c for c in cells if c["domain"] == dom and c["optimizer"] == "adam"]
        if not cs:
            continue
        lr = default_lr("adam", dom)
        probed = {c["lr"] for c in cs}
        best = max(c["successes"] for c in cs)
        tops = sorted(c["lr"] for c in cs if c["successes"] == best)
        parts.append(f"{label}, Adam, {cs[0]['configs']} corner configs at {cs[0]['area']:.2%} area: "
                     + ", ".join(one(c) for c in cs) + ". Default "
                     + (f"{lr:g} (probed)." if lr in probed else
                        f"{lr:g}: not itself probed; it lies between the best probed rates "
                        f"{' and '.join(f'{t:g}' for t in tops)}." if tops[0] < lr < tops[-1] else
                        f"{lr:g}: not itself probed."))
    return " ".join(parts) + " Raw rows: `bench/results/tune_lr.csv`."
