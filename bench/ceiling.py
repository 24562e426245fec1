"""How far *can* a corner patch push EfficientNet-Lite? A ceiling from the network's last layers.

EfficientNet-Lite ends with ``ReLU6 -> global average pool over a 7×7 grid (224 input, stride 32) -> linear``. Every
pooled feature is the mean of 49 cells, each in [0, 6]. A patch can drive the cells it dominates anywhere in that
box, but it cannot make any of them larger than 6 — unlike Inception v3's plain ReLU, where a patch can produce
activations large enough to outweigh the rest of the image (the reason the paper's 2% works there).

For each config this script fixes every cell at its clean value except a set of *free* cells, and finds the highest
p(target) the linear head allows when the free cells may take any values in [0, 6]: log p(target) is concave in the
free features (an affine map followed by log-softmax), so projected Adam finds the maximum over the box. Two sets:

* ``centre``: the cells whose centre (32·i + 16 px) lies inside the patch — what the patch covers fully;
* ``touched``: every cell whose 32×32 footprint overlaps the patch — a looser bound (in a deep network the patch
  also reaches further cells, partially, so neither set is a strict upper bound on what training can do).

    .venv/bin/python bench/ceiling.py [--configs 10 --seeds 1 2 --sizes 42 50]

Rows go to ``bench/results/ceiling.csv`` beside the p(target) that training reached in ``bench/results/ablation.csv``
(same config draw as bench/area_table.py), so the table reads "could it, and did it".
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`
sys.path.insert(0, str(Path(__file__).resolve().parent))

from area_table import draw_configs  # noqa: E402
from rows import replace_rows  # noqa: E402

import attack  # noqa: E402
from attack import meter  # noqa: E402
from attack.patch import corner_loc  # noqa: E402

OUT = Path("bench/results/ceiling.csv")
FIELDS = ["seed", "config", "photo", "target", "corner", "margin", "size", "input_size", "cells_centre", "cells_touched",
          "p_clean", "ceiling_centre", "ceiling_touched"]


def head_parts(model):
    """(the module whose output or input is the last grid, final linear layer, feature cap) of the model's head
    (attack.meter.find_head: EfficientNet-Lite, or a torchvision CNN ending in a global mean and one linear layer)."""
    head = meter.find_head(model)
    if head is None:
        raise SystemExit(f"{model.name}: its head is not a global mean over a last grid")
    return head.module, head.fc, head.cap


def clean_features(model, image: torch.Tensor) -> torch.Tensor:
    """The (C, g, g) feature grid that the global average pool receives for one [0,1] image."""
    return meter.grid_features(model, image)[0]


cells = meter.cells  # (centre cells, touched cells) of a patch at loc on a grid×grid feature map


def ceiling(feats: torch.Tensor, fc: torch.nn.Linear, free: list, target: int, cap: float,
            steps: int = 1500) -> float:
    """Highest p(target) with the ``free`` cells anywhere in [0, cap] and the others at their clean values
    (attack.meter.head_ceiling: projected Adam on the free cells' sum, gradient written out)."""
    return meter.head_ceiling(feats, fc.weight, fc.bias, [free], target, cap, steps)[0]


def run(args) -> list[dict]:
    torch.set_num_threads(args.threads)
    model = attack.load_model(args.model, input_size=args.input_size)
    _, fc, cap = head_parts(model)
    if cap is None:
        raise SystemExit(f"{model.name}: its last grid has no cap (ReLU), so the head sets no ceiling")
    photos = {p.name: p for p in attack.sample_images(("ai-benchmark",))}
    rows = []
    for seed in args.seeds:
        for i, (name, target, corner) in enumerate(draw_configs(args.configs, seed)):
            img = attack.load_image(photos[name].path, model.input_size)
            feats = clean_features(model, img)
            if float(feats.max()) > cap + 1e-4:
                raise SystemExit(f"features exceed the cap {cap}: this head is not ReLU6")
            g = feats.shape[-1]
            stride = model.input_size // g
            for size in args.sizes:
                loc = corner_loc(corner, model.input_size, size, margin=args.margin)
                centre, touched = cells(loc, size, g, stride)
                solved = {}  # the same cell set is solved once (e.g. 50 px: the full and overlapped cells agree)

                def solve(free):
                    key = tuple(free)
                    if key not in solved:
                        solved[key] = round(ceiling(feats, fc, free, target, cap, steps=args.steps), 4)
                    return solved[key]
                row = dict(seed=seed, config=i, photo=name, target=target, corner=corner, margin=args.margin,
                           size=size, input_size=model.input_size, cells_centre=len(centre),
                           cells_touched=len(touched), p_clean=solve([]), ceiling_centre=solve(centre),
                           ceiling_touched=solve(touched))
                rows.append(row)
                print(row, flush=True)
    key = lambda r: (int(r["seed"]), int(r["config"]), int(r["size"]), int(r["input_size"]),  # noqa: E731
                     int(r.get("margin") or 0))
    replace_rows(OUT, FIELDS, rows, key)  # rows of other sizes / input sizes stay; this run's replace theirs
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 42, 50, 63])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--input-size", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=600, help="projected Adam steps per ceiling")
    ap.add_argument("--margin", type=int, default=0, help="patch this many pixels in from its corner")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
