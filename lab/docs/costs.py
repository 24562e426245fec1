"""The cost blocks: the speed goals of the benchmarks issue on this CPU and on the lent H200 (``speed.txt``,
``speed_h200.txt``), and the estimate of the paper's own protocol on Inception v3 (``inception_cost.json`` beside
the H200's measured Lite0 step). An estimate says so and names its basis; nothing here is a measurement of
Inception v3 on a GPU."""
from __future__ import annotations

import json
import re
from pathlib import Path

from .. import tables
from .registry import RESULTS, block

# The goals of the benchmarks issue, each matched to its row of a speed.py printout.
GOALS = (("training step ≤ 1.15 × bare forward+backward", "training step / bare forward+backward"),
         ("batching configs ≥ 3 × one by one (throughput)", "one by one / batched"),
         ("batched fragility map ≥ 3 × one forward per shift", "fragility map"))
PAPER_PROTOCOL = dict(configs=100, iterations=10_000)  # Karmon et al.: 100 configs, up to 10,000 iterations each


def speed_rows(path: Path) -> list[tuple[str, str, str]]:
    """(measurement, raw, ratio) rows of a saved bench/speed.py printout."""
    return [tuple(c.strip() for c in r.strip("|").split("|"))[:3] for r in tables.printed_table(path)[1][2:]]


def goal_cell(rows, key: str) -> str:
    row = next((r for r in rows if key in r[0]), None)
    if row is None:
        return "not measured"
    m = re.match(r"([\d.]+)×.*goal ([≤≥]) ([\d.]+)", row[2])
    ratio, op, goal = float(m.group(1)), m.group(2), float(m.group(3))
    met = ratio <= goal if op == "≤" else ratio >= goal
    scale = re.search(r"\((batch \d+)\)|^(\d+ configs × \d+ it)|\((\d+ shifts)\)", row[0])
    where = next((g for g in scale.groups() if g), "") if scale else ""
    return f"{'**yes**' if met else '**no**'}: {m.group(1)}×" + (f" ({where})" if where else "")


@block("speed-goals")
def _speed_goals(root: Path) -> str:
    cpu, gpu = speed_rows(root / RESULTS / "speed.txt"), speed_rows(root / RESULTS / "speed_h200.txt")
    lines = ["| goal (benchmarks issue) | this CPU, 1 thread (`speed.txt`) | the lent H200 (`speed_h200.txt`) |",
             "|---|---|---|"]
    for goal, key in GOALS:
        lines.append(f"| {goal} | {goal_cell(cpu, key)} | {goal_cell(gpu, key)} |")
    return "\n".join(lines)


def lite0_h200_ms(root: Path) -> tuple[float, int]:
    """Lite0's measured training step on the H200 per evaluation (ms), and the batch it was measured at."""
    row = next(r for r in speed_rows(root / RESULTS / "speed_h200.txt") if r[0].startswith("training step"))
    batch = int(re.search(r"batch (\d+)", row[0]).group(1))
    return float(row[1].split()[0]) / batch, batch


@block("inception-cost")
def _inception_cost(root: Path) -> str:
    d = json.loads((root / RESULTS / "inception_cost.json").read_text())
    lite = next(v for k, v in d["rows"].items() if k.startswith("efficientnet-lite0"))
    inc = next(v for k, v in d["rows"].items() if k.startswith("inception_v3"))
    flops = inc["gflops_fwd_bwd"] / lite["gflops_fwd_bwd"]
    cpu = inc["cpu_ms_median"] / lite["cpu_ms_median"]
    lo, hi = sorted((flops, cpu))
    gpu_ms, batch = lite0_h200_ms(root)
    n = PAPER_PROTOCOL["configs"] * PAPER_PROTOCOL["iterations"]

    def hours(ms: float, variants: int) -> float:
        return ms * n * variants / 1000 / 3600
    cpu_ms = inc["cpu_ms_median"]
    lines = ["| where | one evaluation (forward+backward) | `paper-network`: 100 configs × 10,000, worst case "
             f"({n / 1e6:g} M evaluations) | both paper variants ({2 * n / 1e6:g} M) | basis |",
             "|---|---|---|---|---|",
             f"| this CPU, 1 thread, batch 1 | {cpu_ms:.0f} ms CPU time (measured) | {hours(cpu_ms, 1):,.0f} "
             "core-hours | "
             f"{hours(cpu_ms, 2):,.0f} core-hours | Inception v3 at 299 with random weights, median of 5 "
             f"({d['date']}; `bench/results/inception_cost.json`) |",
             f"| NVIDIA H200, batch {batch} | **{gpu_ms * lo:.1f}–{gpu_ms * hi:.1f} ms (estimate)** | "
             f"**{hours(gpu_ms * lo, 1):.1f}–{hours(gpu_ms * hi, 1):.1f} h** | "
             f"{hours(gpu_ms * lo, 2):.1f}–{hours(gpu_ms * hi, 2):.1f} h | Lite0's measured training step on the "
             f"H200 ({gpu_ms:.2f} ms per evaluation at batch {batch}, `speed_h200.txt`) × Inception v3's cost over "
             f"Lite0's on this CPU: {cpu:.1f}× in CPU time, {flops:.1f}× in FLOPs "
             f"({inc['gflops_fwd_bwd']:.1f} vs {lite['gflops_fwd_bwd']:.2f} GFLOP per forward+backward) |"]
    return "\n".join(lines)
