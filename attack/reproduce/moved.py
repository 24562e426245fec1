"""``fragility`` and ``transfer``: the successful single patches moved, by a few pixels or onto other photos.
Each :func:`summarise_*` is a pure function of the CSV rows."""
from __future__ import annotations

import math

import torch

from .plots import plot_lines
from .runner import Ctx, Table, pending_single_patches, single_rows
from .stats import f, mean, pct, successful

DISTS = (1, 2, 5)
CRITERIA = ("confident", "argmax", "not_source")


def fragility(ctx: Ctx) -> dict:
    """The successful single patches moved by 1, 2 and 5 px (axis-aligned shifts that stay inside the image)."""
    from ..fragility import shift_map

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
    out = summarise_fragility(rows, len(src), fallback)
    plot_lines(opts.out, "fragility", [0] + list(DISTS),
               {k: [out["centre_confident"] if k == "confident" else None] + [out[f"shift{d}_{k}"] for d in DISTS]
                for k in CRITERIA},
               "shift (px)", "fraction of shifted placements", "Fragility: success after shifting the patch")
    return out


def summarise_fragility(rows: list[dict], planned: int, fallback: bool = False) -> dict:
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


def transfer(ctx: Ctx) -> dict:
    """Each successful single patch, with a border of its source photo, pasted onto other photos."""
    from ..transfer import border_transfer

    opts = ctx.opts
    src, fallback = successful(single_rows(ctx), opts.quick)
    src = src[:opts.pick(opts.configs, 2, 10**6)]
    n_dst = 2 if opts.quick else 20
    borders = (0.0, 0.1, 0.25, 0.5) if opts.quick else (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    fields = ["config", "source_config", "variant", "domain", "border", "area", "confident", "argmax", "not_source",
              "mean_p_target", "n_dst"]
    table = Table(opts.out / "transfer.csv", fields)
    for r, res, model in pending_single_patches(ctx, src, table):
        s = model.input_size
        others = [p for p in ctx.photos if p.name != r["photo"]]
        g = ctx.gen(11, int(r["target"]), int(r["top"]), int(r["left"]))
        pick = torch.randperm(len(others), generator=g)[:n_dst].tolist()
        dst = ctx.images([others[i] for i in pick], s)
        tr = border_transfer(model, ctx.image(r["photo"], s), dst, res.patch, res.loc, res.target, borders=borders,
                             domain=res.domain)
        table.add([{"config": r["config"], "source_config": r["config"], "variant": r["variant"],
                    "domain": r["domain"], "border": b, "area": a, "confident": c, "argmax": m, "not_source": ns,
                    "mean_p_target": p, "n_dst": len(pick)}
                   for b, a, c, m, ns, p in zip(tr["borders"], tr["area"], tr["confident"], tr["argmax"],
                                                tr["not_source"], tr["mean_p_target"])])
    keep = {s["config"] for s in src}
    out = summarise_transfer([r for r in table.rows if r["config"] in keep], len(src), n_dst, fallback)
    plot_lines(opts.out, "transfer", out["borders"], {k: out[k] for k in CRITERIA},
               "border per side (fraction of image side)", "fraction of other photos",
               "Transfer: patch + border of its source photo on other photos")
    return out


def summarise_transfer(rows: list[dict], planned: int, n_dst: int, fallback: bool = False) -> dict:
    bs = sorted({f(r["border"]) for r in rows})
    curve = {k: [mean([f(r[k]) for r in rows if f(r["border"]) == b]) for b in bs]
             for k in ("confident", "argmax", "not_source", "mean_p_target", "area")}
    half = [b for b, c in zip(bs, curve["confident"]) if c is not None and c >= 0.5]
    out = {"configs": len({r["config"] for r in rows}), "planned": planned, "borders": bs, **curve,
           "border_needed": half[0] if half else None, "dst_photos_per_patch": n_dst,
           "fallback_unsuccessful_patches": fallback}
    out["_table"] = [("border per side where ≥ 50% of other photos reach p ≥ 0.9", "≈ 25%",
                      pct(out["border_needed"]) if half else f"> {pct(bs[-1]) if bs else '—'}")] + [
        (f"border {b:.0%} (copied area {a:.0%}): p ≥ 0.9 / top-1 / source not top-1", "—",
         f"{pct(c)} / {pct(m)} / {pct(ns)}")
        for b, a, c, m, ns in zip(bs, curve["area"], curve["confident"], curve["argmax"], curve["not_source"])]
    out["_notes"] = [f"Each patch (with its border) is pasted at the same place on {n_dst} other ai-benchmark photos "
                     "drawn from the seed; each photo is judged against its own clean prediction.",
                     f"Patches: the successful configs of `single` in this --out ({out['configs']})."
                     + (" Quick fallback: unsuccessful patches used." if fallback else "")]
    return out
