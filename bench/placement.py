"""Where to put the patch: the vulnerability map's best cell against the four corners (issue 15).

For each config (photo, target; drawn with bench/area_table.py's seed so the photos and targets are the same draw),
first :func:`attack.vulnerability_map` (a short attack of --map-steps evaluations at every cell of a --stride grid,
one batch), then one attack of --budget forward+backward evaluations at the map's best cell and one at each of the
four corners (five rows of one train_patches batch, all starting from the same seed). Same patch size, domain and
budget at every location; a config stops at p(target) >= 0.9. Each finished config appends its six rows (kind
``map``, ``best``, and the four corners) to bench/results/placement.csv at once, so a stopped run resumes where it
stopped.

    .venv/bin/python bench/placement.py --configs 20 --threads 1     # run / resume
    .venv/bin/python bench/placement.py --report                    # markdown table (lab.tables)
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`

import attack  # noqa: E402
from attack.defend import vulnerability_map  # noqa: E402
from attack.patch import CORNERS, corner_loc  # noqa: E402
from attack.train import default_patch_size  # noqa: E402
from lab import tables  # noqa: E402

OUT = Path("bench/results/placement.csv")
FIELDS = ["config", "seed", "photo", "target", "kind", "top", "left", "size", "domain", "stride", "map_steps",
          "budget", "success", "p_target", "evaluations", "cpu_s", "best_is_corner", "cells", "machine"]


def draw_configs(n: int, seed: int) -> list[tuple[str, int]]:
    """(photo, target) of bench/area_table.py's draw (its corner is not used: every config tries all four)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from area_table import draw_configs as area_draw
    return [(name, target) for name, target, _ in area_draw(n, seed)]


def done(path: Path = OUT) -> set[tuple]:
    return {(int(r["seed"]), int(r["config"]), int(r["stride"]), int(r["map_steps"]), int(r["budget"]))
            for r in tables.read_placement(path) if r["kind"] == "map"}


def append_rows(rows: list[dict], path: Path = OUT) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new:
            w.writeheader()
        w.writerows(rows)


def run(args) -> None:
    torch.set_num_threads(args.threads)
    model = attack.load_model(args.model, channels_last=True)
    n_in = model.input_size
    size = args.size or default_patch_size(n_in)
    photos = {p.name: p for p in attack.sample_images(("ai-benchmark",))}
    machine = f"{platform.machine()} {os.cpu_count()} cores torch {torch.__version__} threads {args.threads}"
    cfgs = draw_configs(args.configs, args.seed)
    have = done()
    for i, (name, target) in enumerate(cfgs):
        if (args.seed, i, args.stride, args.map_steps, args.budget) in have:
            continue
        img = attack.load_image(photos[name].path, n_in)
        common = dict(config=i, seed=args.seed, photo=name, target=target, size=size, domain=args.domain,
                      stride=args.stride, map_steps=args.map_steps, budget=args.budget, machine=machine)
        s = args.seed * 1000 + i
        m = vulnerability_map(model, img, target, size=size, stride=args.stride, steps=args.map_steps,
                              domain=args.domain, generator=torch.Generator().manual_seed(s))
        corners = [corner_loc(c, n_in, size) for c in CORNERS]
        rows = [dict(common, kind="map", top=m.best_loc[0], left=m.best_loc[1], success="",
                     p_target=round(float(m.p_target.max()), 4), evaluations=int(m.evaluations.sum()),
                     cpu_s=round(m.cpu_s, 1), best_is_corner=int(tuple(m.best_loc) in corners),
                     cells=m.p_target.numel())]
        locs = [m.best_loc] + corners
        t0 = time.process_time()
        res = attack.train_patches(model, img.unsqueeze(0).expand(len(locs), -1, -1, -1), [target] * len(locs),
                                   torch.tensor(locs), size=size, domain=args.domain, steps=args.budget,
                                   seeds=[s] * len(locs))
        cpu = time.process_time() - t0
        for kind, loc, r in zip(["best", *CORNERS], locs, res):
            rows.append(dict(common, kind=kind, top=loc[0], left=loc[1], success=int(r.succeeded),
                             p_target=round(r.p_target, 4), evaluations=r.evaluations,
                             cpu_s=round(cpu / len(locs), 1), best_is_corner="", cells=""))
        append_rows(rows)
        print(f"config {i} {name} -> {target}: map best {m.best_loc} p={m.p_target.max():.3f} "
              f"({int(m.evaluations.sum())} evals, {m.cpu_s:.0f} CPU s); "
              + " ".join(f"{k}={int(r.succeeded)}/{r.evaluations}" for k, r in zip(["best", *CORNERS], res)),
              flush=True)


def report(path: Path = OUT) -> str:
    return tables.placement_markdown(tables.summarise_placement(tables.read_placement(path)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stride", type=int, default=56)
    ap.add_argument("--map-steps", type=int, default=10, help="evaluations per map cell")
    ap.add_argument("--budget", type=int, default=200, help="forward+backward evaluations per location")
    ap.add_argument("--size", type=int, default=None, help="patch side (default: the default patch size)")
    ap.add_argument("--domain", default="network", choices=["image", "network"])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        print(report())
        return
    run(args)


if __name__ == "__main__":
    main()
