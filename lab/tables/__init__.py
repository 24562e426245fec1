"""Readers and summaries of the committed benchmark results (``bench/results/``), as data and as Markdown.

The bench scripts write the rows; this package is the one place that turns them into the tables that README.md and
the docs/ pages (:mod:`lab.docs`), the app's "Paper vs us" page (``ui/reports/``) and the scripts' own
``--report`` show. Pure functions of rows: no torch, no model, no streamlit. One module per data source:

  rows       the results folder, ``read_rows`` (any results CSV), ``median`` and ``fmt``
  area       bench/area_table.py: success against patch area; Adam against plain gradient steps
  ablation   bench/ablation.py: the trainer's variants, per config; paired comparisons of two variants
  budget     the ablation's long runs as success-vs-budget curves; the best of all runs per config
  defaults   the area table of today's defaults (ablation rows trained with exactly the default settings)
  placement  bench/placement.py: the location map's best cell against the corners
  ceiling    bench/ceiling.py: what the last layers would allow, beside what training reached
  meter      bench/meter.py: the feasibility meter's bands against training; exact corner vs grid vs meter
  vs_art     bench/vs_art.py: our trainer against ART's AdversarialPatchPyTorch
  tune_lr    bench/tune_lr.py: the step-size sweep
  printed    the committed printouts of bench scripts (speed, input size, payload, load)

Everything is re-exported here (``from lab import tables; tables.summarise_area(...)``).

Example: >>> cells = summarise_area(read_rows("bench/results/area_table.csv", max_iter=2000))
"""
from __future__ import annotations

from .ablation import (
                       ABLATION_DEFAULTS,
                       LEGACY_LR,
                       RULE_NAMES,
                       ablation_groups,
                       ablation_markdown,
                       describe_variant,
                       paired_ablation,
                       paired_markdown,
                       placement_of,
                       read_ablation,
                       summarise_ablation,
)
from .area import OPTIMIZER_NAMES, area_markdown, compare_markdown, compare_optimisers, summarise_area
from .budget import BUDGET_STEPS, LONG_BUDGET, best_of_runs, budget_curves, budget_markdown
from .ceiling import ceiling_markdown, summarise_ceiling
from .defaults import DEFAULT_AREAS, default_area_cells, default_area_markdown, default_fields_by_area, describe_default
from .meter import (
                       BANDS,
                       PLACES,
                       auc,
                       meter_bands,
                       meter_joined,
                       meter_markdown,
                       placement_wins,
                       places_markdown,
                       read_meter,
                       summarise_places,
)
from .placement import PLACEMENT_KINDS, placement_markdown, read_placement, summarise_placement
from .printed import printed_table, printed_tables
from .rows import RESULTS, ROOT, fmt, median, read_rows
from .tune_lr import summarise_tune_lr
from .vs_art import VS_ART_METHODS, paired, summarise_vs_art, vs_art_markdown

__all__ = ["BANDS", "PLACES", "auc", "meter_bands", "meter_joined", "meter_markdown", "places_markdown",
           "placement_of", "placement_wins", "read_meter", "summarise_places", "ABLATION_DEFAULTS", "BUDGET_STEPS", "DEFAULT_AREAS", "LEGACY_LR", "LONG_BUDGET", "OPTIMIZER_NAMES",
           "PLACEMENT_KINDS", "RESULTS", "ROOT", "RULE_NAMES", "VS_ART_METHODS", "ablation_groups",
           "ablation_markdown", "area_markdown", "best_of_runs", "budget_curves", "budget_markdown",
           "ceiling_markdown", "compare_markdown", "compare_optimisers", "default_area_cells",
           "default_area_markdown", "default_fields_by_area", "describe_default", "describe_variant", "fmt",
           "median", "paired", "paired_ablation", "paired_markdown", "placement_markdown", "printed_table",
           "printed_tables", "read_ablation", "read_placement", "read_rows", "summarise_ablation", "summarise_area",
           "summarise_ceiling", "summarise_placement", "summarise_tune_lr", "summarise_vs_art", "vs_art_markdown"]
