"""The "Paper vs us" page's data: the reproduce runner's ``reports/`` and the README's area table, read defensively.

``python -m lab reproduce <name>`` writes ``<name>.json/.csv/.md/.png`` (see :mod:`lab.reproduce`). Here each
experiment becomes a :class:`ReportView`: the paper-vs-ours table, the run facts (command, model, seed, machine,
wall time, scale against the full scale) and a plotly figure redrawn from the CSV (or the summary JSON), falling
back to the committed PNG. Nothing here raises on a missing, partial or malformed file: the view says ``missing``
or ``broken`` and carries the message the page shows as a warning. No streamlit import: the page draws.

The folder is ``reports/`` next to app.py, or ``$LAVAN_REPORTS_DIR``; the area table is
``bench/results/area_table.csv`` or ``$LAVAN_AREA_TABLE`` (summarised by :func:`lab.tables.summarise_area`, the
same code that writes the README's table); the area table of today's defaults reads ``bench/results/ablation.csv``
or ``$LAVAN_ABLATION`` (:func:`lab.tables.default_area_cells`, as the README's).

This package's modules:

* :mod:`.files` — the folders and files read, paths as a page may show them, and the keep-until-changed cache.
* :mod:`.views` — :class:`ReportView`, :func:`load_view` (one experiment) and :func:`load_all` (every one).
* :mod:`.facts` — the run facts: command, model, seed, machine, wall time, scale against the full scale.
* :mod:`.figures` — the plotly figure of each experiment (``FIGURES``).
* :mod:`.area` — the README's area tables (:func:`area_table`, :func:`default_area_table`).

The names below are the page's interface (``pages/7_paper.py``).
"""
from __future__ import annotations

from . import area, facts, figures, files, views
from .area import area_table, default_area_table
from .facts import FULL_SCALE, MODEL_NAMES, model_label, public_command, run_command, scale
from .figures import FIGURES, PAPER_SINGLE
from .files import ROOT, ablation_path, area_table_path, reports_dir, shown
from .views import EXPERIMENTS, ReportView, load_all, load_view

__all__ = ["EXPERIMENTS", "FIGURES", "FULL_SCALE", "MODEL_NAMES", "PAPER_SINGLE", "ROOT", "ReportView", "ablation_path",
           "area", "area_table", "area_table_path", "default_area_table", "facts", "figures", "files", "load_all",
           "load_view", "model_label", "public_command", "reports_dir", "run_command", "scale", "shown", "views"]
