"""Success against budget, from the ablation's long runs (``bench/results/ablation.csv``, budget >= 5,000), and the
best of all runs per config."""
from __future__ import annotations

from .ablation import ablation_groups
from .rows import fmt, median

BUDGET_STEPS = (500, 1000, 2000, 3000, 5000, 7500, 10000)
LONG_BUDGET = 5000  # ablation runs with at least this budget are read as success-vs-budget curves


def budget_curves(rows: list[dict], steps: tuple[int, ...] = BUDGET_STEPS) -> list[dict]:
    """Success-vs-budget from the ablation's long runs (budget >= LONG_BUDGET): per (variant, patch, budget), how
    many configs reached p >= 0.9 within each budget step, counted by the evaluations each success took in that one
    run. The run's successive-halving schedule is set by its full budget, so its count at 2,000 is not the count of
    a run given 2,000 (``short``: that run's figure on the same configs, where the ablation has it)."""
    groups = ablation_groups(rows)
    out = []
    for (variant, dom, size, isz, budget), rs in sorted(groups.items()):
        if budget < LONG_BUDGET:
            continue
        ev = sorted(int(r["evaluations"]) for r in rs if r["success"] == "1")
        keys = {(r["seed"], r["config"]) for r in rs}
        short = {}
        for (v2, d2, s2, i2, b), other in sorted(groups.items()):
            same = [r for r in other if (r["seed"], r["config"]) in keys]
            if (v2, d2, s2, i2) == (variant, dom, size, isz) and b < budget and len(same) == len(rs):
                short[b] = sum(r["success"] == "1" for r in same)
        out.append(dict(variant=variant, domain=dom, size=size, input_size=isz, budget=budget, configs=len(rs),
                        seeds=sorted({int(r["seed"]) for r in rs}),
                        within={b: sum(e <= b for e in ev) for b in steps if b <= budget},
                        median_evaluations=median(ev), short=short,
                        median_seconds=median([float(r["seconds"]) for r in rs if r["success"] == "1"]),
                        p_failed=sorted((round(float(r["p_target"]), 2) for r in rs if r["success"] != "1"),
                                        reverse=True)))
    return out


def budget_markdown(cells: list[dict]) -> str:
    steps = sorted({b for c in cells for b in c["within"]})
    lines = ["| variant | patch | configs (seeds) | " + " | ".join(f"≤ {b:,}" for b in steps)
             + " | median evaluations (successes) | median s (successes) | same configs, a run given only … | "
               "p(target) reached by the failures |",
             "|---|---|---|" + "---|" * len(steps) + "---|---|---|---|"]
    for c in cells:
        n = c["configs"]
        short = "; ".join(f"{b:,}: {k}/{n}" for b, k in c["short"].items()) or "–"
        lines.append(f"| {c['variant']} | {c['size']}×{c['size']} on {c['input_size']}, {c['domain']} | {n} "
                     f"({', '.join(map(str, c['seeds']))}) | "
                     + " | ".join(f"{c['within'][b]}/{n}" if b in c["within"] else "–" for b in steps)
                     + f" | {fmt(c['median_evaluations'])} | {fmt(c['median_seconds'])} | {short} | "
                       f"{', '.join(map(str, c['p_failed'])) or '–'} |")
    return "\n".join(lines)


def best_of_runs(rows: list[dict], size: int, input_size: int = 224, many: int = 5) -> list[dict]:
    """Per domain: on how many configs (seed, config) at least one run of any variant and budget reached p >= 0.9, a
    corner patch of side ``size`` (rows of a patch moved in from its corner, ``margin`` > 0, are another geometry and
    left out). ``many``: the same count on the configs with at least that many runs. The runs per config and the
    evaluations they spent together say how much search the figure stands on."""
    by: dict[str, dict[tuple, list[dict]]] = {}
    for r in rows:
        if int(r["size"]) == size and int(r["input_size"]) == input_size and not int(r.get("margin") or 0):
            by.setdefault(r["domain"], {}).setdefault((int(r["seed"]), int(r["config"])), []).append(r)
    out = []
    for dom, cfgs in sorted(by.items()):
        won = {k for k, rs in cfgs.items() if any(r["success"] == "1" for r in rs)}
        runs = sorted(len(rs) for rs in cfgs.values())
        wide = [k for k, rs in cfgs.items() if len(rs) >= many]
        out.append(dict(domain=dom, size=size, input_size=input_size, configs=len(cfgs), won=len(won),
                        runs_min=runs[0], runs_max=runs[-1], many=many, configs_many=len(wide),
                        won_many=len(won.intersection(wide)),
                        seeds=sorted({s for s, _ in cfgs}),
                        median_evaluations=median([sum(int(r["evaluations"]) for r in rs)
                                                    for rs in cfgs.values()]),
                        best_failed=sorted((round(max(float(r["p_target"]) for r in rs), 2)
                                            for k, rs in cfgs.items() if k not in won), reverse=True)))
    return out
