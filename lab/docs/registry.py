"""The block registry of :mod:`lab.docs`: ``@block(name)`` registers ``fn(root) -> markdown`` for the marker pair
``<!-- BEGIN gen:name -->``/``<!-- END gen:name -->``; the committed printouts of bench scripts register here too."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable

from .. import tables

ROOT = Path(__file__).resolve().parents[2]
# The Markdown pages with generated blocks: the front page and the lab notebook it links.
DOCUMENTS = ("README.md", "docs/ATTACK_STRENGTH.md", "docs/BENCHMARKS.md", "docs/APP.md", "docs/PAPER_VS_US.md",
             "docs/SCALE.md")
RESULTS = Path("bench/results")
BLOCKS: dict[str, Callable[[Path], str]] = {}
_BLOCK = re.compile(r"^([ \t]*)<!-- BEGIN gen:([\w-]+) -->\n(.*?)^[ \t]*<!-- END gen:\2 -->", re.S | re.M)


def block(name: str):
    """Register ``fn(root) -> markdown`` as the generator of the blocks called ``name``."""
    def deco(fn):
        BLOCKS[name] = fn
        return fn
    return deco


# Tables that a bench script printed and whose printout is committed in bench/results/: block -> (file, table index).
PRINTED_TABLES = {"input-size": ("input_size.txt", 0), "speed-cpu": ("speed.txt", 0),
                  "speed-h200": ("speed_h200.txt", 0), "payload": ("payload.txt", 0),
                  "payload-2": ("payload_2026-12-01.txt", 0),
                  "h200-batch-sizes": ("h200_batch_sizes.txt", 0),
                  "load-gc-default": ("load_2026-11-25_gc_default.txt", 0),
                  "load-gc-off": ("load_2026-11-25_gc_off.txt", 0), "load-gc-off-rss": ("load_2026-11-25_gc_off.txt", 1),
                  "speed-steps": ("speed_steps.txt", 0), "speed-steps-2": ("speed_steps_2.txt", 0),
                  "speed-steps-3": ("speed_steps_3.txt", 0),
                  "coldstart": ("coldstart.txt", 0), "coldstart-idle": ("coldstart_idle.txt", 0),
                  "load30-nice10": ("load30_2026-12-01_nice10.txt", 0),
                  "load30-nice10-rss": ("load30_2026-12-01_nice10.txt", 1),
                  "load30-nice0": ("load30_2026-12-01_nice0.txt", 0),
                  "coldstart-before": ("coldstart_before.txt", 0),
                  "load30-charts-1": ("load30_2026-12-01_charts_run1.txt", 0),
                  "load30-charts-2": ("load30_2026-12-01_charts_run2.txt", 0),
                  "load30-charts-2-rss": ("load30_2026-12-01_charts_run2.txt", 1),
                  "load30-charts-2-gil": ("load30_2026-12-01_charts_run2.txt", 4),
                  "load30-before-charts-1": ("load30_2026-12-01_before_charts_run1.txt", 0),
                  "load30-before-charts-2": ("load30_2026-12-01_before_charts_run2.txt", 0),
                  "load30-before-charts-2-gil": ("load30_2026-12-01_before_charts_run2.txt", 4),
                  "pages": ("pages_2026-12-06.txt", 0), "pages-controls": ("pages_2026-12-06.txt", 1),
                  "pages-before": ("pages_2026-12-06_before.txt", 0),
                  "pages-before-controls": ("pages_2026-12-06_before.txt", 1),
                  "pages-meter-controls": ("pages_meter_2026-12-06.txt", 1),
                  "load30-2026-12-06-1": ("load30_2026-12-06_run1.txt", 0),
                  "load30-2026-12-06-2": ("load30_2026-12-06_run2.txt", 0)}
# Of those, the printouts saved as the bench printed them (the others are transcribed and say from where).
RAW_PRINTOUTS = ("speed.txt", "speed_steps.txt", "speed_steps_2.txt", "speed_steps_3.txt", "coldstart.txt",
                 "coldstart_idle.txt", "coldstart_before.txt", "load30_2026-12-01_nice10.txt",
                 "load30_2026-12-01_nice0.txt", "payload_2026-12-01.txt",
                 "load30_2026-12-01_charts_run1.txt", "load30_2026-12-01_before_charts_run1.txt",
                 "load30_2026-12-01_charts_run2.txt", "load30_2026-12-01_before_charts_run2.txt",
                 "pages_2026-12-06.txt", "pages_2026-12-06_before.txt", "pages_meter_2026-12-06.txt",
                 "pages_transfer_before_1.txt", "pages_transfer_after_1.txt", "pages_transfer_before_2.txt",
                 "pages_transfer_after_2.txt",
                 "load30_2026-12-06_run1.txt",
                 "load30_2026-12-06_run2.txt")
for _name, (_file, _index) in PRINTED_TABLES.items():
    block(_name)(lambda root, _file=_file, _index=_index:
                 "\n".join(tables.printed_table(root / RESULTS / _file, _index)[1]))


def report(root: Path, name: str) -> dict | None:
    try:
        return json.loads((root / "reports" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None
