"""The attack-strength blocks: the ablation of the trainer, success against budget, the goals of issue 12 with
their measured figures, the ceiling of what the last layers allow."""
from __future__ import annotations

from pathlib import Path

from .. import findings, tables
from .area import _default_patch_line
from .pages import control_seconds
from .registry import RESULTS, block

GOAL = 0.8  # issue 12: the share of configs that should reach p >= 0.9 within the budget


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
        lines.append(f"- **42×42 on 224 ({42 ** 2 / 224 ** 2:.1%}), ≥ {GOAL:.0%} p ≥ 0.9 within 2,000 evaluations**: best of the most widely measured variants "
                     f"`{best['variant']}` reaches {best['successes']}/{best['configs']} ({share:.0%}; {best['domain']} domain, "
                     f"seeds {', '.join(map(str, best['seeds']))}), median {tables.fmt(best['median_evaluations'])} "
                     f"evaluations and {tables.fmt(best['median_seconds'])} CPU s per success. "
                     + ("**Goal met.**" if share >= GOAL else
                        f"**Missed by {round((GOAL - share) * 100)} percentage points**: {len(near)} of the {len(best['p_failed'])} failures "
                        f"stopped between p 0.5 and 0.9 (target already top-1 or close), the others at p ≤ "
                        f"{max([p for p in best['p_failed'] if p < 0.5], default=0):.2f}: the last stretch and a few "
                        "configs where the target never rises.") + paired)
        longer = [c for c in tables.budget_curves(rows) if (c["domain"], c["size"], c["input_size"])
                  == (best["domain"], 42, 224)]
        for c in longer:
            lines.append(_longer_line(c, best))
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


def _longer_line(c: dict, best: dict) -> str:
    """A long run of the same patch (a :func:`lab.tables.budget_curves` cell) against ``best``, the widest run at
    the goal's budget: the verdict on the 80% goal is read from the cell's own counts."""
    n, top = c["configs"], c["budget"]
    won = c["within"][top]
    times = top / best["budget"]
    words = {2: "twice", 3: "three times", 4: "four times", 5: "five times", 10: "ten times"}
    more = f"{words.get(times, f'{times:g}×')} the budget" if times > 1 else f"{top:,} evaluations"
    missed_before = best["successes"] < GOAL * best["configs"]
    verdict = (f"{more[0].upper()}{more[1:]} reaches {GOAL:.0%}" if won >= GOAL * n else
               f"{more[0].upper()}{more[1:]} does not reach {GOAL:.0%}" + (" either" if missed_before else ""))
    return (f"- Given {top:,} evaluations (`{c['variant']}`, {n} configs): {won}/{n} ({won / n:.0%}) reach p ≥ 0.9, "
            f"median {tables.fmt(c['median_evaluations'])} evaluations per success; the failures plateau at p "
            f"{', '.join(map(str, c['p_failed'])) or '–'}. {verdict} (curve below).")


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
    short = all(c["won"] < GOAL * c["configs"] for c in cells)
    return ("- **The best of every run, per config** (any variant and budget above, the same corner config counted "
            "won if any run won it): " + "; ".join(parts) + "." + (
                f" Even choosing the best of all measured settings per config after the fact stays below {GOAL:.0%}."
                if short else ""))


def _paper_geometry_line(root: Path) -> str:
    """The 299 goal: today's trainer on the first configs of `reproduce single`'s draw (bench/results/single299.csv,
    a `reproduce single --variants paper-* --configs N --max-iter B --out ...` run's rows), paired with the committed
    `reports/single.csv` rows of the same configs (Adam, one patch)."""
    old = {r["config"]: r for r in tables.read_rows(root / "reports" / "single.csv")}
    ok = lambda r: r["success_0_9"] in ("1", "True")  # noqa: E731
    head = f"- **42×42 on 299, network domain, ≥ {findings.PAPER['single']['success_0_9']:.0%} within 10,000**: "
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


def _meter_joined(root: Path) -> tuple[list[dict], list[dict]]:
    meter = tables.read_meter(root / RESULTS / "meter.csv")
    return tables.meter_joined(meter, tables.read_ablation(root / RESULTS / "ablation.csv"),
                               tables.default_fields_by_area(224)), meter


@block("meter")
def _meter(root: Path) -> str:
    """The feasibility meter's band against what training reached (issue 27): success per band, ROC AUC."""
    joined, meter = _meter_joined(root)
    if not meter:
        return "No meter rows yet: run `bench/meter.py`."
    secs = sorted(float(m["seconds"]) for m in meter)
    return (tables.meter_markdown(tables.meter_bands(joined))
            + f"\n\nThe meter took {tables.fmt(secs[len(secs) // 2], 2)} s per call (median; slowest "
              f"{tables.fmt(secs[-1], 2)} s) over the {len(meter)} readings of `bench/results/meter.csv` (one CPU "
              "thread, the model already loaded)." + _meter_on_page(root))


def _meter_on_page(root: Path) -> str:
    """The page bench's meter row (bench/pages.py: a corner button until the meter's answer is drawn)."""
    path = root / RESULTS / "pages_meter_2026-12-06.txt"
    if not path.is_file():
        return ""
    got = control_seconds(path, "attack", "feasibility meter")
    if got is None:
        return ""
    return (f" On the Attack page, from a corner button until the meter's answer for the new place is drawn: "
            f"{got[0]:.2f} s (first change on screen {got[1]:.2f} s; `bench/pages.py`, docs/BENCHMARKS.md), "
            + ("within" if got[0] <= 1.0 else "over") + " the issue's budget of 1 s.")


@block("placement-grid")
def _placement_grid(root: Path) -> str:
    """42×42 at p ≥ 0.9 within 2,000 evaluations: exact corner vs grid vs meter, paired (issue 27)."""
    joined, meter = _meter_joined(root)
    cells = tables.summarise_places(joined, meter, size=42)
    wins = tables.placement_wins(cells)
    missing = [f"{c['domain']} seed {c['seed']}" for c in cells if c["paired"] < c["configs"]]
    from attack.meter import DEFAULT_PLACE

    won = [p for p in ("grid", "meter") if wins[p]]
    full = {d: [c for c in cells if c["domain"] == d and c["paired"] and c["paired"] == c["configs"]]
            for d in ("image", "network")}
    margin = "; ".join(f"{d}: grid {sum(c['grid'] for c in cs)}/{sum(c['paired'] for c in cs)} against the corner's "
                       f"{sum(c['corner'] for c in cs)}/{sum(c['paired'] for c in cs)}" for d, cs in full.items() if cs)
    if won:
        small = [d for d, cs in full.items() if abs(sum(c["grid"] - c["corner"] for c in cs)) <= 1]
        margin += (f" — in the {' and '.join(small)} domain{'s' if len(small) > 1 else ''} by one config, the size "
                   "of the difference the issue called noise for the blanket 8 px shift (`-m8`, 9/20 vs 8/20); the "
                   "rule asks only for more in both domains" if small else "")
    if won and DEFAULT_PLACE in won:
        verdict = (f"**The {' and '.join(won)} placement{'s' if len(won) > 1 else ''} won more paired configs than "
                   f"the exact corner in both domains, so a named corner now means the `{DEFAULT_PLACE}` place** (`attack.meter.DEFAULT_PLACE`: "
                   "the app's corner buttons, with the checkbox *Corners: … px in, onto the network's cells* ticked, "
                   "and the CLI's `--corner`, which says so on stderr). The exact corner is one option away "
                   "(untick the checkbox; `--place corner`); explicit pixels and the paper-geometry runs keep exact "
                   f"places. Complete seeds: {margin}.")
    elif won:
        verdict = (f"**The {' and '.join(won)} placement{'s' if len(won) > 1 else ''} won more paired configs "
                   f"than the exact corner in both domains**; the default is still `{DEFAULT_PLACE}`.")
    else:
        verdict = ("**No placement has won more paired configs than the exact corner in both domains yet, so the "
                   f"default stays `{DEFAULT_PLACE}`** (`attack.meter.DEFAULT_PLACE`: the app's corner buttons, the "
                   "CLI's `--corner`; `--place grid|meter` and the checkbox *Corners: … px in, onto the network's "
                   "cells* are one option away).")
    todo = (" Not yet measured (no grid rows, or fewer than the corner's): " + "; ".join(missing) + "."
            if missing else "")
    return tables.places_markdown(cells) + "\n\n" + verdict + todo + _goal(cells)


PLACE_GOAL = 0.6  # issue 27: the best placement should win >= 60% of the 42x42 configs in both domains


def _goal(cells: list[dict]) -> str:
    """Whether the best placement met the issue's goal, and what a per-config choice of place could reach at best."""
    tot = {d: {k: sum(c[k] for c in cells if c["domain"] == d) for k in ("paired", "grid", "meter", "meter_configs",
                                                                            "best", "best_of")}
           for d in ("image", "network")}
    if not all(t["paired"] and t["best_of"] for t in tot.values()):
        return ""
    rate = {d: max(t["grid"] / t["paired"], t["meter"] / t["meter_configs"]) for d, t in tot.items()}
    met = all(r >= PLACE_GOAL for r in rate.values())
    best = "; ".join(f"{d} {t['best']}/{t['best_of']} ({100 * t['best'] / t['best_of']:.0f}%)" for d, t in tot.items())
    return (f"\n\n**The goal of {PLACE_GOAL:.0%} for the best placement is {'met' if met else 'not met'}**: "
            + ", ".join(f"{d} {100 * r:.0f}%" for d, r in rate.items()) + ". "
            + ("" if met else "Choosing the place per config could not have met it either: the configs won at one of "
               f"the places at least (the table's last column, an oracle that knows the outcome) are {best}. "
               "Placement within 16 px of a corner moves a few configs over the line; what stops the rest is the "
               "optimiser within 2,000 evaluations on this network (the ceiling sections above), not the place."))


@block("placement-sizes")
def _placement_sizes(root: Path) -> str:
    """32×32 and 50×50: exact corner vs grid vs meter, paired (issue 27); the places the meter chose at each size."""
    joined, meter = _meter_joined(root)
    parts = []
    for size in (32, 50):
        cells = tables.summarise_places(joined, meter, size=size)
        ms = [m for m in meter if int(m["size"]) == size and int(m["input_size"]) == 224]
        moved = {k: sum((m[f"{k}_top"], m[f"{k}_left"]) != (m["top"], m["left"]) for m in ms) for k in ("grid", "meter")}
        shift = sorted({max(abs(int(m["meter_top"]) - int(m["top"])), abs(int(m["meter_left"]) - int(m["left"])))
                        for m in ms if (m["meter_top"], m["meter_left"]) != (m["top"], m["left"])})
        how = (f"Of the {len(ms)} configs the meter read at {size} px, the grid moved {moved['grid']} and the meter "
               f"{moved['meter']}" + (f" (by {', '.join(map(str, shift))} px)" if shift else "") + ".")
        missing = [f"{c['domain']} seed {c['seed']}: {k} meter row{'s' if k > 1 else ''}"
                   for c in cells if (k := c["configs"] - c["meter_configs"]) > 0]
        todo = " Not yet trained: " + "; ".join(missing) + "." if missing else ""
        parts.append(tables.places_markdown(cells) + "\n\n" + how + todo)
    return "\n\n".join(parts)
