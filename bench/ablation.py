"""Ablation of the attack's pieces: update rule, restarts with successive halving, loss, initialisation.

Each variant trains the same random corner configs (photo, target, corner drawn from one seed exactly as
bench/area_table.py draws them) one config at a time, with a budget of --budget forward+backward evaluations per
config (restarts × iterations). Every finished config is appended to bench/results/ablation.csv at once, so a run
stopped at any point resumes where it stopped (finished (variant, seed, config) rows are skipped).

    .venv/bin/python bench/ablation.py --variants apgd-r8 adam-r8 --configs 10 --seed 1     # run / resume
    .venv/bin/python bench/ablation.py --report                                              # markdown table

A variant name is ``<rule>-r<restarts>[-<loss>][-<init>][-st][-cos][-rs]`` (``-st``: straight-through ReLU6
backward; ``-cos``: Adam's step decayed by a cosine over each halving stage; ``-rs``: random-search polish once the
last stage stalls for 50 steps; ``-m<px>``: the patch that many pixels in from its corner; ``-lk<percent>``:
ReLU6 backward leaking that share of the gradient through both clips, e.g. ``-lk10`` = 0.1; ``-lk<percent>a``:
the same but the last halving stage follows the true gradient; ``-lrx<k>``: the rule's default step size times k, e.g.
``-lrx2``, ``-lrx0p5`` (p for the decimal point); ``-sd<tau×10>``: with a leak, units outside ReLU6's range
also pass exp(−distance/tau) of the gradient, e.g. ``-sd10`` = tau 1, ``-sd3a`` = tau 0.3 before the last
halving stage only; ``-pt<k>``: Adam halves a restart's step and returns it to its best point after k steps
without a better p(target)), e.g. ``apgd-r8`` (APGD-style signed steps, 8 restarts halved 8 → 2 → 1, the rule's
default loss and mixed initialisation) or ``adam-r1-logprob-random`` (today's default). Defaults per rule:
adam → loss logprob, sgd → logprob, sign/apgd → target_ce; init mixed when r > 1.
"""
from __future__ import annotations

import argparse
import csv
import re
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`

import attack  # noqa: E402
from lab import tables  # noqa: E402
from attack.losses import LOSSES  # noqa: E402
from attack.optim import RULES  # noqa: E402
from attack.patch import corner_loc  # noqa: E402
from attack.train import default_lr  # noqa: E402

OUT = Path("bench/results/ablation.csv")
FIELDS = ["variant", "rule", "restarts", "loss", "init", "domain", "size", "input_size", "budget", "seed", "config",
          "photo", "target", "corner", "success", "p_target", "argmax", "not_source", "iterations", "evaluations",
          "seconds", "machine", "st_relu6", "cosine", "polish", "margin", "leak",
          "leak_last", "lr", "tau", "tau_last", "patience"]


def read_rows(path: Path = OUT) -> list[dict]:
    """Finished rows (lab.tables.read_ablation: the one reader the README's table uses too)."""
    return tables.read_ablation(path)


def append_row(row: dict, path: Path = OUT) -> None:
    """Append one row; a file written with fewer columns is first rewritten with today's header."""
    if path.exists():
        with path.open(newline="") as f:
            header = next(csv.reader(f), [])
        if header != FIELDS:
            rows = read_rows(path)
            with path.open("w", newline="") as f:
                w = csv.DictWriter(f, FIELDS)
                w.writeheader()
                w.writerows({k: r.get(k, tables.ABLATION_DEFAULTS.get(k, "")) for k in FIELDS} for r in rows)
    new = not path.exists()
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        if new:
            w.writeheader()
        w.writerow(row)


FLAGS = {"st": "st_relu6", "cos": "cosine", "rs": "polish"}
POLISH_PATIENCE = 50


def parse_variant(name: str) -> dict:
    parts = name.split("-")
    flags = {v: 0 for v in FLAGS.values()}
    flags["margin"], flags["leak"], flags["leak_last"], flags["lr_scale"], flags["tau"] = 0, 0.0, 1, 1.0, 0.0
    flags["tau_last"], flags["patience"] = 1, 0
    while parts and (parts[-1] in FLAGS or re.fullmatch(r"m\d+|lk\d+a?|lrx\d+(?:p\d+)?|sd\d+a?|pt\d+", parts[-1])):
        flag = parts.pop()
        if flag.startswith("pt"):
            flags["patience"] = int(flag[2:])
        elif flag.startswith("sd"):
            flags["tau"] = int(flag[2:].rstrip("a")) / 10
            flags["tau_last"] = 0 if flag.endswith("a") else 1
        elif flag.startswith("lrx"):
            flags["lr_scale"] = float(flag[3:].replace("p", "."))
        elif flag in FLAGS:
            flags[FLAGS[flag]] = 1
        elif flag.startswith("lk"):
            flags["leak"] = int(flag[2:].rstrip("a")) / 100
            flags["leak_last"] = 0 if flag.endswith("a") else 1
        else:
            flags["margin"] = int(flag[1:])
    if flags["polish"]:
        flags["polish"] = POLISH_PATIENCE
    rule = parts[0]
    if rule not in RULES or len(parts) < 2 or not parts[1].startswith("r"):
        raise ValueError(f"bad variant {name!r}: expected <rule>-r<restarts>[-<loss>][-<init>]")
    restarts = int(parts[1][1:])
    loss = parts[2] if len(parts) > 2 else ("target_ce" if rule in ("sign", "apgd") else "logprob")
    init = parts[3] if len(parts) > 3 else ("mixed" if restarts > 1 else "random")
    if loss not in LOSSES:
        raise ValueError(f"bad loss {loss!r} in variant {name!r}")
    return dict(rule=rule, restarts=restarts, loss=loss, init=init, **flags)


def rule_options(v: dict) -> dict | None:
    """The update rule's options for a parsed variant (None: the trainer's defaults)."""
    opts = {}
    if v["cosine"]:
        if v["rule"] != "adam":
            raise ValueError("-cos (cosine step decay) exists for Adam only")
        opts["decay"] = "cosine"
    if v["polish"]:
        opts["polish"] = v["polish"]
    if v["patience"]:
        if v["rule"] != "adam":
            raise ValueError("-pt (step halving on a stall) is measured for Adam only")
        opts["patience"] = v["patience"]
    return opts or None


def draw_configs(n: int, seed: int) -> list[tuple[str, int, str]]:
    """The same draw as bench/area_table.py (photo, target, corner) so the rows compare with its table."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from area_table import draw_configs as area_draw
    return area_draw(n, seed)


def done(path: Path = OUT) -> set[tuple]:
    return {(r["variant"], r["domain"], int(r["size"]), int(r["input_size"]), int(r["budget"]), int(r["seed"]),
             int(r["config"])) for r in read_rows(path)}


def run(args) -> None:
    """Train every pending (variant, seed, config), ``--batch`` configs per call (1 on a CPU, where batching does
    not raise throughput; all of them on a GPU). ``--time-budget`` cancels the call in flight at the deadline and
    drops its unfinished rows, so a fixed slot (a lent GPU's 10-minute call) leaves only finished rows behind."""
    torch.set_num_threads(args.threads)
    model = attack.load_model(args.model, device=args.device, channels_last=True, input_size=args.input_size)
    photos = {p.name: p for p in attack.sample_images(("ai-benchmark",))}
    dev = next(model.buffers()).device
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else ""
    machine = (f"{platform.machine()} {os.cpu_count()} cores torch {torch.__version__} threads {args.threads}"
               + (f" {gpu}" if gpu else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.time() + args.time_budget if args.time_budget else None
    cancel = (lambda: time.time() > deadline) if deadline else None
    size = args.size
    for variant in args.variants:
        v = parse_variant(variant)
        for seed in args.seeds:
            cfgs = draw_configs(args.configs, seed)
            have = done(args.out)
            todo = [i for i in range(len(cfgs))
                    if (variant, args.domain, size, model.input_size, args.budget, seed, i) not in have
                    and (not args.only or i in args.only)]
            for k in range(0, len(todo), args.batch):
                if deadline and time.time() > deadline:
                    print("time budget spent; rerun to resume", flush=True)
                    return
                chunk = todo[k:k + args.batch]
                imgs = torch.stack([attack.load_image(photos[cfgs[i][0]].path, model.input_size) for i in chunk])
                locs = [corner_loc(cfgs[i][2], model.input_size, size, margin=v["margin"]) for i in chunk]
                t = time.time()
                lr = v["lr_scale"] * default_lr(v["rule"], args.domain)
                res = attack.train_patches(model, imgs, [cfgs[i][1] for i in chunk], locs, size=size,
                                           domain=args.domain, loss=v["loss"], steps=args.budget, lr=lr,
                                           optimizer=v["rule"], restarts=v["restarts"], init=v["init"],
                                           st_relu6=bool(v["st_relu6"]), relu6_leak=v["leak"],
                                           leak_last_stage=bool(v["leak_last"]), relu6_tau=v["tau"],
                                           tau_last_stage=bool(v["tau_last"]),
                                           seeds=[seed * 1000 + i for i in chunk],
                                           rule_options=rule_options(v),
                                           cancel=cancel)
                for i, r in zip(chunk, res):
                    if r.cancelled:
                        continue
                    name, target, corner = cfgs[i]
                    fields = {k: val for k, val in v.items() if k != "lr_scale"}
                    append_row(dict(variant=variant, **fields, lr=f"{lr:g}", domain=args.domain, size=size,
                                    input_size=model.input_size, budget=args.budget, seed=seed, config=i,
                                    photo=name, target=target, corner=corner, success=int(r.succeeded),
                                    p_target=round(r.p_target, 4), argmax=int(r.success["argmax"]),
                                    not_source=int(r.success["not_source"]), iterations=r.steps,
                                    evaluations=r.evaluations, seconds=round(r.seconds, 1), machine=machine),
                               path=args.out)
                    print(f"{variant:24s} seed {seed} config {i}: p={r.p_target:.3f} ok={r.succeeded} "
                          f"evals={r.evaluations} {r.seconds:.0f}s", flush=True)
                print(f"  chunk of {len(chunk)}: {time.time() - t:.0f}s", flush=True)


def report(path: Path = OUT) -> str:
    """The README's ablation table (lab.tables), with the area table's one-patch Adam rows as the baseline."""
    return tables.ablation_markdown(tables.summarise_ablation(read_rows(path),
                                                              tables.read_rows(OUT.parent / "area_table.csv")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="+", default=["apgd-r8", "adam-r8", "adam-r1"])
    ap.add_argument("--configs", type=int, default=10)
    ap.add_argument("--only", type=int, nargs="+", default=None,
                    help="run only these config indices of the draw (e.g. the near misses of another variant)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--budget", type=int, default=2000, help="forward+backward evaluations per config")
    ap.add_argument("--size", type=int, default=42)
    ap.add_argument("--domain", default="image", choices=["image", "network"])
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    ap.add_argument("--input-size", type=int, default=None, help="model input side (default: native; paper: 299)")
    ap.add_argument("--batch", type=int, default=1, help="configs trained side by side (GPU: all of them)")
    ap.add_argument("--time-budget", type=float, default=None,
                    help="seconds; the call in flight is cancelled at the deadline and its rows dropped")
    ap.add_argument("--out", type=Path, default=OUT, help="the CSV rows are appended to (and resumed from)")
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args()
    if args.report:
        print(report())
        return
    for v in args.variants:
        parse_variant(v)
    run(args)


if __name__ == "__main__":
    main()
