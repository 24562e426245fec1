"""Readers and summaries of the committed benchmark results (``bench/results/``), as data and as Markdown.

The bench scripts write the rows; this module is the one place that turns them into the tables that README.md,
docs/BENCHMARKS.md (:mod:`lab.docs`), the app's "Paper vs us" page (``ui/reports.py``) and the scripts' own
``--report`` show. Pure functions of rows: no torch, no model, no streamlit.

Example: >>> cells = summarise_area(read_rows("bench/results/area_table.csv", max_iter=2000))
"""
from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OPTIMIZER_NAMES = {"adam": "Adam (default)", "sgd": "plain gradient (paper)"}
VS_ART_METHODS = ("art-image", "ours-image", "ours-network")


def read_rows(path: str | Path, max_iter: int | None = None) -> list[dict]:
    """Complete rows of a results CSV (all caps, or one ``max_iter``); none when the file is missing; a row cut
    short by a write in progress is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if None not in r.values() and None not in r]
    return [r for r in rows if max_iter is None or str(r.get("max_iter")) == str(max_iter)]


def _median(xs) -> float | None:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else None


def _fmt(v, digits: int = 0, unit: str = "") -> str:
    return "–" if v is None else f"{v:.{digits}f}{unit}"


# ---------------------------------------------------------------- bench/area_table.py
def summarise_area(rows: list[dict]) -> list[dict]:
    """One dict per measured (optimiser, domain, area, cap) cell, Adam first: the area table as data.

    Keys: optimizer, name, domain, area, size, max_iter, configs, successes, within_1000, median_it, min_it, max_it,
    argmax, not_source."""
    cells = sorted({(r["optimizer"], r["domain"], float(r["area"]), int(r["max_iter"])) for r in rows},
                   key=lambda c: (c[0] != "adam", c[1], c[2], c[3]))
    out = []
    for opt, dom, area, cap in cells:
        rs = [r for r in rows if (r["optimizer"], r["domain"], float(r["area"]), int(r["max_iter"]))
              == (opt, dom, area, cap)]
        succ = [int(r["steps"]) for r in rs if r["success"] == "1"]
        out.append(dict(optimizer=opt, domain=dom, area=area, size=int(rs[0]["size"]), max_iter=cap,
                        name=OPTIMIZER_NAMES.get(opt, opt), configs=len(rs), successes=len(succ),
                        within_1000=sum(1 for s in succ if s <= 1000),
                        median_it=statistics.median(succ) if succ else None, min_it=min(succ, default=None),
                        max_it=max(succ, default=None), argmax=sum(r["argmax"] == "1" for r in rs),
                        not_source=sum(r["not_source"] == "1" for r in rs)))
    return out


def area_markdown(rows: list[dict], max_iter: int | None = None) -> str:
    """The area table (one line per cell of :func:`summarise_area`)."""
    cap = f"{max_iter:,}" if max_iter else "cap"
    lines = [f"| optimiser | domain | area | patch (px on 224) | configs | p≥0.9 within {cap} it | within 1,000 it "
             "| median it (successes) | argmax target | source removed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in summarise_area(rows):
        n = c["configs"]
        med = f"{c['median_it']:.0f} ({c['min_it']}–{c['max_it']})" if c["successes"] else "–"
        lines.append(f"| {c['name']} | {c['domain']} | {c['area']:.1%} | {c['size']} | {n} | {c['successes']}/{n} "
                     f"| {c['within_1000']}/{n} | {med} | {c['argmax']}/{n} | {c['not_source']}/{n} |")
    return "\n".join(lines)


def compare_optimisers(rows: list[dict]) -> list[dict]:
    """Adam vs plain gradient on the same configs, per seed and pooled, for each (domain, area, cap) that has both:
    successes, the median iterations to p >= 0.9 with quartiles (successes only), and the median of per-config
    iterations counting a failure as the cap (so a method cannot look fast by failing the hard configs)."""
    out = []
    for dom, area, cap in sorted({(r["domain"], float(r["area"]), int(r["max_iter"])) for r in rows}):
        rs = [r for r in rows if (r["domain"], float(r["area"]), int(r["max_iter"])) == (dom, area, cap)]
        if {r["optimizer"] for r in rs} < {"adam", "sgd"}:
            continue
        seeds = sorted({int(r["seed"]) for r in rs})
        for sel in [[s] for s in seeds] + ([seeds] if len(seeds) > 1 else []):
            for opt in ("adam", "sgd"):
                o = [r for r in rs if r["optimizer"] == opt and int(r["seed"]) in sel]
                if not o:
                    continue
                succ = [int(r["steps"]) for r in o if r["success"] == "1"]
                out.append(dict(domain=dom, area=area, max_iter=cap, seeds=sel, optimizer=opt, configs=len(o),
                                successes=len(succ), its=succ,
                                median_capped=statistics.median(int(r["steps"]) if r["success"] == "1" else cap
                                                                for r in o)))
    return out


def _median_iqr(xs: list[int]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:.0f}" if xs else "–"
    a, _, c = statistics.quantiles(xs, n=4)
    return f"{statistics.median(xs):.0f} ({a:.0f}–{c:.0f})"


def compare_markdown(rows: list[dict]) -> str:
    lines = ["| domain | area | cap | seeds | optimiser | p≥0.9 | median it, successes (IQR) | "
             "median it, failures = cap |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['domain']} | {c['area']:.0%} | {c['max_iter']} | {', '.join(map(str, c['seeds']))} | "
              f"{'Adam' if c['optimizer'] == 'adam' else 'plain gradient'} | {c['successes']}/{c['configs']} | "
              f"{_median_iqr(c['its'])} | {c['median_capped']:.0f} |" for c in compare_optimisers(rows)]
    return "\n".join(lines)


# ---------------------------------------------------------------- bench/vs_art.py
def summarise_vs_art(rows: list[dict], budgets: list[float]) -> list[dict]:
    """One dict per (method, lr, max_iter, size): counts, success within the cap and within each budget (s),
    medians over successful configs, and seconds per iteration over all iterations run."""
    groups = sorted({(r["method"], float(r["lr"]), int(r["max_iter"]), int(r["size"])) for r in rows},
                    key=lambda g: (VS_ART_METHODS.index(g[0]) if g[0] in VS_ART_METHODS else 9, g[1], g[2], g[3]))
    out = []
    for method, lr, cap, size in groups:
        rs = [r for r in rows if (r["method"], float(r["lr"]), int(r["max_iter"]), int(r["size"]))
              == (method, lr, cap, size)]
        ok = [r for r in rs if r["success"] == "1"]
        its = sum(int(r["iterations"]) for r in rs)
        out.append({"method": method, "lr": lr, "max_iter": cap, "size": size, "n": len(rs), "ok": len(ok),
                    "within": {b: sum(float(r["seconds"]) <= b for r in ok) for b in budgets},
                    "median_it": _median([float(r["iterations"]) for r in ok]),
                    "median_s": _median([float(r["seconds"]) for r in ok]),
                    "s_per_it": sum(float(r["seconds"]) for r in rs) / its if its else None,
                    "median_p": _median([float(r["p_target"]) for r in rs]),
                    "seeds": sorted({int(r["seed"]) for r in rs}), "rows": rs})
    return out


def paired(a: dict, b: dict) -> dict:
    """Per-config ratios a/b on the configs both solved (matched by seed and config)."""
    bi = {(r["seed"], r["config"]): r for r in b["rows"] if r["success"] == "1"}
    pairs = [(r, bi[(r["seed"], r["config"])]) for r in a["rows"] if r["success"] == "1"
             and (r["seed"], r["config"]) in bi]
    return {"n": len(pairs),
            "it": _median([int(x["iterations"]) / max(1, int(y["iterations"])) for x, y in pairs]),
            "s": _median([float(x["seconds"]) / max(1e-9, float(y["seconds"])) for x, y in pairs])}


def vs_art_markdown(rows: list[dict], budgets: list[float], art_lr: float) -> str:
    """The vs-ART tables: per method, then ours / ART at ``art_lr``, then the machines."""
    cells = summarise_vs_art(rows, budgets)
    head = ("| method | lr | cap (it) | patch px | configs (seeds) | p≥0.9 within cap | "
            + " | ".join(f"within {b:g} s" for b in budgets)
            + " | median it (successes) | median s (successes) | s / iteration | median final p(target) |")
    lines = [head, "|" + "---|" * (10 + len(budgets))]
    for c in cells:
        n = c["n"]
        lines.append(f"| {c['method']} | {c['lr']:g} | {c['max_iter']} | {c['size']} | {n} "
                     f"({', '.join(map(str, c['seeds']))}) | {c['ok']}/{n} | "
                     + " | ".join(f"{c['within'][b]}/{n}" for b in budgets)
                     + f" | {_fmt(c['median_it'])} | {_fmt(c['median_s'], 1)} | {_fmt(c['s_per_it'], 3)} "
                     f"| {_fmt(c['median_p'], 3)} |")
    out = ["\n".join(lines)]

    def ratio(a, b):
        return "–" if a is None or not b else f"{a / b:.2f}×"
    for art in [c for c in cells if c["method"] == "art-image" and abs(c["lr"] - art_lr) < 1e-12]:
        block = ["", f"Ours / ART (ART lr {art['lr']:g}, cap {art['max_iter']}; < 1 means ours is faster):", "",
                 "| ours | median it ratio (medians) | median s ratio (medians) | s/it ratio | "
                 "paired median it ratio | paired median s ratio | configs both solved |", "|---|---|---|---|---|---|---|"]
        for c in cells:
            if c["method"].startswith("ours") and (c["max_iter"], c["size"]) == (art["max_iter"], art["size"]):
                pr = paired(c, art)
                block.append(f"| {c['method']} | {ratio(c['median_it'], art['median_it'])} | "
                             f"{ratio(c['median_s'], art['median_s'])} | {ratio(c['s_per_it'], art['s_per_it'])} | "
                             f"{_fmt(pr['it'], 2, '×')} | {_fmt(pr['s'], 2, '×')} | {pr['n']} |")
        if len(block) > 5:  # at least one of ours beside this ART group
            out.append("\n".join(block))
    out.append("\nMachine(s): " + "; ".join(sorted({r["machine"] for r in rows})))
    return "\n".join(out)


# ---------------------------------------------------------------- bench/tune_lr.py
def summarise_tune_lr(rows: list[dict]) -> list[dict]:
    """Per (optimizer, domain, lr) in file order: configs, successes and the median iterations counting a failure as
    infinite (what bench/tune_lr.py prints; None when half or more failed)."""
    keys = list(dict.fromkeys((r["optimizer"], r["domain"], float(r["lr"])) for r in rows))
    out = []
    for opt, dom, lr in keys:
        rs = [r for r in rows if (r["optimizer"], r["domain"], float(r["lr"])) == (opt, dom, lr)]
        its = [int(r["steps"]) if r["success"] == "1" else math.inf for r in rs]
        med = statistics.median(its)
        out.append(dict(optimizer=opt, domain=dom, lr=lr, configs=len(rs), successes=sum(r["success"] == "1"
                                                                                       for r in rs),
                        median_it=None if math.isinf(med) else med, area=float(rs[0]["area"])))
    return out


# ---------------------------------------------------------------- printed tables (bench/speed.py, input_size.py)
def printed_tables(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """(lines before the first table, [each Markdown table's lines]) of a bench script's saved printout; ``#`` lines
    are provenance comments and are left out."""
    before: list[str] = []
    found: list[list[str]] = []
    in_table = False
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("|"):
            if not in_table:
                found.append([])
            found[-1].append(line)
            in_table = True
            continue
        in_table = False
        if not found and line.strip():
            before.append(line)
    return before, found


def printed_table(path: str | Path, index: int = 0) -> tuple[list[str], list[str]]:
    """(lines before the first table, the lines of table ``index``) of a saved printout."""
    before, found = printed_tables(path)
    return before, found[index]


# ---------------------------------------------------------------- bench/ablation.py
ABLATION_DEFAULTS = {"st_relu6": "0", "cosine": "0", "polish": "0", "margin": "0", "leak": "0",
                     "leak_last": "1", "tau": "0", "tau_last": "1", "patience": "0"}  # columns added after the first rows were written
# the "lr" column came later still: rows written before it ran the rule's default step size of that time
LEGACY_LR = {("adam", "network"): "0.05", ("adam", "image"): "0.3", ("sgd", "network"): "7", ("sgd", "image"): "120",
             ("sign", "network"): "0.01", ("sign", "image"): "0.05", ("apgd", "network"): "0.2",
             ("apgd", "image"): "0.2"}
RULE_NAMES = {"adam": "Adam", "sgd": "plain gradient", "sign": "signed steps",
              "apgd": "signed steps + momentum 0.75, step halved on stall (APGD-style)"}


def read_ablation(path: str | Path) -> list[dict]:
    """Finished rows of bench/results/ablation.csv; columns added later take their default."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            for k, v in ABLATION_DEFAULTS.items():
                if r.get(k) is None:
                    r[k] = v
            if not r.get("lr"):
                r["lr"] = LEGACY_LR.get((r.get("rule"), r.get("domain")), "")
            if None not in r and None not in r.values():
                rows.append(r)
    return rows


def describe_variant(row: dict) -> str:
    r = int(row["restarts"])
    how = RULE_NAMES.get(row["rule"], row["rule"])
    how += f", {r} restarts halved ×4 per stage" if r > 1 else ", one patch"
    how += f", loss {row['loss']}, init {row['init']}"
    how += ", straight-through ReLU6" if row.get("st_relu6") == "1" else ""
    how += ", cosine step decay per stage" if row.get("cosine") == "1" else ""
    leak = float(row.get("leak") or 0)
    how += f", ReLU6 backward leaks {leak:g} of the gradient through both clips" if leak else ""
    how += " before the last stage" if leak and row.get("leak_last") == "0" else ""
    tau = float(row.get("tau") or 0)
    how += f", and at least exp(−distance/{tau:g}) outside the clips" if leak and tau else ""
    how += " before the last stage" if leak and tau and row.get("tau_last") == "0" else ""
    patience = int(row.get("patience") or 0)
    how += f", step halved (back to the best point) after {patience} steps without gain" if patience else ""
    lr, usual = row.get("lr") or "", LEGACY_LR.get((row["rule"], row.get("domain")), "")
    how += f", step size {float(lr):g} (default {float(usual):g})" if lr and usual and float(lr) != float(usual) else ""
    polish = int(row.get("polish") or 0)
    how += f", random-search polish after {polish} steps without gain in the last stage" if polish else ""
    margin = int(row.get("margin") or 0)
    return how + (f", patch {margin} px in from the corner" if margin else "")


def _ablation_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Ablation rows by (variant, domain, patch side, input side, budget), in row order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["domain"], int(r["size"]), int(r["input_size"]), int(r["budget"])),
                          []).append(r)
    return groups


def paired_ablation(rows: list[dict], a: str, b: str, budget: int = 2000) -> list[dict]:
    """Variant ``b`` against ``a`` on the configs both trained, per (domain, patch side, input side): configs, p ≥ 0.9
    for each, and on how many configs ``b`` ended with a higher / lower p(target) than ``a`` (by more than 0.005)."""
    by: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        if r["variant"] in (a, b) and int(r["budget"]) == budget:
            key = (r["domain"], int(r["size"]), int(r["input_size"]), int(r["seed"]), int(r["config"]))
            by.setdefault(key, {}).setdefault(r["variant"], r)
    out: dict[tuple, dict] = {}
    for (dom, size, isz, seed, _), pair in sorted(by.items()):
        if len(pair) < 2:
            continue
        c = out.setdefault((dom, size, isz), dict(domain=dom, size=size, input_size=isz, a=a, b=b, configs=0,
                                                  ok_a=0, ok_b=0, only_a=0, only_b=0, higher=0, lower=0,
                                                  seeds=set()))
        pa, pb = float(pair[a]["p_target"]), float(pair[b]["p_target"])
        c["configs"] += 1
        c["seeds"].add(seed)
        c["ok_a"] += pair[a]["success"] == "1"
        c["ok_b"] += pair[b]["success"] == "1"
        c["only_a"] += pair[a]["success"] == "1" != pair[b]["success"]
        c["only_b"] += pair[b]["success"] == "1" != pair[a]["success"]
        c["higher"] += pb > pa + 0.005
        c["lower"] += pb < pa - 0.005
    return [dict(c, seeds=sorted(c["seeds"])) for c in out.values()]


def paired_markdown(cells: list[dict]) -> str:
    if not cells:
        return "No configs trained by both variants yet."
    a, b = cells[0]["a"], cells[0]["b"]
    lines = [f"| patch | domain | configs both ran (seeds) | p ≥ 0.9: `{a}` | p ≥ 0.9: `{b}` | won by one only "
             f"(`{a}` / `{b}`) | `{b}` ended higher / lower in p(target) |", "|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c['size']}×{c['size']} on {c['input_size']} | {c['domain']} | {c['configs']} "
                     f"({', '.join(map(str, c['seeds']))}) | {c['ok_a']}/{c['configs']} | {c['ok_b']}/{c['configs']} | "
                     f"{c['only_a']} / {c['only_b']} | {c['higher']} / {c['lower']} |")
    return "\n".join(lines)


def summarise_ablation(rows: list[dict], baseline: list[dict] | None = None) -> list[dict]:
    """One dict per (variant, patch, input, budget, seeds). ``baseline``: area-table rows (bench/area_table.py, one
    Adam patch, same config draw) shown as the variant ``adam-r1 (area table)`` on the configs the ablation ran."""
    groups = _ablation_groups(rows)
    out = []
    for (variant, dom, size, isz, budget), rs in sorted(groups.items(), key=lambda kv: (kv[0][1:], kv[0][0])):
        ev = [int(r["evaluations"]) for r in rs if r["success"] == "1"]
        out.append(dict(variant=variant, what=describe_variant(rs[0]), domain=dom, size=size, input_size=isz,
                        budget=budget, seeds=sorted({int(r["seed"]) for r in rs}), configs=len(rs),
                        successes=len(ev), argmax=sum(r["argmax"] == "1" for r in rs),
                        median_evaluations=_median(ev),
                        median_seconds=_median([float(r["seconds"]) for r in rs if r["success"] == "1"]),
                        keys={(int(r["seed"]), int(r["config"])) for r in rs},
                        p_failed=sorted((round(float(r["p_target"]), 2) for r in rs if r["success"] != "1"),
                                        reverse=True)))
    if baseline:
        for s in list(out):
            base = [b for b in baseline if b["optimizer"] == "adam" and b["domain"] == s["domain"]
                    and int(b["size"]) == s["size"] and int(b["input_size"]) == s["input_size"]
                    and int(b["max_iter"]) == s["budget"] and (int(b["seed"]), int(b["config"])) in s["keys"]]
            if base and not any(o["variant"] == "adam-r1 (area table)" and o["keys"] == {
                    (int(b["seed"]), int(b["config"])) for b in base} for o in out):
                ok = [int(b["steps"]) for b in base if b["success"] == "1"]
                out.append(dict(variant="adam-r1 (area table)", what="Adam, one patch, loss logprob: the old "
                                f"default, bench/area_table.py rows of the configs {s['variant']} ran",
                                domain=s["domain"],
                                size=s["size"], input_size=s["input_size"], budget=s["budget"],
                                seeds=sorted({int(b["seed"]) for b in base}), configs=len(base),
                                successes=len(ok), argmax=sum(b["argmax"] == "1" for b in base),
                                median_evaluations=_median(ok),
                                median_seconds=None,  # the area table times whole batches, not configs
                                keys={(int(b["seed"]), int(b["config"])) for b in base},
                                p_failed=sorted((round(float(b["p_target"]), 2) for b in base
                                                 if b["success"] != "1"), reverse=True)))
    return out


def ablation_markdown(cells: list[dict]) -> str:
    lines = ["| variant | what it is | patch | budget (evaluations) | seeds | configs | p ≥ 0.9 | target top-1 | "
             "median evaluations (successes) | median s (successes) | p(target) reached by the failures |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        lines.append(f"| {c['variant']} | {c['what']} | {c['size']}×{c['size']} on {c['input_size']}, "
                     f"{c['domain']} | {c['budget']:,} | {', '.join(map(str, c['seeds']))} | {c['configs']} | "
                     f"{c['successes']}/{c['configs']} | {c['argmax']}/{c['configs']} | "
                     f"{_fmt(c['median_evaluations'])} | {_fmt(c['median_seconds'])} | "
                     f"{', '.join(map(str, c['p_failed'])) or '–'} |")
    return "\n".join(lines)


BUDGET_STEPS = (500, 1000, 2000, 3000, 5000, 7500, 10000)
LONG_BUDGET = 5000  # ablation runs with at least this budget are read as success-vs-budget curves


def budget_curves(rows: list[dict], steps: tuple[int, ...] = BUDGET_STEPS) -> list[dict]:
    """Success-vs-budget from the ablation's long runs (budget >= LONG_BUDGET): per (variant, patch, budget), how
    many configs reached p >= 0.9 within each budget step, counted by the evaluations each success took in that one
    run. The run's successive-halving schedule is set by its full budget, so its count at 2,000 is not the count of
    a run given 2,000 (``short``: that run's figure on the same configs, where the ablation has it)."""
    groups = _ablation_groups(rows)
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
                        median_evaluations=_median(ev), short=short,
                        median_seconds=_median([float(r["seconds"]) for r in rs if r["success"] == "1"]),
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
                     + f" | {_fmt(c['median_evaluations'])} | {_fmt(c['median_seconds'])} | {short} | "
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
                        median_evaluations=_median([sum(int(r["evaluations"]) for r in rs)
                                                    for rs in cfgs.values()]),
                        best_failed=sorted((round(max(float(r["p_target"]) for r in rs), 2)
                                            for k, rs in cfgs.items() if k not in won), reverse=True)))
    return out


DEFAULT_AREAS = (0.02, 0.035, 0.05, 0.08)  # bench/area_table.py's areas: the rows of the defaults' area table


def default_fields_by_area(input_size: int) -> dict[int, dict]:
    """:func:`attack.train.default_fields` for the patch side of each of :data:`DEFAULT_AREAS`: the ``defaults``
    argument of :func:`default_area_cells`."""
    from attack.patch import size_for_area
    from attack.train import default_fields

    return {s: default_fields(s, input_size) for s in (size_for_area(a, input_size) for a in DEFAULT_AREAS)}


def _is_default(row: dict, fields: dict) -> bool:
    """Whether an ablation row trained with exactly the trainer's defaults at its size (``fields``: restarts, leak,
    loss, and ``lr``, the default step size per domain)."""
    lr = fields.get("lr", {}).get(row["domain"])
    return ((lr is None or not row.get("lr") or float(row["lr"]) == float(lr)) and row["rule"] == "adam"
            and row["loss"] == fields.get("loss", "logprob") and row["init"] == "mixed"
            and int(row["restarts"]) == fields["restarts"] and float(row.get("leak") or 0) == fields["leak"]
            and row.get("leak_last", "1") == "1" and all(row.get(k, "0") in ("0", "0.0", "") for k in
                                                          ("st_relu6", "cosine", "polish", "margin", "tau", "patience")))


def default_area_cells(rows: list[dict], baseline: list[dict], defaults: dict[int, dict], input_size: int = 224,
                       budget: int = 2000, domains: tuple[str, ...] = ("image", "network")) -> list[dict]:
    """The area table of the trainer's defaults (issue 12): for each patch side in ``defaults`` (side -> the fields a
    default training at that side has: ``restarts``, ``leak``, ``loss`` (default "logprob"), ``lr`` per domain) and each
    domain, the ablation rows trained with exactly those settings (Adam, init mixed, nothing else on; any variant
    name), beside the old default's area-table rows (Adam, one patch) on the same (seed, config). A cell nobody
    measured has ``configs`` 0."""
    out = []
    for dom in domains:
        for size, fields in sorted(defaults.items()):
            picked: dict[tuple[int, int], dict] = {}
            for r in rows:
                if (r["domain"] == dom and int(r["size"]) == size and int(r["input_size"]) == input_size
                        and int(r["budget"]) == budget and _is_default(r, fields)):
                    picked.setdefault((int(r["seed"]), int(r["config"])), r)
            rs = list(picked.values())
            ev = [int(r["evaluations"]) for r in rs if r["success"] == "1"]
            base = [b for b in baseline if b["optimizer"] == "adam" and b["domain"] == dom
                    and int(b["size"]) == size and int(b["input_size"]) == input_size
                    and int(b["max_iter"]) == budget and (int(b["seed"]), int(b["config"])) in picked]
            out.append(dict(domain=dom, size=size, input_size=input_size, area=size ** 2 / input_size ** 2,
                            budget=budget, restarts=fields["restarts"], leak=fields["leak"],
                            loss=fields.get("loss", "logprob"),
                            variants=sorted({r["variant"] for r in rs}), configs=len(rs),
                            seeds=sorted({k[0] for k in picked}), successes=len(ev),
                            argmax=sum(r["argmax"] == "1" for r in rs),
                            not_source=sum(r["not_source"] == "1" for r in rs),
                            median_evaluations=_median(ev),
                            median_seconds=_median([float(r["seconds"]) for r in rs if r["success"] == "1"]),
                            p_failed=sorted((round(float(r["p_target"]), 2) for r in rs if r["success"] != "1"),
                                            reverse=True),
                            base=dict(configs=len(base), successes=sum(b["success"] == "1" for b in base),
                                      argmax=sum(b["argmax"] == "1" for b in base),
                                      now=sum(picked[(int(b["seed"]), int(b["config"]))]["success"] == "1"
                                              for b in base)) if base else None))
    return out


def describe_default(cell: dict) -> str:
    """The default training of a :func:`default_area_cells` cell in words, e.g. "Adam, 8 restarts, ReLU6 leak 0.05"."""
    how = f"{cell['restarts']} restarts" if cell["restarts"] > 1 else "one patch"
    loss = cell.get("loss", "logprob")
    return (f"Adam, {how}" + (f", ReLU6 leak {cell['leak']:g}" if cell["leak"] else "")
            + (f", loss {loss}" if loss != "logprob" else ""))


def default_area_markdown(cells: list[dict]) -> str:
    budget = f"{cells[0]['budget']:,}" if cells else "the budget"
    lines = ["| area | patch | domain | the default training at this size | configs (seeds) | "
             f"p ≥ 0.9 within {budget} evaluations | target top-1 | source removed | median evaluations (successes) | "
             "median CPU s (successes) | the configs the old default (Adam, one patch) ran: p ≥ 0.9 today · old (old top-1) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        head = f"| {c['area']:.1%} | {c['size']}×{c['size']} on {c['input_size']} | {c['domain']} | {describe_default(c)} "
        n = c["configs"]
        if not n:
            lines.append(head + "| 0 | not measured yet | – | – | – | – | – |")
            continue
        b = c["base"]
        old = f"{b['now']}/{b['configs']} · {b['successes']}/{b['configs']} ({b['argmax']}/{b['configs']})" if b else "–"
        lines.append(head + f"(`{'`, `'.join(c['variants'])}`) | {n} ({', '.join(map(str, c['seeds']))}) | "
                     f"{c['successes']}/{n} ({c['successes'] / n:.0%}) | {c['argmax']}/{n} | {c['not_source']}/{n} | "
                     f"{_fmt(c['median_evaluations'])} | {_fmt(c['median_seconds'])} | {old} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- bench/placement.py
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
                        best_ok=len(ok(best)), best_median=_median(ok(best)),
                        corner_ok=len(ok(corner)), corner_runs=len(corner), corner_median=_median(ok(corner)),
                        any_corner_ok=sum(by_cfg.values()),
                        best_is_corner=sum(r["best_is_corner"] == "1" for r in maps),
                        map_evals=_median([int(r["evaluations"]) for r in maps]),
                        map_p_median=_median([float(r["p_target"]) for r in maps]),
                        map_cpu_s=_median([float(r["cpu_s"]) for r in maps]),
                        map_cpu_max=max((float(r["cpu_s"]) for r in maps), default=None),
                        best_p_median=_median([float(r["p_target"]) for r in best]),
                        corner_p_median=_median([float(r["p_target"]) for r in corner])))
    return out


def placement_markdown(cells: list[dict]) -> str:
    """The README's placement table: success (p >= 0.9) and median evaluations at the map's best cell vs the
    corners, and what the map cost."""
    head = ("| patch, domain | map: grid, evaluations per cell | budget per location | configs | p ≥ 0.9 at the "
            "map's best cell | p ≥ 0.9 at a corner (runs) | ≥ 1 of 4 corners | median evaluations (successes): "
            "best / corner | median p reached: best / corner | best cell is a corner | map cost: evaluations, "
            "CPU s (median, max) |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for c in cells:
        pct = lambda a, b: f"{a}/{b} ({100 * a / b:.0f} %)" if b else "–"  # noqa: E731
        lines.append(
            f"| {c['size']}×{c['size']}, {c['domain']} | {c['cells']} cells every {c['stride']} px, "
            f"{c['map_steps']} | {c['budget']} | {c['configs']} | {pct(c['best_ok'], c['configs'])} | "
            f"{pct(c['corner_ok'], c['corner_runs'])} | {pct(c['any_corner_ok'], c['configs'])} | "
            f"{_fmt(c['best_median'])} / {_fmt(c['corner_median'])} | "
            f"{_fmt(c['best_p_median'], 2)} / {_fmt(c['corner_p_median'], 2)} | {c['best_is_corner']}/{c['configs']} | "
            f"{_fmt(c['map_evals'])}, {_fmt(c['map_cpu_s'])} s ({_fmt(c['map_cpu_max'])} s) |")
    return head + "\n".join(lines) + ("\n" if lines else "| – | | | 0 | | | | | | | |\n")


def summarise_ceiling(rows: list[dict], ablation: list[dict] | None = None) -> list[dict]:
    """One dict per patch size of bench/ceiling.py's rows: how many configs the last layers would let reach
    p ≥ 0.9 when only the fully covered cells may change (``centre``) or every overlapped cell may (``touched``),
    beside what training reached on the same configs (``ablation`` rows of the widest-measured variant at that
    size, image domain, 224 input, budget 2,000)."""
    by_size: dict[tuple[int, int, int], list[dict]] = {}
    for r in rows:
        by_size.setdefault((int(r["input_size"]), int(r.get("margin") or 0), int(r["size"])), []).append(r)
    out = []
    for (_, margin, size), rs in sorted(by_size.items()):
        trained, trained_variant = {}, None
        if ablation:
            mine = [a for a in ablation if int(a["size"]) == size and a["domain"] == "image"
                    and int(a.get("margin") or 0) == margin
                    and int(a["input_size"]) == int(rs[0]["input_size"]) and int(a["budget"]) == 2000]
            counts: dict[str, int] = {}
            for a in mine:
                counts[a["variant"]] = counts.get(a["variant"], 0) + 1
            if counts:
                best = max(counts, key=lambda v: (counts[v], v == "adam-r8"))
                trained = {(int(a["seed"]), int(a["config"])): a for a in mine if a["variant"] == best}
                trained_variant = best
        both = [r for r in rs if (int(r["seed"]), int(r["config"])) in trained]
        out.append(dict(
            size=size, input_size=int(rs[0]["input_size"]), margin=margin, configs=len(rs),
            cells_centre=sorted({int(r["cells_centre"]) for r in rs}),
            cells_touched=sorted({int(r["cells_touched"]) for r in rs}),
            centre_ok=sum(float(r["ceiling_centre"]) >= 0.9 for r in rs),
            touched_ok=sum(float(r["ceiling_touched"]) >= 0.9 for r in rs),
            median_centre=_median([float(r["ceiling_centre"]) for r in rs]),
            trained_variant=trained_variant, trained_configs=len(both),
            trained_ok=sum(trained[(int(r["seed"]), int(r["config"]))]["success"] == "1" for r in both),
            trained_beyond_centre=sum(trained[(int(r["seed"]), int(r["config"]))]["success"] == "1"
                                      and float(r["ceiling_centre"]) < 0.9 for r in both)))
    return out


def ceiling_markdown(cells: list[dict]) -> str:
    head = ("| corner patch | last-grid cells covered fully / overlapped | configs | p ≥ 0.9 possible, full cells "
            "only | median ceiling, full cells only | p ≥ 0.9 possible, overlapped cells | trained to p ≥ 0.9 "
            "(same configs, 2,000 evaluations) |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for c in cells:
        trained = (f"{c['trained_ok']}/{c['trained_configs']} (`{c['trained_variant']}`; "
                   f"{c['trained_beyond_centre']} beyond the full-cell ceiling)" if c["trained_configs"] else "–")
        where = f", {c['margin']} px in" if c.get("margin") else ""
        lines.append(f"| {c['size']}×{c['size']} on {c['input_size']}{where} | "
                     f"{'/'.join(map(str, c['cells_centre']))} / {'/'.join(map(str, c['cells_touched']))} | "
                     f"{c['configs']} | {c['centre_ok']}/{c['configs']} | {_fmt(c['median_centre'], 3)} | "
                     f"{c['touched_ok']}/{c['configs']} | {trained} |")
    return "\n".join(lines)
