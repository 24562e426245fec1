"""``bench/meter.py``'s rows (``bench/results/meter.csv``: the feasibility meter at each config's corner, and the
places ``grid`` and ``meter`` choose) joined with the training rows of ``bench/results/ablation.csv``: how well the
meter's band predicts success, and the paired placement table (exact corner vs grid vs meter)."""
from __future__ import annotations

import csv
from pathlib import Path

from .ablation import placement_of
from .defaults import _is_default

BANDS = ("likely", "possible", "unlikely")
PLACES = ("corner", "grid", "meter")
_RANK = {"unlikely": 0, "possible": 1, "likely": 2}


def read_meter(path: str | Path) -> list[dict]:
    """The rows of bench/results/meter.csv (none when the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def auc(labels: list[int], scores: list[float]) -> float | None:
    """ROC AUC of ``scores`` for binary ``labels`` (Mann-Whitney: the chance that a success outscores a failure,
    ties half); None when one class is missing."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def _at(m: dict, place: str) -> dict:
    """The meter's reading at one placement of a meter row: band and ceilings at the corner, the grid's or the
    meter's place."""
    pre = "" if place == "corner" else f"{place}_"
    return dict(band=m[f"{pre}band"], ceiling_centre=float(m[f"{pre}ceiling_centre"] or 0),
                ceiling_touched=float(m[f"{pre}ceiling_touched"] or 0),
                loc=(int(m["top"]), int(m["left"])) if place == "corner" else (int(m[f"{pre}top"]),
                                                                               int(m[f"{pre}left"])))


def meter_joined(meter: list[dict], ablation: list[dict], defaults: dict[int, dict], input_size: int = 224,
                 budget: int = 2000) -> list[dict]:
    """One dict per training row at the default settings (``defaults``: side -> the fields of a default training,
    :func:`default_fields_by_area`; any placement suffix) whose (seed, config, size) the meter read: domain, size,
    seed, config, place, loc, the meter's band and ceilings at that place, and whether training reached p ≥ 0.9."""
    by = {(int(m["seed"]), int(m["config"]), int(m["size"])): m for m in meter if int(m["input_size"]) == input_size}
    out, seen = [], set()
    for r in ablation:
        size = int(r["size"])
        key = (int(r["seed"]), int(r["config"]), size)
        if (size not in defaults or key not in by or int(r["input_size"]) != input_size
                or int(r["budget"]) != budget or not _is_default(r, defaults[size], placed=True)):
            continue
        place = placement_of(r["variant"])
        ident = (r["domain"], place) + key
        if ident in seen:  # the first row of a (domain, place, seed, config, size), as the other tables
            continue
        seen.add(ident)
        out.append(dict(domain=r["domain"], size=size, seed=key[0], config=key[1], place=place,
                        success=r["success"] == "1", p_target=float(r["p_target"]), variant=r["variant"],
                        **_at(by[key], place)))
    return out


def meter_bands(joined: list[dict]) -> list[dict]:
    """Success per meter band, per domain and both together, with the ROC AUC of the band (ordered unlikely <
    possible < likely) and of each ceiling as scores, over all the rows and within each patch size."""
    out = []
    for dom in ("image", "network", "both"):
        rs = [j for j in joined if dom in ("both", j["domain"])]
        if not rs:
            continue
        ys = [int(j["success"]) for j in rs]
        cell = dict(domain=dom, rows=len(rs), successes=sum(ys), sizes=sorted({j["size"] for j in rs}),
                    seeds=sorted({j["seed"] for j in rs}), places=sorted({j["place"] for j in rs}, key=PLACES.index),
                    auc_band=auc(ys, [_RANK[j["band"]] for j in rs]),
                    auc_centre=auc(ys, [j["ceiling_centre"] for j in rs]),
                    auc_touched=auc(ys, [j["ceiling_touched"] for j in rs]),
                    auc_within_size={s: auc([int(j["success"]) for j in rs if j["size"] == s],
                                            [j["ceiling_touched"] for j in rs if j["size"] == s])
                                     for s in sorted({j["size"] for j in rs})},
                    wins_within_size={s: sum(j["success"] for j in rs if j["size"] == s)
                                      for s in sorted({j["size"] for j in rs})})
        for b in BANDS:
            inb = [j for j in rs if j["band"] == b]
            cell[b] = (sum(j["success"] for j in inb), len(inb))
        out.append(cell)
    return out


def _rate(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f}%)" if n else "–"


def _auc(a: float | None) -> str:
    return "–" if a is None else f"{a:.2f}"


def meter_markdown(cells: list[dict]) -> str:
    """The meter's predictive table: rows per domain, success per band, AUCs."""
    if not cells:
        return "No meter rows joined to training rows yet: run `bench/meter.py`."
    lines = ["| domain | training rows (sizes; seeds; placements) | p ≥ 0.9 when the meter said *likely* | "
             "*possible* | *unlikely* | AUC of the band | AUC of the ceiling, covered / touched cells | "
             "AUC of the touched-cell ceiling within one size |", "|---|---|---|---|---|---|---|---|"]
    for c in cells:
        few = c.get("wins_within_size", {})
        within = ", ".join(f"{s} px {_auc(a)}" + (f" ({few[s]} success{'es' if few[s] > 1 else ''})"
                                                   if a is not None and few.get(s, 99) < 5 else "")
                           for s, a in c["auc_within_size"].items())
        lines.append(f"| {c['domain']} | {c['rows']} ({'/'.join(map(str, c['sizes']))} px; seeds "
                     f"{', '.join(map(str, c['seeds']))}; {', '.join(c['places'])}) | {_rate(*c['likely'])} | "
                     f"{_rate(*c['possible'])} | {_rate(*c['unlikely'])} | {_auc(c['auc_band'])} | "
                     f"{_auc(c['auc_centre'])} / {_auc(c['auc_touched'])} | {within} |")
    return "\n".join(lines)


def _stands_for(m: dict | None, place: str) -> str:
    """Which trained placement stands for ``place`` of one config (``m``: its meter.csv row): ``"corner"`` where the
    place *is* the corner, ``"grid"`` where the meter's place is the grid's (the same inputs: not trained twice),
    else the place itself (its own ``-pgrid`` / ``-pmeter`` row)."""
    if place == "corner" or m is None:
        return place
    at = (m[f"{place}_top"], m[f"{place}_left"])
    if at == (m["top"], m["left"]):
        return "corner"
    if place == "meter" and at == (m["grid_top"], m["grid_left"]):
        return "grid"
    return place


def summarise_places(joined: list[dict], meter: list[dict], size: int = 42, input_size: int = 224) -> list[dict]:
    """The paired placement table at ``size``: per domain and seed, the configs whose exact corner and grid place
    both have a training row, and p ≥ 0.9 for corner, grid and meter. A place that is the corner itself (meter.csv:
    50 px, and the grid at 32 px) counts the corner's row; a meter place that is the grid's counts the grid's row;
    a meter place elsewhere needs its own ``-pmeter`` row, and a config without one is left out of the meter column
    (``meter_configs``). ``best``: configs won at one place at least, over those with all three rows (``best_of``)."""
    by_m = {(int(m["seed"]), int(m["config"]), int(m["size"])): m for m in meter if int(m["input_size"]) == input_size}
    rows = {(j["domain"], j["seed"], j["config"], j["place"]): j for j in joined if j["size"] == size}
    out = []
    for dom in ("image", "network"):
        seeds = sorted({k[1] for k in rows if k[0] == dom and k[3] == "corner"})
        for seed in seeds:
            cfgs = sorted({k[2] for k in rows if k[0] == dom and k[1] == seed and k[3] == "corner"})
            stands = {c: {p: _stands_for(by_m.get((seed, c, size)), p) for p in PLACES} for c in cfgs}
            placed = {c: {p: rows.get((dom, seed, c, stands[c][p])) for p in PLACES} for c in cfgs}
            paired = [c for c in cfgs if placed[c]["grid"] is not None]
            at = {p: sum(stands[c][p] == "corner" for c in paired) for p in ("grid", "meter")}
            meter_at_grid = sum(stands[c]["meter"] == "grid" for c in paired)
            with_meter = [c for c in paired if placed[c]["meter"] is not None]
            ok = lambda c, p: placed[c][p]["success"]  # noqa: E731
            pt = lambda c, p: placed[c][p]["p_target"]  # noqa: E731
            out.append(dict(domain=dom, seed=seed, size=size, configs=len(cfgs), paired=len(paired),
                            corner=sum(ok(c, "corner") for c in paired),
                            corner_all=sum(ok(c, "corner") for c in cfgs),
                            grid=sum(ok(c, "grid") for c in paired),
                            meter=sum(ok(c, "meter") for c in with_meter), meter_configs=len(with_meter),
                            meter_at_grid=meter_at_grid, grid_at_corner=at["grid"], meter_at_corner=at["meter"],
                            best=sum(any(ok(c, p) for p in PLACES) for c in with_meter), best_of=len(with_meter),
                            grid_higher=sum(pt(c, "grid") > pt(c, "corner") + 0.005 for c in paired),
                            grid_lower=sum(pt(c, "grid") < pt(c, "corner") - 0.005 for c in paired)))
    return out


def places_markdown(cells: list[dict]) -> str:
    """Exact corner vs grid vs meter at one size, per domain and seed, plus a total per domain; the last column:
    configs won at one of the three places at least (what a per-config choice of place could reach at best)."""
    if not cells:
        return "No exact-corner rows at this size yet."
    size = cells[0]["size"]
    lines = [f"| {size}×{size}, domain | seed | configs with both corner and grid rows | exact corner, p ≥ 0.9 | "
             "grid, p ≥ 0.9 | meter, p ≥ 0.9 | grid ended higher / lower in p than the corner | "
             "won at one place at least |",
             "|---|---|---|---|---|---|---|---|"]

    def same(c, k, what):
        return f" (the {what} on {c[k]}/{c['paired']})" if c.get(k) else ""

    def grid_cell(c):
        return f"{c['grid']}/{c['paired']}" + same(c, "grid_at_corner", "corner")

    def meter_cell(c):
        if not c["meter_configs"]:
            return "not measured"
        return (f"{c['meter']}/{c['meter_configs']}" + same(c, "meter_at_grid", "grid's place")
                + same(c, "meter_at_corner", "corner"))

    def best_cell(c):
        return f"{c['best']}/{c['best_of']}" if c.get("best_of") else "–"

    def moved(c):
        return "– (the same place)" if c.get("grid_at_corner") == c["paired"] else \
            f"{c['grid_higher']} / {c['grid_lower']}"
    for dom in ("image", "network"):
        mine = [c for c in cells if c["domain"] == dom]
        for c in mine:
            if not c["paired"]:
                lines.append(f"| {dom} | {c['seed']} | 0 of {c['configs']} | ({c['corner_all']}/{c['configs']}) | "
                             f"not measured | not measured | – | – |")
                continue
            lines.append(f"| {dom} | {c['seed']} | {c['paired']} of {c['configs']} | {c['corner']}/{c['paired']} | "
                         f"{grid_cell(c)} | {meter_cell(c)} | {moved(c)} | {best_cell(c)} |")
        if len(mine) > 1:
            keys = ("paired", "configs", "corner", "grid", "meter", "meter_configs", "meter_at_grid", "grid_higher",
                    "grid_lower", "grid_at_corner", "meter_at_corner", "best", "best_of")
            tot = {k: sum(c.get(k, 0) for c in mine) for k in keys}
            meter = meter_cell(tot) if tot["paired"] else "not measured"
            grid = grid_cell(tot) if tot["paired"] else "not measured"
            corner = f"{tot['corner']}/{tot['paired']}" if tot["paired"] else "–"
            lines.append(f"| **{dom}** | all | {tot['paired']} of {tot['configs']} | {corner} | {grid} | {meter} | "
                         f"{moved(tot)} | {best_cell(tot)} |")
    return "\n".join(lines)


def placement_wins(cells: list[dict]) -> dict[str, bool]:
    """Per placement (grid, meter): whether it won more paired configs than the exact corner in both domains (the
    rule for changing the default), counting only the seeds whose every corner config has its placed row; a domain
    without such a seed is no win."""
    out = {}
    for place in ("grid", "meter"):
        ok = True
        for dom in ("image", "network"):
            mine = [c for c in cells if c["domain"] == dom and c["paired"] and c["paired"] == c["configs"]]
            n = "paired" if place == "grid" else "meter_configs"
            if not mine or any(c[n] < c["paired"] for c in mine):
                ok = False
                break
            ok = ok and sum(c[place] for c in mine) > sum(c["corner"] for c in mine)
        out[place] = ok
    return out
