"""Plotly figures for the pages (numbers are charts or tables, not prose)."""
from __future__ import annotations

import math

import numpy as np
import plotly.colors as _pc
import plotly.graph_objects as go
from plotly.subplots import make_subplots

import attack

# Inferno as rgb() stops: Streamlit's frontend draws plotly's own hex stops of "Inferno" (first stop "#000004") with
# a pink low end instead of black (seen in headless Chromium, theme on or off); rgb() strings draw as intended.
INFERNO = [[i / (len(_pc.sequential.Inferno) - 1), "rgb(%d,%d,%d)" % _pc.hex_to_rgb(c)]
           for i, c in enumerate(_pc.sequential.Inferno)]

MAX_POINTS = 600  # per trace; a 10,000-iteration curve redrawn at 2 Hz would otherwise send ~1 MB a redraw


def _name(i: int) -> str:
    return attack.class_names()[int(i)]


def thin(ys: list, max_points: int | None = None) -> list[int]:
    """Indices to draw of a long curve: per bucket its first, lowest and highest point, plus the last point.

    Keeps the curve's shape (spikes and dips survive, unlike plain striding) with at most ``max_points`` points.
    ``None`` values count as neither high nor low. Returns every index when the curve is short enough.
    """
    max_points = MAX_POINTS if max_points is None else max_points
    n = len(ys)
    if n <= max_points:
        return list(range(n))
    buckets = max(1, max_points // 3)
    keep: set[int] = {n - 1}
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        idx = [i for i in range(lo, hi) if ys[i] is not None]
        keep.add(lo)
        if idx:
            keep.add(min(idx, key=ys.__getitem__))
            keep.add(max(idx, key=ys.__getitem__))
    return sorted(keep)


def _pick(xs: list, idx: list[int]) -> list:
    return [xs[i] for i in idx if i < len(xs)]


# The live charts are rebuilt on every progress poll (twice a second per training page). Plotly validates every
# list it is given element by element (~0.1 s for one 600-point confidence chart: a classroom's polls spent more of
# the server's GIL there than anywhere else, bench/load.py under py-spy); numpy arrays pass its validators in one
# step, and one Figure(data, layout) call validates each trace once instead of add_scatter's twice.
def _arr(xs: list, dtype=float) -> np.ndarray:
    """A list as a numpy array for plotly, sent as a base64 typed array: float32 for values (None, a gap in the
    curve, becomes NaN), int32 for iterations — half the bytes of float64, and p to 7 digits is plenty."""
    if dtype is float:
        return np.array([np.nan if v is None else v for v in xs], dtype=np.float32)
    return np.asarray(xs, dtype=np.int32)


def _hline(y: float, text: str, color: str = "grey", yref: str = "y") -> tuple[dict, dict]:
    """A dashed horizontal line across the plot and its label at the right end (what ``add_hline`` draws, without
    its per-call validation of the whole figure)."""
    shape = dict(type="line", xref="paper", x0=0, x1=1, yref=yref, y0=y, y1=y,
                 line=dict(color=color, dash="dash"))
    label = dict(text=text, xref="paper", x=1, yref=yref, y=y, xanchor="right", yanchor="bottom",
                 showarrow=False)
    return shape, label


def _scatter(x: list, y: list, **kw) -> dict:
    n = min(len(x), len(y))
    return dict(type="scatter", x=_arr(x[:n], int), y=_arr(y[:n]), **kw)


def confidence_curve(p_target: list[float], p_source: list[float], top5: list | None, target: int,
                     source: int | None, others: int = 3, stop_at: float = 0.9) -> go.Figure:
    """p(target), p(source) and the strongest other classes per iteration."""
    idx = thin(p_target)
    traces = [_scatter(idx, _pick(p_target, idx), name=f"target: {_name(target)}",
                       line=dict(color="#d62728", width=3))]
    if source is not None:
        traces.append(_scatter(idx, _pick(p_source, idx), name=f"source: {_name(source)}",
                               line=dict(color="#1f77b4", width=3)))
    if top5:
        best: dict[int, float] = {}
        for row in top5:
            for cid, p in row:
                if cid not in (target, source):
                    best[int(cid)] = max(best.get(int(cid), 0.0), float(p))
        shown = sorted(best, key=best.get, reverse=True)[:others]
        rows = [{int(c): float(p) for c, p in row} for row in _pick(top5, idx)]
        for cid in shown:
            traces.append(_scatter(idx, [r.get(cid) for r in rows], name=_name(cid),
                                   line=dict(dash="dot", width=1.5)))
    shape, label = _hline(stop_at, f"stop at {stop_at:g}")
    return go.Figure(data=traces, layout=dict(
        xaxis_title="iteration", yaxis_title="probability", yaxis_range=[0, 1.02], height=330,
        margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25), shapes=[shape],
        annotations=[label]))


def restart_curves(restarts: list[list[float]], leader: int, stop_at: float = 0.9,
                   evaluations: list[int] | None = None) -> go.Figure:
    """Every restart's p(target) per iteration: the leading restart bold, the others thin; a restart dropped by
    successive halving ends where it was dropped (its list is shorter). ``evaluations`` (cumulative
    forward+backward evaluations per iteration) labels the hover text, so the budget spent is visible."""
    traces = []
    for r, ys in enumerate(restarts):
        if not ys:
            continue
        idx = thin(ys)
        lead = r == leader
        hover = {}
        if evaluations:
            ev = _arr([evaluations[i] if i < len(evaluations) else -1 for i in idx], int)
            hover = dict(customdata=ev, hovertemplate=f"restart {r}, iteration %{{x}}, %{{customdata}} evaluations"
                                                      "<br>p(target) %{y}<extra></extra>")
        traces.append(_scatter(idx, _pick(ys, idx), name=f"restart {r}" + (" (leading)" if lead else ""),
                               line=dict(color="#d62728" if lead else "#7f7f7f", width=3.5 if lead else 1.2),
                               opacity=1.0 if lead else 0.7, **hover))
    shape, label = _hline(stop_at, f"stop at {stop_at:g}")
    return go.Figure(data=traces, layout=dict(
        xaxis_title="iteration (every restart alive takes one forward+backward evaluation)",
        yaxis_title="p(target)", yaxis_range=[0, 1.02], height=300, margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", y=-0.3), shapes=[shape], annotations=[label]))


def restart_series(progress: list) -> tuple[list[list[float]], int]:
    """Per-restart p(target) lists from a live job's :class:`attack.train.StepInfo` reports (None = dropped)."""
    if not progress or not getattr(progress[-1], "restarts", None):
        return [], 0
    n = len(progress[-1].restarts)
    series: list[list[float]] = [[] for _ in range(n)]
    for s in progress:
        for r, p in enumerate(getattr(s, "restarts", None) or []):
            if p is not None and r < n and len(series[r]) == s.iteration:
                series[r].append(p)
    return series, int(progress[-1].leader)


def universal_curve(p_target: list[float], streak: list[int], patience: int, target: int) -> go.Figure:
    """Mean p(target) per step and the streak of consecutive successes (right axis) against the paper's stop rule."""
    idx = sorted(set(thin(p_target)) | set(thin(streak)))
    it = [i + 1 for i in idx]
    traces = [_scatter(it, _pick(p_target, idx), name=f"mean p({_name(target)})", line=dict(color="#d62728")),
              _scatter(it, _pick(streak, idx), name="consecutive successes", line=dict(color="#2ca02c"),
                       yaxis="y2")]
    shape, label = _hline(patience, f"paper: {patience} in a row", color="#2ca02c", yref="y2")
    return go.Figure(data=traces, layout=dict(
        xaxis=dict(title=dict(text="step"), domain=[0, 0.94]),
        yaxis=dict(title=dict(text="p(target)"), range=[0, 1.02]),
        yaxis2=dict(title=dict(text="streak"), range=[0, max(patience, max(streak or [0])) * 1.1],
                    overlaying="y", side="right", anchor="x"),
        height=330, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=-0.25),
        shapes=[shape], annotations=[label]))


def shift_heatmaps(maps: dict) -> go.Figure:
    """p(target) and 'argmax is target' over the (dy, dx) grid of shifts."""
    r = int(maps["radius"])
    ticks = list(range(-r, r + 1))
    pt = maps["p_target"].tolist()
    am = maps["argmax"].tolist()
    target = int(maps["target"])
    hit = [[None if a < 0 else float(a == target) for a in row] for row in am]
    text = [["off image" if a < 0 else _name(a)[:14] for a in row] for row in am]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("p(target)", "top-1 class (red = target)"),
                        horizontal_spacing=0.12)
    fig.add_heatmap(z=pt, x=ticks, y=ticks, zmin=0, zmax=1, colorscale="Reds", row=1, col=1,
                    text=[[("" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.2f}")
                           for v in row] for row in pt], texttemplate="%{text}", colorbar=dict(x=0.44),
                    hovertemplate="dx=%{x} dy=%{y}<br>p=%{z:.3f}<extra></extra>")
    fig.add_heatmap(z=hit, x=ticks, y=ticks, zmin=0, zmax=1, colorscale=[[0, "#d0d7e5"], [1, "#d62728"]],
                    showscale=False, text=text, texttemplate="%{text}", row=1, col=2,
                    hovertemplate="dx=%{x} dy=%{y}<br>%{text}<extra></extra>")
    for c in (1, 2):
        fig.update_xaxes(title_text="dx (px)", dtick=1, row=1, col=c)
        fig.update_yaxes(title_text="dy (px)", dtick=1, autorange="reversed", row=1, col=c, scaleanchor=f"x{c}")
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def border_chart(out: dict, current: float | None = None) -> go.Figure:
    fig = go.Figure()
    xs = [b * 100 for b in out["borders"]]
    for key, name in (("confident", "p(target) ≥ 0.9"), ("argmax", "target is top-1"),
                      ("not_source", "source no longer top-1")):
        fig.add_scatter(x=xs, y=[v * 100 for v in out[key]], name=name, mode="lines+markers")
    fig.add_vline(x=25, line=dict(color="black", dash="dash"), annotation_text="paper ≈25%")
    if current is not None:
        fig.add_vline(x=current * 100, line=dict(color="#d62728", width=1), annotation_text="slider",
                      annotation_position="bottom right")
    fig.update_layout(xaxis_title="border per side (% of image side)", yaxis_title="% of other images",
                      yaxis_range=[-2, 102], height=360, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.3))
    return fig


def _display_map(m, max_side: int):
    """A non-negative map as the grid draws it: average-pooled to at most ``max_side`` cells a side, as whole
    percent of its own largest value (uint8, which plotly sends as packed bytes); plus each cell's pixel coordinate."""
    import numpy as np
    import torch

    t = torch.nan_to_num(torch.as_tensor(m, dtype=torch.float32)).clamp(min=0)
    k = max(1, math.ceil(t.shape[-1] / max_side))
    if k > 1:
        t = torch.nn.functional.avg_pool2d(t[None, None], k, ceil_mode=True)[0, 0]
    top = float(t.max())
    pct = (t / top * 100).round() if top > 0 else torch.zeros_like(t)
    return pct.numpy().astype(np.uint8), np.arange(t.shape[-1]) * k


def heat_grid(maps: list, titles: list[str], cols: int = 4, max_side: int = 112) -> go.Figure:
    """Attribution maps side by side. Each is pooled to ≤ ``max_side`` cells a side and shown as percent of its own
    maximum (the colours were per map anyway), sent as bytes: 8 maps of 224×224 went from 7.8 MB of JSON to ~0.2 MB."""
    rows = math.ceil(len(maps) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.08)
    for i, m in enumerate(maps):
        r, c = divmod(i, cols)
        z, at = _display_map(m, max_side)
        fig.add_heatmap(z=z, x=at, y=at, zmin=0, zmax=100, colorscale=INFERNO, showscale=False, row=r + 1,
                        col=c + 1, hovertemplate="x=%{x} y=%{y}<br>%{z}% of this map's largest value<extra></extra>")
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=r + 1, col=c + 1,
                         scaleanchor=f"x{i + 1}" if i else "x")
        fig.update_xaxes(showticklabels=False, row=r + 1, col=c + 1)
    fig.update_layout(height=260 * rows, margin=dict(l=5, r=5, t=40, b=5))
    return fig


def model_bars(rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    names = [r["model"] for r in rows]
    fig.add_bar(x=names, y=[r["p(target) patched"] for r in rows], name="p(target) with patch",
                marker_color="#d62728")
    fig.add_bar(x=names, y=[r["p(target) clean"] for r in rows], name="p(target) clean", marker_color="#aaaaaa")
    fig.update_layout(barmode="group", yaxis_range=[0, 1.02], yaxis_title="probability", height=320,
                      margin=dict(l=10, r=10, t=30, b=10))
    return fig
