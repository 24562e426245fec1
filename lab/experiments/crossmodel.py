"""``crossmodel``: image-domain patches trained on each model of the matrix (``--models``; default the three Lite
models), shown to every other one through :func:`attack.evaluate.cross_model_eval` (the Models page's definition
too). :func:`summarise` is pure."""
from __future__ import annotations

from ..reproduce.plots import plot_matrix
from ..reproduce.runner import LITE_MODELS, Ctx
from ..reproduce.stats import b, frac, pct
from ..reproduce.table import Table
from ..reproduce.training import TRAIN_FIELDS, draw_configs, train_job, train_many


def run(ctx: Ctx) -> dict:
    from attack.evaluate import cross_model_eval
    from attack.io import load_patch

    opts = ctx.opts
    n = opts.pick(opts.configs, 1, 10)
    cap = opts.pick(opts.max_iter, 5, 1000)
    draws = draw_configs(ctx, n, salt=17)
    models = tuple(opts.models or LITE_MODELS)
    trained = Table(opts.out / "crossmodel_train.csv", TRAIN_FIELDS)
    train_many(ctx, trained, [(train_job(ctx, model_name=m, input_size=None, size=None, domain="image",
                                         patch_dir="crossmodel", max_iter=cap),
                               [{**d, "config": f"{m}-{d['i']:03d}", "variant": m} for d in draws])
                              for m in models])  # every model's chunks side by side on Ray
    fields = ["config", "train_model", "eval_model", "same", "trained_ok", "size", "top", "left", "p_target",
              "confident", "argmax", "not_source"]
    table = Table(opts.out / "crossmodel.csv", fields)
    planned = {f"{m}-{d['i']:03d}" for m in models for d in draws}
    for r in trained.rows:
        if r["config"] not in planned or r["config"] in table.done or opts.report_only:
            continue
        res = load_patch(opts.out / r["patch"])
        rows = []
        for m in models:
            model = ctx.model(m)
            s = model.input_size
            ev = cross_model_eval(model, ctx.image(r["photo"], s, m), res.patch, res.loc, res.target,
                                  from_size=int(r["input_size"]))  # the Models page's geometry, size rule included
            rows.append({"config": r["config"], "train_model": r["model"], "eval_model": m,
                         "same": m == r["model"], "trained_ok": r["success_0_9"], "size": ev["size"],
                         "top": ev["loc"][0], "left": ev["loc"][1], "p_target": ev["p_target"],
                         **{k: ev[k] for k in ("confident", "argmax", "not_source")}})
        table.add(rows)
    out = summarise([r for r in table.rows if r["config"] in planned],
                    len({r["config"] for r in trained.rows if r["config"] in planned}), len(planned), cap,
                    opts.quick, models)
    plot_matrix(opts.out, out["matrix_confident"])
    return out


def summarise(rows: list[dict], trained: int, planned: int, cap: int, quick: bool = False,
              models: tuple[str, ...] = LITE_MODELS) -> dict:
    from attack.models import model_spec

    ok_rows = [r for r in rows if b(r["trained_ok"])]
    fallback = quick and not ok_rows
    use = rows if fallback else ok_rows
    matrix = {a: {m: frac([r for r in use if r["train_model"] == a and r["eval_model"] == m], "confident")
                  for m in models} for a in models}
    off = [r for r in use if not b(r["same"])]
    diag = [r for r in use if b(r["same"])]
    out = {"configs": len({r["config"] for r in rows}), "planned": planned,
           "patches_successful": len({r["config"] for r in ok_rows}), "matrix_confident": matrix,
           "diagonal_confident": frac(diag, "confident"), "off_diagonal_confident": frac(off, "confident"),
           "off_diagonal_argmax": frac(off, "argmax"), "off_diagonal_not_source": frac(off, "not_source"),
           "fallback_unsuccessful_patches": fallback, "iteration_cap": cap}
    out["_table"] = [("own model: p ≥ 0.9 (100% by construction: only patches that reached p ≥ 0.9 on their own "
                      "model are scored)", "100%", pct(out["diagonal_confident"])),
                     ("other models: p ≥ 0.9", "≈ 0% (fool only their own model)", pct(out["off_diagonal_confident"])),
                     ("other models: target top-1", "≈ 0%", pct(out["off_diagonal_argmax"])),
                     ("other models: source not top-1", "—", pct(out["off_diagonal_not_source"]))]
    out["_notes"] = [
        "Patches: image domain (pixels in [0,1], so they mean the same to every model), the app's default area "
        "at each model's native size (" + ", ".join(f"{m.replace('efficientnet-lite', 'Lite')} {model_spec(m).native_size}" for m in models)
        + "), trained at a random corner.",
        "Geometry on another model (attack.evaluate.cross_model_eval, also the Models page's): the photo is loaded "
        "at that model's size; the patch is resized (bilinear, antialiased) to the same share of that model's input "
        "(attack.evaluate.transplant: round(side × new input / old input), the rule of the Models page and the "
        "Lesson too; " + _sizes(rows) + ") and placed at the same fraction of the free range (a corner patch "
        "stays in its corner).",
        f"Only patches that reached p ≥ 0.9 on their own model within {cap} iterations are scored: "
        f"{out['patches_successful']} of {trained}" + (" (quick fallback: all patches)." if fallback else ".")
        + " The own-model figure is therefore 100% by construction; the finding is the off-diagonal."]
    return out


def _sizes(rows: list[dict]) -> str:
    """The patch sides each (trained on → shown to) pair of models used, read from the rows: "Lite0 63 → Lite2 73 px"."""
    short = lambda m: m.replace("efficientnet-lite", "Lite")  # noqa: E731
    own = {r["train_model"]: int(float(r["size"])) for r in rows if b(r["same"])}
    pairs = sorted({(r["train_model"], r["eval_model"], int(float(r["size"]))) for r in rows if not b(r["same"])})
    return "; ".join(f"{short(a)} {own.get(a, '?')} → {short(e)} {size} px" for a, e, size in pairs) or "no rows yet"
