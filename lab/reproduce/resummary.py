"""Every report's summary, paper-vs-ours table and notes recomputed from its committed CSV rows, without a model,
a photo or a GPU: the pure ``summarise*`` function of its experiment, fed the rows and the run's parameters (which
the report's JSON records). ``python -m lab docs`` rewrites a report whose JSON or Markdown differs from this, and
``tests/test_docs.py`` fails on it, so a report's figures can only come from its rows.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from ..experiments import brown, classes, crossmodel, defend, fragility, saliency, single, transfer, universal
from .stats import b
from .table import Table
from .training import TRAIN_FIELDS


def _rows(out: Path, name: str) -> list[dict]:
    return Table(out / f"{name}.csv", TRAIN_FIELDS).rows if (out / f"{name}.csv").is_file() else []


def _single_sources(out: Path, s: dict) -> list[dict]:
    """The single rows whose patches fragility/transfer/saliency used (the successful ones, or all in a quick
    fallback), keyed by config."""
    rows = _rows(out, "single")
    return rows if s.get("fallback_unsuccessful_patches") else [r for r in rows if b(r["success_0_9"])]


def summarise(name: str, out: str | Path, rep: dict) -> dict:
    """The summary (with ``_table`` and ``_notes``) that the rows in ``out`` give for report ``rep``."""
    out, s = Path(out), rep["summary"]
    rows = _rows(out, name)
    if name == "single":
        variants = list(s["by_variant"])
        return single.summarise(rows, variants, s["planned"], s["planned"] // max(1, len(variants)))
    if name in ("fragility", "transfer", "saliency"):
        keep = {r["config"] for r in _single_sources(out, s)}
        rows = [r for r in rows if r["config"] in keep]
        if name == "fragility":
            return fragility.summarise(rows, s["planned"], s["fallback_unsuccessful_patches"])
        if name == "transfer":
            return transfer.summarise(rows, s["planned"], s["dst_photos_per_patch"], s["fallback_unsuccessful_patches"])
        return saliency.summarise(rows, list(s["by_method"]), s["planned"], 4 if rep.get("quick") else 32,
                                  s["fallback_unsuccessful_patches"])
    if name == "classes":
        targets = [d["target"] for d in s["by_class"].values()]
        return classes.summarise([r for r in rows if int(r["target"]) in targets], targets, s["photos_per_class"],
                                 s["planned"])
    if name == "crossmodel":
        trained = _rows(out, "crossmodel_train")
        return crossmodel.summarise(rows, len(trained), s["planned"], s["iteration_cap"], rep.get("quick", False))
    if name == "universal":
        collections = s.get("collections") or re.search(r"from the (.*) photos at hand", rep["notes"][0]).group(1)
        side = round(s["size"] / s["area"] ** 0.5)
        return universal.summarise(rows, s["planned"], s["size"], side, s["max_steps"], collections)
    if name == "brown":
        return brown.summarise(rows, s["planned"], s["sizes"], s["max_steps"], s["train_photos"], s["test_photos"])
    if name == "defend":
        return defend.summarise(rows, s["planned_patches"], s["planned_photos"], s["sizes"], s["k"],
                                s["fallback_unsuccessful_patches"], singles=_single_sources(out, s))
    raise ValueError(f"unknown report {name!r}")


def refreshed(path: Path) -> dict:
    """Report ``path`` (``<out>/<name>.json``) with its summary, table and notes recomputed from its rows; the run's
    record (commands, machines, sessions, wall time) is kept as it is."""
    rep = json.loads(path.read_text())
    out = summarise(rep["name"], path.parent, rep)
    table, notes = out.pop("_table"), out.pop("_notes")
    return {**rep, "summary": json.loads(json.dumps(out, default=str)), "configs_done": out.get("configs"),
            "table": [{"what": a, "paper": p, "ours": o} for a, p, o in table], "notes": notes}
