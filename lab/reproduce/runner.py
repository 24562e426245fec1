"""The runner's context: the options that decide what an experiment computes, and per run the models, photos,
seeded generators, the universal split, target draws and the --time-budget clock."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

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
    restarts: int | None = None  # patches per config (None: the trainer's "auto")
    models: tuple[str, ...] | None = None  # crossmodel: the models of the matrix (None: the three Lite models)
    engine: str = "local"  # where chunks of configs train: "local" (this process) or "ray" (lab.reproduce.engine)
    address: str | None = None  # --engine ray: the cluster to join (None: start a local Ray instance)
    command: str = ""
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr, flush=True))

    def pick(self, value, quick, full):
        return value if value is not None else (quick if self.quick else full)


class Ctx:
    """Model and image caches for one run (models are loaded once per (name, size)), and its engine."""

    def __init__(self, opts: Options):
        from attack.images import sample_images

        from .engine import make_engine

        self.opts = opts
        self.engine = make_engine(opts)  # fails here, before any training, when --engine ray lacks Ray
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

    def close(self) -> None:
        """Release the engine (shuts down a Ray instance this run started)."""
        self.engine.close()

    def out_of_time(self) -> bool:
        """True once ``--time-budget`` has run out: trainers stop their active configs at the current iteration
        and that iteration is recorded as those rows' cap, so a report never claims a cap it did not run."""
        return self.deadline is not None and _clock() >= self.deadline

    def model(self, name: str | None = None, size: int | None = None):
        from attack.models import load_model

        key = (name or self.opts.model, size)
        if key not in self._models:
            self._models[key] = load_model(key[0], device=self.device, input_size=size, channels_last=True)
        return self._models[key]

    def image(self, photo: str, size: int, model: str | None = None) -> torch.Tensor:
        """The photo as ``model`` (default: the run's) sees it at ``size``: its own resize, then the centre crop."""
        from attack.images import load_image
        from attack.models import model_spec

        resize = model_spec(model or self.opts.model).resize_for(size)
        key = (photo, size, resize)
        if key not in self._images:
            self._images[key] = load_image(self.by_name[photo].path, size, resize=resize)
        return self._images[key]

    def images(self, photos, size: int, model: str | None = None) -> torch.Tensor:
        return torch.stack([self.image(p.name, size, model) for p in photos])

    def gen(self, *salt: int) -> torch.Generator:
        seed = self.opts.seed
        for s in salt:
            seed = (seed * 1_000_003 + int(s)) % (2 ** 62)
        return torch.Generator().manual_seed(seed)

    def split(self) -> tuple[list, list]:
        """Train/held-out photos for the universal experiments: :func:`attack.images.universal_split` of every sample
        collection at hand (ai-benchmark + package photos + gcompris-qt-data's), shuffled by a generator derived
        from the seed (not the CLI's ai-benchmark-only split): the paper's 100/100 when at least 200 photos are at
        hand, else half and half; 4/4 for --quick."""
        from attack.images import sample_images, universal_split

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
