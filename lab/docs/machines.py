"""The machine blocks: our trainer against ART, input size, speed on this CPU and on a lent H200, the app under
load (bench/results/*.csv|txt)."""
from __future__ import annotations

import re
from pathlib import Path

from .. import tables
from .registry import RESULTS, block

VS_ART = dict(max_iter=500, budgets=[30, 60, 120], art_lr=0.03)


@block("vs-art")
def _vs_art(root: Path) -> str:
    rows = tables.read_rows(root / RESULTS / "vs_art.csv", VS_ART["max_iter"])
    return tables.vs_art_markdown(rows, VS_ART["budgets"], VS_ART["art_lr"])


@block("vs-art-reading")
def _vs_art_reading(root: Path) -> str:
    rows = tables.read_rows(root / RESULTS / "vs_art.csv", VS_ART["max_iter"])
    cells = {(c["method"], c["lr"]): c for c in tables.summarise_vs_art(rows, [60])}
    art, img, net = cells[("art-image", VS_ART["art_lr"])], cells[("ours-image", 0.3)], cells[("ours-network", 0.05)]
    pr = tables.paired(img, art)
    return (f"Against ART 1.20.1's `AdversarialPatchPyTorch` on the same {art['n']} problems (same model, photos, "
            f"targets, corners and {art['size']}×{art['size']} patch; cap {art['max_iter']}): within 60 s per config "
            f"ours reached p ≥ 0.9 on {img['within'][60]}/{img['n']} (image domain, ART's setting) and "
            f"{net['within'][60]}/{net['n']} (network domain), ART on {art['within'][60]}/{art['n']}; on the "
            f"{pr['n']} configs both solved ours took {pr['s']:.2f}× ART's time (`bench/vs_art.py`).")


_SMOKE_METHODS = {"art-image": "ART `AdversarialPatchPyTorch` (image)", "ours-image": "ours, image domain",
                  "ours-network": "ours, network domain"}


@block("vs-art-smoke")
def _vs_art_smoke(root: Path) -> str:
    """The vs-ART smoke run (bench/results/vs_art_smoke.csv): per method and lr, successes, mean s/iteration and each
    config's final p(target)."""
    rows = tables.read_rows(root / RESULTS / "vs_art_smoke.csv")
    cap = max(int(r["max_iter"]) for r in rows)
    lines = [f"| method | lr | configs | p≥0.9 within {cap} it | s / iteration | final p(target), "
             + " / ".join(f"config {c}" for c in sorted({int(r["config"]) for r in rows})) + " |",
             "|---|---|---|---|---|---|"]
    for c in tables.summarise_vs_art(rows, []):
        rs = sorted(c["rows"], key=lambda r: int(r["config"]))
        lr = f"{c['lr']:g}" + (" (sigmoid params)" if c["method"] == "ours-image" else "")
        per_it = sum(float(r["seconds_per_it"]) for r in rs) / len(rs)
        finals = " / ".join(f"{float(r['p_target']):.3f}" for r in rs)
        lines.append(f"| {_SMOKE_METHODS.get(c['method'], c['method'])} | {lr} | {c['n']} | {c['ok']}/{c['n']} | "
                     f"{per_it:.2f} | {finals} |")
    return "\n".join(lines)


@block("input-size-reading")
def _input_size_reading(root: Path) -> str:
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in tables.printed_table(root / RESULTS / "input_size.txt")[1][2:]]
    lite0 = {r[1].split()[0]: r for r in rows if r[0] == "efficientnet-lite0"}
    native, big = lite0["224"], lite0["299"]
    costs = {}
    for r in rows:
        costs.setdefault(r[0], {})[r[1].split()[0] == "299"] = float(r[5])
    ratios = sorted(v[True] / v[False] for v in costs.values() if len(v) == 2)
    return (f"Lite0 at 299 agrees with itself at 224 on {big[3]} of photos but is far less confident (mean top-1 "
            f"{float(big[2]):.2f} vs {float(native[2]):.2f}), and costs {ratios[0]:.1f}–{ratios[-1]:.1f}× more per "
            "forward+backward;")


def _speed_rows(root: Path, name: str) -> dict[str, tuple[float, float | None]]:
    """measurement -> (ratio, goal or None) of a saved speed.py printout's ratio cells ("1.11× throughput (goal ≥ 3)")."""
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in tables.printed_table(root / RESULTS / name)[1][2:]]
    out = {}
    for r in rows:
        goal = re.search(r"goal ≥ ([\d.]+)", r[2])
        out[r[0]] = (float(r[2].split("×")[0]), float(goal.group(1)) if goal else None)
    return out


@block("speed-reading")
def _speed_reading(root: Path) -> str:
    """channels_last, and the two batching goals (ratios and goals from the printouts) on this CPU and on the H200."""
    cpu, gpu = _speed_rows(root, "speed.txt"), _speed_rows(root, "speed_h200.txt")
    cl = sorted(v for k, (v, _) in cpu.items() if "contiguous / channels_last" in k)

    def pick(rows, where):
        return next(v for k, v in rows.items() if where(k))
    (batch, bgoal), (frag, fgoal) = pick(cpu, lambda k: "one by one / batched" in k), pick(cpu, _is_map)
    (gbatch, gbgoal), (gfrag, gfgoal) = pick(gpu, lambda k: "one by one / batched" in k), pick(gpu, _is_map)
    met = batch >= (bgoal or 0) and frag >= (fgoal or 0)
    gmet = gbatch >= (gbgoal or 0) and gfrag >= (gfgoal or 0)
    return (f"`channels_last` is on for every model ({cl[0]:.1f}–{cl[-1]:.0f}× faster forward+backward on this "
            f"CPU). On CPU, batching configs {'barely raises' if batch < 1.5 else 'raises'} throughput "
            f"({batch:.1f}×) and one big batched forward for the fragility map is "
            f"{'slower' if frag < 1 else 'faster'} than 25 small ones ({frag:g}×)"
            + (": a single core is already saturated by one image, so" if not met else ", so")
            + f" the batching goals of the benchmarks issue are {'' if met else 'not '}met on this machine; on the "
            f"H200 lent in an earlier session they {'are' if gmet else 'are not'} ({gbatch:.0f}× and {gfrag:.1f}×, "
            "below).")


def _is_map(measurement: str) -> bool:
    return measurement.startswith("fragility map")


LOAD = RESULTS / "load_2026-11-25.txt"  # the as-shipped run of bench/load.py (postScriptGC = false)


@block("load-printout")
def _load_printout(root: Path) -> str:
    lines = [x for x in (root / LOAD).read_text().splitlines() if not x.startswith("#")]
    return "```\n" + "\n".join(lines).strip("\n") + "\n```"


FIXED = (RESULTS / "load10_2026-12-01_race_fixed.txt", RESULTS / "load30_2026-12-01_race_fixed.txt")  # after the fix


def _never_redrawn(path: Path) -> tuple[int, int]:
    """(interactions never redrawn, interactions) summed over the kinds of a bench/load.py printout's "never
    redrawn: attack x 0/40, universal move 0/55, page switch 0/53" line."""
    line = next(x for x in path.read_text().splitlines() if x.startswith("never redrawn:"))
    pairs = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", line.split(";")[0])]
    return sum(a for a, _ in pairs), sum(b for _, b in pairs)


def _load_response(root: Path) -> dict:
    """The 10-session "x typed → canvas redrawn" row of the saved bench/load.py printout, and its ∞ count."""
    text = (root / LOAD).read_text()
    row = next(x for x in text.splitlines() if x.startswith("| **response: x typed"))
    _, sessions, n, med, p95, top = [c.strip() for c in row.strip("|").split("|")]
    never = re.search(r"∞: (\d+) interactions? got no redrawn canvas", text)
    return {"sessions": sessions, "n": n, "median": med, "p95": p95, "never": int(never.group(1)) if never else 0}


@block("load-reading")
def _load_reading(root: Path) -> str:
    r = _load_response(root)
    fixed = [_never_redrawn(root / f) for f in FIXED]
    same = len({lost for lost, _ in fixed}) == 1
    after = (f"{fixed[0][0]} lost of " + " and of ".join(str(n) for _, n in fixed) if same else
             " and ".join(f"{lost} lost of {n}" for lost, n in fixed)) + " interactions"
    return (f"p95 response with {r['sessions']} sessions polling progress {r['p95']} (median {r['median']}; "
            f"{r['never']} of {r['n']} interactions never redrawn on that day; `bench/load.py`, printout in "
            "`bench/results/load_2026-11-25.txt`). The lost redraws were a race in Streamlit's session (a finished "
            "run's last events dropped when a progress poll started the next run first); `ui/jobs` now delivers "
            f"them — {after} after the fix (docs/BENCHMARKS.md).")
