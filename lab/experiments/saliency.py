"""``saliency``: attribution mass inside the patch vs its area, per Captum method, on the successful single
patches. :func:`summarise` is a pure function of the CSV rows."""
from __future__ import annotations

from ..reproduce.plots import plot_scatter
from ..reproduce.runner import Ctx
from ..reproduce.stats import f, mean, median, num, pct, successful
from ..reproduce.table import Table
from ..reproduce.training import pending_single_patches, single_rows


def run(ctx: Ctx) -> dict:
    from attack.patch import apply_patch, patch_mask
    from attack.saliency import ATTRIBUTION_METHODS, attribution_map, mass_in_patch

    opts = ctx.opts
    src, fallback = successful(single_rows(ctx), opts.quick)
    src = src[:opts.pick(opts.configs, 1, 30)]
    fields = ["config", "variant", "domain", "size", "input_size", "area", "method", "mass_in_patch", "ratio"]
    table = Table(opts.out / "saliency.csv", fields)
    for r, res, model in pending_single_patches(ctx, src, table):
        s = model.input_size
        x = apply_patch(ctx.image(r["photo"], s).to(model.device), res.patch.to(model.device), res.loc,
                        res.domain, model)
        mask = patch_mask(s, res.size, res.loc)
        area = float(mask.mean())
        rows = []
        for m in ATTRIBUTION_METHODS:
            heat = attribution_map(model, x, res.target, method=m, domain=res.domain,
                                   ig_steps=4 if opts.quick else 32, occlusion_window=s // 4 if opts.quick else None)
            share = float(mass_in_patch(heat, mask)[0])
            rows.append({"config": r["config"], "variant": r["variant"], "domain": r["domain"], "size": res.size,
                         "input_size": s, "area": area, "method": m, "mass_in_patch": share,
                         "ratio": share / area})
        table.add(rows)
    keep = {s_["config"] for s_ in src}
    rows = [r for r in table.rows if r["config"] in keep]
    out = summarise(rows, ATTRIBUTION_METHODS, len(src), 4 if opts.quick else 32, fallback)
    plot_scatter(opts.out, rows)
    return out


def summarise(rows: list[dict], methods, planned: int, ig_steps: int = 32, fallback: bool = False) -> dict:
    by = {}
    for m in methods:
        mr = [r for r in rows if r["method"] == m]
        by[m] = {"mass_in_patch": mean([f(r["mass_in_patch"]) for r in mr]),
                 "median_mass_in_patch": median([f(r["mass_in_patch"]) for r in mr]),
                 "median_ratio": median([f(r["ratio"]) for r in mr]),
                 "area": mean([f(r["area"]) for r in mr])}
    out = {"configs": len({r["config"] for r in rows}), "planned": planned, "by_method": by,
           "fallback_unsuccessful_patches": fallback}
    out["_table"] = [(f"{m}: mass in patch, median over patches (mean area share {pct(d['area'])})",
                      "not concentrated",
                      f"{pct(d['median_mass_in_patch'])} (×{num(d['median_ratio'], 1)} its area); mean "
                      f"{pct(d['mass_in_patch'])}") for m, d in by.items()]
    out["_notes"] = ["Each successful single patch is pasted on its photo and the attribution for the *target* class "
                     "is computed on the patched input (the domain it was trained in). A ratio of 1 means the "
                     "patch gets exactly its share of the area; a network that localised the patch would put most "
                     "of the mass inside it.",
                     "Median: the median over patches of the mass inside the patch, and of that mass divided by the "
                     "patch's area share (each patch's own ratio); mean: the mean mass over patches.",
                     "Methods: saliency |∂z/∂x|, integrated gradients "
                     f"({ig_steps} steps, black baseline), Grad-CAM on the last conv layer, occlusion."
                     + (" Quick fallback: unsuccessful patches used." if fallback else "")]
    return out
