"""``brown``: LaVAN's universal patch beside Brown et al.'s EOT patch (arXiv:1712.09665), at the app's area and at
10%, trained on the ``universal`` split and scored on its held-out photos. :func:`summarise` is pure."""
from __future__ import annotations

import torch

from ..reproduce.plots import plot_bars
from ..reproduce.runner import Ctx
from ..reproduce.stats import f, mean, pct
from ..reproduce.table import Table
from ..reproduce.training import label
from .universal import HELD_OUT


def run(ctx: Ctx) -> dict:
    """LaVAN universal patch vs Brown et al.'s EOT patch, at the app's area and at 10%, on the same held-out photos."""
    from attack.eot import eot_paste, random_eot_params, train_brown
    from attack.evaluate import evaluate_patch, success
    from attack.io import save_patch
    from attack.models import predict
    from attack.patch import area_fraction, random_locs, size_for_area
    from attack.train import default_patch_size
    from attack.universal import train_universal

    opts = ctx.opts
    model = ctx.model()
    s = model.input_size
    train_p, test_p = ctx.split()
    train, test = ctx.images(train_p, s), ctx.images(test_p, s)
    targets = ctx.targets(opts.pick(opts.targets, 1, 3), 5)
    steps = opts.pick(opts.max_iter, 5, 1000)
    patience = 3 if opts.quick else 30
    sizes = {"app-area": default_patch_size(s, model), "10pct": size_for_area(0.10, s)}
    fields = ["config", "method", "area_tag", "size", "area", "target", "target_label", "steps", "converged",
              "seconds", "max_steps", *HELD_OUT, "eot_confident", "eot_argmax", "eot_not_source", "patch"]
    table = Table(opts.out / "brown.csv", fields)
    with torch.no_grad():
        clean = predict(model, test).argmax(1)
    for t in targets:
        for tag, size in sizes.items():
            for method in ("lavan", "brown"):
                cid = f"{method}-{tag}-t{t}"
                if cid in table.done or opts.report_only:
                    continue
                if method == "lavan":
                    res = train_universal(model, train, t, size=size, domain="image", max_steps=steps,
                                          patience=patience, generator=ctx.gen(19, t, size))
                else:
                    res = train_brown(model, train, t, size=size, steps=steps, patience=patience,
                                      generator=ctx.gen(19, t, size))
                ev = evaluate_patch(model, test, res.patch, random_locs(len(test), s, size, ctx.gen(6, t, size)), t,
                                    domain="image")
                prm = random_eot_params(len(test), s, size, generator=ctx.gen(23, t, size))
                with torch.no_grad():
                    probs = predict(model, eot_paste(test, res.patch, prm))
                keep = clean != t
                c = success(probs[keep], t, clean[keep])
                rel = f"patches/brown/{cid}.safetensors"
                save_patch(opts.out / rel, res)
                table.add([{"config": cid, "method": method, "area_tag": tag, "size": size,
                            "area": area_fraction(size, s), "target": t, "target_label": label(t),
                            "steps": res.steps, "converged": res.success["converged"], "seconds": res.seconds,
                            "max_steps": steps, **{k: ev[k] for k in HELD_OUT},
                            **{f"eot_{k}": float(v.float().mean()) for k, v in c.items()}, "patch": rel}])
                opts.log(f"[brown] {cid}: {res.steps} steps, held-out p>=0.9 {ev['confident']:.0%}")
    planned = {f"{m}-{tag}-t{t}" for t in targets for tag in sizes for m in ("lavan", "brown")}
    out = summarise([r for r in table.rows if r["config"] in planned], len(planned), sizes, steps,
                          len(train_p), len(test_p))
    plot_bars(opts.out, "brown", list(out["by_condition"]),
              {k: [d[k] for d in out["by_condition"].values()] for k in ("confident", "eot_confident")},
              "held-out fraction with p ≥ 0.9", "LaVAN vs Brown et al. (EOT)")
    return out


def summarise(rows: list[dict], planned: int, sizes: dict, steps: int, n_train: int, n_test: int) -> dict:
    by = {}
    for tag in sizes:
        for method in ("lavan", "brown"):
            mr = [r for r in rows if r["method"] == method and r["area_tag"] == tag]
            by[f"{method}-{tag}"] = {k: mean([f(r[k]) for r in mr]) for k in
                                     ("confident", "argmax", "not_source", "eot_confident", "eot_argmax",
                                      "steps", "area")}
    out = {"configs": len(rows), "planned": planned, "train_photos": n_train, "test_photos": n_test,
           "max_steps": steps, "sizes": sizes, "by_condition": by}
    out["_table"] = [(f"{k} ({pct(d['area'])} area): p ≥ 0.9 / top-1 / source not top-1 [under EOT: p ≥ 0.9]",
                      "Brown ≈ 10% area, robust; LaVAN 2%, not robust" if k == "brown-10pct" else "—",
                      f"{pct(d['confident'])} / {pct(d['argmax'])} / {pct(d['not_source'])} "
                      f"[{pct(d['eot_confident'])}]") for k, d in by.items()]
    out["_notes"] = [
        "Both are universal image-domain patches trained on the same training photos (split as in `universal`) "
        "with Adam on a sigmoid-parametrised patch, one random photo per step, the same step cap and the same stop "
        "rule (30 consecutive steps with p ≥ 0.9).",
        "LaVAN: attack.train_universal, objective log p(target) − log p(source) (floored), random axis-aligned "
        "locations. Brown: attack.eot.train_brown, objective log p(target) (loss \"target_ce\") with expectation "
        "over transformations: scale ×0.8–1.2, rotation ±22.5°, random location (affine_grid/grid_sample).",
        "Evaluation on the same held-out photos: random axis-aligned locations at the nominal size (columns 1–3), "
        "and random EOT placements (bracketed). Photos already of the target class are left out.",
    ]
    return out
