"""Success rate and median iterations vs patch area, domain and optimiser (the README's table).

Each cell = (area, domain, optimiser) runs the same N random corner configs (photo, target, corner drawn from
one seed) as one batch, capped at --max-iter. Rows are appended to bench/results/area_table.csv as each cell
finishes; a rerun skips finished cells, so the table can be filled over several sittings.

    .venv/bin/python bench/area_table.py --configs 10 --max-iter 2000          # run / resume
    .venv/bin/python bench/area_table.py --report                               # print the markdown table
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
from attack.patch import CORNERS, corner_loc, size_for_area
from lab import tables  # noqa: E402

AREAS = (0.02, 0.035, 0.05, 0.08)
OUT = Path("bench/results/area_table.csv")
FIELDS = ["model", "input_size", "area", "size", "domain", "optimizer", "lr", "loss", "config", "photo", "target",
          "corner", "steps", "success", "p_target", "argmax", "not_source", "max_iter", "seed", "seconds",
          "machine"]


def draw_configs(n: int, seed: int) -> list[tuple[str, int, str]]:
    g = torch.Generator().manual_seed(seed)
    photos = attack.sample_images(("ai-benchmark",))
    out = []
    for _ in range(n):
        p = photos[int(torch.randint(len(photos), (1,), generator=g))]
        target = int(torch.randint(1000, (1,), generator=g))
        corner = CORNERS[int(torch.randint(4, (1,), generator=g))]
        out.append((p.name, target, corner))
    return out


def done_cells() -> set[tuple]:
    if not OUT.exists():
        return set()
    with OUT.open() as f:
        return {(float(r["area"]), r["domain"], r["optimizer"], int(r["max_iter"]), int(r["seed"]))
                for r in csv.DictReader(f)}


def run(args) -> None:
    torch.set_num_threads(args.threads)
    model = attack.load_model(args.model, channels_last=True)
    photos = {p.name: p for p in attack.sample_images(("ai-benchmark",))}
    cfg = draw_configs(args.configs, args.seed)
    imgs = torch.stack([attack.load_image(photos[name].path, model.input_size) for name, _, _ in cfg])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()} {os.cpu_count()} cores torch {torch.__version__} threads {args.threads}"
    cells = [(o, d, a) for o in args.optimizers for d in args.domains for a in args.areas]
    for opt, dom, area in cells:
        if (area, dom, opt, args.max_iter, args.seed) in done_cells():
            continue
        size = size_for_area(area, model.input_size)
        lr = attack.train.default_lr(opt, dom)
        locs = [corner_loc(c, model.input_size, size) for _, _, c in cfg]
        t = time.time()
        res = attack.train_patches(model, imgs, [c[1] for c in cfg], locs, size=size, domain=dom, loss=args.loss,
                                   steps=args.max_iter, lr=lr, optimizer=opt,
                                   generator=torch.Generator().manual_seed(args.seed))
        new = not OUT.exists()
        with OUT.open("a", newline="") as f:
            w = csv.DictWriter(f, FIELDS)
            if new:
                w.writeheader()
            for i, (r, (name, target, corner)) in enumerate(zip(res, cfg)):
                w.writerow(dict(model=model.name, input_size=model.input_size, area=area, size=size, domain=dom,
                                optimizer=opt, lr=lr, loss=args.loss, config=i, photo=name, target=target,
                                corner=corner, steps=r.steps, success=int(r.succeeded),
                                p_target=round(r.p_target, 4), argmax=int(r.success["argmax"]),
                                not_source=int(r.success["not_source"]), max_iter=args.max_iter, seed=args.seed,
                                seconds=round(r.seconds, 1), machine=machine))
        ok = sum(r.succeeded for r in res)
        print(f"{opt:5s} {dom:8s} area {area:.3f} ({size}px): {ok}/{len(res)} ok, "
              f"{time.time() - t:.0f}s", flush=True)


# The readers and summaries live in lab.tables, shared with the app's "Paper vs us" page and `make docs`.
def read_rows(path: Path = OUT, max_iter: int | None = None) -> list[dict]:
    return tables.read_rows(path, max_iter)


summarise = tables.summarise_area
compare_optimisers = tables.compare_markdown


def report(args) -> str:
    rows = read_rows(OUT, args.max_iter)
    return tables.area_markdown(rows, args.max_iter) + "\n\n" + tables.compare_markdown(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--max-iter", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--areas", type=float, nargs="+", default=list(AREAS))
    ap.add_argument("--domains", nargs="+", default=["network", "image"])
    ap.add_argument("--optimizers", nargs="+", default=["adam", "sgd"])
    ap.add_argument("--loss", default="logprob")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        print(report(args))
    else:
        run(args)


if __name__ == "__main__":
    main()
