"""The feasibility meter (attack.meter) on the area table's configs: its band and ceilings at each corner, and the
places ``grid`` and ``meter`` choose from there, one row per (seed, config, size).

    .venv/bin/python bench/meter.py [--seeds 1 2 3 --sizes 32 42 50]

Rows go to ``bench/results/meter.csv``; lab/tables (``meter``) joins them with the training rows of
bench/results/ablation.csv (same draw: bench/area_table.py's ``draw_configs``) for the meter's predictive value and
the paired placement table in docs/ATTACK_STRENGTH.md. The meter is what the app shows (its default 200 solver
steps), timed per call on this machine.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`
sys.path.insert(0, str(Path(__file__).resolve().parent))

from area_table import draw_configs  # noqa: E402
from rows import replace_rows  # noqa: E402

import attack  # noqa: E402
from attack import meter  # noqa: E402

OUT = Path("bench/results/meter.csv")
FIELDS = ["seed", "config", "photo", "target", "corner", "size", "input_size", "model", "top", "left", "band",
          "p_clean", "cells_centre", "cells_touched", "ceiling_centre", "ceiling_touched", "grid_top", "grid_left",
          "grid_band", "grid_ceiling_centre", "grid_ceiling_touched", "meter_top", "meter_left", "meter_band",
          "meter_ceiling_centre", "meter_ceiling_touched", "seconds"]


def row_for(model, img: torch.Tensor, seed: int, i: int, cfg: tuple[str, int, str], size: int) -> dict:
    name, target, corner = cfg
    loc = attack.corner_loc(corner, model.input_size, size)
    t = time.perf_counter()
    m = meter.meter(model, img, target, size, loc)
    seconds = time.perf_counter() - t
    g = meter.place(model, img, target, size, loc, "grid")
    at_grid = meter.meter(model, img, target, size, g) if g != loc else m
    r4 = lambda x: "" if x is None else round(x, 4)  # noqa: E731
    return dict(seed=seed, config=i, photo=name, target=target, corner=corner, size=size,
                input_size=model.input_size, model=model.name, top=loc[0], left=loc[1], band=m.band,
                p_clean=r4(m.p_clean), cells_centre=m.cells_centre, cells_touched=m.cells_touched,
                ceiling_centre=r4(m.ceiling_centre), ceiling_touched=r4(m.ceiling_touched), grid_top=g[0],
                grid_left=g[1], grid_band=at_grid.band, grid_ceiling_centre=r4(at_grid.ceiling_centre),
                grid_ceiling_touched=r4(at_grid.ceiling_touched), meter_top=m.best_loc[0], meter_left=m.best_loc[1],
                meter_band=m.best_band, meter_ceiling_centre=r4(m.best_ceiling_centre),
                meter_ceiling_touched=r4(m.best_ceiling_touched), seconds=round(seconds, 3))


def run(args) -> list[dict]:
    torch.set_num_threads(args.threads)
    model = attack.load_model(args.model)
    photos = {p.name: p for p in attack.sample_images(("ai-benchmark",))}
    rows = []
    for seed in args.seeds:
        for i, cfg in enumerate(draw_configs(args.configs, seed)):
            img = attack.load_image(photos[cfg[0]].path, model.input_size)
            for size in args.sizes:
                rows.append(row_for(model, img, seed, i, cfg, size))
                print(rows[-1], flush=True)
    key = lambda r: (str(r["model"]), int(r["input_size"]), int(r["seed"]), int(r["config"]),  # noqa: E731
                     int(r["size"]))
    replace_rows(OUT, FIELDS, rows, key)  # rows of other seeds / sizes stay; this run's replace their old selves
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 42, 50])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--threads", type=int, default=1)
    run(ap.parse_args())


if __name__ == "__main__":
    main()
