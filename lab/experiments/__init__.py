"""The paper's experiments, one module each (``lavan reproduce <name>``; the runner is :mod:`lab.reproduce`).

One naming rule: ``lab/experiments/<name>.py`` exposes ``run(ctx) -> dict`` (trains or evaluates, appends rows to
``<out>/<name>.csv`` and returns the summary) and ``summarise(rows, …) -> dict``, a pure function of the CSV rows
that :mod:`lab.reproduce.resummary` calls again when ``make docs`` rewrites the committed reports. Each module is
registered once, in :data:`EXPERIMENTS`.
"""
from __future__ import annotations

from typing import Callable

from ..reproduce.runner import Ctx
from . import brown, classes, crossmodel, defend, fragility, saliency, single, transfer, universal

__all__ = ["EXPERIMENTS", "ENGINE_EXPERIMENTS", "MODULES"]

# In the order the reports and the app list them.
MODULES = {"single": single, "fragility": fragility, "transfer": transfer, "universal": universal,
           "classes": classes, "saliency": saliency, "crossmodel": crossmodel, "brown": brown, "defend": defend}
EXPERIMENTS: dict[str, Callable[[Ctx], dict]] = {name: mod.run for name, mod in MODULES.items()}
# The experiments whose configs train through lab.reproduce.training.train_many, i.e. on the run's engine (--engine
# ray sends their chunks to a Ray cluster; the others always run in this process).
ENGINE_EXPERIMENTS = ("single", "classes", "crossmodel")
