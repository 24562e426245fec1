"""``transfer``: the successful single patches, with a border of their source photo, on other photos.
:func:`summarise` is a pure function of the CSV rows."""
from __future__ import annotations

import torch

from ..reproduce.plots import plot_lines
from ..reproduce.runner import Ctx
from ..reproduce.stats import f, mean, pct, successful
from ..reproduce.table import Table
from ..reproduce.training import pending_single_patches, single_rows
from .fragility import CRITERIA


def run(ctx: Ctx) -> dict:
    """Each successful single patch, with a border of its source photo, pasted onto other photos."""
    from attack.transfer import border_transfer

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
    out = summarise([r for r in table.rows if r["config"] in keep], len(src), n_dst, fallback)
    plot_lines(opts.out, "transfer", out["borders"], {k: out[k] for k in CRITERIA},
               "border per side (fraction of image side)", "fraction of other photos",
               "Transfer: patch + border of its source photo on other photos")
    return out


def summarise(rows: list[dict], planned: int, n_dst: int, fallback: bool = False) -> dict:
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
