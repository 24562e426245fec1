"""The runner's plumbing: options, the per-run context (models, photos, seeds, --time-budget), the resumable CSV
table, config draws, and the batched training of single-image configs that several experiments share."""
from __future__ import annotations

import csv
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch


_clock = time.monotonic  # the --time-budget clock (tests replace it with a counter)
LITE_MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
FIXED_CLASSES = (980, 429, 859)  # volcano, baseball, toaster (the paper's examples)
TRAIN_FIELDS = ["config", "variant", "model", "input_size", "size", "area", "domain", "loss", "photo", "target",
                "target_label", "source", "source_label", "corner", "top", "left", "iterations", "success_0_9",
                "argmax_target", "not_source", "p_target", "p_source", "max_p_target", "seconds", "max_iter",
                "optimizer", "lr", "patch"]


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


class Ctx:
    """Model and image caches for one run (models are loaded once per (name, size))."""

    def __init__(self, opts: Options):
        from ..images import sample_images

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
        from ..models import load_model

        key = (name or self.opts.model, size)
        if key not in self._models:
            self._models[key] = load_model(key[0], device=self.device, input_size=size, channels_last=True)
        return self._models[key]

    def image(self, photo: str, size: int) -> torch.Tensor:
        from ..images import load_image

        key = (photo, size)
        if key not in self._images:
            self._images[key] = load_image(self.by_name[photo].path, size)
        return self._images[key]

    def images(self, photos, size: int) -> torch.Tensor:
        return torch.stack([self.image(p.name, size) for p in photos])

    def gen(self, *salt: int) -> torch.Generator:
        seed = self.opts.seed
        for s in salt:
            seed = (seed * 1_000_003 + int(s)) % (2 ** 62)
        return torch.Generator().manual_seed(seed)

    def split(self) -> tuple[list, list]:
        """Train/held-out photos for the universal experiments (:func:`attack.images.universal_split`, shuffled by
        the seed): the paper's 100/100 when at least 200 sample photos are at hand (ai-benchmark + package photos +
        gcompris-qt-data's), else half and half; 4/4 for --quick."""
        from ..images import sample_images, universal_split

        photos = sample_images()
        n = 4 if self.opts.quick else (100 if len(photos) >= 200 else (len(photos) + 1) // 2)
        return universal_split(photos, n, 4 if self.opts.quick else min(n, len(photos) - n), self.gen(3))

    def targets(self, n: int, salt: int) -> list[int]:
        """The paper's volcano, baseball, toaster, then classes drawn from the seed, ``n`` in all."""
        out = list(FIXED_CLASSES[:n])
        g = self.gen(salt)
        while len(out) < n:
            t = int(torch.randint(1000, (1,), generator=g))
            if t not in out:
                out.append(t)
        return out


class Table:
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


def chunks(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), max(1, n)):
        yield items[i:i + n]


def label(i: int) -> str:
    from ..models import class_names

    return class_names()[int(i)]


def draw_configs(ctx: Ctx, n: int, salt: int = 0, photos=None) -> list[dict]:
    """n (photo, target, corner) draws from the seed; the i-th draw is the same whatever n is."""
    from ..patch import CORNERS

    photos = photos or ctx.photos
    out = []
    for i in range(n):
        g = ctx.gen(salt, i)
        p = photos[int(torch.randint(len(photos), (1,), generator=g))]
        t = int(torch.randint(1000, (1,), generator=g))
        c = CORNERS[int(torch.randint(4, (1,), generator=g))]
        out.append({"i": i, "photo": p.name, "target": t, "corner": c})
    return out


def train_rows(ctx: Ctx, table: Table, cfgs: list[dict], *, model_name: str, input_size: int | None,
               size: int | None, domain: str, patch_dir: str, loss: str = "logprob",
               max_iter: int | None = None) -> int:
    """Train the configs not yet in ``table`` in batches of ``--batch`` and append one row per config."""
    from ..images import image_hash
    from ..io import save_patch
    from ..patch import area_fraction, corner_loc
    from ..train import default_patch_size, train_patches

    opts = ctx.opts
    todo = [c for c in cfgs if c["config"] not in table.done]
    if not todo or opts.report_only:
        return 0
    model = ctx.model(model_name, input_size)
    s = model.input_size
    size = int(size or default_patch_size(s))
    max_iter = max_iter or opts.pick(opts.max_iter, 10, 1000)
    for chunk in chunks(todo, opts.pick(opts.batch, 2, 8)):
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
                         "target_label": label(res.target), "source": res.source, "source_label": label(res.source),
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
    from ..io import load_patch

    for r in src:
        if r["config"] in table.done or ctx.opts.report_only:
            continue
        yield r, load_patch(ctx.opts.out / r["patch"]), ctx.model(r["model"], int(r["input_size"]))
