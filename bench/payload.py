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
