"""What several experiments share: seeded (photo, target, corner) draws, the batched training of single-image
configs into a table (resumable, --time-budget aware), and the successful single patches that later experiments
reuse."""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass
from typing import Iterator

import torch

from .runner import Ctx, Options
from .table import Table

TRAIN_FIELDS = ["config", "variant", "model", "input_size", "size", "area", "domain", "loss", "photo", "target",
                "target_label", "source", "source_label", "corner", "top", "left", "iterations", "success_0_9",
                "argmax_target", "not_source", "p_target", "p_source", "max_p_target", "seconds", "max_iter",
                "optimizer", "lr", "patch", "restarts", "evaluations"]


def chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), max(1, n)):
        yield items[i:i + n]


def label(i: int) -> str:
    from attack.models import class_names

    return class_names()[int(i)]


def draw_configs(ctx: Ctx, n: int, salt: int = 0, photos=None) -> list[dict]:
    """n (photo, target, corner) draws from the seed; the i-th draw is the same whatever n is."""
    from attack.patch import CORNERS

    photos = photos or ctx.photos
    out = []
    for i in range(n):
        g = ctx.gen(salt, i)
        p = photos[int(torch.randint(len(photos), (1,), generator=g))]
        t = int(torch.randint(1000, (1,), generator=g))
        c = CORNERS[int(torch.randint(4, (1,), generator=g))]
        out.append({"i": i, "photo": p.name, "target": t, "corner": c})
    return out


@dataclass(frozen=True)
class TrainJob:
    """What every chunk of one :func:`train_rows` call shares (sent with each chunk to a Ray task)."""
    model_name: str
    input_size: int | None
    size: int | None
    domain: str
    patch_dir: str
    loss: str
    max_iter: int


def train_rows(ctx: Ctx, table: Table, cfgs: list[dict], *, model_name: str, input_size: int | None,
               size: int | None, domain: str, patch_dir: str, loss: str = "logprob",
               max_iter: int | None = None) -> int:
    """Train the configs not yet in ``table`` in chunks of ``--batch`` on the run's engine (this process, or Ray
    tasks) and append one row per config as each chunk arrives (a row already in the table is not written again)."""
    return train_many(ctx, table, [(train_job(ctx, model_name=model_name, input_size=input_size, size=size,
                                              domain=domain, patch_dir=patch_dir, loss=loss, max_iter=max_iter), cfgs)])


def train_job(ctx: Ctx, *, model_name: str, input_size: int | None, size: int | None, domain: str, patch_dir: str,
              loss: str = "logprob", max_iter: int | None = None) -> TrainJob:
    """The :class:`TrainJob` of :func:`train_rows`'s arguments (``max_iter`` defaults to ``--max-iter``)."""
    return TrainJob(model_name, input_size, size, domain, patch_dir, loss,
                    max_iter or ctx.opts.pick(ctx.opts.max_iter, 10, 1000))


def train_many(ctx: Ctx, table: Table, plans: list[tuple[TrainJob, list[dict]]]) -> int:
    """:func:`train_rows` for several jobs (variants, models) at once: their chunks go to the engine as one list,
    in order, so a Ray cluster trains the chunks of every job side by side (in this process: one after the other,
    exactly as one train_rows call per job)."""
    opts = ctx.opts
    todo = [(job, [c for c in cfgs if c["config"] not in table.done]) for job, cfgs in plans]
    work = [(job, chunk) for job, cfgs in todo for chunk in chunks(cfgs, opts.pick(opts.batch, 2, 8))]
    if not work or opts.report_only:
        return 0
    t0 = time.perf_counter()
    for job, chunk, rows in ctx.engine.map(ctx, train_chunk, work):
        table.add([r for r in rows if r["config"] not in table.done])
        r0, cfgs = rows[0], dict(plans)[job]
        opts.log(f"[{opts.name}] {len(table.done & {c['config'] for c in cfgs})}/{len(cfgs)} configs "
                 f"({r0['model']}@{r0['input_size']}, {r0['size']}px, {job.domain}): batch of {len(chunk)} took "
                 f"{time.perf_counter() - t0:.0f}s, {sum(bool(r['success_0_9']) for r in rows)} reached p>=0.9")
        t0 = time.perf_counter()
    left = sum(c["config"] not in table.done for _, cfgs in todo for c in cfgs)
    if left and ctx.out_of_time():
        opts.log(f"[{opts.name}] time budget spent: {left} configs left for a later run")
    return sum(len(cfgs) for _, cfgs in todo)


def train_chunk(ctx: Ctx, job: TrainJob, chunk: list[dict]) -> list[dict]:
    """Train one chunk of configs as one batch, save each patch under ``ctx.opts.out`` and return their rows.
    The generator is seeded from the chunk's first config key, so the same chunk gives the same rows anywhere."""
    from attack.images import image_hash
    from attack.io import save_patch
    from attack.patch import area_fraction, corner_loc
    from attack.spec import TrainingSpec
    from attack.train import train_patches

    opts = ctx.opts
    model = ctx.model(job.model_name, job.input_size)
    s = model.input_size
    spec = TrainingSpec(size=job.size or None, domain=job.domain, loss=job.loss, steps=job.max_iter,
                        restarts=opts.restarts if opts.restarts is not None else "auto").resolve(model)
    size = spec.size
    imgs = torch.stack([ctx.image(c["photo"], s, job.model_name) for c in chunk])
    locs = [corner_loc(c["corner"], s, size) for c in chunk]
    results = train_patches(model, imgs, [c["target"] for c in chunk], locs, spec,
                            generator=ctx.gen(7, zlib.crc32(chunk[0]["config"].encode())), cancel=ctx.cancel)
    # Cut by the time budget: every config of the chunk ran in lockstep up to the same iteration, so the
    # evaluations spent by then are the cap all of them had (a success after it could not have been seen).
    cap = max(r.evaluations for r in results) if any(r.cancelled for r in results) else job.max_iter
    rows = []
    for c, img, loc, res in zip(chunk, imgs, locs, results):
        rel = f"patches/{job.patch_dir}/{c['config']}.safetensors"
        res.meta.update(image_hash=image_hash(img), photo=c["photo"], config=c["config"])
        save_patch(opts.out / rel, res)
        rows.append({**c, "model": model.name, "input_size": s, "size": size,
                     "area": area_fraction(size, s), "domain": job.domain, "loss": job.loss,
                     "target_label": label(res.target), "source": res.source, "source_label": label(res.source),
                     "top": loc[0], "left": loc[1], "iterations": res.steps,
                     "success_0_9": res.success["confident"], "argmax_target": res.success["argmax"],
                     "not_source": res.success["not_source"], "p_target": res.p_target,
                     "p_source": res.p_source, "max_p_target": max(res.history["p_target"]),
                     "seconds": res.seconds, "max_iter": cap, "optimizer": res.meta.get("optimizer"),
                     "lr": res.meta.get("lr"), "patch": rel, "restarts": res.meta.get("restarts", 1),
                     "evaluations": res.evaluations})
    return rows


def single_rows(ctx: Ctx) -> list[dict]:
    """Rows of the single experiment in the same --out; runs it (with these options) when it has none yet."""
    from . import run_experiment

    path = ctx.opts.out / "single.csv"
    t = Table(path, TRAIN_FIELDS)
    if not t.rows and not ctx.opts.report_only:
        ctx.opts.log(f"[{ctx.opts.name}] no {path} yet: running `single` first")
        run_experiment(Options(**{**ctx.opts.__dict__, "name": "single"}))
        t = Table(path, TRAIN_FIELDS)
    return t.rows


def pending_single_patches(ctx: Ctx, src: list[dict], table: Table):
    """Yield (row, patch result, model) for each single-image patch in ``src`` whose rows are not yet in ``table``
    (nothing on a --report-only pass): the resumable loop head of fragility, transfer and saliency."""
    from attack.io import load_patch

    for r in src:
        if r["config"] in table.done or ctx.opts.report_only:
            continue
        yield r, load_patch(ctx.opts.out / r["patch"]), ctx.model(r["model"], int(r["input_size"]))
