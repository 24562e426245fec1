"""ART's AdversarialPatchPyTorch vs our trainer on the same problems: iterations and wall time to p(target) ≥ 0.9.

Same model (attack.load_model, efficientnet-lite0 at 224, frozen, normalising inside), same photos (the 100
ai-benchmark photos), same (photo, target, corner) draws as bench/area_table.py (one draw list per seed), same
square patch of attack.train.default_patch_size(224) px at the same fixed corner. Methods:

  art-image     ART 1.20 AdversarialPatchPyTorch, square patch at a fixed location (rotation 0, scale 1, no
                distortion), Adam on the [0,1] patch, targeted cross-entropy. Trained in chunks of --chunk
                iterations by calling ``generate`` again (it keeps its patch and Adam state); after each chunk the
                image that ART's own ``apply_patch`` returns is classified (ART resamples the patch when pasting,
                so the pasted image, not the raw patch, is what is scored). Only ``generate`` time is counted.
  ours-image    attack.train_patch(domain="image"): Adam on sigmoid parameters, loss "logprob", defaults.
  ours-network  attack.train_patch(domain="network") (a setting ART does not have), defaults.

A config succeeds when p(target) ≥ 0.9 within --max-iter iterations. Each (seed, config, method) appends a row to
bench/results/vs_art.csv as it finishes; a rerun skips rows already there (ART rows are keyed by --art-lr too).

ART is for this bench only (not a dependency of the app or the library):

    .venv/bin/pip install -r requirements-bench.txt
    .venv/bin/python bench/vs_art.py --configs 20 --seeds 1 2 --max-iter 1000      # run / resume (full run)
    .venv/bin/python bench/vs_art.py --configs 2 --seeds 1 --max-iter 100          # smoke run
    .venv/bin/python bench/vs_art.py --probe-lr 0.002 0.005 0.01 0.02 --configs 3 --max-iter 300   # ART lr probe
    .venv/bin/python bench/vs_art.py --report [--max-iter 1000]                     # markdown tables

Notes on ART as measured (its code is used as shipped): ``_train_step`` zeroes the *model's* gradients but never
the patch's, so the patch gradient accumulates over iterations (checked: with a tiny learning rate the patch's
``.grad`` after two steps is 2.0× the first step's); with Adam that keeps stepping in the running-sum direction,
and the default learning rate 5.0 (also 0.1 and 0.05) saturates the [0,1] patch — hence --art-lr and the probe.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/x.py`

import attack  # noqa: E402
from attack.patch import corner_loc, patched_logits  # noqa: E402
from attack.train import default_lr, default_patch_size  # noqa: E402
from bench.area_table import draw_configs  # noqa: E402
from lab import tables  # noqa: E402

OUT = ROOT / "bench" / "results" / "vs_art.csv"
METHODS = ("art-image", "ours-image", "ours-network")
DEFAULT_ART_LR = 0.03  # best of 0.003 / 0.01 / 0.03 in the tiny --probe-lr run in docs/BENCHMARKS.md
FIELDS = ["seed", "config", "photo", "target", "corner", "top", "left", "size", "method", "lr", "max_iter", "chunk",
          "success", "iterations", "seconds", "seconds_per_it", "p_target", "model", "device", "threads", "machine",
          "date"]


def machine(threads: int, device: str) -> str:
    cpu = platform.machine()
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if device.startswith("cuda") else ""
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} thread(s){gpu}"


def p_target(model, x: torch.Tensor, target: int) -> float:
    with torch.no_grad():
        return float(torch.softmax(model(x.to(model.device)).float(), 1)[0, target])


# ---------------------------------------------------------------- the two trainers
def art_classifier(model, device: str):
    from art.estimators.classification import PyTorchClassifier

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    s = model.input_size
    return PyTorchClassifier(model=model, loss=torch.nn.CrossEntropyLoss(), input_shape=(3, s, s), nb_classes=1000,
                             clip_values=(0.0, 1.0), channels_first=True,
                             device_type="gpu" if device.startswith("cuda") else "cpu")


def run_art(clf, model, image: torch.Tensor, target: int, loc: tuple[int, int], size: int, *, lr: float,
            max_iter: int, chunk: int, stop_at: float = 0.9) -> dict:
    """ART's patch trained chunk by chunk until ART's pasted image reaches p(target) ≥ stop_at or max_iter."""
    import numpy as np
    from art.attacks.evasion import AdversarialPatchPyTorch

    top, left = loc
    ap = AdversarialPatchPyTorch(clf, rotation_max=0.0, scale_min=1.0, scale_max=1.0, distortion_scale_max=0.0,
                                 learning_rate=lr, max_iter=chunk, batch_size=1, patch_shape=(3, size, size),
                                 patch_location=(left, top), patch_type="square", optimizer="Adam", targeted=True,
                                 verbose=False)
    x = image.unsqueeze(0).cpu().numpy().astype(np.float32)
    y = np.zeros((1, 1000), np.float32)
    y[0, target] = 1.0
    done, seconds, p = 0, 0.0, p_target(model, torch.from_numpy(ap.apply_patch(x, scale=1.0)), target)
    while done < max_iter and p < stop_at:
        ap.max_iter = min(chunk, max_iter - done)
        t = time.perf_counter()
        ap.generate(x, y)
        seconds += time.perf_counter() - t
        done += ap.max_iter
        p = p_target(model, torch.from_numpy(ap.apply_patch(x, scale=1.0)), target)
    return {"success": p >= stop_at, "iterations": done, "seconds": seconds, "p_target": p, "lr": lr}


def run_ours(model, image: torch.Tensor, target: int, loc: tuple[int, int], size: int, *, domain: str,
             max_iter: int, seed: int, stop_at: float = 0.9) -> dict:
    res = attack.train_patch(model, image.to(model.device), target, loc, size=size, domain=domain, steps=max_iter,
                             stop_at=stop_at, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():  # the final patch, pasted the library's way (network domain: after normalising)
        logits = patched_logits(model, image.unsqueeze(0).to(model.device), res.patch.to(model.device),
                                loc, domain)
    p = float(torch.softmax(logits.float(), 1)[0, target])
    return {"success": p >= stop_at, "iterations": res.steps, "seconds": res.seconds, "p_target": p,
            "lr": res.meta.get("lr", default_lr("adam", domain))}


# ---------------------------------------------------------------- the run
def done_keys(path: Path) -> set[tuple]:
    if not path.is_file():
        return set()
    with path.open(newline="") as f:
        return {_key(r) for r in csv.DictReader(f) if None not in r.values()}


def _key(r: dict) -> tuple:
    lr = f"{float(r['lr']):g}" if str(r["method"]).startswith("art") else ""
    return int(r["seed"]), int(r["config"]), str(r["method"]), int(r["max_iter"]), int(r["size"]), lr


def run(args) -> None:
    torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = attack.load_model(args.model, device=device, channels_last=True)
    s = model.input_size
    size = args.size or default_patch_size(s)
    clf = art_classifier(model, device) if any(m.startswith("art") for m in args.methods) else None
    photos = {p.name: p for p in attack.sample_images(("ai-benchmark",))}
    where = machine(args.threads, device)
    art_lrs = args.probe_lr or [args.art_lr]
    methods = ["art-image"] if args.probe_lr else list(args.methods)
    seeds = args.seeds[:1] if args.probe_lr else args.seeds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        for i, (photo, target, corner) in enumerate(draw_configs(args.configs, seed)):
            image = attack.load_image(photos[photo].path, s)
            loc = corner_loc(corner, s, size)
            order = methods if i % 2 == 0 else methods[::-1]  # alternate who goes first: the CPU load drifts
            jobs = [(m, lr) for m in order for lr in (art_lrs if m.startswith("art") else [None])]
            for method, lr in jobs:
                base = {"seed": seed, "config": i, "method": method, "max_iter": args.max_iter, "size": size,
                        "lr": lr if lr is not None else 0}
                if _key(base) in done_keys(args.out):
                    continue
                if method == "art-image":
                    r = run_art(clf, model, image, target, loc, size, lr=lr, max_iter=args.max_iter,
                                chunk=args.chunk)
                else:
                    r = run_ours(model, image, target, loc, size, domain=method.split("-")[1],
                                 max_iter=args.max_iter, seed=seed * 1000 + i)
                row = {**base, **r, "photo": photo, "target": target, "corner": corner, "top": loc[0],
                       "left": loc[1], "chunk": args.chunk if method.startswith("art") else 1,
                       "success": int(r["success"]), "seconds": round(r["seconds"], 2),
                       "seconds_per_it": round(r["seconds"] / max(1, r["iterations"]), 4),
                       "p_target": round(r["p_target"], 4), "model": model.name, "device": device,
                       "threads": args.threads, "machine": where, "date": time.strftime("%Y-%m-%d %H:%M:%S")}
                new = not args.out.is_file() or args.out.stat().st_size == 0
                with args.out.open("a", newline="") as f:
                    w = csv.DictWriter(f, FIELDS, extrasaction="ignore")
                    if new:
                        w.writeheader()
                    w.writerow(row)
                print(f"seed {seed} config {i:2d} {method:12s}" + (f" lr {lr:<6g}" if lr is not None else " " * 10)
                      + f" {'ok ' if r['success'] else 'cap'} {r['iterations']:5d} it {r['seconds']:7.1f} s "
                      f"p={r['p_target']:.3f}", flush=True)


# ---------------------------------------------------------------- the report (lab.tables, shared with `make docs`)
def report(args) -> str:
    rows = tables.read_rows(args.out, args.max_iter)
    if not rows:
        return f"no rows in {args.out}" + (f" with --max-iter {args.max_iter}" if args.max_iter else "")
    return tables.vs_art_markdown(rows, args.budgets, args.art_lr)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="efficientnet-lite0")
    ap.add_argument("--configs", type=int, default=20, help="configs per seed (area_table's draws)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="one draw list per seed (seed 1 = the "
                    "area table's configs); also seeds our random patch init")
    ap.add_argument("--max-iter", type=int, default=None, help="iteration cap per config (run default 1000; "
                    "--report: only rows with this cap)")
    ap.add_argument("--size", type=int, default=None, help="patch side in px (default: default_patch_size(224))")
    ap.add_argument("--art-lr", type=float, default=DEFAULT_ART_LR, help="ART Adam learning rate")
    ap.add_argument("--probe-lr", type=float, nargs="+", default=None,
                    help="run ART alone at each of these learning rates on the first seed's configs")
    ap.add_argument("--chunk", type=int, default=10, help="ART iterations per generate() call between checks")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--budgets", type=float, nargs="+", default=[30, 60, 120],
                    help="--report: equal wall-time budgets per config (s)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--report", action="store_true")
    args = ap.parse_args(argv)
    if args.report:
        print(report(args))
        return
    args.max_iter = args.max_iter or 1000
    run(args)


if __name__ == "__main__":
    main()
