"""Speed ratios of the library, each pair measured side by side in one run on this machine.

    .venv/bin/python bench/speed.py [--threads 2] [--reps 3] [--device cuda --batch 100] [--only steps] [--compile]

Prints a markdown table: one training step of the eager network as shipped vs BatchNorm folded
(``load_model(fold=True)``, the default) and, with --compile, vs ``torch.compile`` of the folded network, at
batch 1 and 8, each config a row of ``attack.train_patches`` (``--only steps`` stops there); then channels_last vs
contiguous memory format, training-step overhead over a bare forward+backward, batched vs one-by-one training
throughput, batched vs per-shift fragility map. Each figure is the median of --reps repetitions (time.perf_counter);
the variants of a row take turns within each repetition, and the step rows also give the ratio of process CPU
time, which other jobs on a shared machine disturb less than wall time.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`

import attack  # noqa: E402
from attack.patch import patched_logits


def _sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _Rows(list):
    """Table rows, printed as each is measured (a run cut short still shows what it measured)."""

    def append(self, row):
        super().append(row)
        print("| " + " | ".join(row) + " |", flush=True)


def timed(fn, reps: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        _sync()
        t = time.perf_counter()
        fn()
        _sync()  # GPU kernels are asynchronous: time until they are done
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def interleaved(fns: dict, reps: int) -> dict[str, tuple[float, float]]:
    """name -> (median wall s, median process CPU s) of each function, the functions taking turns in each rep."""
    for fn in fns.values():
        fn()  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(reps):
        for k, fn in fns.items():
            _sync()
            t, c = time.perf_counter(), time.process_time()
            fn()
            _sync()
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in fns}


def step_rows(rows, xs, size: int, args) -> None:
    """At batch 1 and 8: the patch's forward+backward of the eager network as shipped vs BatchNorm folded vs
    LocalForward (incremental inference on the folded network); one training step (``train_patches``, ``--iters``
    steps, per step) of the eager network vs folded vs folded + LocalForward vs (``--compile``) the folded network
    under ``torch.compile``."""
    dev = args.device
    # the trainer may run LocalForward itself (TrainingSpec.local): off for these rows, on for "local"
    has_local = "local" in {f.name for f in dataclasses.fields(attack.TrainingSpec)}
    off = {"local": False} if has_local else {}

    models = {"eager": attack.load_model(channels_last=True, device=dev, fold=False),
              "folded": attack.load_model(channels_last=True, device=dev)}
    if args.compile:
        comp = attack.load_model(channels_last=True, device=dev)
        comp.net = torch.compile(comp.net)
        t = time.perf_counter()
        try:
            attack.train_patches(comp, xs[:1], 859, (0, 0), size=size, steps=1, stop_at=1.0, **off)
            attack.train_patches(comp, xs[:8], 859, (0, 0), size=size, steps=1, stop_at=1.0, **off)
            models["compiled"] = comp
            rows.append(("torch.compile of the folded network: first steps (batch 1 and 8, compiling)",
                         f"{time.perf_counter() - t:.0f} s", ""))
        except Exception as exc:  # noqa: BLE001 - a row saying so, not a crash
            rows.append(("torch.compile of the folded network", f"failed: {type(exc).__name__}", ""))

    def trainer(m, x, **kw):
        return lambda: attack.train_patches(m, x, 859, (0, 0), size=size, steps=args.iters - 1, stop_at=1.0,
                                            generator=torch.Generator().manual_seed(0), **{**off, **kw})

    # the patch's forward+backward alone
    folded = models["folded"]
    for b in (1, min(8, len(xs))):
        x = xs[:b]
        local = attack.models.LocalForward(folded, x)
        box = (0, size, 0, size)

        def bare(m, use_local=False, x=x, local=local):
            def run():
                w = torch.zeros(x.shape[0], 3, size, size, requires_grad=True, device=x.device)
                inp = attack.apply_patch(x, w, [(0, 0)] * x.shape[0], "network", m)
                lg = local(inp, torch.arange(x.shape[0]), box) if use_local else m.net(inp)
                torch.autograd.grad(lg[:, 859].sum(), w)
            return run

        got = interleaved({"eager": bare(models["eager"]), "folded": bare(folded), "local": bare(folded, True)},
                          args.reps)
        (ew, ec) = got["eager"]
        for k in ("folded", "local"):
            (w, c) = got[k]
            rows.append((f"patch forward+backward, batch {b}: eager / {k}", f"{ew * 1e3:.0f} ms / {w * 1e3:.0f} ms",
                         f"{ew / w:.2f}× (CPU time {ec / c:.2f}×)"))

    def local_trainer(x):
        """The trainer on the folded network with LocalForward: ``train_patches(local=True)`` where the trainer has
        it, else its patched forward routed through LocalForward here (rows are the images in order: one restart
        per config, none finishes)."""
        from unittest import mock

        from attack.patch import as_locs

        if has_local:
            return trainer(folded, x, local=True)
        lf = attack.models.LocalForward(folded, x)

        def patched(model, images, patch, loc, domain="image"):
            if images.shape != x.shape or not torch.equal(images, x):
                return patched_logits(model, images, patch, loc, domain)
            locs, s = as_locs(loc, len(images)), patch.shape[-1]
            box = (int(locs[:, 0].min()), int(locs[:, 0].max()) + s, int(locs[:, 1].min()), int(locs[:, 1].max()) + s)
            return lf(attack.apply_patch(images, patch, locs, domain, model), torch.arange(len(images)), box, domain)

        def run():
            with mock.patch.object(attack.train, "patched_logits", patched):
                trainer(folded, x)()
        return run

    for b in (1, min(8, len(xs))):
        x = xs[:b]
        got = interleaved({**{k: trainer(m, x) for k, m in models.items()}, "local": local_trainer(x)}, args.reps)
        (ew, ec) = (v / args.iters for v in got["eager"])
        for k in got:
            if k == "eager":
                continue
            (w, c) = (v / args.iters for v in got[k])
            rows.append((f"training step, batch {b}: eager / {k}", f"{ew * 1e3:.0f} ms / {w * 1e3:.0f} ms",
                         f"{ew / w:.2f}× (CPU time {ec / c:.2f}×; goal ≥ 1.5)"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8, help="configs in the batching and overhead rows (issue: 100)")
    ap.add_argument("--only", choices=["steps"], help="only the training-step rows (eager / folded / compiled)")
    ap.add_argument("--compile", action="store_true", help="add torch.compile of the folded network to the step rows")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = args.device
    photos = attack.sample_images(("ai-benchmark",))
    size = attack.train.default_patch_size(224)
    nb = args.batch
    gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else "none"
    print(f"machine: {platform.machine()} {platform.processor() or ''}, GPU {gpu}, torch {torch.__version__}, "
          f"{args.threads} threads, model efficientnet-lite0 @ 224x224 on {dev}, patch {size}px")
    print("| measurement | raw | ratio |\n|---|---|---|", flush=True)
    rows = _Rows()
    xs = torch.stack([attack.load_image(photos[i % len(photos)].path, 224) for i in range(max(nb, 8))]).to(dev)
    step_rows(rows, xs, size, args)
    if args.only == "steps":
        return
    xs = xs[:nb]

    def fwd_bwd(model, x):
        w = torch.zeros(x.shape[0], 3, size, size, requires_grad=True, device=x.device)
        lg = patched_logits(model, x, w, [(0, 0)] * x.shape[0], "network")
        torch.autograd.grad(lg[:, 859].sum(), w)

    m_cf = attack.load_model(channels_last=False, device=dev, fold=False)  # as measured before folding existed
    m_cl = attack.load_model(channels_last=True, device=dev, fold=False)
    for b in sorted({1, min(8, nb), nb}):
        x = xs[:b]
        a = timed(lambda: fwd_bwd(m_cf, x), args.reps)
        c = timed(lambda: fwd_bwd(m_cl, x), args.reps)
        rows.append((f"forward+backward, batch {b}: contiguous / channels_last", f"{a * 1e3:.0f} ms / {c * 1e3:.0f} ms",
                     f"{a / c:.2f}×"))

    model = attack.load_model(channels_last=True, device=dev)  # the default (folded) network
    # overhead: trainer iteration vs bare fwd+bwd on the same batch (stop_at=1.0 so nobody leaves early)
    bare = timed(lambda: [fwd_bwd(model, xs) for _ in range(args.iters)], args.reps) / args.iters
    train = timed(lambda: attack.train_patches(model, xs, 859, (0, 0), size=size, steps=args.iters - 1,
                                               stop_at=1.0, generator=torch.Generator().manual_seed(0)),
                  args.reps) / args.iters
    rows.append((f"training step / bare forward+backward (batch {nb})", f"{train * 1e3:.0f} ms / {bare * 1e3:.0f} ms",
                 f"{train / bare:.2f}× (goal ≤ 1.15)"))

    # batching: nb configs batched vs one by one, same iterations
    one = timed(lambda: [attack.train_patches(model, xs[i:i + 1], 859, (0, 0), size=size, steps=args.iters - 1,
                                              stop_at=1.0) for i in range(nb)], max(1, args.reps - 1))
    bat = timed(lambda: attack.train_patches(model, xs, 859, (0, 0), size=size, steps=args.iters - 1, stop_at=1.0),
                max(1, args.reps - 1))
    rows.append((f"{nb} configs × {args.iters} it: one by one / batched", f"{one:.1f} s / {bat:.1f} s",
                 f"{one / bat:.2f}× throughput (goal ≥ 3)"))

    # shrinking batch: configs leave one per step, so each step meets a batch size not seen before. Unpadded, a
    # GPU builds new cuDNN plans for every size; padded to the trainer's power-of-two buckets (here all 65..100 ->
    # 100) it reuses one. Sizes nb-1 .. nb-5 have not been run before in this process.
    from attack.train import _bucket

    shrink = [b for b in range(nb - 1, nb - 6, -1) if b >= 1]
    if shrink:
        _sync()
        t = time.perf_counter()
        for b in shrink:
            fwd_bwd(model, xs[:b])
        _sync()
        unpadded = time.perf_counter() - t
        t = time.perf_counter()
        for b in shrink:
            fwd_bwd(model, xs[:_bucket(b, nb)])
        _sync()
        padded = time.perf_counter() - t
        rows.append((f"batch shrinking {nb - 1}→{shrink[-1]}, one new size per step: unpadded / padded to "
                     "power-of-two buckets", f"{unpadded * 1e3:.0f} ms / {padded * 1e3:.0f} ms",
                     f"{unpadded / padded:.2f}×"))

    # fragility: radius 2 (25 shifts) batched vs one forward per shift
    img = xs[0]
    patch = torch.zeros(3, size, size, device=dev)
    r = 2
    locs = [(r + dy, r + dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]

    def per_shift():
        with torch.no_grad():
            for loc in locs:
                patched_logits(model, img.unsqueeze(0), patch, [loc], "network")

    bm = timed(lambda: attack.shift_map(model, img, patch, (r, r), 859, radius=r), args.reps)
    ps = timed(per_shift, args.reps)
    rows.append(("fragility map ±2 px (25 shifts): per shift / batched", f"{ps * 1e3:.0f} ms / {bm * 1e3:.0f} ms",
                 f"{ps / bm:.2f}× (goal ≥ 3)"))


if __name__ == "__main__":
    main()
