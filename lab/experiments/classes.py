"""``classes``: iterations and success per target class (app geometry, network domain). :func:`summarise` is a
pure function of the CSV rows; classes that tie share a rank."""
from __future__ import annotations

from ..reproduce.plots import plot_bars
from ..reproduce.runner import Ctx
from ..reproduce.stats import b, criteria, f, frac, mean, median, num, pct, ranks
from ..reproduce.table import Table
from ..reproduce.training import TRAIN_FIELDS, draw_configs, label, train_rows

PAPER_SAYS = {980: "harder (global)", 429: "easier (local)"}


def run(ctx: Ctx) -> dict:
    opts = ctx.opts
    targets = ctx.targets(opts.pick(opts.targets, 2, 20), 9)
    per = opts.pick(opts.configs, 1, 3)
    table = Table(opts.out / "classes.csv", TRAIN_FIELDS)
    draws = draw_configs(ctx, per, salt=13)
    cfgs = [{**d, "target": t, "config": f"t{t}-{d['i']}", "variant": "app-network"} for t in targets for d in draws]
    train_rows(ctx, table, cfgs, model_name=opts.model, input_size=None, size=None, domain="network",
               patch_dir="classes")
    planned = {c["config"] for c in cfgs}
    out = summarise([r for r in table.rows if r["config"] in planned], targets, per, len(cfgs))
    order = list(out["by_class"])
    plot_bars(opts.out, "classes", order, {"success_0_9": [out["by_class"][k]["success_0_9"] for k in order]},
              "fraction reaching p ≥ 0.9", "Target difficulty per class",
              second=("median iterations (failures = cap)",
                      [out["by_class"][k]["median_iterations_capped"] for k in order]))
    return out


def summarise(rows: list[dict], targets: list[int], per: int, planned: int) -> dict:
    from attack.train import default_patch_size

    cap = max([int(f(r["max_iter"])) for r in rows] or [0])
    by = {}
    for t in targets:
        tr = [r for r in rows if int(r["target"]) == t]
        if tr:
            by[label(t)] = {"target": t, "configs": len(tr), "success_0_9": frac(tr, "success_0_9"),
                            "median_iterations_capped": median([f(r["iterations"]) if b(r["success_0_9"])
                                                                else float(cap) for r in tr]),
                            "max_p_target": mean([f(r["max_p_target"]) for r in tr])}
    rank = ranks({k: (-d["success_0_9"], d["median_iterations_capped"]) for k, d in by.items()})
    order = sorted(by, key=lambda k: (rank[k], k))
    for k in order:
        by[k]["rank"] = rank[k]
    out = {**criteria(rows), "planned": planned, "photos_per_class": per, "iteration_cap": cap,
           "by_class": {k: by[k] for k in order}}
    out["_table"] = [(f"{rank[k]}{'=' if list(rank.values()).count(rank[k]) > 1 else ''}. {k} ({by[k]['target']})",
                      PAPER_SAYS.get(by[k]["target"], "—"),
                      f"{pct(by[k]['success_0_9'])} success, median {num(by[k]['median_iterations_capped'])} it")
                     for k in order]
    out["_notes"] = [f"{len(targets)} targets: volcano, baseball and toaster plus random classes from the seed; "
                     f"{per} (photo, corner) draws per class, shared by every class; app geometry "
                     f"({default_patch_size(224)} px at 224), network domain, cap {cap} iterations.",
                     "Median iterations count a failed config as the cap. Ranked easiest first by success, then "
                     "median iterations; classes equal on both share a rank (marked =), listed alphabetically."]
    return out
