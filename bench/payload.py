"""What the app sends per redraw: plotly payload bytes and build time of the live and heat-map charts.

Each row builds the same figure twice in one run: as drawn now (curves thinned to ``ui.charts.MAX_POINTS``, heat maps
pooled and sent as bytes) and the way it was drawn before (every point; every pixel as a JSON float), and reports
the JSON size Streamlit sends (``plotly.io.to_json``, as ``st.plotly_chart`` does) and the median build+serialise time.

    .venv/bin/python bench/payload.py [--reps 5]
"""
from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402
import torch  # noqa: E402
from plotly.subplots import make_subplots  # noqa: E402

from ui import charts  # noqa: E402


def timed(fn, reps: int) -> tuple[float, int]:
    out, size = [], 0
    for _ in range(reps):
        t = time.perf_counter()
        size = len(pio.to_json(fn(), validate=False))
        out.append(time.perf_counter() - t)
    return statistics.median(out), size


def full_heat_grid(maps, titles, cols=4):
    """The grid as drawn before: every pixel as a float list."""
    rows = math.ceil(len(maps) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02, vertical_spacing=0.08)
    for i, m in enumerate(maps):
        r, c = divmod(i, cols)
        fig.add_heatmap(z=m.tolist(), colorscale="Inferno", showscale=False, row=r + 1, col=c + 1)
    return fig


def lists_confidence_curve(p_target, p_source, top5, target, source, others=3, stop_at=0.9):
    """The live confidence curve as ui/charts built it until 2026-12-01 (same thinned points): Python lists,
    ``add_scatter`` per trace and ``add_hline`` — plotly validates every list element by element, twice."""
    fig = go.Figure()
    idx = charts.thin(p_target)
    fig.add_scatter(x=idx, y=charts._pick(p_target, idx), name="target", line=dict(color="#d62728", width=3))
    ys = charts._pick(p_source, idx)
    fig.add_scatter(x=idx[:len(ys)], y=ys, name="source", line=dict(color="#1f77b4", width=3))
    best: dict[int, float] = {}
    for row in top5:
        for cid, p in row:
            if cid not in (target, source):
                best[int(cid)] = max(best.get(int(cid), 0.0), float(p))
    for cid in sorted(best, key=best.get, reverse=True)[:others]:
        ys = [next((float(p) for c, p in row if int(c) == cid), None) for row in charts._pick(top5, idx)]
        fig.add_scatter(x=idx[:len(ys)], y=ys, name=str(cid), line=dict(dash="dot", width=1.5))
    fig.add_hline(y=stop_at, line=dict(color="grey", dash="dash"), annotation_text=f"stop at {stop_at:g}")
    fig.update_layout(xaxis_title="iteration", yaxis_title="probability", yaxis_range=[0, 1.02], height=330,
                      margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def lists_restart_curves(restarts, leader, evaluations, stop_at=0.9):
    """The restart curves as built until 2026-12-01: lists, one hover string per point, add_scatter, add_hline."""
    fig = go.Figure()
    for r, ys in enumerate(restarts):
        idx = charts.thin(ys)
        hover = [f"restart {r}, iteration {i}, {evaluations[i]} evaluations" for i in idx]
        fig.add_scatter(x=idx, y=charts._pick(ys, idx), name=f"restart {r}",
                        line=dict(color="#d62728" if r == leader else "#7f7f7f", width=3.5 if r == leader else 1.2),
                        hovertext=hover, hoverinfo="text+y")
    fig.add_hline(y=stop_at, line=dict(color="grey", dash="dash"), annotation_text=f"stop at {stop_at:g}")
    fig.update_layout(xaxis_title="iteration", yaxis_title="p(target)", yaxis_range=[0, 1.02], height=300)
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    rows = []
    for n in (1_000, 10_000):
        pt = [0.5 + 0.4 * math.sin(i / 70) for i in range(n)]
        ps = [1 - p for p in pt]
        top5 = [[(859, p), (1, 1 - p), (2, 0.01), (3, 0.02 * (i % 5 == 0)), (4, 0.005)] for i, p in enumerate(pt)]

        def now():
            return charts.confidence_curve(pt, ps, top5, 859, 1)

        def before():
            keep, charts.MAX_POINTS = charts.MAX_POINTS, 10 ** 9
            try:
                return charts.confidence_curve(pt, ps, top5, 859, 1)
            finally:
                charts.MAX_POINTS = keep

        (tb, sb), (tn, sn) = timed(before, args.reps), timed(now, args.reps)
        rows.append((f"live confidence curve, {n:,} iterations (5 traces)", sb, sn, tb, tn))
    # Built from lists vs numpy arrays (ui/charts since 2026-12-01): the same thinned points, what a progress poll of
    # a running attack page builds twice a second (the restart curves at the default 8 restarts: 2 x 62, 2 x 250 and
    # the leader's 1,000 iterations).
    n = 1_000
    pt = [0.5 + 0.4 * math.sin(i / 70) for i in range(n)]
    ps = [1 - p for p in pt]
    top5 = [[(859, p), (1, 1 - p), (2, 0.01), (3, 0.02 * (i % 5 == 0)), (4, 0.005)] for i, p in enumerate(pt)]
    (tb, sb), (tn, sn) = (timed(lambda: lists_confidence_curve(pt, ps, top5, 859, 1), args.reps),
                          timed(lambda: charts.confidence_curve(pt, ps, top5, 859, 1), args.reps))
    rows.append(("live confidence curve, 1,000 iterations: lists + add_scatter → numpy + one Figure", sb, sn, tb, tn))
    rest = [pt[:62]] * 4 + [pt[:312]] * 3 + [pt]
    ev = list(range(n))
    (tb, sb), (tn, sn) = (timed(lambda: lists_restart_curves(rest, 7, ev), args.reps),
                          timed(lambda: charts.restart_curves(rest, 7, evaluations=ev), args.reps))
    rows.append(("live restart curves, 8 restarts: lists + hover strings → numpy + hover template", sb, sn, tb, tn))
    maps = [torch.rand(224, 224, generator=g) for _ in range(8)]
    titles = [f"m{i}" for i in range(8)]
    (tb, sb), (tn, sn) = (timed(lambda: full_heat_grid(maps, titles), args.reps),
                          timed(lambda: charts.heat_grid(maps, titles), args.reps))
    rows.append(("Gradients page heat grid, 8 maps of 224×224", sb, sn, tb, tn))
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, reps {args.reps}")
    print("| chart | bytes before | bytes now | ratio | build+serialise before | now | ratio |")
    print("|---|---|---|---|---|---|---|")
    for name, sb, sn, tb, tn in rows:
        print(f"| {name} | {sb:,} | {sn:,} | {sb / sn:.0f}× | {tb * 1e3:.0f} ms | {tn * 1e3:.0f} ms | {tb / tn:.1f}× |")


if __name__ == "__main__":
    main()
