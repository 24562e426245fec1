"""Quick step-size probe: median iterations to p(target) >= 0.9 over a few random corner configs.

Usage: python bench/tune_lr.py --optimizer adam --domain network --lrs 0.03 0.1 0.3 --configs 4 --steps 300
Writes rows to bench/results/tune_lr.csv (appends) and prints a table.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`

import attack  # noqa: E402
from attack.patch import CORNERS, corner_loc


def configs(n: int, model, seed: int, size: int):
    g = torch.Generator().manual_seed(seed)
    samples = [s for s in attack.sample_images(("ai-benchmark",))]
    out = []
    for _ in range(n):
        s = samples[int(torch.randint(len(samples), (1,), generator=g))]
        target = int(torch.randint(1000, (1,), generator=g))
        corner = CORNERS[int(torch.randint(4, (1,), generator=g))]
        out.append((s, target, corner_loc(corner, model.input_size, size)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--domain", default="network")
    ap.add_argument("--loss", default="logprob")
    ap.add_argument("--lrs", type=float, nargs="+", required=True)
    ap.add_argument("--configs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--area", type=float, default=0.0625)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = attack.load_model(channels_last=True)
    size = attack.size_for_area(args.area, model.input_size)
    cfg = configs(args.configs, model, args.seed, size)
    imgs = torch.stack([attack.load_image(s.path, model.input_size) for s, _, _ in cfg])
    out = Path("bench/results/tune_lr.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    new = not out.exists()
    with out.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["optimizer", "domain", "loss", "lr", "area", "size", "seed", "config", "steps", "p_target",
                        "success", "seconds"])
        for lr in args.lrs:
            t = time.time()
            res = attack.train_patches(model, imgs, [c[1] for c in cfg], [c[2] for c in cfg], size=size,
                                       domain=args.domain, loss=args.loss, steps=args.steps, lr=lr,
                                       optimizer=args.optimizer, generator=torch.Generator().manual_seed(args.seed))
            its = [r.steps if r.succeeded else float("inf") for r in res]
            for i, r in enumerate(res):
                w.writerow([args.optimizer, args.domain, args.loss, lr, args.area, size, args.seed, i, r.steps,
                            round(r.p_target, 4), int(r.succeeded), round(r.seconds, 1)])
            f.flush()
            ok = sum(r.succeeded for r in res)
            print(f"{args.optimizer} {args.domain} {args.loss} lr={lr}: {ok}/{len(res)} success, "
                  f"median its={statistics.median(its)}, p={[round(r.p_target, 2) for r in res]} "
                  f"({time.time() - t:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
