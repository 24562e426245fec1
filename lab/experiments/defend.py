"""``defend`` (beyond the paper): PatchCleanser double masking (Xiang, Mahloujifar, Mittal, USENIX Security 2022) and
the occlusion heuristic against the successful single patches, and on clean sample photos at the default patch
size and at 2%. :func:`summarise` is a pure function of the CSV rows."""
from __future__ import annotations

import time

import torch

from ..reproduce.plots import plot_bars
from ..reproduce.runner import Ctx
from ..reproduce.stats import b, f, mean, median, pct, successful
from ..reproduce.table import Table
from ..reproduce.training import single_rows

CAP = 40  # successful single patches defended in the full run (taken in turn from each variant), for CPU time
K = 4  # masks per side in the full run: the paper's 6 × 6 costs ~2.5× more forwards per image (see notes)
# The first rows were run with k = 6 (the paper's ImageNet setting) before the run was switched to k = 4 for
# CPU time; they stay in the CSV as groups of their own.
FIELDS = ["config", "kind", "variant", "domain", "size", "input_size", "k", "photo", "target", "source",
          "undefended", "label", "case", "recovered", "target_kept", "agree", "certified", "forwards",
          "occlusion_label", "occlusion_recovered", "occlusion_agree", "occlusion_forwards", "cpu_s",
          "occlusion_cpu_s"]


def _cpu(fn, *a, **kw):
    t0 = time.process_time()
    out = fn(*a, **kw)
    return out, time.process_time() - t0


def run(ctx: Ctx) -> dict:
    from attack.defend import double_masking, occlusion_defence
    from attack.io import load_patch
    from attack.patch import apply_patch, size_for_area
    from attack.train import default_patch_size

    opts = ctx.opts
    k = 2 if opts.quick else K
    batch = opts.pick(opts.batch, 2, 8)
    table = Table(opts.out / "defend.csv", FIELDS)
    singles, fallback = successful(single_rows(ctx), opts.quick)
    src = _interleave(singles)[:opts.pick(opts.configs, 1, CAP)]
    model = ctx.model()
    s = model.input_size
    sizes = sorted({default_patch_size(s, model), size_for_area(0.02, s)}, reverse=True)
    photos = ctx.photos[:opts.pick(None, 2, 100)]
    clean = [(size, p) for size in sizes for p in photos]

    def patch_rows(chunk):
        chunk = [r for r in chunk if f"patch-{r['config']}-k{k}" not in table.done]
        groups: dict = {}
        for r in chunk:
            groups.setdefault((r["model"], int(r["input_size"]), r["domain"], int(r["size"])), []).append(r)
        for (mname, insize, domain, size), rs in groups.items():
            m = ctx.model(mname, insize)
            res = [load_patch(opts.out / r["patch"]) for r in rs]
            x = torch.stack([apply_patch(ctx.image(r["photo"], insize).to(m.device), p.patch.to(m.device), p.loc,
                                         domain, m) for r, p in zip(rs, res)])
            dm, sec = _cpu(double_masking, m, x, size, k=k, domain=domain, certify=False)
            oc, osec = _cpu(occlusion_defence, m, x, size, stride=size, domain=domain)
            table.add([{"config": f"patch-{r['config']}-k{k}", "kind": "patch", "variant": r["variant"],
                        "domain": domain, "size": size, "input_size": insize, "k": k, "photo": r["photo"],
                        "target": r["target"], "source": r["source"], "undefended": int(dm.undefended[i]),
                        "label": int(dm.label[i]),
                        "case": int(dm.case[i]), "recovered": int(dm.label[i]) == int(r["source"]),
                        "target_kept": int(dm.label[i]) == int(r["target"]), "forwards": int(dm.forwards[i]),
                        "occlusion_label": int(oc.label[i]),
                        "occlusion_recovered": int(oc.label[i]) == int(r["source"]),
                        "occlusion_forwards": int(oc.forwards[i]), "cpu_s": sec / len(rs),
                        "occlusion_cpu_s": osec / len(rs)} for i, r in enumerate(rs)])

    def clean_rows(chunk):
        chunk = [(size, p) for size, p in chunk if f"clean-{size}-k{k}-{p.name}" not in table.done]
        for size in sorted({c[0] for c in chunk}, reverse=True):
            ps = [p for sz, p in chunk if sz == size]
            x = ctx.images(ps, s).to(model.device)
            dm, sec = _cpu(double_masking, model, x, size, k=k)
            table.add([{"config": f"clean-{size}-k{k}-{p.name}", "kind": "clean", "variant": "clean", "domain": "image",
                        "size": size, "input_size": s, "k": k, "photo": p.name, "undefended": int(dm.undefended[i]),
                        "label": int(dm.label[i]), "case": int(dm.case[i]),
                        "agree": int(dm.label[i]) == int(dm.undefended[i]), "certified": bool(dm.certified[i]),
                        "forwards": int(dm.forwards[i]), "cpu_s": sec / len(ps)} for i, p in enumerate(ps)])

    # Round robin over the three parts, one batch each, so that a run stopped early has all three partly done.
    if not opts.report_only:
        by_size = {size: [c for c in clean if c[0] == size] for size in sizes}
        parts = [("patch", src)] + [("clean", by_size[size]) for size in sizes]
        i = 0
        while any(i < len(items) for _, items in parts):
            for kind, items in parts:
                chunk = items[i:i + batch]
                if chunk:
                    (patch_rows if kind == "patch" else clean_rows)(chunk)
                    opts.log(f"[defend] {kind} {min(i + batch, len(items))}/{len(items)}")
            i += batch
    rows = table.rows  # every row of this file, with any other k as groups of their own
    out = summarise(rows, len(src), len(photos), sizes, k, fallback, singles=singles)
    groups = out["groups"]
    plot_bars(opts.out, "defend", list(groups),
              {"recovered source / agrees with undefended": [g.get("recovered", g.get("agree")) for g in
                                                             groups.values()],
               "certified (clean)": [g.get("certified") for g in groups.values()]},
              "fraction", "PatchCleanser double masking")
    return out


def _interleave(rows: list[dict]) -> list[dict]:
    """Rows taken in turn from each variant, so that the first n cover every variant."""
    by: dict[str, list[dict]] = {}
    for r in rows:
        by.setdefault(r["variant"], []).append(r)
    out = []
    for i in range(max((len(v) for v in by.values()), default=0)):
        out += [v[i] for v in by.values() if i < len(v)]
    return out


def on_occlusion_grid(top: int, left: int, size: int, n: int) -> bool:
    """Whether a ``size`` px patch at (top, left) on an n×n image is exactly one of the windows that
    :func:`attack.defend.occlusion_defence` tries at ``stride=size`` (every ``size`` px, plus the last row and column)."""
    grid = set(range(0, n - size + 1, size)) | {n - size}
    return top in grid and left in grid


def _single_config(defend_config: str) -> str:
    """"patch-app-image-007-k4" -> "app-image-007", the `single` config a defended patch came from."""
    return defend_config.removeprefix("patch-").rpartition("-k")[0]


def summarise(rows: list[dict], planned_patches: int, planned_photos: int, sizes, k: int = 6,
              fallback: bool = False, singles: list[dict] | None = None) -> dict:
    """Per group (patches by variant; clean photos by patch size): recovered / agreement / certified shares,
    the occlusion heuristic's, median forwards and mean CPU seconds per image. ``singles``: the `single` rows the
    patches were drawn from (the successful ones), for the denominator and where each patch sits."""
    groups: dict[str, dict] = {}
    for r in rows:
        key = (f"patch {r['variant']} ({r['size']} px on {r['input_size']}, k={r['k']})" if r["kind"] == "patch"
               else f"clean ({r['size']} px on {r['input_size']}, k={r['k']})")
        groups.setdefault(key, []).append(r)
    out_groups = {}
    for key, rs in sorted(groups.items()):
        d = {"n": len(rs), "size": int(f(rs[0]["size"])), "input_size": int(f(rs[0]["input_size"])),
             "median_forwards": median([f(r["forwards"]) for r in rs]),
             "mean_forwards": mean([f(r["forwards"]) for r in rs]),
             "mean_cpu_s": mean([f(r["cpu_s"]) for r in rs]),
             "occlusion_forwards": median([f(r["occlusion_forwards"]) for r in rs]),
             "occlusion_mean_cpu_s": mean([f(r["occlusion_cpu_s"]) for r in rs])}  # NaN cells (not run) skipped
        if rs[0]["kind"] == "patch":
            d.update(recovered=mean([b(r["recovered"]) for r in rs]),
                     target_kept=mean([b(r["target_kept"]) for r in rs]),
                     occlusion_recovered=mean([b(r["occlusion_recovered"]) for r in rs]))
        else:
            d.update(agree=mean([b(r["agree"]) for r in rs]), certified=mean([b(r["certified"]) for r in rs]),
                     occlusion_agree=mean([b(r["occlusion_agree"]) for r in rs if r["occlusion_agree"] != ""]))
        out_groups[key] = d
    rows_k = [r for r in rows if int(f(r["k"])) == k]
    patches = [r for r in rows_k if r["kind"] == "patch"]
    out = {"configs": len(rows_k), "planned": planned_patches + planned_photos * len(sizes), "k": k,
           "patches": len(patches), "planned_patches": planned_patches,
           "planned_photos": planned_photos,
           "recovered": mean([b(r["recovered"]) for r in patches]),
           "occlusion_recovered": mean([b(r["occlusion_recovered"]) for r in patches]),
           "sizes": list(sizes), "groups": out_groups, "fallback_unsuccessful_patches": fallback}
    by_config = {r["config"]: r for r in singles or []}
    placed = [(r, by_config[_single_config(r["config"])]) for r in patches if _single_config(r["config"]) in by_config]
    out.update(patches_available=len(singles) if singles is not None else None, patches_placed=len(placed),
               on_occlusion_grid=sum(on_occlusion_grid(int(f(s["top"])), int(f(s["left"])), int(f(r["size"])),
                                                       int(f(r["input_size"]))) for r, s in placed),
               corners=sorted({s["corner"] for _, s in placed}))
    for size in sizes:
        cs = [r for r in rows_k if r["kind"] == "clean" and int(f(r["size"])) == size]
        out[f"clean_{size}"] = {"n": len(cs), "agree": mean([b(r["agree"]) for r in cs]),
                                "certified": mean([b(r["certified"]) for r in cs]),
                                "median_forwards": median([f(r["forwards"]) for r in cs])}
    of = f" of {out['patches_available']}" if out["patches_available"] is not None else ""
    table = [(f"successful single patches: defended label = source label (PatchCleanser k={k} / occlusion)",
              "— (not in the paper)",
              f"{pct(out['recovered'])} / {pct(out['occlusion_recovered'])} ({len(patches)}{of} patches)")]
    for key, d in out_groups.items():
        if "recovered" in d:
            what = (f"{key}: source recovered / target kept (PatchCleanser); source recovered (occlusion); "
                    "forwards per image")
            ours = (f"{pct(d['recovered'])} / {pct(d['target_kept'])}; {pct(d['occlusion_recovered'])}; "
                    f"median {d['median_forwards']:.0f} ({d['mean_cpu_s']:.1f} CPU s) / {d['occlusion_forwards']:.0f}")
        else:
            occ = d["occlusion_agree"] is not None
            what = (f"{key}: defended = undefended top-1 / certified (PatchCleanser)"
                    + ("; occlusion agrees" if occ else "") + "; forwards per image")
            ours = (f"{pct(d['agree'])} / {pct(d['certified'])}; " + (f"{pct(d['occlusion_agree'])}; " if occ else "")
                    + f"median {d['median_forwards']:.0f} ({d['mean_cpu_s']:.1f} CPU s)"
                    + (f" / {d['occlusion_forwards']:.0f}" if occ else ""))
        table.append((f"{what} (n={d['n']})", "—", ours))
    out["_table"] = table
    out["_notes"] = [
        f"PatchCleanser double masking with a {k}×{k} mask set per patch size (mask side p + s − 1, stride "
        "s = ⌈(n − p + 1)/k⌉, so every p×p patch lies inside some mask); masked pixels are grey 0.5 (its "
        f"normalised value for network-domain patches). The paper uses k = 6 on ImageNet; this CPU-only run uses "
        f"k = {k} (k = 4 costs about 2.5× fewer forwards per image than 6, with larger masks)"
        + ("; the first rows, run at k = 6, are kept as groups of their own." if any(int(f(r["k"])) != k for r in rows)
           else "."),
        "The occlusion heuristic slides a grey p×p window at stride p (plus the last row and column) and masks the "
        "one that lowers the undefended top-1 class most; to save CPU time it runs on the patches, and on clean "
        "photos only in the k = 6 rows.",
        f"Patches: {len(patches)}{of} successful (p ≥ 0.9) configs of `single` in this --out (at most {CAP}, taken "
        "in turn from each variant, for CPU time), each on its own photo, model input size and domain, defended "
        "against its own patch size. Recovered: the defended label is the clean photo's label (`single`'s source).",
        _grid_note(out),
        "Clean photos: the ai-benchmark sample photos at the default patch size and at 2% of the image. Agreement: "
        "defended label = undefended top-1 (a clean-accuracy proxy: the photos carry no ground-truth label). "
        "Certified: every one- and two-mask prediction is the same label, so no patch of that size anywhere can "
        "change the defended label; certification stops at the first disagreeing pair.",
        "Forwards per image: model evaluations, including the undefended one; CPU seconds: process time per image "
        "(torch threads as in the run; the machine was shared).",
        "Why recovery is rare: double masking returns the clean label only when every two-mask prediction made "
        "with a mask that hides the patch agrees; otherwise it falls back to the first-round majority, and most "
        "masks leave the patch visible. PatchCleanser's authors fine-tune their classifiers on masked images so "
        "that predictions under two masks stay stable; the stock EfficientNet-Lite0 here is not fine-tuned.",
    ] + (["Quick fallback: unsuccessful patches used."] if fallback else [])
    return out


def _grid_note(out: dict) -> str:
    """Why the occlusion figure flatters the heuristic, counted from where the defended patches sit."""
    n, on = out["patches_placed"], out["on_occlusion_grid"]
    if not n:
        return "Where the defended patches sit is unknown here (no `single` rows beside them)."
    where = ("every one sits exactly on the occlusion heuristic's window grid" if on == n else
             f"{on} of the {n} sit exactly on the occlusion heuristic's window grid")
    return (f"Occlusion against PatchCleanser is not a like-for-like comparison: the patches were trained at a "
            f"corner ({', '.join(out['corners'])}) and {where} (stride = patch side, plus the last row and column), "
            "so one of its windows hides the patch exactly; and none was trained against the heuristic (`single` "
            "trains against the undefended model). An adaptive patch off the grid, or one trained to survive "
            "occlusion, is not measured here; PatchCleanser's certificate covers any location.")
