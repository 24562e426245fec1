"""The README's area tables as the Paper page shows them: the measured cells of ``area_table.csv`` and the table of
today's defaults from ``ablation.csv``, each re-read only when its CSV changes; never raises."""
from __future__ import annotations

from pathlib import Path

from lab import tables

from .files import _by_files, ablation_path, area_table_path, shown


def default_area_table(path: str | Path | None = None, input_size: int = 224) -> tuple[list[dict], str | None]:
    """(rows, warning or None): the area table of today's defaults (README "Area table with today's defaults"),
    one row per (domain, area), "not measured yet" where no row exists; never raises. Kept until a CSV changes."""
    path = Path(path) if path is not None else ablation_path()
    return _by_files(f"default_area:{input_size}", (path, area_table_path()),
                     lambda: _default_area_table(path, input_size))


def _default_area_table(path: Path, input_size: int) -> tuple[list[dict], str | None]:
    if not path.is_file():
        return [], f"`{shown(path)}` does not exist yet: run `.venv/bin/python bench/ablation.py`."
    try:
        cells = tables.default_area_cells(tables.read_ablation(path), tables.read_rows(area_table_path()),
                                          tables.default_fields_by_area(input_size), input_size=input_size)
    except Exception as e:  # noqa: BLE001
        return [], f"`{shown(path)}` could not be summarised ({type(e).__name__}: {e})."
    rows = []
    for c in cells:
        n = c["configs"]
        rows.append({"domain": c["domain"], "area": f"{c['area']:.1%}", "patch (px)": c["size"],
                     "default training": tables.describe_default(c), "configs": n,
                     f"p ≥ 0.9 within {c['budget']:,} evaluations": (
                         f"{c['successes']}/{n} ({c['successes'] / n:.0%})" if n else "not measured yet"),
                     "target top-1": f"{c['argmax']}/{n}" if n else "–",
                     "median evaluations (successes)": tables.fmt(c["median_evaluations"]),
                     "median CPU s (successes)": tables.fmt(c["median_seconds"])})
    return rows, None


def area_table(path: str | Path | None = None) -> tuple[list[dict], str | None]:
    """(rows for a table, warning or None). One row per measured cell; never raises. Kept until the CSV changes."""
    path = Path(path) if path is not None else area_table_path()
    return _by_files("area", (path,), lambda: _area_table(path))


def _area_table(path: Path) -> tuple[list[dict], str | None]:
    if not path.is_file():
        return [], f"`{shown(path)}` does not exist yet: run `.venv/bin/python bench/area_table.py`."
    try:
        cells = tables.summarise_area(tables.read_rows(path))
    except Exception as e:  # noqa: BLE001
        return [], f"`{shown(path)}` could not be summarised ({type(e).__name__}: {e})."
    rows = [{"optimiser": c["name"], "domain": c["domain"], "area": f"{c['area']:.1%}",
             "patch (px on 224)": c["size"], "cap (it)": c["max_iter"], "configs": c["configs"],
             "p ≥ 0.9 within cap": f"{c['successes']}/{c['configs']}",
             "within 1,000 it": f"{c['within_1000']}/{c['configs']}",
             "median it (successes)": (f"{c['median_it']:.0f} ({c['min_it']}–{c['max_it']})" if c["successes"]
                                       else "–"),
             "target top-1": f"{c['argmax']}/{c['configs']}", "source removed": f"{c['not_source']}/{c['configs']}"}
            for c in cells]
    return rows, None
