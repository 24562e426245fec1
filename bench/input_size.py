"""Native input size vs the paper's 299x299 for each model, without labels for most photos.

For each model: top-1 agreement between the two sizes over the ai-benchmark photos, mean top-1 confidence at
each size, and accuracy on the package photos whose class is known (attack.sample_images labels), plus the
time of one forward+backward (batch 1). Prints a markdown table.

    .venv/bin/python bench/input_size.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/x.py`

import attack  # noqa: E402


def fwd_bwd_ms(model, size: int, reps: int = 5) -> float:
    x = torch.rand(1, 3, size, size)
    w = torch.zeros(1, 3, size // 7, size // 7, requires_grad=True)
    for i in range(reps + 1):
        if i == 1:
            t = time.perf_counter()
        lg = attack.patch.patched_logits(model, x, w, [(0, 0)], "network")
        torch.autograd.grad(lg[:, 0].sum(), w)
    return (time.perf_counter() - t) / reps * 1000


def main():
    torch.set_num_threads(1)
    samples = attack.sample_images()
    photos = [s for s in samples if s.collection == "ai-benchmark"]
    labelled = [s for s in samples if s.label]
    print("| model | input | mean top-1 conf (ai-benchmark, n=%d) | top-1 agreement native vs 299 | labelled photos "
          "correct (n=%d) | fwd+bwd ms (batch 1, 1 thread) |" % (len(photos), len(labelled)))
    print("|---|---|---|---|---|---|")
    for name, spec in attack.MODELS.items():
        if not spec.weights_available():
            continue
        preds = {}
        for size in sorted({spec.native_size, 299}):
            m = attack.load_model(name, input_size=size, channels_last=True)
            p = attack.predict(m, torch.stack([attack.load_image(s.path, size) for s in photos]))
            pl = attack.predict(m, torch.stack([attack.load_image(s.path, size) for s in labelled]))
            correct = sum(int(pl[i].argmax()) in s.label for i, s in enumerate(labelled))
            preds[size] = p.argmax(1)
            agree = "" if size == spec.native_size else f"{(preds[size] == preds[spec.native_size]).float().mean():.1%}"
            print(f"| {name} | {size}{' (native)' if size == spec.native_size else ''} | "
                  f"{p.max(1).values.mean():.3f} | {agree} | {correct}/{len(labelled)} | {fwd_bwd_ms(m, size):.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
