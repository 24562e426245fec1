"""N simultaneous default trainings: one shared batch (attack.scheduler.SharedBatch) vs the current pool.

    .venv/bin/python bench/shared_batch.py [--n 4] [--steps 20] [--jobs 1 2] [--threads 1] [--device cpu|cuda]

N configs (ai-benchmark photos, random targets and corners, seed --seed) of the app's default attack
(``attack.train_patch``: default patch size, network domain, Adam, one restart at that size) all start at once.
"pool, J jobs": as ``ui/jobs.py`` runs them — J worker threads, each taking the next waiting training and calling
``train_patch`` with a per-step callback (the server's default is J = 2, ``LAVAN_MAX_JOBS``). "shared batch": one
worker thread steps a SharedBatch holding all N (the latest patch copied to the CPU each step, as the page's
callback does). Every training runs its full budget of --steps evaluations (stop_at=1.0), so both modes do the
same work. On a CPU a further row runs the pool's one-job mode without ``train_patch``'s local forward (which a
shared batch of configs at different corners cannot use), to separate the batching from that. Prints a markdown table (time until all are done, mean time until each is done, evaluations per second)
and the largest difference of final p(target) between the shared batch and the first pool row; wall times are
the median of --reps repetitions, the modes taking turns within each.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import queue
import statistics
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`

import attack  # noqa: E402
from attack.scheduler import SharedBatch  # noqa: E402
from attack.train import default_patch_size  # noqa: E402


def configs(model, n: int, seed: int) -> list[dict]:
    gen = torch.Generator().manual_seed(seed)
    samples = attack.sample_images(("ai-benchmark",))
    size = default_patch_size(model.input_size)
    corners = ("top-left", "top-right", "bottom-left", "bottom-right")
    out = []
    for i in range(n):
        s = samples[int(torch.randint(len(samples), (1,), generator=gen))]
        out.append({"image": attack.load_image(s.path, model.input_size), "target": int(torch.randint(1000, (1,), generator=gen)),
                    "loc": attack.corner_loc(corners[int(torch.randint(4, (1,), generator=gen))], model.input_size, size),
                    "seed": seed * 1000 + i})
    return out


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_pool(model, cfgs, steps: int, jobs: int, threads: int,
             local: bool | None = None) -> tuple[float, list[float], list[float]]:
    """(seconds until all done, seconds until each done, final p(target) of each) with J worker threads;
    ``local=False``: train_patches without the local forward (what the shared batch computes, one at a time)."""
    waiting: queue.Queue = queue.Queue()
    for i, c in enumerate(cfgs):
        waiting.put((i, c))
    done_at, p = [0.0] * len(cfgs), [0.0] * len(cfgs)
    t0 = time.perf_counter()

    def worker():
        torch.set_num_threads(threads)
        while True:
            try:
                i, c = waiting.get_nowait()
            except queue.Empty:
                return
            if local is False:
                res = attack.train_patches(model, c["image"][None], c["target"], [c["loc"]], steps=steps,
                                           stop_at=1.0, seeds=[c["seed"]], local=False, on_step=lambda d: None)[0]
            else:
                res = attack.train_patch(model, c["image"], c["target"], c["loc"], steps=steps, stop_at=1.0,
                                         seed=c["seed"], callback=lambda info: None)
            _sync()
            done_at[i], p[i] = time.perf_counter() - t0, res.p_target

    ts = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.perf_counter() - t0, done_at, p


def run_shared(model, cfgs, steps: int, threads: int) -> tuple[float, list[float], list[float]]:
    done_at, p = [0.0] * len(cfgs), [0.0] * len(cfgs)
    t0 = time.perf_counter()
    batch = SharedBatch(model, domain="network")
    handles = [batch.add(c["image"], c["target"], c["loc"], steps=steps, stop_at=1.0, seed=c["seed"],
                         watch_patch=True) for c in cfgs]

    def worker():
        torch.set_num_threads(threads)
        while batch.step():
            now = time.perf_counter() - t0
            for i, h in enumerate(handles):
                if h.done and not done_at[i]:
                    done_at[i] = now
        _sync()

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    for i, h in enumerate(handles):
        p[i] = h.result.p_target
        done_at[i] = done_at[i] or time.perf_counter() - t0
    return time.perf_counter() - t0, done_at, p


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (the server: 1 on <= 2 cores)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="efficientnet-lite0")
    args = ap.parse_args(argv)
    model = attack.load_model(args.model, device=args.device, channels_last=True)
    cfgs = configs(model, args.n, args.seed)
    for c in cfgs:
        c["image"] = c["image"].to(args.device)
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else (platform.processor() or platform.machine())
    print(f"command: python bench/shared_batch.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(f"machine: {platform.node()} {dev}, {torch.get_num_threads()} default torch threads, "
          f"{__import__('os').cpu_count()} cores, torch {torch.__version__}; model {args.model} on {args.device}")
    print(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    print(f"{args.n} simultaneous default trainings ({default_patch_size(model.input_size)} px, network domain, "
          f"Adam, 1 restart), {args.steps} evaluations each, {args.threads} torch thread(s) per worker, "
          f"median of {args.reps} rep(s)\n")
    modes = {f"pool, {j} job(s)": (lambda j=j: run_pool(model, cfgs, args.steps, j, args.threads)) for j in args.jobs}
    if args.device == "cpu":
        modes["pool, 1 job(s), full forward"] = lambda: run_pool(model, cfgs, args.steps, 1, args.threads, local=False)
    modes["shared batch"] = lambda: run_shared(model, cfgs, args.steps, args.threads)
    run_shared(model, cfgs[:1], 1, args.threads)  # warm-up (allocator, lazy init)
    runs: dict[str, list] = {k: [] for k in modes}
    for _ in range(args.reps):
        for k, fn in modes.items():
            runs[k].append(fn())
    print("| mode | all done (s) | mean time to done (s) | evaluations/s | speed-up vs pool, 1 job |")
    print("|---|---|---|---|---|")
    base = None
    for k, rs in runs.items():
        total = statistics.median(r[0] for r in rs)
        mean_done = statistics.median(statistics.mean(r[1]) for r in rs)
        base = base or (total if k.startswith("pool, 1 ") else None)
        ratio = f"{base / total:.2f}x" if base else ""
        print(f"| {k} | {total:.1f} | {mean_done:.1f} | {args.n * args.steps / total:.1f} | {ratio} |")
    first_pool = next(iter(runs))
    diff = max(abs(a - b) for a, b in zip(runs[first_pool][0][2], runs["shared batch"][0][2]))
    print(f"\nlargest |final p(target)| difference, shared batch vs {first_pool}: {diff:.2e} "
          "(the pool's train_patch uses the local forward on a CPU: same values up to float rounding)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
