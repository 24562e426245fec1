"""``fragility``: the successful single patches moved by a few pixels. :func:`summarise` is a pure function
of the CSV rows."""
from __future__ import annotations

import math

from ..reproduce.plots import plot_lines
from ..reproduce.runner import Ctx
from ..reproduce.stats import f, mean, pct, successful
from ..reproduce.table import Table
from ..reproduce.training import pending_single_patches, single_rows

DISTS = (1, 2, 5)
CRITERIA = ("confident", "argmax", "not_source")


def run(ctx: Ctx) -> dict:
    """The successful single patches moved by 1, 2 and 5 px (axis-aligned shifts that stay inside the image)."""
    from attack.fragility import shift_map

    opts = ctx.opts
    src, fallback = successful(single_rows(ctx), opts.quick)
    src = src[:opts.pick(opts.configs, 1, 10**6)]
    fields = ["config", "variant", "domain", "size", "input_size", "target", "source", "centre_p_target"] + [
        f"shift{d}_{k}" for d in DISTS for k in ("confident", "argmax", "not_source", "mean_p_target", "n")] + [
        "p_target_map"]
    table = Table(opts.out / "fragility.csv", fields)
    for r, res, model in pending_single_patches(ctx, src, table):
        img = ctx.image(r["photo"], model.input_size)
        R = max(DISTS)
        maps = shift_map(model, img, res.patch, res.loc, res.target, source=int(r["source"]), radius=R,
                         domain=res.domain)
        row = {"config": r["config"], "variant": r["variant"], "domain": r["domain"], "size": r["size"],
               "input_size": r["input_size"], "target": r["target"], "source": r["source"],
               "centre_p_target": float(maps["p_target"][R, R])}
        for d in DISTS:
            cells = [(R + dy, R + dx) for dy, dx in ((-d, 0), (d, 0), (0, -d), (0, d))]
            cells = [c for c in cells if not math.isnan(float(maps["p_target"][c]))]
            pt = [float(maps["p_target"][c]) for c in cells]
            am = [int(maps["argmax"][c]) for c in cells]
            k = len(cells)
            row.update({f"shift{d}_n": k,
                        f"shift{d}_confident": sum(p >= 0.9 for p in pt) / k if k else float("nan"),
                        f"shift{d}_argmax": sum(a == res.target for a in am) / k if k else float("nan"),
                        f"shift{d}_not_source": sum(a != int(r["source"]) for a in am) / k if k else float("nan"),
                        f"shift{d}_mean_p_target": sum(pt) / k if k else float("nan")})
        row["p_target_map"] = [[None if math.isnan(v) else round(v, 4) for v in line]
                               for line in maps["p_target"].tolist()]
        table.add([row])
    rows = [r for r in table.rows if r["config"] in {s["config"] for s in src}]
    out = summarise(rows, len(src), fallback)
    plot_lines(opts.out, "fragility", [0] + list(DISTS),
               {k: [out["centre_confident"] if k == "confident" else None] + [out[f"shift{d}_{k}"] for d in DISTS]
                for k in CRITERIA},
               "shift (px)", "fraction of shifted placements", "Fragility: success after shifting the patch")
    return out


def summarise(rows: list[dict], planned: int, fallback: bool = False) -> dict:
    out = {"configs": len(rows), "planned": planned, "fallback_unsuccessful_patches": fallback,
           "centre_confident": mean([f(r["centre_p_target"]) >= 0.9 for r in rows])}
    for d in DISTS:
        for k in ("confident", "argmax", "not_source", "mean_p_target"):
            out[f"shift{d}_{k}"] = mean([f(r[f"shift{d}_{k}"]) for r in rows])
    out["_table"] = [("p(target) ≥ 0.9 at the trained location", "100%", pct(out["centre_confident"]))] + [
        (f"{d}-px shift: p(target) ≥ 0.9 / target top-1 / source not top-1",
         "0% (one pixel reverts it)" if d == 1 else "—",
         f"{pct(out[f'shift{d}_confident'])} / {pct(out[f'shift{d}_argmax'])} / {pct(out[f'shift{d}_not_source'])}")
        for d in DISTS]
    out["_notes"] = [
        "Shifts: the four axis-aligned moves (±d rows, ±d columns) that keep the patch inside the image — for a "
        "corner patch that is the two inward moves. Each config's score is the fraction of its valid shifts that "
        "still meet the criterion; the table averages over configs.",
        f"Configs: the successful (p ≥ 0.9) configs of `single` in this --out ({len(rows)})."
        + (" Quick run with no successful config: unsuccessful patches were used so the pipeline runs."
           if fallback else ""),
    ]
    return out
