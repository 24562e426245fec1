"""``universal``: LaVAN universal image-domain patches for several targets, trained on one photo split and scored on
its held-out photos at random places. :func:`summarise` is a pure function of the rows."""
from __future__ import annotations

from collections import Counter

from ..findings import PAPER
from ..reproduce.plots import plot_bars
from ..reproduce.runner import Ctx
from ..reproduce.stats import cap_text, f, mean, pct
from ..reproduce.table import Table
from ..reproduce.training import label

HELD_OUT = ("n", "confident", "argmax", "not_source", "mean_p_target")


def _collections(photos) -> str:
    return " + ".join(f"{n} {name}" for name, n in Counter(p.collection for p in photos).most_common())


def run(ctx: Ctx) -> dict:
    """Image-domain universal patches for several targets; held-out photos at random locations."""
    from attack.evaluate import evaluate_patch
    from attack.io import save_patch
    from attack.patch import area_fraction, random_locs
    from attack.train import default_patch_size
    from attack.universal import train_universal

    opts = ctx.opts
    model = ctx.model()
    s = model.input_size
    size = default_patch_size(s, model)
    train_p, test_p = ctx.split()
    train, test = ctx.images(train_p, s), ctx.images(test_p, s)
    targets = ctx.targets(opts.pick(opts.targets, 1, 5), 5)
    max_steps = opts.pick(opts.max_iter, 10, 1000)
    fields = ["config", "target", "target_label", "size", "area", "train_photos", "test_photos", "steps",
              "converged", "seconds", "max_steps", *HELD_OUT, "patch"]
    table = Table(opts.out / "universal.csv", fields)
    for t in targets:
        cid = f"t{t}"
        if cid in table.done or opts.report_only:
            continue
        if ctx.out_of_time():
            opts.log(f"[universal] time budget spent: {label(t)} and later targets left for a later run")
            break
        res = train_universal(model, train, t, size=size, domain="image", max_steps=max_steps,
                              patience=30 if not opts.quick else 3, generator=ctx.gen(5, t), cancel=ctx.cancel)
        ev = evaluate_patch(model, test, res.patch, random_locs(len(test), s, size, ctx.gen(6, t)), t,
                            domain="image")
        rel = f"patches/universal/{cid}.safetensors"
        save_patch(opts.out / rel, res)
        table.add([{"config": cid, "target": t, "target_label": label(t), "size": size,
                    "area": area_fraction(size, s), "train_photos": len(train_p), "test_photos": len(test_p),
                    "steps": res.steps, "converged": res.success["converged"], "seconds": res.seconds,
                    "max_steps": res.steps if res.cancelled else max_steps, **{k: ev[k] for k in HELD_OUT},
                    "patch": rel}])
        opts.log(f"[universal] {label(t)}: {res.steps} steps, held-out p>=0.9 {ev['confident']:.0%}")
    rows = [r for r in table.rows if int(r["target"]) in targets]
    out = summarise(rows, len(targets), size, s, max_steps, _collections(train_p + test_p))
    plot_bars(opts.out, "universal", list(out["by_target"]),
              {k: [d[k] for d in out["by_target"].values()] for k in ("confident", "argmax", "not_source")},
              "held-out fraction", "Universal patches on held-out photos")
    return out


def summarise(rows: list[dict], planned: int, size: int, s: int, max_steps, collections: str) -> dict:
    """``collections``: where the split's photos came from ("59 ai-benchmark + 137 gcompris + …")."""
    if rows:  # the caps the rows actually ran under (a --time-budget cut records the step it reached)
        caps = sorted({int(f(r["max_steps"])) for r in rows})
        max_steps = caps[0] if len(caps) == 1 else caps
    n_train = int(rows[0]["train_photos"]) if rows else 0
    n_test = int(rows[0]["test_photos"]) if rows else 0
    area = size * size / (s * s)
    out = {"configs": len(rows), "planned": planned, "size": size, "area": area,
           "train_photos": n_train, "test_photos": n_test, "max_steps": max_steps,
           **{k: mean([f(r[k]) for r in rows]) for k in ("confident", "argmax", "not_source", "mean_p_target")},
           "by_target": {r["target_label"]: {k: f(r[k]) for k in ("confident", "argmax", "not_source", "steps")}
                         for r in rows}, "collections": collections}
    out["_table"] = [(lab, pct(PAPER["universal"][k]), pct(out[k])) for k, lab in
                     (("confident", "held-out p(target) ≥ 0.9"), ("argmax", "held-out target top-1"),
                      ("not_source", "held-out source not top-1"))] + [
        (f"target {lab}", "—", f"{pct(d['confident'])} / {pct(d['argmax'])} / {pct(d['not_source'])} "
                               f"({int(d['steps'])} steps)") for lab, d in out["by_target"].items()]
    out["_notes"] = [
        f"Split: {n_train} training / {n_test} held-out photos, drawn by the seed from the "
        f"{collections} photos at hand (paper: 100/100 ImageNet validation photos).",
        f"Patch: {size}×{size} px at {s}×{s} (the app's default area {area:.2%}), image domain, "
        f"one random training photo and location per step, stop after 30 consecutive steps with p ≥ 0.9 or at "
        f"the step cap ({cap_text(rows, 'max_steps', 'target_label')}). Held-out: one random location per photo; "
        "photos already of the target class are left out.",
    ]
    return out
