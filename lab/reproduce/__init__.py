"""``python -m lab reproduce <name>``: the paper's experiments as resumable runs with committed reports.

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
  defend      beyond the paper: PatchCleanser double masking and occlusion against the single patches and on clean photos

The experiments themselves are :mod:`lab.experiments` (``<name>.py`` with ``run(ctx)`` and a pure ``summarise``).
Modules here: ``runner`` (options and the per-run context), ``table`` (the resumable CSV), ``training`` (config
draws, batched single-image training, the single patches later experiments reuse), ``engine`` (where chunks of
configs train: this process, or Ray tasks with ``--engine ray``; docs/SCALE.md), ``stats`` (shared pure helpers),
``report`` (JSON + Markdown), ``resummary`` (a report recomputed from its committed rows), ``plots`` (PNG) and
``cli`` (the sub-command).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..findings import PAPER
from .cli import add_parser
from .report import TITLES, load_report, trained_sessions, write_report
from .runner import Ctx, Options

__all__ = ["PAPER", "TITLES", "Options", "run_experiment", "load_report", "add_parser", "trained_sessions"]


def run_experiment(opts: Options) -> dict:
    """Run (or resume) one experiment, write its CSV/MD/PNG/JSON into ``opts.out`` and return the summary dict."""
    from ..experiments import ENGINE_EXPERIMENTS, EXPERIMENTS

    if opts.name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {opts.name!r}; choose one of {', '.join(EXPERIMENTS)}")
    if opts.threads:
        torch.set_num_threads(int(opts.threads))
    opts.out = Path(opts.out)
    opts.out.mkdir(parents=True, exist_ok=True)
    if not opts.command:
        opts.command = f"python -m lab reproduce {opts.name}" + (" --quick" if opts.quick else "")
    t0 = time.perf_counter()
    ctx = Ctx(opts)
    if ctx.engine.name != "local" and opts.name not in ENGINE_EXPERIMENTS:
        opts.log(f"[{opts.name}] trains in this process: only {', '.join(ENGINE_EXPERIMENTS)} send configs to "
                 f"--engine {ctx.engine.name}")
    try:
        out = EXPERIMENTS[opts.name](ctx)
    finally:
        ctx.close()
    report = write_report(opts, out, time.perf_counter() - t0, ctx.device)
    return report["summary"]

