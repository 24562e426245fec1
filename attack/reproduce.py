"""``python -m attack reproduce <name>``: the paper's experiments as resumable runs with committed reports.

Each experiment draws its configs deterministically from ``--seed``, trains them in batches with
:func:`attack.train_patches` (or the universal trainers), and appends every finished config to
``<out>/<name>.csv`` as it goes. A restart skips the configs already in the CSV (keyed by the ``config`` column),
so a stopped process loses at most the batch in flight. After the runs it writes ``<out>/<name>.md`` (paper vs
ours, command, model, seed, machine, wall time, configs done vs planned, iteration cap), ``<out>/<name>.png`` and
``<out>/<name>.json`` (the summary that :func:`load_report` returns to the app).

Experiments (Karmon et al. 2018, arXiv:1801.02608, unless noted):
  single      random (photo, target, corner) configs, paper geometry (42 px on 299) and the app default, both domains
  fragility   the successful single patches shifted by 1, 2 and 5 px
  transfer    the single patches moved to other photos with a border of their source image (0–50% per side)
  universal   image-domain universal patches for several targets, evaluated on held-out photos at random locations
  classes     iterations and success per target class (≥ 20 classes incl. volcano and baseball)
  saliency    share of attribution mass inside the patch vs the patch's area, per attribution method
  crossmodel  patches trained on each EfficientNet-Lite model evaluated on the others
  brown       LaVAN's objective vs Brown et al.'s EOT patch (arXiv:1712.09665) at equal area and at 10% area
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import shlex
import statistics
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

__all__ = ["EXPERIMENTS", "PAPER", "Options", "run_experiment", "load_report", "add_parser", "trained_sessions",
           "single", "fragility", "transfer", "universal", "classes", "saliency", "crossmodel", "brown"]

# The paper's figures (and the reading of them) that each report puts beside ours.
PAPER = {
    "single": {"success_0_9": 0.79, "argmax_target": 0.91, "not_source": 0.98,
               "_note": "network domain, 42×42 patch (2% of a 299×299 image), Inception v3, cap 10,000 iterations"},
    "fragility": {"shift1_confident": 0.0,
                  "_note": "moving the patch by one pixel reverts the prediction (qualitative claim)"},
    "transfer": {"border_needed": 0.25,
                 "_note": "a patch moved to another image needs about 25% of its source image around it per side"},
    "universal": {"confident": 0.283, "argmax": 0.741, "not_source": 0.789,
                  "_note": "image-domain universal patches, trained on 100 photos, 100 held-out photos"},
    "classes": {"_note": "targets differ: a globally structured class (volcano) is harder than a local one "
                         "(baseball) (qualitative)"},
    "saliency": {"_note": "the network does not localise the patch: attribution mass inside it is not "
                          "concentrated (qualitative)"},
    "crossmodel": {"off_diagonal_confident": 0.0, "_note": "patches fool only the network they were trained on"},
    "brown": {"_note": "Brown et al.'s patch covers ~10% of the image and survives transformations; LaVAN's "
                       "covers 2% and does not (qualitative comparison in the paper)"},
}

SINGLE_VARIANTS = {
    # name: (input size, patch size or None for the app default, domain)
    "paper-network": (299, 42, "network"),
    "paper-image": (299, 42, "image"),
    "app-network": (224, None, "network"),
    "app-image": (224, None, "image"),
}
_clock = time.monotonic  # the --time-budget clock (tests replace it with a counter)
LITE_MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
FIXED_CLASSES = (980, 429, 859)  # volcano, baseball, toaster (the paper's examples)


@dataclass
class Options:
    """Everything that decides what an experiment computes. Unset numbers take the experiment's default (full run)
    or its ``--quick`` value."""
    name: str
    out: Path = Path("reports")
    quick: bool = False
    seed: int = 0
    model: str = "efficientnet-lite0"
    device: str | None = None
    max_iter: int | None = None
    configs: int | None = None
    batch: int | None = None
    variants: tuple[str, ...] | None = None
    targets: int | None = None
    threads: int | None = None
    report_only: bool = False
    time_budget: float | None = None  # seconds of training this run may spend (None: no limit)
    command: str = ""
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))

    def pick(self, value, quick, full):
        return value if value is not None else (quick if self.quick else full)


# ---------------------------------------------------------------- shared plumbing
class _Ctx:
    """Model and image caches for one run (models are loaded once per (name, size))."""

    def __init__(self, opts: Options):
        from .images import sample_images

        self.opts = opts
        self.device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._models: dict = {}
        self._images: dict = {}
        self.photos = sample_images(("ai-benchmark",))
        if not self.photos:
            raise ValueError("no ai-benchmark sample photos installed (run `make setup`)")
        self.by_name = {p.name: p for p in sample_images()}
        budget = opts.time_budget
        self.deadline = None if budget is None else _clock() + float(budget)
        self.cancel = self.out_of_time if self.deadline is not None else None  # the trainers' ``cancel`` argument

    def out_of_time(self) -> bool:
        """True once ``--time-budget`` has run out: trainers stop their active configs at the current iteration
        and that iteration is recorded as those rows' cap, so a report never claims a cap it did not run."""
        return self.deadline is not None and _clock() >= self.deadline

    def model(self, name: str | None = None, size: int | None = None):
        from .models import load_model

        key = (name or self.opts.model, size)
        if key not in self._models:
            self._models[key] = load_model(key[0], device=self.device, input_size=size, channels_last=True)
        return self._models[key]

    def image(self, photo: str, size: int) -> torch.Tensor:
        from .images import load_image

        key = (photo, size)
        if key not in self._images:
            self._images[key] = load_image(self.by_name[photo].path, size)
        return self._images[key]

    def gen(self, *salt: int) -> torch.Generator:
        seed = self.opts.seed
        for s in salt:
            seed = (seed * 1_000_003 + int(s)) % (2 ** 62)
        return torch.Generator().manual_seed(seed)


class _Table:
    """Append-only CSV of finished rows; ``done`` holds the ``config`` keys already written."""

    def __init__(self, path: Path, fields: list[str]):
        self.path, self.fields = path, fields
        self.rows: list[dict] = []
        if path.is_file():
            data = path.read_bytes()
            if data and not data.endswith(b"\n"):  # a process stopped mid-write: drop the partial last line
                with path.open("r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
            with path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))
        self.done = {r["config"] for r in self.rows}

    def add(self, rows: list[dict]) -> None:
        new = not self.path.is_file() or self.path.stat().st_size == 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            for r in rows:
                w.writerow({k: _cell(r.get(k, "")) for k in self.fields})
            f.flush()
            os.fsync(f.fileno())
        self.rows += [{k: _cell(r.get(k, "")) for k in self.fields} for r in rows]
        self.done |= {str(r["config"]) for r in rows}


def _cell(v) -> str:
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    return str(v)


def _f(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _b(v) -> bool:
    return str(v) in ("1", "True", "true")


def _frac(rows: list[dict], key: str) -> float | None:
    return sum(_b(r[key]) for r in rows) / len(rows) if rows else None


def _median(xs: Iterable[float]) -> float | None:
    xs = [x for x in xs if not math.isnan(x)]
    return float(statistics.median(xs)) if xs else None


def _chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), max(1, n)):
        yield items[i:i + n]


def _label(i: int) -> str:
    from .models import class_names

    return class_names()[int(i)]


def _draw_configs(ctx: _Ctx, n: int, salt: int = 0, photos=None) -> list[dict]:
    """n (photo, target, corner) draws from the seed; the i-th draw is the same whatever n is."""
    from .patch import CORNERS

    photos = photos or ctx.photos
    out = []
    for i in range(n):
        g = ctx.gen(salt, i)
        p = photos[int(torch.randint(len(photos), (1,), generator=g))]
        t = int(torch.randint(1000, (1,), generator=g))
        c = CORNERS[int(torch.randint(4, (1,), generator=g))]
        out.append({"i": i, "photo": p.name, "target": t, "corner": c})
    return out


TRAIN_FIELDS = ["config", "variant", "model", "input_size", "size", "area", "domain", "loss", "photo", "target",
                "target_label", "source", "source_label", "corner", "top", "left", "iterations", "success_0_9",
                "argmax_target", "not_source", "p_target", "p_source", "max_p_target", "seconds", "max_iter",
                "optimizer", "lr", "patch"]


def _train_rows(ctx: _Ctx, table: _Table, cfgs: list[dict], *, model_name: str, input_size: int | None,
                size: int | None, domain: str, patch_dir: str, loss: str = "logprob",
                max_iter: int | None = None) -> int:
    """Train the configs not yet in ``table`` in batches of ``--batch`` and append one row per config."""
    from .io import save_patch
    from .images import image_hash
    from .patch import area_fraction, corner_loc
    from .train import default_patch_size, train_patches

    opts = ctx.opts
    todo = [c for c in cfgs if c["config"] not in table.done]
    if not todo or opts.report_only:
        return 0
    model = ctx.model(model_name, input_size)
    s = model.input_size
    size = int(size or default_patch_size(s))
    max_iter = max_iter or opts.pick(opts.max_iter, 10, 1000)
    batch = opts.pick(opts.batch, 2, 8)
    for chunk in _chunks(todo, batch):
        if ctx.out_of_time():
            opts.log(f"[{opts.name}] time budget spent: {len(todo) - len(table.done & {c['config'] for c in todo})} "
                     "configs left for a later run")
            break
        t0 = time.perf_counter()
        imgs = torch.stack([ctx.image(c["photo"], s) for c in chunk])
        locs = [corner_loc(c["corner"], s, size) for c in chunk]
        results = train_patches(model, imgs, [c["target"] for c in chunk], locs, size=size, domain=domain,
                                loss=loss, steps=max_iter, generator=ctx.gen(7, zlib.crc32(chunk[0]["config"].encode())),
                                cancel=ctx.cancel)
        # Cut by the time budget: every config of the chunk ran in lockstep up to the same iteration, which is
        # therefore the cap all of them had (a success after it could not have been seen).
        cap = max(r.steps for r in results) if any(r.cancelled for r in results) else max_iter
        rows = []
        for c, img, loc, res in zip(chunk, imgs, locs, results):
            rel = f"patches/{patch_dir}/{c['config']}.safetensors"
            res.meta.update(image_hash=image_hash(img), photo=c["photo"], config=c["config"])
            save_patch(opts.out / rel, res)
            rows.append({**c, "model": model.name, "input_size": s, "size": size,
                         "area": area_fraction(size, s), "domain": domain, "loss": loss,
                         "target_label": _label(res.target), "source": res.source, "source_label": _label(res.source),
                         "top": loc[0], "left": loc[1], "iterations": res.steps,
                         "success_0_9": res.success["confident"], "argmax_target": res.success["argmax"],
                         "not_source": res.success["not_source"], "p_target": res.p_target,
                         "p_source": res.p_source, "max_p_target": max(res.history["p_target"]),
                         "seconds": res.seconds, "max_iter": cap, "optimizer": res.meta.get("optimizer"),
                         "lr": res.meta.get("lr"), "patch": rel})
        table.add(rows)
        ok = sum(r["success_0_9"] for r in rows)
        opts.log(f"[{opts.name}] {len(table.done & {c['config'] for c in cfgs})}/{len(cfgs)} configs "
                 f"({model.name}@{s}, {size}px, {domain}): batch of {len(chunk)} took "
                 f"{time.perf_counter() - t0:.0f}s, {ok} reached p>=0.9")
    return len(todo)


def _criteria(rows: list[dict]) -> dict:
    its = [_f(r["iterations"]) for r in rows if _b(r["success_0_9"])]
    return {"configs": len(rows), "success_0_9": _frac(rows, "success_0_9"),
            "argmax_target": _frac(rows, "argmax_target"), "not_source": _frac(rows, "not_source"),
            "median_iterations": _median(its),
            "iterations_q1_q3": [float(x) for x in _quartiles(its)] if len(its) >= 2 else None}


def _quartiles(xs: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(xs, n=4)
    return q[0], q[2]


def _successful(rows: list[dict], quick: bool) -> tuple[list[dict], bool]:
    """Successful configs; a quick run with none falls back to every config (flagged) so the pipeline still runs."""
    ok = [r for r in rows if _b(r["success_0_9"])]
    if ok or not quick:
        return ok, False
    return list(rows), True


def _single_rows(ctx: _Ctx) -> list[dict]:
    """Rows of the single experiment in the same --out; runs it (with these options) when it has none yet."""
    path = ctx.opts.out / "single.csv"
    t = _Table(path, TRAIN_FIELDS)
    if not t.rows and not ctx.opts.report_only:
        ctx.opts.log(f"[{ctx.opts.name}] no {path} yet: running `single` first")
        sub = Options(**{**ctx.opts.__dict__, "name": "single"})
        run_experiment(sub)
        t = _Table(path, TRAIN_FIELDS)
    return t.rows


def _load_single_patch(ctx: _Ctx, row: dict):
    from .io import load_patch

    return load_patch(ctx.opts.out / row["patch"])


# ---------------------------------------------------------------- experiments
def _pending_single_patches(ctx: _Ctx, src: list[dict], table: "_Table"):
    """Yield (row, patch result, model) for each single-image patch in ``src`` whose rows are not yet in ``table``
    (nothing on a --report-only pass): the resumable loop head of fragility, transfer and saliency."""
    for r in src:
        if r["config"] in table.done or ctx.opts.report_only:
            continue
        yield r, _load_single_patch(ctx, r), ctx.model(r["model"], int(r["input_size"]))


def single(ctx: _Ctx) -> dict:
    """100 random (photo, target, corner) configs per variant (geometry × domain); the paper's three criteria and the
    iterations to p ≥ 0.9."""
    opts = ctx.opts
    variants = opts.variants or (("app-network",) if opts.quick else tuple(SINGLE_VARIANTS))
    for v in variants:
        if v not in SINGLE_VARIANTS:
            raise ValueError(f"unknown variant {v!r}; choose from {', '.join(SINGLE_VARIANTS)}")
    n = opts.pick(opts.configs, 2, 100)
    table = _Table(opts.out / "single.csv", TRAIN_FIELDS)
    draws = _draw_configs(ctx, n)
    plans = {v: [{**d, "config": f"{v}-{d['i']:03d}", "variant": v} for d in draws] for v in variants}
    for v in variants:
        size_in, size, domain = SINGLE_VARIANTS[v]
        _train_rows(ctx, table, plans[v], model_name=opts.model, input_size=size_in, size=size, domain=domain,
                    patch_dir="single")
    planned = {c["config"] for p in plans.values() for c in p}
    rows = [r for r in table.rows if r["config"] in planned]
    out = _criteria(rows)
    out["by_variant"] = {}
    caps = sorted({int(_f(r["max_iter"])) for r in rows})
    for v in variants:
        vr = [r for r in rows if r["variant"] == v]
        d = _criteria(vr)
        if vr:
            d.update(size=int(vr[0]["size"]), input_size=int(vr[0]["input_size"]), area=_f(vr[0]["area"]),
                     domain=vr[0]["domain"])
        vcaps = [int(_f(r["max_iter"])) for r in vr]
        d["iteration_cap"] = max(vcaps) if vcaps else None
        d["curve"] = _success_curve(vr, max(vcaps) if vcaps else 0)
        out["by_variant"][v] = d
    out.update(planned=len(planned), iteration_caps=caps)
    table_rows = []
    for v, d in out["by_variant"].items():
        paper = PAPER["single"] if v == "paper-network" else {}
        for key, lab in (("success_0_9", "p(target) ≥ 0.9"), ("argmax_target", "target is top-1"),
                         ("not_source", "source not top-1")):
            table_rows.append((f"{v}: {lab}", _pct(paper.get(key)), _pct(d[key])))
        table_rows.append((f"{v}: median iterations to p ≥ 0.9 (IQR)", "—",
                           _num(d["median_iterations"]) + (f" ({_num(d['iterations_q1_q3'][0])}–"
                                                           f"{_num(d['iterations_q1_q3'][1])})"
                                                           if d.get("iterations_q1_q3") else "")))
    out["_table"] = table_rows
    out["_notes"] = [
        "Configs: photo drawn from the 100 ai-benchmark photos, target uniform over the 1,000 classes, corner "
        "uniform over the four corners; the i-th draw is shared by every variant (paired comparison).",
        "Variants: `paper-*` = 42×42 patch on the model run at 299×299 (the paper's 2% area; the paper used "
        "Inception v3, we use EfficientNet-Lite0 resized to 299); `app-*` = the app's default patch "
        "(attack.train.default_patch_size(224)) at 224×224.",
        "The paper's figures are for its network domain; the image-domain rows have no paper figure here.",
        f"Iteration cap(s) used: {caps} (paper: 10,000). Configs that hit the cap count as failures; "
        "the plot shows success vs iterations up to the cap.",
        "Patches: `patches/single/<config>.safetensors` (load with attack.load_patch).",
        "Each variant's cap is the largest `max_iter` of its rows: the --max-iter asked for or, for a run cut by "
        "--time-budget (see the commands), the iteration that every still-unfinished config had reached; the "
        "plot's curves end there.",
    ] + [f"{v}: {int(_f(vr[0]['size']))}×{int(_f(vr[0]['size']))} px on {vr[0]['input_size']}×{vr[0]['input_size']} "
         f"({_f(vr[0]['area']):.2%} area), {vr[0]['domain']} domain, loss {vr[0]['loss']}, optimiser "
         f"{vr[0]['optimizer']} lr {vr[0]['lr']} (the library defaults at run time), {len(vr)} configs, iteration "
         f"cap {out['by_variant'][v]['iteration_cap']}."
         for v in variants for vr in [[r for r in rows if r["variant"] == v]] if vr]
    if len(planned) < 100 * len(variants):
        out["_notes"].append(f"Partial reproduction: {n} configs per variant (the issue asks for 100), to fit the "
                             "CPU time available; resume with a larger --configs to extend the same draws.")
    _plot_single(opts, out)
    return out


def _success_curve(rows: list[dict], cap: int, points: int = 50) -> dict:
    if not rows or cap <= 0:
        return {"iterations": [], "success": []}
    ks = sorted({int(round(cap * i / points)) for i in range(points + 1)})
    its = [(_f(r["iterations"]), _b(r["success_0_9"])) for r in rows]
    return {"iterations": ks, "success": [sum(1 for it, ok in its if ok and it <= k) / len(rows) for k in ks]}


def fragility(ctx: _Ctx) -> dict:
    """The successful single patches moved by 1, 2 and 5 px (axis-aligned shifts that stay inside the image)."""
    from .fragility import shift_map

    opts = ctx.opts
    src, fallback = _successful(_single_rows(ctx), opts.quick)
    src = src[:opts.pick(opts.configs, 1, 10**6)]
    dists = (1, 2, 5)
    fields = ["config", "variant", "domain", "size", "input_size", "target", "source", "centre_p_target"] + [
        f"shift{d}_{k}" for d in dists for k in ("confident", "argmax", "not_source", "mean_p_target", "n")] + [
        "p_target_map"]
    table = _Table(opts.out / "fragility.csv", fields)
    model_for = {}
    for r, res, model in _pending_single_patches(ctx, src, table):
        model_for[r["variant"]] = model
        img = ctx.image(r["photo"], model.input_size)
        R = max(dists)
        maps = shift_map(model, img, res.patch, res.loc, res.target, source=int(r["source"]), radius=R,
                         domain=res.domain)
        row = {"config": r["config"], "variant": r["variant"], "domain": r["domain"], "size": r["size"],
               "input_size": r["input_size"], "target": r["target"], "source": r["source"],
               "centre_p_target": float(maps["p_target"][R, R])}
        for d in dists:
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
    out = {"configs": len(rows), "planned": len(src), "fallback_unsuccessful_patches": fallback,
           "centre_confident": _mean([_f(r["centre_p_target"]) >= 0.9 for r in rows])}
    for d in dists:
        for k in ("confident", "argmax", "not_source", "mean_p_target"):
            out[f"shift{d}_{k}"] = _mean([_f(r[f"shift{d}_{k}"]) for r in rows])
    out["_table"] = [("p(target) ≥ 0.9 at the trained location", "100%", _pct(out["centre_confident"]))] + [
        (f"{d}-px shift: p(target) ≥ 0.9 / target top-1 / source not top-1",
         "0% (one pixel reverts it)" if d == 1 else "—",
         f"{_pct(out[f'shift{d}_confident'])} / {_pct(out[f'shift{d}_argmax'])} / {_pct(out[f'shift{d}_not_source'])}")
        for d in dists]
    out["_notes"] = [
        "Shifts: the four axis-aligned moves (±d rows, ±d columns) that keep the patch inside the image — for a "
        "corner patch that is the two inward moves. Each config's score is the fraction of its valid shifts that "
        "still meet the criterion; the table averages over configs.",
        f"Configs: the successful (p ≥ 0.9) configs of `single` in this --out ({len(rows)})."
        + (" Quick run with no successful config: unsuccessful patches were used so the pipeline runs."
           if fallback else ""),
    ]
    _plot_lines(opts, "fragility", [0] + list(dists),
                {k: [out["centre_confident"] if k == "confident" else None] + [out[f"shift{d}_{k}"] for d in dists]
                 for k in ("confident", "argmax", "not_source")},
                "shift (px)", "fraction of shifted placements", "Fragility: success after shifting the patch")
    return out


def _mean(xs) -> float | None:
    xs = [float(x) for x in xs if x is not None and not math.isnan(float(x))]
    return sum(xs) / len(xs) if xs else None


def transfer(ctx: _Ctx) -> dict:
    """Each successful single patch, with a border of its source photo, pasted onto other photos."""
    from .transfer import border_transfer

    opts = ctx.opts
    src, fallback = _successful(_single_rows(ctx), opts.quick)
    src = src[:opts.pick(opts.configs, 2, 10**6)]
    n_dst = 2 if opts.quick else 20
    borders = (0.0, 0.1, 0.25, 0.5) if opts.quick else (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    fields = ["config", "source_config", "variant", "domain", "border", "area", "confident", "argmax", "not_source",
              "mean_p_target", "n_dst"]
    table = _Table(opts.out / "transfer.csv", fields)
    for r, res, model in _pending_single_patches(ctx, src, table):
        s = model.input_size
        others = [p for p in ctx.photos if p.name != r["photo"]]
        g = ctx.gen(11, int(r["target"]), int(r["top"]), int(r["left"]))
        pick = torch.randperm(len(others), generator=g)[:n_dst].tolist()
        dst = torch.stack([ctx.image(others[i].name, s) for i in pick])
        tr = border_transfer(model, ctx.image(r["photo"], s), dst, res.patch, res.loc, res.target, borders=borders,
                             domain=res.domain)
        table.add([{"config": r["config"], "source_config": r["config"], "variant": r["variant"],
                    "domain": r["domain"], "border": b, "area": a, "confident": c, "argmax": m, "not_source": ns,
                    "mean_p_target": p, "n_dst": len(pick)}
                   for b, a, c, m, ns, p in zip(tr["borders"], tr["area"], tr["confident"], tr["argmax"],
                                                tr["not_source"], tr["mean_p_target"])])
    keep = {s["config"] for s in src}
    rows = [r for r in table.rows if r["config"] in keep]
    bs = sorted({_f(r["border"]) for r in rows})
    curve = {k: [_mean([_f(r[k]) for r in rows if _f(r["border"]) == b]) for b in bs]
             for k in ("confident", "argmax", "not_source", "mean_p_target", "area")}
    half = [b for b, c in zip(bs, curve["confident"]) if c is not None and c >= 0.5]
    out = {"configs": len(keep & {r["config"] for r in rows}), "planned": len(src), "borders": bs, **curve,
           "border_needed": half[0] if half else None, "dst_photos_per_patch": n_dst,
           "fallback_unsuccessful_patches": fallback}
    out["_table"] = [("border per side where ≥ 50% of other photos reach p ≥ 0.9", "≈ 25%",
                      _pct(out["border_needed"]) if half else f"> {_pct(bs[-1]) if bs else '—'}")] + [
        (f"border {b:.0%} (copied area {a:.0%}): p ≥ 0.9 / top-1 / source not top-1", "—",
         f"{_pct(c)} / {_pct(m)} / {_pct(ns)}")
        for b, a, c, m, ns in zip(bs, curve["area"], curve["confident"], curve["argmax"], curve["not_source"])]
    out["_notes"] = [f"Each patch (with its border) is pasted at the same place on {n_dst} other ai-benchmark photos "
                     "drawn from the seed; each photo is judged against its own clean prediction.",
                     f"Patches: the successful configs of `single` in this --out ({out['configs']})."
                     + (" Quick fallback: unsuccessful patches used." if fallback else "")]
    _plot_lines(opts, "transfer", bs, {k: curve[k] for k in ("confident", "argmax", "not_source")},
                "border per side (fraction of image side)", "fraction of other photos",
                "Transfer: patch + border of its source photo on other photos")
    return out


def _split(ctx: _Ctx) -> tuple[list, list]:
    """Train/held-out photos for the universal experiments, shuffled by the seed: the paper's 100/100 when at least
    200 sample photos are at hand (ai-benchmark + package photos + gcompris-qt-data's), else half and half."""
    from .images import sample_images

    allp = sample_images()
    order = torch.randperm(len(allp), generator=ctx.gen(3)).tolist()
    photos = [allp[i] for i in order]
    if ctx.opts.quick:
        return photos[:4], photos[4:8]
    if len(photos) >= 200:
        return photos[:100], photos[100:200]
    half = (len(photos) + 1) // 2
    return photos[:half], photos[half:]


def _collections(photos) -> str:
    from collections import Counter

    c = Counter(p.collection for p in photos)
    return " + ".join(f"{n} {name}" for name, n in c.most_common())


def _targets(ctx: _Ctx, n: int, salt: int) -> list[int]:
    out = list(FIXED_CLASSES[:n])
    g = ctx.gen(salt)
    while len(out) < n:
        t = int(torch.randint(1000, (1,), generator=g))
        if t not in out:
            out.append(t)
    return out


def universal(ctx: _Ctx) -> dict:
    """Image-domain universal patches for several targets; held-out photos at random locations."""
    from .evaluate import evaluate_patch
    from .io import save_patch
    from .patch import area_fraction, random_locs
    from .train import default_patch_size
    from .universal import train_universal

    opts = ctx.opts
    model = ctx.model()
    s = model.input_size
    size = default_patch_size(s)
    train_p, test_p = _split(ctx)
    train = torch.stack([ctx.image(p.name, s) for p in train_p])
    test = torch.stack([ctx.image(p.name, s) for p in test_p])
    targets = _targets(ctx, opts.pick(opts.targets, 1, 5), 5)
    max_steps = opts.pick(opts.max_iter, 10, 1000)
    fields = ["config", "target", "target_label", "size", "area", "train_photos", "test_photos", "steps",
              "converged", "seconds", "max_steps", "n", "confident", "argmax", "not_source", "mean_p_target", "patch"]
    table = _Table(opts.out / "universal.csv", fields)
    for t in targets:
        cid = f"t{t}"
        if cid in table.done or opts.report_only:
            continue
        if ctx.out_of_time():
            opts.log(f"[universal] time budget spent: {_label(t)} and later targets left for a later run")
            break
        res = train_universal(model, train, t, size=size, domain="image", max_steps=max_steps,
                              patience=30 if not opts.quick else 3, generator=ctx.gen(5, t),
                              cancel=ctx.cancel)
        ev = evaluate_patch(model, test, res.patch, random_locs(len(test), s, size, ctx.gen(6, t)), t,
                            domain="image")
        rel = f"patches/universal/{cid}.safetensors"
        save_patch(opts.out / rel, res)
        table.add([{"config": cid, "target": t, "target_label": _label(t), "size": size,
                    "area": area_fraction(size, s), "train_photos": len(train_p), "test_photos": len(test_p),
                    "steps": res.steps, "converged": res.success["converged"], "seconds": res.seconds,
                    "max_steps": res.steps if res.cancelled else max_steps, **{k: ev[k] for k in ("n", "confident", "argmax", "not_source",
                                                                  "mean_p_target")}, "patch": rel}])
        opts.log(f"[universal] {_label(t)}: {res.steps} steps, held-out p>=0.9 {ev['confident']:.0%}")
    rows = [r for r in table.rows if int(r["target"]) in targets]
    if rows:  # the caps the rows actually ran under (a --time-budget cut records the step it reached)
        caps = sorted({int(_f(r["max_steps"])) for r in rows})
        max_steps = caps[0] if len(caps) == 1 else caps
    out = {"configs": len(rows), "planned": len(targets), "size": size, "area": area_fraction(size, s),
           "train_photos": len(train_p), "test_photos": len(test_p), "max_steps": max_steps,
           **{k: _mean([_f(r[k]) for r in rows]) for k in ("confident", "argmax", "not_source", "mean_p_target")},
           "by_target": {r["target_label"]: {k: _f(r[k]) for k in ("confident", "argmax", "not_source", "steps")}
                         for r in rows}}
    out["_table"] = [(lab, _pct(PAPER["universal"][k]), _pct(out[k])) for k, lab in
                     (("confident", "held-out p(target) ≥ 0.9"), ("argmax", "held-out target top-1"),
                      ("not_source", "held-out source not top-1"))] + [
        (f"target {lab}", "—", f"{_pct(d['confident'])} / {_pct(d['argmax'])} / {_pct(d['not_source'])} "
                               f"({int(d['steps'])} steps)") for lab, d in out["by_target"].items()]
    out["_notes"] = [
        f"Split: {len(train_p)} training / {len(test_p)} held-out photos, drawn by the seed from the "
        f"{_collections(train_p + test_p)} photos at hand (paper: 100/100 ImageNet validation photos).",
        f"Patch: {size}×{size} px at {s}×{s} (the app's default area {area_fraction(size, s):.2%}), image domain, "
        f"one random training photo and location per step, stop after 30 consecutive steps with p ≥ 0.9 or at "
        f"the step cap ({_cap_text(rows, 'max_steps', 'target_label')}). Held-out: one random location per photo; photos already of the target class are left out.",
    ]
    _plot_bars(opts, "universal", list(out["by_target"]),
               {k: [d[k] for d in out["by_target"].values()] for k in ("confident", "argmax", "not_source")},
               "held-out fraction", "Universal patches on held-out photos")
    return out


def _cap_text(rows: list[dict], key: str, label: str) -> str:
    """"5000" or "5000; cut by --time-budget at 3691 for baseball": the largest cap and the rows that ran less."""
    caps = [int(_f(r[key])) for r in rows]
    if not caps:
        return "none yet"
    top = max(caps)
    short = [f"{c} for {r[label]}" for r, c in zip(rows, caps) if c < top]
    return f"{top}" + (f"; cut by --time-budget at {', '.join(short)}" if short else "")


def classes(ctx: _Ctx) -> dict:
    """Iterations and success per target class (app geometry, network domain)."""
    from .train import default_patch_size

    opts = ctx.opts
    targets = _targets(ctx, opts.pick(opts.targets, 2, 20), 9)
    per = opts.pick(opts.configs, 1, 3)
    table = _Table(opts.out / "classes.csv", TRAIN_FIELDS)
    draws = _draw_configs(ctx, per, salt=13)
    cfgs = [{**d, "target": t, "config": f"t{t}-{d['i']}", "variant": "app-network"} for t in targets for d in draws]
    _train_rows(ctx, table, cfgs, model_name=opts.model, input_size=None, size=None, domain="network",
                patch_dir="classes")
    planned = {c["config"] for c in cfgs}
    rows = [r for r in table.rows if r["config"] in planned]
    cap = max([int(_f(r["max_iter"])) for r in rows] or [0])
    by = {}
    for t in targets:
        tr = [r for r in rows if int(r["target"]) == t]
        if tr:
            by[_label(t)] = {"target": t, "configs": len(tr), "success_0_9": _frac(tr, "success_0_9"),
                             "median_iterations_capped": _median([_f(r["iterations"]) if _b(r["success_0_9"])
                                                                  else float(cap) for r in tr]),
                             "max_p_target": _mean([_f(r["max_p_target"]) for r in tr])}
    order = sorted(by, key=lambda k: (-by[k]["success_0_9"], by[k]["median_iterations_capped"]))
    out = {**_criteria(rows), "planned": len(cfgs), "photos_per_class": per, "iteration_cap": cap,
           "by_class": {k: by[k] for k in order}}
    paper_says = {980: "harder (global)", 429: "easier (local)"}
    out["_table"] = [(f"{k} ({by[k]['target']})", paper_says.get(by[k]["target"], "—"),
                      f"{_pct(by[k]['success_0_9'])} success, median {_num(by[k]['median_iterations_capped'])} it")
                     for k in order]
    out["_notes"] = [f"{len(targets)} targets: volcano, baseball and toaster plus random classes from the seed; "
                     f"{per} (photo, corner) draws per class, shared by every class; app geometry "
                     f"({default_patch_size(224)} px at 224), network domain, cap {cap} iterations.",
                     "Median iterations count a failed config as the cap. Sorted easiest first."]
    _plot_bars(opts, "classes", order, {"success_0_9": [by[k]["success_0_9"] for k in order]},
               "fraction reaching p ≥ 0.9", "Target difficulty per class",
               second=("median iterations (failures = cap)", [by[k]["median_iterations_capped"] for k in order]))
    return out


def saliency(ctx: _Ctx) -> dict:
    """Attribution mass inside the patch vs its area, per Captum method, on the successful single patches."""
    from .patch import apply_patch, patch_mask
    from .saliency import ATTRIBUTION_METHODS, attribution_map, mass_in_patch

    opts = ctx.opts
    src, fallback = _successful(_single_rows(ctx), opts.quick)
    src = src[:opts.pick(opts.configs, 1, 30)]
    fields = ["config", "variant", "domain", "size", "input_size", "area", "method", "mass_in_patch", "ratio"]
    table = _Table(opts.out / "saliency.csv", fields)
    for r, res, model in _pending_single_patches(ctx, src, table):
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
    by = {}
    for m in ATTRIBUTION_METHODS:
        mr = [r for r in rows if r["method"] == m]
        by[m] = {"mass_in_patch": _mean([_f(r["mass_in_patch"]) for r in mr]),
                 "median_ratio": _median([_f(r["ratio"]) for r in mr]),
                 "area": _mean([_f(r["area"]) for r in mr])}
    out = {"configs": len({r["config"] for r in rows}), "planned": len(src), "by_method": by,
           "fallback_unsuccessful_patches": fallback}
    out["_table"] = [(f"{m}: mass in patch (area share {_pct(d['area'])})", "not concentrated",
                      f"{_pct(d['mass_in_patch'])} (×{_num(d['median_ratio'], 1)} its area, median)")
                     for m, d in by.items()]
    out["_notes"] = ["Each successful single patch is pasted on its photo and the attribution for the *target* class "
                     "is computed on the patched input (the domain it was trained in). A ratio of 1 means the "
                     "patch gets exactly its share of the area; a network that localised the patch would put most "
                     "of the mass inside it.",
                     "Methods: saliency |∂z/∂x|, integrated gradients "
                     f"({4 if opts.quick else 32} steps, black baseline), Grad-CAM on the last conv layer, occlusion."
                     + (" Quick fallback: unsuccessful patches used." if fallback else "")]
    _plot_scatter(opts, rows)
    return out


def _resize_patch(patch: torch.Tensor, size: int) -> torch.Tensor:
    if patch.shape[-1] == size:
        return patch
    return F.interpolate(patch.unsqueeze(0), size=(size, size), mode="bilinear", align_corners=False,
                         antialias=True)[0].clamp(0, 1)


def crossmodel(ctx: _Ctx) -> dict:
    """Image-domain patches trained on each Lite model, evaluated on every Lite model at the same relative place."""
    from .evaluate import success
    from .io import load_patch
    from .models import predict
    from .patch import paste
    from .train import default_patch_size

    opts = ctx.opts
    n = opts.pick(opts.configs, 1, 10)
    cap = opts.pick(opts.max_iter, 5, 1000)
    draws = _draw_configs(ctx, n, salt=17)
    trained = _Table(opts.out / "crossmodel_train.csv", TRAIN_FIELDS)
    for m in LITE_MODELS:
        cfgs = [{**d, "config": f"{m}-{d['i']:03d}", "variant": m} for d in draws]
        _train_rows(ctx, trained, cfgs, model_name=m, input_size=None, size=None, domain="image",
                    patch_dir="crossmodel", max_iter=cap)
    fields = ["config", "train_model", "eval_model", "same", "trained_ok", "size", "top", "left", "p_target",
              "confident", "argmax", "not_source"]
    table = _Table(opts.out / "crossmodel.csv", fields)
    planned = {f"{m}-{d['i']:03d}" for m in LITE_MODELS for d in draws}
    for r in trained.rows:
        if r["config"] not in planned or r["config"] in table.done or opts.report_only:
            continue
        res = load_patch(opts.out / r["patch"])
        s0 = int(r["input_size"])
        rows = []
        for m in LITE_MODELS:
            model = ctx.model(m)
            s = model.input_size
            size = default_patch_size(s)
            # same relative place: the same fraction of the free range (corners stay corners), same area share
            top = round(res.loc[0] * (s - size) / max(1, s0 - res.size))
            left = round(res.loc[1] * (s - size) / max(1, s0 - res.size))
            img = ctx.image(r["photo"], s).unsqueeze(0)
            x = paste(img, _resize_patch(res.patch, size), [(top, left)])
            probs = predict(model, x)
            clean = int(predict(model, img).argmax(1)[0])
            c = success(probs, res.target, clean)
            rows.append({"config": r["config"], "train_model": r["model"], "eval_model": m,
                         "same": m == r["model"], "trained_ok": r["success_0_9"], "size": size, "top": top,
                         "left": left, "p_target": float(probs[0, res.target]), "confident": bool(c["confident"][0]),
                         "argmax": bool(c["argmax"][0]), "not_source": bool(c["not_source"][0])})
        table.add(rows)
    rows = [r for r in table.rows if r["config"] in planned]
    ok_rows = [r for r in rows if _b(r["trained_ok"])]
    fallback = opts.quick and not ok_rows
    use = rows if fallback else ok_rows
    matrix = {a: {b: _frac([r for r in use if r["train_model"] == a and r["eval_model"] == b], "confident")
                  for b in LITE_MODELS} for a in LITE_MODELS}
    off = [r for r in use if not _b(r["same"])]
    diag = [r for r in use if _b(r["same"])]
    out = {"configs": len({r["config"] for r in rows}), "planned": len(planned),
           "patches_successful": len({r["config"] for r in ok_rows}), "matrix_confident": matrix,
           "diagonal_confident": _frac(diag, "confident"), "off_diagonal_confident": _frac(off, "confident"),
           "off_diagonal_argmax": _frac(off, "argmax"), "off_diagonal_not_source": _frac(off, "not_source"),
           "fallback_unsuccessful_patches": fallback, "iteration_cap": cap}
    out["_table"] = [("own model: p ≥ 0.9", "100%", _pct(out["diagonal_confident"])),
                     ("other models: p ≥ 0.9", "≈ 0% (fool only their own model)", _pct(out["off_diagonal_confident"])),
                     ("other models: target top-1", "≈ 0%", _pct(out["off_diagonal_argmax"])),
                     ("other models: source not top-1", "—", _pct(out["off_diagonal_not_source"]))]
    out["_notes"] = [
        "Patches: image domain (pixels in [0,1], so they mean the same to every model), the app's default area "
        "at each model's native size (Lite0 224, Lite1 240, Lite2 260), trained at a random corner.",
        "Geometry on another model: the photo is loaded at that model's size; the patch is resized (bilinear, "
        "antialiased) to that model's default patch side (same area share) and placed at the same fraction of "
        "the free range (a corner patch stays in its corner).",
        f"Only patches that reached p ≥ 0.9 on their own model within {cap} iterations are scored: "
        f"{out['patches_successful']} of {len({r['config'] for r in trained.rows if r['config'] in planned})}"
        + (" (quick fallback: all patches)." if fallback else ".")]
    _plot_matrix(opts, matrix)
    return out


def brown(ctx: _Ctx) -> dict:
    """LaVAN universal patch vs Brown et al.'s EOT patch, at the app's area and at 10%, on the same held-out photos."""
    from .eot import eot_paste, random_eot_params, train_brown
    from .evaluate import evaluate_patch, success
    from .io import save_patch
    from .models import predict
    from .patch import area_fraction, random_locs, size_for_area
    from .train import default_patch_size
    from .universal import train_universal

    opts = ctx.opts
    model = ctx.model()
    s = model.input_size
    train_p, test_p = _split(ctx)
    train = torch.stack([ctx.image(p.name, s) for p in train_p])
    test = torch.stack([ctx.image(p.name, s) for p in test_p])
    targets = _targets(ctx, opts.pick(opts.targets, 1, 3), 5)
    steps = opts.pick(opts.max_iter, 5, 1000)
    patience = 3 if opts.quick else 30
    sizes = {"app-area": default_patch_size(s), "10pct": size_for_area(0.10, s)}
    fields = ["config", "method", "area_tag", "size", "area", "target", "target_label", "steps", "converged",
              "seconds", "max_steps", "n", "confident", "argmax", "not_source", "mean_p_target", "eot_confident",
              "eot_argmax", "eot_not_source", "patch"]
    table = _Table(opts.out / "brown.csv", fields)
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
                            "area": area_fraction(size, s), "target": t, "target_label": _label(t),
                            "steps": res.steps, "converged": res.success["converged"], "seconds": res.seconds,
                            "max_steps": steps, **{k: ev[k] for k in ("n", "confident", "argmax", "not_source",
                                                                      "mean_p_target")},
                            **{f"eot_{k}": float(v.float().mean()) for k, v in c.items()}, "patch": rel}])
                opts.log(f"[brown] {cid}: {res.steps} steps, held-out p>=0.9 {ev['confident']:.0%}")
    planned = {f"{m}-{tag}-t{t}" for t in targets for tag in sizes for m in ("lavan", "brown")}
    rows = [r for r in table.rows if r["config"] in planned]
    by = {}
    for tag in sizes:
        for method in ("lavan", "brown"):
            mr = [r for r in rows if r["method"] == method and r["area_tag"] == tag]
            by[f"{method}-{tag}"] = {k: _mean([_f(r[k]) for r in mr]) for k in
                                     ("confident", "argmax", "not_source", "eot_confident", "eot_argmax",
                                      "steps", "area")}
    out = {"configs": len(rows), "planned": len(planned), "train_photos": len(train_p), "test_photos": len(test_p),
           "max_steps": steps, "sizes": sizes, "by_condition": by}
    out["_table"] = [(f"{k} ({_pct(d['area'])} area): p ≥ 0.9 / top-1 / source not top-1 [under EOT: p ≥ 0.9]",
                      "Brown ≈ 10% area, robust; LaVAN 2%, not robust" if k == "brown-10pct" else "—",
                      f"{_pct(d['confident'])} / {_pct(d['argmax'])} / {_pct(d['not_source'])} "
                      f"[{_pct(d['eot_confident'])}]") for k, d in by.items()]
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
    _plot_bars(opts, "brown", list(by), {k: [d[k] for d in by.values()] for k in ("confident", "eot_confident")},
               "held-out fraction with p ≥ 0.9", "LaVAN vs Brown et al. (EOT)")
    return out


EXPERIMENTS: dict[str, Callable[[_Ctx], dict]] = {
    "single": single, "fragility": fragility, "transfer": transfer, "universal": universal, "classes": classes,
    "saliency": saliency, "crossmodel": crossmodel, "brown": brown,
}
TITLES = {
    "single": "Single-image LaVAN patches: success and iterations",
    "fragility": "Fragility: the patch moved by a few pixels",
    "transfer": "Transfer to other photos with a border of the source photo",
    "universal": "Universal (image-domain) patches on held-out photos",
    "classes": "Target difficulty per class",
    "saliency": "Does the network localise the patch? Attribution mass inside it",
    "crossmodel": "Cross-model transfer between EfficientNet-Lite models",
    "brown": "LaVAN vs Brown et al.'s adversarial patch (EOT)",
}


# ---------------------------------------------------------------- formatting and plots
def _pct(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{100 * v:.1f}%"


def _num(v, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(opts: Options, fig, name: str) -> None:
    fig.tight_layout()
    fig.savefig(opts.out / f"{name}.png", dpi=110)
    _plt().close(fig)


def _plot_single(opts: Options, out: dict) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for v, d in out["by_variant"].items():
        if d["curve"]["iterations"]:
            ax[0].plot(d["curve"]["iterations"], d["curve"]["success"], label=v)
    ax[0].axhline(PAPER["single"]["success_0_9"], ls="--", c="gray", label="paper (network, cap 10k)")
    ax[0].set(xlabel="iterations", ylabel="fraction of configs with p(target) ≥ 0.9", ylim=(0, 1),
              title="Success vs iterations")
    ax[0].legend(fontsize=8)
    rows = _Table(opts.out / "single.csv", TRAIN_FIELDS).rows
    for v in out["by_variant"]:
        its = [_f(r["iterations"]) for r in rows if r["variant"] == v and _b(r["success_0_9"])]
        if its:
            ax[1].hist(its, bins=20, alpha=0.5, label=v)
    ax[1].set(xlabel="iterations to p ≥ 0.9", ylabel="configs", title="Iterations to success")
    if ax[1].has_data():
        ax[1].legend(fontsize=8)
    _save(opts, fig, "single")


def _plot_lines(opts: Options, name: str, xs, series: dict, xlabel: str, ylabel: str, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, ys in series.items():
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=k)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
    if ax.has_data():
        ax.legend()
    _save(opts, fig, name)


def _plot_bars(opts: Options, name: str, labels: list[str], series: dict, ylabel: str, title: str,
               second: tuple[str, list] | None = None) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels) * max(1, len(series))), 4.5))
    width = 0.8 / max(1, len(series))
    for j, (k, ys) in enumerate(series.items()):
        ax.bar([i + j * width for i in range(len(labels))], [0 if y is None else y for y in ys], width, label=k)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, title=title, ylim=(0, 1.05))
    if second is not None:
        ax2 = ax.twinx()
        ax2.plot(range(len(labels)), [0 if y is None else y for y in second[1]], "k.", label=second[0])
        ax2.set_ylabel(second[0])
    if labels:
        ax.legend(fontsize=8, loc="upper right")
    _save(opts, fig, name)


def _plot_scatter(opts: Options, rows: list[dict]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for m in sorted({r["method"] for r in rows}):
        mr = [r for r in rows if r["method"] == m]
        ax.scatter([_f(r["area"]) for r in mr], [_f(r["mass_in_patch"]) for r in mr], label=m, alpha=0.6)
    ax.plot([0, 0.1], [0, 0.1], "k--", lw=1, label="mass = area")
    ax.set(xlabel="patch area share", ylabel="attribution mass inside the patch", ylim=(0, 1),
           title="Attribution mass in the patch vs its area")
    ax.legend(fontsize=8)
    _save(opts, fig, "saliency")


def _plot_matrix(opts: Options, matrix: dict) -> None:
    plt = _plt()
    names = list(matrix)
    vals = [[matrix[a][b] if matrix[a][b] is not None else float("nan") for b in names] for a in names]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(vals, vmin=0, vmax=1, cmap="viridis")
    short = [n.replace("efficientnet-", "") for n in names]
    ax.set_xticks(range(len(names)), short)
    ax.set_yticks(range(len(names)), short)
    ax.set(xlabel="evaluated on", ylabel="trained on", title="p(target) ≥ 0.9 across models")
    for i, row in enumerate(vals):
        for j, v in enumerate(row):
            ax.text(j, i, "—" if math.isnan(v) else f"{v:.0%}", ha="center", va="center", color="w")
    fig.colorbar(im)
    _save(opts, fig, "crossmodel")


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{platform.platform()}; CPU {cpu} ({os.cpu_count()} cores visible, torch threads "
            f"{torch.get_num_threads()}); GPU {gpu}; Python {platform.python_version()}, torch {torch.__version__}")


def trained_sessions(sessions: list[dict]) -> list[dict]:
    """The sessions of a report's JSON that trained rows (not --report-only re-summaries)."""
    return [x for x in sessions if not x.get("report_only") and "--report-only" not in x.get("command", "")]


def _write_report(opts: Options, out: dict, wall: float, device: str) -> dict:
    from . import train as train_mod

    path_json = opts.out / f"{opts.name}.json"
    sessions = []
    if path_json.is_file():
        try:
            sessions = json.loads(path_json.read_text()).get("sessions", [])
        except (OSError, ValueError):
            sessions = []
    trained = trained_sessions(sessions)
    this = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(wall, 1), "command": opts.command,
            "configs_done": out.get("configs"), "machine": _machine(), "device": device,
            "report_only": opts.report_only}
    sessions.append(this)
    if opts.report_only:  # the report names the commands that trained the rows, not the re-summary
        opts.command = trained[-1]["command"] if trained else opts.command
    # Rows trained by several commands (variants run side by side, a run resumed elsewhere) on several machines:
    # the report names them all, and where the rows were computed, not where a re-summary ran.
    sources = trained + ([this] if not opts.report_only or not trained else [])
    device = ", ".join(dict.fromkeys(x.get("device") or ("cpu" if "GPU none" in x.get("machine", "") else "cuda")
                                     for x in sources))
    commands = list(dict.fromkeys(x["command"] for x in sources))
    machines = list(dict.fromkeys(x["machine"] for x in sources if x.get("machine")))
    table, notes = out.pop("_table", []), out.pop("_notes", [])
    paper = {k: v for k, v in PAPER[opts.name].items() if not k.startswith("_")}
    caps = out.get("iteration_caps") or out.get("iteration_cap") or out.get("max_steps")
    meta = {"name": opts.name, "title": TITLES[opts.name], "command": opts.command, "commands": commands,
            "model": opts.model, "device": device, "seed": opts.seed, "quick": opts.quick,
            "machine": " | ".join(machines), "wall_s": round(wall, 1),
            "wall_s_total": round(sum(s["wall_s"] for s in sessions), 1), "configs_done": out.get("configs"),
            "configs_planned": out.get("planned"), "iteration_cap": caps,
            "default_optimizer": "adam", "default_area": train_mod.DEFAULT_AREA,
            "paper": paper, "paper_note": PAPER[opts.name]["_note"],
            "table": [{"what": a, "paper": b, "ours": c} for a, b, c in table], "notes": notes,
            "csv": f"{opts.name}.csv", "plot": f"{opts.name}.png", "sessions": sessions}
    report = {**meta, "summary": out}
    path_json.write_text(json.dumps(report, indent=1, default=str))
    md = [f"# {TITLES[opts.name]}", "", f"Paper (Karmon et al. 2018, arXiv:1801.02608): {PAPER[opts.name]['_note']}.",
          "", "| | paper | ours |", "|---|---|---|"]
    md += [f"| {a} | {b} | {c} |" for a, b, c in table]
    md += ["", f"![{opts.name}]({opts.name}.png)", "", "## Run", ""]
    if len(commands) > 1:
        md += ["- Commands that trained these rows:"] + [f"  - `{c}`" for c in commands]
    else:
        md += [f"- Command: `{opts.command}`" + (" (quick: a tiny smoke run, not a result)" if opts.quick else "")]
    md += [f"- Model: {opts.model} (see notes for the input sizes); device: {device}; seed: {opts.seed}",
           *[f"- Machine: {m}" for m in machines],
           f"- Wall time: {meta['wall_s_total']:.0f} s summed over {len(sessions)} session(s), which may have run "
           f"side by side (this one {wall:.0f} s"
           + (", a --report-only re-summary)" if opts.report_only else ")"),
           f"- Configs done / planned: {out.get('configs')} / {out.get('planned')}",
           f"- Iteration cap: {caps} (paper: 10,000)",
           f"- Raw rows: [`{opts.name}.csv`]({opts.name}.csv); summary: [`{opts.name}.json`]({opts.name}.json)",
           "", "## Notes", ""] + [f"- {n}" for n in notes] + [""]
    (opts.out / f"{opts.name}.md").write_text("\n".join(md))
    return report


def run_experiment(opts: Options) -> dict:
    """Run (or resume) one experiment, write its CSV/MD/PNG/JSON into ``opts.out`` and return the summary dict."""
    if opts.name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {opts.name!r}; choose one of {', '.join(EXPERIMENTS)}")
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    opts.out = Path(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)
    if not opts.command:
        opts.command = f"python -m attack reproduce {opts.name}" + (" --quick" if opts.quick else "")
    t0 = time.perf_counter()
    ctx = _Ctx(opts)
    out = EXPERIMENTS[opts.name](ctx)
    report = _write_report(opts, out, time.perf_counter() - t0, ctx.device)
    return report["summary"]


def load_report(name: str, out: str | Path = "reports") -> dict:
    """The report of one experiment for the app: ``{"title", "command", "paper", "table": [{"what", "paper",
    "ours"}], "summary": {...}, "wall_s", "configs_done", "configs_planned", "iteration_cap", "machine", …}``.
    Raises FileNotFoundError when the experiment has not been run into ``out``.
    Example: >>> rep = load_report("single"); rep["summary"]["success_0_9"]"""
    path = Path(out) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no report for {name!r} in {out}: run `python -m attack reproduce {name}`")
    rep = json.loads(path.read_text())
    base = Path(out)
    rep["md_path"] = str(base / f"{name}.md")
    rep["plot_path"] = str(base / f"{name}.png") if (base / f"{name}.png").is_file() else None
    return rep


# ---------------------------------------------------------------- CLI
def _command(args) -> str:
    parts = ["python -m attack reproduce", args.name]
    for flag, val in (("--quick", args.quick), ("--out", args.out), ("--seed", args.seed), ("--model", args.model),
                      ("--device", args.device), ("--max-iter", args.max_iter), ("--configs", args.configs),
                      ("--batch", args.batch), ("--targets", args.targets), ("--threads", args.threads),
                      ("--time-budget", args.time_budget), ("--report-only", args.report_only)):
        if val is True:
            parts.append(flag)
        elif val not in (None, False):
            parts.append(f"{flag} {shlex.quote(str(val))}")
    if args.variants:
        parts.append("--variants " + " ".join(args.variants))
    return " ".join(parts)


def cmd_reproduce(args) -> int:
    if args.out is None:  # a smoke run never resumes into (or overwrites) the committed full reports
        args.out = str(Path("reports") / "quick") if args.quick else "reports"
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    results = {}
    for name in names:
        sub = argparse.Namespace(**{**vars(args), "name": name})
        opts = Options(name=name, out=Path(args.out), quick=args.quick, seed=args.seed, model=args.model,
                       device=args.device, max_iter=args.max_iter, configs=args.configs, batch=args.batch,
                       variants=tuple(args.variants) if args.variants else None, targets=args.targets,
                       threads=args.threads, report_only=args.report_only, time_budget=args.time_budget,
                       command=_command(sub))
        results[name] = run_experiment(opts)
        if not args.json:
            print(f"{name}: wrote {Path(args.out) / (name + '.md')}")
    if args.json:
        print(json.dumps(results[names[0]] if len(names) == 1 else results, default=str))
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``reproduce`` on the ``python -m attack`` sub-command parser."""
    p = subparsers.add_parser("reproduce", help="run (or resume) one of the paper's experiments and write its report",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=list(EXPERIMENTS) + ["all"])
    p.add_argument("--quick", action="store_true", help="tiny version for the test suite (2 configs, 10 iterations)")
    p.add_argument("--out", default=None,
                   help="folder for <name>.csv/.md/.png/.json (default: reports, or reports/quick with --quick)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="efficientnet-lite0")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--max-iter", type=int, default=None,
                   help="iteration cap per config / step cap for universal patches (default 1000, quick 10; paper 10,000)")
    p.add_argument("--configs", type=int, default=None,
                   help="configs per variant / per class / per model (default: single 100, classes 3, crossmodel 10)")
    p.add_argument("--batch", type=int, default=None, help="configs trained together (default 8, quick 2)")
    p.add_argument("--variants", nargs="+", default=None, choices=list(SINGLE_VARIANTS),
                   help="single: which geometry/domain variants (default: all four; quick: app-network)")
    p.add_argument("--targets", type=int, default=None, help="universal/brown/classes: number of target classes")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for this run")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="stop training after this many seconds: running configs end at the iteration reached, which "
                        "is recorded as their cap; configs not started are left for a later run (e.g. a lent GPU's "
                        "fixed slot)")
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: rewrite the report from the rows already in the CSV")
    p.set_defaults(func=cmd_reproduce)
    return p
