"""``bench/ablation.py``'s rows (``bench/results/ablation.csv``): one variant of the trainer per row, per config."""
from __future__ import annotations

import csv
from pathlib import Path

from .rows import fmt, median

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


def placement_of(variant: str) -> str:
    """Where a variant put the patch: "grid" / "meter" for the ``-pgrid`` / ``-pmeter`` suffixes (attack.meter.place
    from the config's corner), else "corner" (the corner itself, or ``margin`` px in)."""
    tail = variant.rsplit("-", 1)[-1]
    return tail[1:] if tail in ("pgrid", "pmeter") else "corner"


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
    place = placement_of(row.get("variant", ""))
    how += {"grid": ", placed to cover the most last-grid cell centres within 16 px of the corner",
            "meter": ", placed at the feasibility meter's best place within 16 px of the corner"}.get(place, "")
    return how + (f", patch {margin} px in from the corner" if margin else "")


def ablation_groups(rows: list[dict]) -> dict[tuple, list[dict]]:
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
    groups = ablation_groups(rows)
    out = []
    for (variant, dom, size, isz, budget), rs in sorted(groups.items(), key=lambda kv: (kv[0][1:], kv[0][0])):
        ev = [int(r["evaluations"]) for r in rs if r["success"] == "1"]
        out.append(dict(variant=variant, what=describe_variant(rs[0]), domain=dom, size=size, input_size=isz,
                        budget=budget, seeds=sorted({int(r["seed"]) for r in rs}), configs=len(rs),
                        successes=len(ev), argmax=sum(r["argmax"] == "1" for r in rs),
                        median_evaluations=median(ev),
                        median_seconds=median([float(r["seconds"]) for r in rs if r["success"] == "1"]),
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
                                median_evaluations=median(ok),
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
                     f"{fmt(c['median_evaluations'])} | {fmt(c['median_seconds'])} | "
                     f"{', '.join(map(str, c['p_failed'])) or '–'} |")
    return "\n".join(lines)
