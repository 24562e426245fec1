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


# ---------------------------------------------------------------- the full protocol on the Lite models (docs/SCALE.md)
PROTOCOL = dict(cap=10_000, single_configs=100, classes=20, class_draws=3, crossmodel_configs=10, chunk=25,
                class_chunk=20, universal_targets=5)
LITES = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")


def lite_ratios(root: Path) -> dict[str, tuple[float, float]]:
    """model -> (cost at its native size, cost at 299) over Lite0's at 224 and at 299 (input_size.txt, batch 1)."""
    rows = [[c.strip() for c in r.strip("|").split("|")] for r in tables.printed_table(root / RESULTS /
                                                                                        "input_size.txt")[1][2:]]
    ms = {(r[0], r[1].split()[0] == "299"): float(r[5]) for r in rows}
    return {m: (ms[(m, False)] / ms[(LITES[0], False)], ms[(m, True)] / ms[(LITES[0], True)]) for m in LITES}


def cpu_costs(root: Path) -> dict:
    """Seconds per evaluation of reproduce single's batches on this CPU (scale_cpu_cost.json), per input size."""
    d = json.loads((root / RESULTS / "scale_cpu_cost.json").read_text())
    out = {"date": d["date"], "command": d["command"], "machine": d["machine"]}
    for size in (224, 299):
        rs = [r for r in d["rows"] if int(r["input_size"]) == size]
        batches: dict[float, int] = {}  # rows of one batch share its training time (to a few ms)
        for r in rs:
            key = round(float(r["seconds"]), 1)
            batches[key] = batches.get(key, 0) + int(r["evaluations"])
        secs = sum(batches)
        out[size] = dict(per_eval=secs / sum(batches.values()), seconds=secs, evaluations=sum(batches.values()),
                         configs=len(rs))
    return out


def gpu_costs(root: Path) -> dict:
    ms, batch = lite0_h200_ms(root)
    return {224: ms / 1000, 299: ms / 1000 * (299 / 224) ** 2, "batch": batch, "ms": ms}


def shared_h200(root: Path) -> dict | None:
    """An upper bound per evaluation from the committed `single` run: each 299 variant's wall time over the
    evaluations its configs ran, while the other variants shared the same GPU."""
    rep = json.loads((root / "reports" / "single.json").read_text())
    rows = tables.read_rows(root / "reports" / "single.csv")
    out = []
    for s in rep.get("sessions") or []:
        m = re.search(r"--variants (paper-\w+)", s["command"])
        if m and "cuda" in s["command"]:
            ev = sum(int(float(r.get("evaluations") or r["iterations"])) for r in rows if r["variant"] == m.group(1))
            out.append((s["wall_s"] / ev, s["wall_s"], ev))
    return max(out) if out else None


@block("scale-config-cost")
def _scale_config_cost(root: Path) -> str:
    cpu, gpu, shared = cpu_costs(root), gpu_costs(root), shared_h200(root)
    lines = ["| where | Lite0 at 224 (app variants, classes) | Lite0 at 299 (paper variants) | source |",
             "|---|---|---|---|",
             f"| this CPU, 1 thread, batch {cpu[224]['configs']} | **{cpu[224]['per_eval']:.2f} s** | "
             f"**{cpu[299]['per_eval']:.2f} s** | measured {cpu['date']}: `{cpu['command'].split('=1 ', 1)[-1]}`; "
             f"{cpu[224]['seconds']:.1f} s and {cpu[299]['seconds']:.1f} s for {cpu[224]['evaluations']} and "
             f"{cpu[299]['evaluations']} evaluations; {cpu['machine'].split('; ', 1)[-1]}, other sessions' jobs "
             "beside it, so pessimistic (`bench/results/scale_cpu_cost.json`) |",
             f"| NVIDIA H200, batch {gpu['batch']} | **{gpu[224] * 1000:.2f} ms** | **≈ {gpu[299] * 1000:.2f} ms** "
             f"(estimate) | training step {gpu['ms'] * gpu['batch']:.0f} ms at batch {gpu['batch']}, "
             "`bench/speed.py --device cuda` (`bench/results/speed_h200.txt`); 299 scaled by pixel count "
             f"(299²/224² = {(299 / 224) ** 2:.2f}) |"]
    if shared:
        lines.append(f"| same H200, the four `single` variants sharing it | — | ≤ {shared[0] * 1000:.1f} ms | "
                     f"`reports/single.json`: a 299 variant's {shared[1]:.0f} s of wall time over the "
                     f"{shared[2]:,} evaluations its 100 configs ran, beside the other runs (an upper bound) |")
    r = lite_ratios(root)
    lines += ["", f"Lite1 and Lite2 cost {r[LITES[1]][0]:.1f}× and {r[LITES[2]][0]:.1f}× Lite0 at their native sizes "
              f"and {r[LITES[1]][1]:.2f}× and {r[LITES[2]][1]:.1f}× at 299 (forward+backward at batch 1 on this CPU, "
              "`bench/results/input_size.txt`); the estimate below assumes the same ratios on a GPU."]
    return "\n".join(lines)


def protocol_parts(root: Path) -> dict:
    """Evaluations (worst case: every config to the cap) and seconds per model for each part, on the H200 and here."""
    p, r, cpu, gpu = PROTOCOL, lite_ratios(root), cpu_costs(root), gpu_costs(root)
    parts = {"single paper variants: 2 × 100 configs at 299": (2 * p["single_configs"] * p["cap"], 299),
             "single app variants: 2 × 100 configs at 224": (2 * p["single_configs"] * p["cap"], 224),
             f"classes: {p['classes']} classes × {p['class_draws']} draws":
                 (p["classes"] * p["class_draws"] * p["cap"], 224)}
    out = {}
    for name, (n, size) in parts.items():
        k = 1 if size == 299 else 0
        out[name] = dict(evaluations=n, size=size,
                         gpu={m: n * gpu[size] * r[m][k] for m in LITES},
                         cpu={m: n * cpu[size]["per_eval"] * r[m][k] for m in LITES})
    n = p["crossmodel_configs"] * p["cap"]
    cross = dict(evaluations=n * len(LITES), gpu=sum(n * gpu[224] * r[m][0] for m in LITES),
                 cpu=sum(n * cpu[224]["per_eval"] * r[m][0] for m in LITES))
    return {"parts": out, "crossmodel": cross}


def _sizes_planning(root: Path) -> float:
    """Median seconds cuDNN took for a batch size it had not seen (h200_batch_sizes.txt)."""
    head, ms = [[c.strip() for c in r.strip("|").split("|")] for r in
                tables.printed_table(root / RESULTS / "h200_batch_sizes.txt")[1][::2]]
    new = sorted(float(v.replace(",", "")) for h, v in zip(head[1:], ms[1:]) if "new" in h)
    return new[len(new) // 2] / 1000


@block("scale-hours")
def _scale_hours(root: Path) -> str:
    pp, p = protocol_parts(root), PROTOCOL
    parts, cross = pp["parts"], pp["crossmodel"]
    lines = ["| part (per model unless noted) | evaluations | " + " | ".join(m.split("-")[1].title() for m in LITES)
             + " |", "|---|---|---|---|---|"]
    for name, c in parts.items():
        cmd, rest = name.split(":", 1)
        label = f"`{cmd.split()[0]}`{cmd[len(cmd.split()[0]):]}:{rest}"
        lines.append(f"| {label} | {c['evaluations'] / 1e6:.1f} M | "
                     + " | ".join(f"{c['gpu'][m]:,.0f} s" for m in LITES) + " |")
    per = {m: sum(c["gpu"][m] for c in parts.values()) for m in LITES}
    n_model = sum(c["evaluations"] for c in parts.values())
    lines.append(f"| **on Ray, per model** | {n_model / 1e6:.1f} M | "
                 + " | ".join(f"**{per[m] / 3600:.2f} h**" for m in LITES) + " |")
    total = sum(per.values()) + cross["gpu"]
    per_model = 4 * p["single_configs"] // p["chunk"] + p["classes"] * p["class_draws"] // p["class_chunk"]
    chunks = len(LITES) * per_model + len(LITES)  # and one crossmodel chunk per model
    plan = _sizes_planning(root)
    planning = chunks * 8 * plan
    uni = tables.read_rows(root / "reports" / "universal.csv")
    per_step = max(float(r["seconds"]) / int(r["steps"]) for r in uni)
    uni_s = p["universal_targets"] * p["cap"] * per_step
    r = lite_ratios(root)
    uni_all = uni_s * sum(r[m][0] for m in LITES)
    rep = json.loads((root / "reports" / "single.json").read_text())["summary"]["by_variant"]
    fail = {v: 1 - d["success_0_9"] for v, d in rep.items()}
    paper_fail = sorted(fail[v] for v in fail if v.startswith("paper"))
    app_fail = sorted(fail[v] for v in fail if v.startswith("app"))
    first, second = list(parts.values())[:2]
    expected = (first["gpu"][LITES[0]] * sum(paper_fail) / len(paper_fail)
                + second["gpu"][LITES[0]] * sum(app_fail) / len(app_fail))
    core_h = {m: sum(c["cpu"][m] for c in parts.values()) / 3600 for m in LITES}
    cpu_total = sum(core_h.values()) + cross["cpu"] / 3600
    lines += ["", f"Plus `crossmodel` ({p['crossmodel_configs']} configs on each of the three models, "
              f"{cross['evaluations'] / 1e6:.1f} M evaluations): {cross['gpu']:,.0f} s. **Total on Ray ≈ "
              f"{total / 3600:.1f} H200-hours**; the wall time is about that divided by the number of GPUs while each "
              "command has at least as many chunks as GPUs (16 per `single` run above), since the commands run one "
              f"after the other. To that add, per task, a model load (seconds) and cuDNN's planning of each new batch "
              f"size (≈ {plan:.1f} s each, `bench/results/h200_batch_sizes.txt`; at most 8 sizes per chunk since "
              f"batches are padded to powers of two: ≤ {8 * plan:.0f} s per chunk, ≈ {planning / 3600:.1f} h over "
              f"the {chunks} chunks), and on the driver's GPU `universal` ({p['universal_targets']} targets × "
              f"{p['cap']:,} single-photo steps; the committed run took up to {per_step * 1000:.0f} ms per step "
              f"(`reports/universal.csv`, a run that mixed CPU and GPU), so at most {uni_s / 3600:.1f} h for Lite0 and "
              f"{uni_all / 3600:.1f} h for the three models) and the evaluation-only experiments. **All in: ≈ "
              f"{(total + planning) / 3600:.0f} H200-hours on Ray, plus at most {uni_s / 3600:.1f} h (Lite0) to "
              f"{uni_all / 3600:.1f} h (three models) of `universal` on one GPU.** Expected rather than worst case is "
              f"lower: in the committed capped runs {paper_fail[0]:.0%}–{paper_fail[-1]:.0%} of the paper-variant "
              f"configs never reached p ≥ 0.9 (and they dominate the sum), against {app_fail[0]:.0%}–"
              f"{app_fail[-1]:.0%} for the app variants; counting only those failures at the cap, Lite0's `single` "
              f"is ≈ {expected:,.0f} s instead of {first['gpu'][LITES[0]] + second['gpu'][LITES[0]]:,.0f} s.",
              "", f"On CPUs the same {n_model * len(LITES) / 1e6:.1f} M + {cross['evaluations'] / 1e6:.1f} M "
              f"evaluations cost ≈ {cpu_total:,.0f} core-hours at the per-evaluation cost measured here ("
              + ", ".join(f"{core_h[m]:,.0f} {m.split('-')[1].title()}" for m in LITES)
              + f", {cross['cpu'] / 3600:,.0f} crossmodel), i.e. about {cpu_total / 24 / 24:.1f} days on a 24-core "
              "node: `--engine ray` with `--threads 1` runs one chunk per core."]
    return "\n".join(lines)


@block("area-cell-minutes")
def _area_cell_minutes(root: Path) -> str:
    """Wall time of one 2,000-iteration cell of bench/area_table.py: its configs train as one batch, so the cell
    took as long as its slowest row (the ``seconds`` column)."""
    cells: dict[tuple, float] = {}
    for r in tables.read_rows(root / RESULTS / "area_table.csv", 2000):
        key = (r["optimizer"], r["domain"], r["size"], r["seed"])
        cells[key] = max(cells.get(key, 0.0), float(r["seconds"]))
    mins = sorted(v / 60 for v in cells.values())
    return (f"One 2,000-iteration cell took {mins[0]:.0f}–{mins[-1]:.0f} minutes of wall time here (its configs train "
            "as one batch, so a cell lasts as long as its slowest config; `seconds` in `bench/results/area_table.csv`).")
