"""Ablation of the attack's pieces: update rule, restarts with successive halving, loss, initialisation.

Each variant trains the same random corner configs (photo, target, corner drawn from one seed exactly as
bench/area_table.py draws them) one config at a time, with a budget of --budget forward+backward evaluations per
config (restarts × iterations). Every finished config is appended to bench/results/ablation.csv at once, so a run
stopped at any point resumes where it stopped (finished (variant, seed, config) rows are skipped).

    .venv/bin/python bench/ablation.py --variants apgd-r8 adam-r8 --configs 10 --seed 1     # run / resume
    .venv/bin/python bench/ablation.py --report                                              # markdown table

A variant name is ``<rule>-r<restarts>[-<loss>][-<init>][-m<px>][-lk<percent>][-lrx<k>][-p<place>]`` (``-m<px>``:
the patch that many pixels in from its corner; ``-pgrid`` / ``-pmeter``: the patch placed by
``attack.meter.place(..., how)`` from its corner -- ``grid`` covers the most last-grid cell centres within 16 px,
``meter`` takes the feasibility meter's best place within 16 px; a ``-pmeter`` config whose place is the ``-pgrid``
place is not trained twice (the same inputs, the same run: bench/meter.py records both places and the tables pair
them); ``-lk<percent>``: ReLU6 backward leaking that share of the gradient through both
clips, e.g. ``-lk10`` = 0.1; ``-lrx<k>``: the rule's default step size times k, e.g. ``-lrx2``, ``-lrx0p5`` (p for
the decimal point)), e.g. ``apgd-r8`` (APGD-style signed steps, 8 restarts halved 8 → 2 → 1, the rule's default loss
and mixed initialisation) or ``adam-r1-logprob-random``. Defaults per rule: adam → loss logprob, sgd → logprob,
sign/apgd → target_ce; init mixed when r > 1.

Variants that lost and left the library (their rows stay in the CSV, with their columns, and in the generated
ablation table under their variant names): ``-st`` straight-through ReLU6 backward (``st_relu6``; rows at bbeeb30
and 0b83600: 0/10 against 4/10 for adam-r8), ``-cos`` Adam's step decayed by a cosine per halving stage and ``-rs``
random-search polish once the last stage stalls (``cosine``, ``polish``; rows at 9377e75, 942025b, a2cfe70:
adam-r8-rs-lk5 7/20, the same successes as adam-r8-lk5), ``-lk<percent>a`` the leak before the last halving stage
only (``leak_last``; 10abd3c: 6/20 against 7/20), ``-sd<tau×10>[a]`` a leak decaying with the distance from the
clips (``tau``, ``tau_last``; 59ccb13: 4/10 as the flat leak, lower p on the other failures) and ``-pt<k>`` Adam's
step halved on a stall (``patience``; 6e94030: 7/20 against 8/20). The trainer that ran them is the one at 4fb2af4.
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`

import attack  # noqa: E402
import attack.meter  # noqa: E402
from attack.losses import LOSSES  # noqa: E402
from attack.optim import RULES  # noqa: E402
from attack.patch import corner_loc  # noqa: E402
from attack.spec import default_lr  # noqa: E402
from lab import tables  # noqa: E402

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


# Columns of the variants that left the library (module docstring): new rows write their "off" value.
RETIRED = ("st_relu6", "cosine", "polish", "leak_last", "tau", "tau_last", "patience")


def parse_variant(name: str) -> dict:
    parts = name.split("-")
    flags = {"margin": 0, "leak": 0.0, "lr_scale": 1.0, "place": "corner"}
    while parts and re.fullmatch(r"m\d+|lk\d+|lrx\d+(?:p\d+)?|pgrid|pmeter", parts[-1]):
        flag = parts.pop()
        if flag in ("pgrid", "pmeter"):
            flags["place"] = flag[1:]
        elif flag.startswith("lrx"):
            flags["lr_scale"] = float(flag[3:].replace("p", "."))
        elif flag.startswith("lk"):
            flags["leak"] = int(flag[2:]) / 100
        else:
            flags["margin"] = int(flag[1:])
    rule = parts[0]
    if rule not in RULES or len(parts) < 2 or not parts[1].startswith("r"):
        raise ValueError(f"bad variant {name!r}: expected <rule>-r<restarts>[-<loss>][-<init>]")
    restarts = int(parts[1][1:])
    loss = parts[2] if len(parts) > 2 else ("target_ce" if rule in ("sign", "apgd") else "logprob")
    init = parts[3] if len(parts) > 3 else ("mixed" if restarts > 1 else "random")
    if loss not in LOSSES:
        raise ValueError(f"bad variant {name!r}: unknown loss {loss!r}")
    if init not in attack.spec.INITS or len(parts) > 4:
        raise ValueError(f"bad variant {name!r}: unknown init or suffix (left the library: see the docstring)")
    return dict(rule=rule, restarts=restarts, loss=loss, init=init, **flags)


def draw_configs(n: int, seed: int) -> list[tuple[str, int, str]]:
    """The same draw as bench/area_table.py (photo, target, corner) so the rows compare with its table."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from area_table import draw_configs as area_draw
    return area_draw(n, seed)


def placed(model, image: torch.Tensor, cfg: tuple[str, int, str], size: int, v: dict) -> tuple[int, int]:
    """Where a variant puts the patch of one config: ``margin`` px in from its corner, or ``attack.meter.place``."""
    _, target, corner = cfg
    if v.get("place", "corner") == "corner":
        return corner_loc(corner, model.input_size, size, margin=v["margin"])
    return attack.meter.place(model, image, target, size, corner, v["place"])


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
                locs = [placed(model, img, cfgs[i], size, v) for img, i in zip(imgs, chunk)]
                if v["place"] == "meter":  # the grid's place already trained (or to train) under -pgrid
                    keep = [n for n, i in enumerate(chunk)
                            if locs[n] != placed(model, imgs[n], cfgs[i], size, {**v, "place": "grid"})]
                    for n in set(range(len(chunk))) - set(keep):
                        print(f"{variant:24s} seed {seed} config {chunk[n]}: the grid's place {locs[n]}, "
                              f"not trained again", flush=True)
                    chunk, imgs, locs = [chunk[n] for n in keep], imgs[keep], [locs[n] for n in keep]
                    if not chunk:
                        continue
                t = time.time()
                spec = attack.TrainingSpec(size=size, domain=args.domain, optimizer=v["rule"],
                                           restarts=v["restarts"], loss=v["loss"], init=v["init"],
                                           relu6_leak=v["leak"], steps=args.budget,
                                           lr=v["lr_scale"] * default_lr(v["rule"], args.domain)).resolve(model)
                lr = spec.lr
                res = attack.train_patches(model, imgs, [cfgs[i][1] for i in chunk], locs, spec,
                                           seeds=[seed * 1000 + i for i in chunk], cancel=cancel)
                for i, r in zip(chunk, res):
                    if r.cancelled:
                        continue
                    name, target, corner = cfgs[i]
                    fields = {k: val for k, val in v.items() if k not in ("lr_scale", "place")}
                    fields.update({k: tables.ABLATION_DEFAULTS[k] for k in RETIRED})
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
