"""``python -m lab docs`` (``make docs``): every figure in the Markdown comes from committed data, by code.

A generated block in README.md or docs/BENCHMARKS.md is a marker pair with the text between them::

    <!-- BEGIN gen:NAME -->
    …whatever BLOCKS["NAME"]() returns…
    <!-- END gen:NAME -->

(indented as the BEGIN marker is, so a block can sit inside a list item)

``python -m lab docs`` rewrites every such block from the data (``bench/results/*``, ``reports/*.json|csv``),
recomputes each report's summary, table and notes from its CSV rows (:mod:`lab.reproduce.resummary`; the run's
record of commands, machines and wall time stays) and re-renders ``reports/<name>.md`` from it
(:mod:`lab.reproduce.report`); text outside the markers is left alone. Running it twice changes nothing.
``python -m lab docs --check`` changes nothing and exits 1 naming each document that differs from what its data
gives; ``tests/test_docs.py`` runs the same check in ``make test``, so drift cannot land.

To add a block (e.g. an ablation table) — for a bench script's saved Markdown printout, one entry in
``PRINTED_TABLES`` is all it takes; otherwise:
  1. write ``def _ablation(root: Path) -> str`` below that reads its committed raw file and returns Markdown, decorated with
     ``@block("ablation")`` (put the reader/summary in :mod:`lab.tables` if a bench script or the app shows it too);
  2. put ``<!-- BEGIN gen:ablation -->`` and ``<!-- END gen:ablation -->`` where it goes in README.md or
     docs/BENCHMARKS.md (the same block may stand in several files), and run ``make docs``.
A marker whose NAME has no function is an error, so a typo cannot silently leave stale text.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path
from typing import Callable

from . import findings, tables

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "docs/BENCHMARKS.md")
RESULTS = Path("bench/results")
BLOCKS: dict[str, Callable[[Path], str]] = {}
_BLOCK = re.compile(r"^([ \t]*)<!-- BEGIN gen:([\w-]+) -->\n(.*?)^[ \t]*<!-- END gen:\2 -->", re.S | re.M)


def block(name: str):
    """Register ``fn(root) -> markdown`` as the generator of the blocks called ``name``."""
    def deco(fn):
        BLOCKS[name] = fn
        return fn
    return deco


# ---------------------------------------------------------------- the blocks
# Tables that a bench script printed and whose printout is committed in bench/results/: block -> (file, table index).
PRINTED_TABLES = {"input-size": ("input_size.txt", 0), "speed-cpu": ("speed.txt", 0),
                  "speed-h200": ("speed_h200.txt", 0), "payload": ("payload.txt", 0),
                  "payload-2": ("payload_2026-12-01.txt", 0),
                  "h200-batch-sizes": ("h200_batch_sizes.txt", 0),
                  "load-gc-default": ("load_2026-11-25_gc_default.txt", 0),
                  "load-gc-off": ("load_2026-11-25_gc_off.txt", 0), "load-gc-off-rss": ("load_2026-11-25_gc_off.txt", 1),
                  "speed-steps": ("speed_steps.txt", 0), "speed-steps-2": ("speed_steps_2.txt", 0),
                  "speed-steps-3": ("speed_steps_3.txt", 0),
                  "coldstart": ("coldstart.txt", 0), "coldstart-idle": ("coldstart_idle.txt", 0),
                  "load30-nice10": ("load30_2026-12-01_nice10.txt", 0),
                  "load30-nice10-rss": ("load30_2026-12-01_nice10.txt", 1),
                  "load30-nice0": ("load30_2026-12-01_nice0.txt", 0),
                  "coldstart-before": ("coldstart_before.txt", 0),
                  "load30-charts-1": ("load30_2026-12-01_charts_run1.txt", 0),
                  "load30-charts-2": ("load30_2026-12-01_charts_run2.txt", 0),
                  "load30-charts-2-rss": ("load30_2026-12-01_charts_run2.txt", 1),
                  "load30-charts-2-gil": ("load30_2026-12-01_charts_run2.txt", 4),
                  "load30-before-charts-1": ("load30_2026-12-01_before_charts_run1.txt", 0),
                  "load30-before-charts-2": ("load30_2026-12-01_before_charts_run2.txt", 0),
                  "load30-before-charts-2-gil": ("load30_2026-12-01_before_charts_run2.txt", 4)}
# Of those, the printouts saved as the bench printed them (the others are transcribed and say from where).
RAW_PRINTOUTS = ("speed.txt", "speed_steps.txt", "speed_steps_2.txt", "speed_steps_3.txt", "coldstart.txt",
                 "coldstart_idle.txt", "coldstart_before.txt", "load30_2026-12-01_nice10.txt",
                 "load30_2026-12-01_nice0.txt", "payload_2026-12-01.txt",
                 "load30_2026-12-01_charts_run1.txt", "load30_2026-12-01_before_charts_run1.txt",
                 "load30_2026-12-01_charts_run2.txt", "load30_2026-12-01_before_charts_run2.txt")
for _name, (_file, _index) in PRINTED_TABLES.items():
    block(_name)(lambda root, _file=_file, _index=_index:
                 "\n".join(tables.printed_table(root / RESULTS / _file, _index)[1]))


@block("area-table")
def _area_table(root: Path) -> str:
    return tables.area_markdown(tables.read_rows(root / RESULTS / "area_table.csv", 2000), 2000)


def _cell(cells: list[dict], opt: str, dom: str, area: float) -> dict:
    return next(c for c in cells if (c["optimizer"], c["domain"], c["area"]) == (opt, dom, area))


@block("area-reading")
def _area_reading(root: Path) -> str:
    """The README's reading of the area table: the default area and Adam vs plain gradient."""
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
                 + " reached p ≥ 0.9 within 2,000 iterations on EfficientNet-Lite0 (the paper: 79% on Inception v3 "
                   "within 10,000).")
    lines.append("")
    med = {k: c[k]["median_it"] for k in c}
    lines.append(f"Adam against the paper's plain gradient steps, same configs: at {top:.0%} Adam reaches "
                 f"{frac('adam', 'image', top)} (image) and {frac('adam', 'network', top)} (network) within 1,000 "
                 f"iterations, plain gradient {frac('sgd', 'image', top)} and {frac('sgd', 'network', top)}, with "
                 f"medians {med[('adam', 'image', top)]:.0f} vs {med[('sgd', 'image', top)]:.0f} (image) and "
                 f"{med[('adam', 'network', top)]:.0f} vs {med[('sgd', 'network', top)]:.0f} (network).")
    mid = sorted(a for a in areas if a < top)[-1] if len(areas) > 1 else top
    spread = sorted({c[(o, d, mid)]["successes"] for o in ("adam", "sgd") for d in ("image", "network")})
    fewer = [k for k in c if k[0] == "sgd" and c[k]["successes"] > c[("adam", k[1], k[2])]["successes"]]
    lower = [a for a in (mid, top) if all((med[("adam", d, a)] or 1e9) < (med[("sgd", d, a)] or 1e9)
                                          for d in ("image", "network"))]
    lines[-1] += (f" At {mid:.0%} both reach {spread[0]}–{spread[-1]}/10 within 2,000 iterations. "
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


def _ablation_cells(root: Path) -> list[dict]:
    return tables.summarise_ablation(tables.read_ablation(root / RESULTS / "ablation.csv"),
                                     tables.read_rows(root / RESULTS / "area_table.csv"))


@block("ablation")
def _ablation(root: Path) -> str:
    cells = _ablation_cells(root)
    return tables.ablation_markdown(cells) if cells else "No ablation rows yet: run `bench/ablation.py`."


@block("loss-paired")
def _loss_paired(root: Path) -> str:
    """margin_ce against logprob, both with 8 restarts and the ReLU6 leak, on the configs both trained."""
    return tables.paired_markdown(tables.paired_ablation(tables.read_ablation(root / RESULTS / "ablation.csv"),
                                                         "adam-r8-lk5", "adam-r8-margin_ce-mixed-lk5"))


@block("budget-curve")
def _budget_curve(root: Path) -> str:
    cells = tables.budget_curves(tables.read_ablation(root / RESULTS / "ablation.csv"))
    return tables.budget_markdown(cells) if cells else (
        f"No long runs yet: `bench/ablation.py --budget 10000` (budgets of {tables.LONG_BUDGET:,} or more are read as "
        "curves).")


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
    by_size: dict[int, list[dict]] = {}
    for c in cells:
        by_size.setdefault(c["size"], []).append(c)
    parts, pick = [], None
    for size, cs in sorted(by_size.items()):
        got = [c for c in cs if c["configs"]]
        parts.append(f"{size}×{size}: " + ", ".join(
            f"{c['domain']} {c['successes']}/{c['configs']}" if c["configs"] else f"{c['domain']} not measured"
            for c in cs))
        if pick is None and len(got) == len(cs) and all(c["successes"] >= 0.8 * c["configs"] for c in got):
            pick = size
    now = default_patch_size(224)
    verdict = (f"none of the measured sizes qualifies in every domain yet; the default stays {now}×{now}"
               if pick is None else
               f"the smallest that qualifies is {pick}×{pick}" + (
                   f", which is the default ({now}×{now})" if pick == now else
                   f"; the default is {now}×{now}" + (" (a smaller side qualifies on these configs: more seeds before "
                                                      "the default moves)" if pick < now else "")))
    return ("- **Default patch** (the smallest whose default training reaches p ≥ 0.9 on ≥ 80% of configs within "
            "2,000 evaluations, table below): " + "; ".join(parts) + f" — {verdict}.")


@block("attack-strength")
def _attack_strength(root: Path) -> str:
    """Issue 12's goals, each with its measured figure (or the statement that it was not measured)."""
    cells = [c for c in _ablation_cells(root) if c["variant"] != "adam-r1 (area table)"]
    lines = []
    at42 = [c for c in cells if (c["size"], c["input_size"], c["budget"]) == (42, 224, 2000)]
    if at42:
        best = max(at42, key=lambda c: (c["configs"], c["successes"] / c["configs"]))  # the widest measurement
        share = best["successes"] / best["configs"]
        near = [p for p in best["p_failed"] if p >= 0.5]
        rows = tables.read_ablation(root / RESULTS / "ablation.csv")
        base = {(int(b["seed"]), int(b["config"])): b for b in tables.read_rows(root / RESULTS / "area_table.csv")
                if b["optimizer"] == "adam" and b["domain"] == "image" and int(b["size"]) == 42
                and int(b["max_iter"]) == 2000}
        both = [r for r in rows if r["variant"] == best["variant"] and r["domain"] == "image" == best["domain"]
                and int(r["size"]) == 42 and int(r["input_size"]) == 224 and int(r["budget"]) == 2000
                and (int(r["seed"]), int(r["config"])) in base]
        paired = ""
        if both:
            paired = (f" On the {len(both)} configs that the old default (Adam, one patch) also ran: "
                      f"{sum(r['success'] == '1' for r in both)}/{len(both)} against "
                      f"{sum(base[(int(r['seed']), int(r['config']))]['success'] == '1' for r in both)}/{len(both)}, "
                      f"target top-1 {sum(r['argmax'] == '1' for r in both)}/{len(both)} against "
                      f"{sum(base[(int(r['seed']), int(r['config']))]['argmax'] == '1' for r in both)}/{len(both)}.")
        lines.append(f"- **42×42 on 224 (3.5%), ≥ 80% p ≥ 0.9 within 2,000 evaluations**: best of the most widely measured variants "
                     f"`{best['variant']}` reaches {best['successes']}/{best['configs']} ({share:.0%}; {best['domain']} domain, "
                     f"seeds {', '.join(map(str, best['seeds']))}), median {tables.fmt(best['median_evaluations'])} "
                     f"evaluations and {tables.fmt(best['median_seconds'])} CPU s per success. "
                     + ("**Goal met.**" if share >= 0.8 else
                        f"**Missed by {round((0.8 - share) * 100)} percentage points**: {len(near)} of the {len(best['p_failed'])} failures "
                        f"stopped between p 0.5 and 0.9 (target already top-1 or close), the others at p ≤ "
                        f"{max([p for p in best['p_failed'] if p < 0.5], default=0):.2f}: the last stretch and a few "
                        "configs where the target never rises.") + paired)
        longer = [c for c in tables.budget_curves(rows) if (c["domain"], c["size"], c["input_size"])
                  == (best["domain"], 42, 224)]
        for c in longer:
            n, top = c["configs"], c["budget"]
            lines.append(f"- Given {top:,} evaluations (`{c['variant']}`, {n} configs): "
                         f"{c['within'][top]}/{n} ({c['within'][top] / n:.0%}) reach p ≥ 0.9, median "
                         f"{tables.fmt(c['median_evaluations'])} evaluations per success; the failures plateau at p "
                         f"{', '.join(map(str, c['p_failed'])) or '–'}. Five times the budget does not reach 80% "
                         "either (curve below).")
        lines.append(_best_of_runs_line(rows))
    else:
        lines.append("- **42×42 on 224**: not measured yet (`bench/ablation.py`).")
    others = [c for c in at42 if c is not best] if at42 else []
    if others:
        lines.append("- The same 42×42 patch, other settings: " + "; ".join(
            f"`{c['variant']}` ({c['domain']} domain) {c['successes']}/{c['configs']}" for c in others) + ".")
    lines.append(_default_patch_line(root))
    at32 = [c for c in cells if (c["size"], c["input_size"], c["budget"]) == (32, 224, 2000)]
    lines.append("- **32×32 on 224 (2%), ≥ 50%**: " + (
        "; ".join(f"`{c['variant']}` {c['successes']}/{c['configs']} ({c['domain']} domain, target top-1 "
                  f"{c['argmax']}/{c['configs']}, highest p of the failures "
                  f"{', '.join(map(str, c['p_failed'][:3])) or '–'})"
                  + (" — **goal met**" if c["successes"] >= 0.5 * c["configs"] else " — **missed**")
                  for c in at32) + "." if at32 else
        "not measured with the new trainer (no 32×32 rows in `bench/results/ablation.csv`); the old default "
        "reached 0/10 within 2,000 iterations (area table)."))
    lines.append(_paper_geometry_line(root))
    return "\n".join(lines)


def _best_of_runs_line(rows: list[dict]) -> str:
    """Per config, the best of every 42×42 corner run in the ablation (any variant, any budget): an upper bound on
    what picking the best measured setting per config after the fact would reach."""
    parts, cells = [], tables.best_of_runs(rows, 42)
    for c in cells:
        n = c["configs"]
        wide = (f"; on the {c['configs_many']} configs with ≥ {c['many']} runs: {c['won_many']}/{c['configs_many']}"
                if 0 < c["configs_many"] < n else "")
        parts.append(f"{c['domain']} domain {c['won']}/{n} ({c['won'] / n:.0%}; seeds "
                     f"{', '.join(map(str, c['seeds']))}; {c['runs_min']}–{c['runs_max']} runs per config, a median "
                     f"{c['median_evaluations']:,.0f} evaluations spent on each in all{wide}; the best p of "
                     f"the configs no run won: {', '.join(map(str, c['best_failed'][:6])) or '–'}"
                     + (", …" if len(c["best_failed"]) > 6 else "") + ")")
    if not parts:
        return "- Best of every run per config: no 42×42 rows yet."
    short = all(c["won"] < 0.8 * c["configs"] for c in cells)
    return ("- **The best of every run, per config** (any variant and budget above, the same corner config counted "
            "won if any run won it): " + "; ".join(parts) + "." + (
                " Even choosing the best of all measured settings per config after the fact stays below 80%."
                if short else ""))


def _paper_geometry_line(root: Path) -> str:
    """The 299 goal: today's trainer on the first configs of `reproduce single`'s draw (bench/results/single299.csv,
    a `reproduce single --variants paper-* --configs N --max-iter B --out ...` run's rows), paired with the committed
    `reports/single.csv` rows of the same configs (Adam, one patch)."""
    old = {r["config"]: r for r in tables.read_rows(root / "reports" / "single.csv")}
    ok = lambda r: r["success_0_9"] in ("1", "True")  # noqa: E731
    head = "- **42×42 on 299, network domain, ≥ 79% within 10,000**: "
    new = tables.read_rows(root / RESULTS / "single299.csv")
    parts = []
    for variant in ("paper-network", "paper-image"):
        rs = [r for r in new if r["variant"] == variant]
        if not rs:
            continue
        cap = max(int(float(r["max_iter"])) for r in rs)
        base = [old[r["config"]] for r in rs if r["config"] in old]
        bcap = max((int(float(b["max_iter"])) for b in base), default=0)
        fails = sorted((round(float(r["max_p_target"]), 2) for r in rs if not ok(r)), reverse=True)
        parts.append(f"{variant.split('-')[1]} domain {sum(map(ok, rs))}/{len(rs)} within {cap:,} evaluations "
                     f"(target top-1 {sum(r['argmax_target'] in ('1', 'True') for r in rs)}/{len(rs)}; failures "
                     f"reached p {', '.join(map(str, fails)) or '–'})"
                     + (f", where the committed run (Adam, one patch, cap {bcap:,}) reached "
                        f"{sum(map(ok, base))}/{len(base)} on the same configs (target top-1 "
                        f"{sum(b['argmax_target'] in ('1', 'True') for b in base)}/{len(base)})" if base else ""))
    paper = [r for r in old.values() if r.get("variant") == "paper-network"]
    committed = (f"the committed `reproduce single` run (Adam, one patch) reached {sum(map(ok, paper))}/{len(paper)} "
                 f"within its cap of {max(int(float(r['max_iter'])) for r in paper):,}" if paper else "")
    if not parts:
        return (head + "not rerun with restarts" + (f"; {committed}" if committed else "") + ". It needs a lent "
                "GPU: `reproduce single --variants paper-network --max-iter 10000` (restarts are automatic below the "
                "default area).")
    n = max(len([r for r in new if r["variant"] == v]) for v in ("paper-network", "paper-image"))
    secs = tables.median([float(r["seconds"]) for r in new])
    how = ", ".join(sorted({f"{r.get('restarts') or 1} restarts, loss {r.get('loss') or 'logprob'}" for r in new}))
    return (head + f"not measured at 10,000 (a lent GPU's job). Today's trainer ({how}, ReLU6 leak below the default "
            f"area) on "
            f"the first {n} configs of `reproduce single`'s draw (`reproduce single --variants paper-network "
            f"paper-image --configs {n} --max-iter 2000`, one CPU thread, median {tables.fmt(secs)} s per config; "
            "rows in `bench/results/single299.csv`): "
            + "; ".join(parts) + (f". Over all {len(paper)} configs, {committed}." if committed else "."))


@block("ceiling")
def _ceiling(root: Path) -> str:
    rows = tables.read_rows(root / RESULTS / "ceiling.csv")
    if not rows:
        return "No ceiling rows yet: run `bench/ceiling.py`."
    return tables.ceiling_markdown(tables.summarise_ceiling(rows, tables.read_ablation(root / RESULTS / "ablation.csv")))


@block("compare-optimisers")
def _compare(root: Path) -> str:
    return tables.compare_markdown(tables.read_rows(root / RESULTS / "area_table.csv", 1000))


VS_ART = dict(max_iter=500, budgets=[30, 60, 120], art_lr=0.03)


@block("vs-art")
def _vs_art(root: Path) -> str:
    rows = tables.read_rows(root / RESULTS / "vs_art.csv", VS_ART["max_iter"])
    return tables.vs_art_markdown(rows, VS_ART["budgets"], VS_ART["art_lr"])


@block("vs-art-reading")
def _vs_art_reading(root: Path) -> str:
    rows = tables.read_rows(root / RESULTS / "vs_art.csv", VS_ART["max_iter"])
    cells = {(c["method"], c["lr"]): c for c in tables.summarise_vs_art(rows, [60])}
    art, img, net = cells[("art-image", VS_ART["art_lr"])], cells[("ours-image", 0.3)], cells[("ours-network", 0.05)]
    pr = tables.paired(img, art)
    return (f"Against ART 1.20.1's `AdversarialPatchPyTorch` on the same {art['n']} problems (same model, photos, "
            f"targets, corners and {art['size']}×{art['size']} patch; cap {art['max_iter']}): within 60 s per config "
            f"ours reached p ≥ 0.9 on {img['within'][60]}/{img['n']} (image domain, ART's setting) and "
            f"{net['within'][60]}/{net['n']} (network domain), ART on {art['within'][60]}/{art['n']}; on the "
            f"{pr['n']} configs both solved ours took {pr['s']:.2f}× ART's time (`bench/vs_art.py`).")


_SMOKE_METHODS = {"art-image": "ART `AdversarialPatchPyTorch` (image)", "ours-image": "ours, image domain",
                  "ours-network": "ours, network domain"}


@block("vs-art-smoke")
def _vs_art_smoke(root: Path) -> str:
    """The vs-ART smoke run (bench/results/vs_art_smoke.csv): per method and lr, successes, mean s/iteration and each
    config's final p(target)."""
    rows = tables.read_rows(root / RESULTS / "vs_art_smoke.csv")
    cap = max(int(r["max_iter"]) for r in rows)
    lines = [f"| method | lr | configs | p≥0.9 within {cap} it | s / iteration | final p(target), "
             + " / ".join(f"config {c}" for c in sorted({int(r["config"]) for r in rows})) + " |",
             "|---|---|---|---|---|---|"]
    for c in tables.summarise_vs_art(rows, []):
        rs = sorted(c["rows"], key=lambda r: int(r["config"]))
        lr = f"{c['lr']:g}" + (" (sigmoid params)" if c["method"] == "ours-image" else "")
        per_it = sum(float(r["seconds_per_it"]) for r in rs) / len(rs)
        finals = " / ".join(f"{float(r['p_target']):.3f}" for r in rs)
        lines.append(f"| {_SMOKE_METHODS.get(c['method'], c['method'])} | {lr} | {c['n']} | {c['ok']}/{c['n']} | "
                     f"{per_it:.2f} | {finals} |")
    return "\n".join(lines)


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


@block("single-paper-geometry")
def _single_paper_geometry(root: Path) -> str:
    s = findings.load("single", root / "reports")
    d = (s or {}).get("by_variant", {}).get("paper-network")
    if not d:
        return "The `single` experiment has not been run yet (`python -m lab reproduce single`)."
    ok = round(d["success_0_9"] * d["configs"])
    return (f"at 299 our `single` experiment's 42×42 paper patch (network domain) reached p ≥ 0.9 on {ok}/"
            f"{d['configs']} configs within its cap of {d['iteration_cap']:,} iterations (`reports/single.md`).")


@block("single-run")
def _single_run(root: Path) -> str:
    """How `single` was run (configs, devices, --time-budget, caps) and how many patches the later rows reuse."""
    rep = _report(root, "single")
    if not rep:
        return "`single` has not been run yet (`python -m lab reproduce single`)."
    s = rep["summary"]
    per = sorted({d["configs"] for d in s["by_variant"].values()})
    budgets = sorted({float(m.group(1)) for c in rep["commands"] for m in [re.search(r"--time-budget ([\d.]+)", c)]
                      if m})
    caps = sorted(s["iteration_caps"])
    ok = sum(1 for r in tables.read_rows(root / "reports" / "single.csv") if r["success_0_9"] == "1")
    slot = (f"side by side in one {budgets[0] / 60:.0f}-minute slot, cut by `--time-budget`, so each variant's "
            f"iteration cap is where the slot ended, " if budgets else "with iteration caps ")
    return (f"`single` ran {'/'.join(map(str, per))} configs for each of its {len(s['by_variant'])} variants on "
            f"{rep['device']} ({len(rep['commands'])} commands; {slot}{caps[0]:,}–{caps[-1]:,}, not the paper's "
            f"10,000); the fragility, transfer and saliency rows use its {ok} successful patches.")


@block("paper-vs-us")
def _paper_vs_us(root: Path) -> str:
    return findings.findings_markdown(root / "reports")


def _report(root: Path, name: str) -> dict | None:
    try:
        return json.loads((root / "reports" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


def _trained_seconds(rep: dict) -> float:
    from .reproduce.report import trained_sessions

    return sum(x.get("wall_s", 0) for x in trained_sessions(rep.get("sessions") or []))


def _universal_run(u: dict, root: Path) -> str:
    s = u["summary"]
    rows = tables.read_rows(root / "reports" / "universal.csv")
    secs = sorted(float(r["seconds"]) for r in rows)
    conv = sum(r["converged"] == "1" for r in rows)
    cap = s["max_steps"] if isinstance(s["max_steps"], int) else max(s["max_steps"])
    return (f"The universal run trained {s['configs']} targets ({', '.join(s['by_target'])}) for up to {cap:,} "
            f"single-photo steps each, {cap / 1000:g}× the runner's default, on {u['device']} ({secs[0]:.0f}–"
            f"{secs[-1]:.0f} s of training per target); " + (f"{conv} reached" if conv else "none reached")
            + f" the paper's 30-in-a-row stop. Its {s['train_photos'] + s['test_photos']} photos are "
            f"{s.get('collections', '?').replace(' + ', ', ')} photos drawn by the seed.")


def _brown_run(br: dict, root: Path) -> str:
    s, n = br["summary"], len(br["summary"]["by_condition"])
    return (f"The Brown comparison ran {s['configs']} patches ({n // 2} areas × 2 methods × "
            f"{s['configs'] // max(1, n)} targets, same split, cap {s['max_steps']:,} steps; "
            f"{_trained_seconds(br):,.0f} s on {br['device']}).")


def _classes_run(c: dict, root: Path) -> str:
    s = c["summary"]
    return (f"The classes run: {len(s['by_class'])} classes × {s['photos_per_class']} draws, cap "
            f"{s['iteration_cap']:,}, trained on {c['device']} ({len(c['commands'])} commands, listed in "
            "`reports/classes.md`).")


def _crossmodel_run(x: dict, root: Path) -> str:
    s = x["summary"]
    return (f"The cross-model run: {s['configs'] // 3} draws × 3 models, cap {s['iteration_cap']:,}; "
            f"{_trained_seconds(x):,.0f} s on {x['device']}.")


@block("report-runs")
def _report_runs(root: Path) -> str:
    """How the universal, Brown, classes and cross-model reports were run, from their JSON and CSV."""
    runs = {"universal": _universal_run, "brown": _brown_run, "classes": _classes_run, "crossmodel": _crossmodel_run}
    return "\n".join(fn(rep, root) for name, fn in runs.items() if (rep := _report(root, name)))


@block("input-size-reading")
def _input_size_reading(root: Path) -> str:
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in tables.printed_table(root / RESULTS / "input_size.txt")[1][2:]]
    lite0 = {r[1].split()[0]: r for r in rows if r[0] == "efficientnet-lite0"}
    native, big = lite0["224"], lite0["299"]
    costs = {}
    for r in rows:
        costs.setdefault(r[0], {})[r[1].split()[0] == "299"] = float(r[5])
    ratios = sorted(v[True] / v[False] for v in costs.values() if len(v) == 2)
    return (f"Lite0 at 299 agrees with itself at 224 on {big[3]} of photos but is far less confident (mean top-1 "
            f"{float(big[2]):.2f} vs {float(native[2]):.2f}), and costs {ratios[0]:.1f}–{ratios[-1]:.1f}× more per "
            "forward+backward;")


def _speed_rows(root: Path, name: str) -> dict[str, str]:
    """measurement -> ratio cell of a saved speed.py printout."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in tables.printed_table(root / RESULTS / name)[1][2:]]
    return {r[0]: r[2].split("×")[0] for r in rows}


@block("speed-reading")
def _speed_reading(root: Path) -> str:
    cpu, gpu = _speed_rows(root, "speed.txt"), _speed_rows(root, "speed_h200.txt")
    cl = sorted(float(v) for k, v in cpu.items() if "contiguous / channels_last" in k)
    batch = next(v for k, v in cpu.items() if "one by one / batched" in k)
    frag = next(v for k, v in cpu.items() if k.startswith("fragility map"))
    gbatch = next(v for k, v in gpu.items() if "one by one / batched" in k)
    gfrag = next(v for k, v in gpu.items() if k.startswith("fragility map"))
    return (f"`channels_last` is on for every model ({cl[0]:.1f}–{cl[-1]:.0f}× faster forward+backward on this "
            f"CPU). On CPU, batching configs barely raises throughput ({float(batch):.1f}×) and one big batched "
            f"forward for the fragility map is slower than 25 small ones ({frag}×): a single core is already "
            "saturated by one image, so the batching goals of the benchmarks issue are not met on this machine; on "
            f"the H200 lent in an earlier session they are ({float(gbatch):.0f}× and {float(gfrag):.1f}×, below).")


LOAD = RESULTS / "load_2026-11-25.txt"  # the as-shipped run of bench/load.py (postScriptGC = false)


@block("load-printout")
def _load_printout(root: Path) -> str:
    lines = [x for x in (root / LOAD).read_text().splitlines() if not x.startswith("#")]
    return "```\n" + "\n".join(lines).strip("\n") + "\n```"


def _load_response(root: Path) -> dict:
    """The 10-session "x typed → canvas redrawn" row of the saved bench/load.py printout, and its ∞ count."""
    text = (root / LOAD).read_text()
    row = next(x for x in text.splitlines() if x.startswith("| **response: x typed"))
    _, sessions, n, med, p95, top = [c.strip() for c in row.strip("|").split("|")]
    never = re.search(r"∞: (\d+) interactions? got no redrawn canvas", text)
    return {"sessions": sessions, "n": n, "median": med, "p95": p95, "never": int(never.group(1)) if never else 0}


@block("load-reading")
def _load_reading(root: Path) -> str:
    r = _load_response(root)
    return (f"p95 response with {r['sessions']} sessions polling progress {r['p95']} (median {r['median']}; "
            f"{r['never']} of {r['n']} interactions never redrawn on that day; `bench/load.py`, printout in "
            "`bench/results/load_2026-11-25.txt`). The lost redraws were a race in Streamlit's session (a finished "
            "run's last events dropped when a progress poll started the next run first); `ui/jobs` now delivers "
            "them — 0 lost of 111 and of 148 interactions after the fix (docs/BENCHMARKS.md).")


# ---------------------------------------------------------------- the machinery
def render(text: str, root: Path = ROOT, where: str = "") -> str:
    """``text`` with every generated block rewritten from the data under ``root``."""
    def sub(m: re.Match) -> str:
        indent, name = m.group(1), m.group(2)
        if name not in BLOCKS:
            raise KeyError(f"{where}: no generator for block gen:{name} (known: {', '.join(sorted(BLOCKS))})")
        body = "\n".join((indent + line).rstrip() for line in BLOCKS[name](root).rstrip("\n").splitlines())
        # a block inside a list item keeps the item's indentation
        return f"{indent}<!-- BEGIN gen:{name} -->\n{body}\n{indent}<!-- END gen:{name} -->"
    return _BLOCK.sub(sub, text)


def generated(root: Path = ROOT) -> dict[Path, str]:
    """Every generated document under ``root`` -> the text its data gives: the marked blocks of README.md and
    docs/BENCHMARKS.md, and each report's JSON (summary, table, notes recomputed from its CSV rows) and Markdown."""
    from .reproduce.report import render_markdown
    from .reproduce.resummary import refreshed

    out = {}
    for rel in DOCUMENTS:
        path = root / rel
        if path.is_file():
            out[path] = render(path.read_text(), root, rel)
    for js in sorted((root / "reports").glob("*.json")):
        rep = refreshed(js)
        out[js] = json.dumps(rep, indent=1, default=str)
        out[js.with_suffix(".md")] = render_markdown(rep)
    return out


def stale(root: Path = ROOT) -> list[Path]:
    """Documents whose committed text differs from what their data gives."""
    return [p for p, text in generated(root).items() if not p.is_file() or p.read_text() != text]


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite every stale document; returns the ones changed (none on a second run)."""
    changed = stale(root)
    texts = generated(root)
    for p in changed:
        p.write_text(texts[p])
    return changed


def cmd_docs(args) -> int:
    root = Path(args.root)
    if args.check:
        bad = stale(root)
        for p in bad:
            print(f"stale: {p.relative_to(root)} (run `make docs`)", file=sys.stderr)
        return 1 if bad else 0
    for p in write(root):
        print(f"rewrote {p.relative_to(root)}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("docs", help="rewrite the generated blocks of README.md, docs/BENCHMARKS.md and "
                              "reports/*.md from the committed data", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is stale")
    p.add_argument("--root", default=str(ROOT), help="the checkout (default: this one)")
    p.set_defaults(func=cmd_docs)
    return p
