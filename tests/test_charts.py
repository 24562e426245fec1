"""The live charts stay small however long a training runs, and keep the curve's shape."""
from __future__ import annotations

import json
import math

from ui import charts


def _curve(n: int) -> list[float]:
    ys = [0.5 + 0.3 * math.sin(i / 50) for i in range(n)]
    ys[4321 % n] = 0.999  # one spike and one dip that plain striding would miss
    ys[1234 % n] = 0.001
    return ys


def test_thin_keeps_short_curves_whole():
    assert charts.thin([0.1, 0.2, 0.3]) == [0, 1, 2]
    assert charts.thin([]) == []


def test_thin_bounds_points_and_keeps_extremes_and_ends():
    ys = _curve(10_000)
    idx = charts.thin(ys, 600)
    assert len(idx) <= 600 + 1 and idx == sorted(set(idx))
    assert idx[0] == 0 and idx[-1] == len(ys) - 1
    kept = [ys[i] for i in idx]
    assert max(kept) == max(ys) and min(kept) == min(ys)
    assert charts.thin([None] * 5000 + [0.5], 60)[-1] == 5000  # gaps (None) do not break it


def test_confidence_curve_payload_is_bounded():
    n = 10_000
    pt, ps = _curve(n), [1 - p for p in _curve(n)]
    top5 = [[(859, p), (1, 0.01), (2, 0.2 * (i % 7 == 0))] for i, p in enumerate(pt)]
    fig = charts.confidence_curve(pt, ps, top5, target=859, source=1)
    for tr in fig.data:
        assert len(tr.x) == len(tr.y) <= charts.MAX_POINTS + 1
        assert tr.x[-1] == n - 1  # the newest iteration is always drawn
    assert max(fig.data[0].y) == max(pt)
    assert len(json.dumps(fig.to_plotly_json(), default=str)) < 200_000
    short = charts.confidence_curve(pt[:50], ps[:40], None, target=859, source=1)
    assert list(short.data[0].x) == list(range(50)) and list(short.data[1].x) == list(range(40))


def test_universal_curve_is_bounded():
    n = 10_000
    fig = charts.universal_curve(_curve(n), [i % 31 for i in range(n)], 30, 859)
    for tr in fig.data:
        assert len(tr.x) == len(tr.y) <= 2 * charts.MAX_POINTS + 2
        assert tr.x[-1] == n
    assert max(fig.data[1].y) == 30


def test_heat_grid_is_compact_and_keeps_the_hot_spot():
    import plotly.io as pio
    import torch

    maps = [torch.rand(224, 224) * 1e-3 for _ in range(8)]
    maps[3][10:20, 150:160] = 5.0  # one hot square
    fig = charts.heat_grid(maps, [f"m{i}" for i in range(8)])
    assert len(pio.to_json(fig, validate=False)) < 400_000  # was 7.8 MB as JSON lists of floats
    z = fig.data[3].z
    assert z.shape == (112, 112) and int(z.max()) == 100
    assert z[5:10, 75:80].min() == 100 and z[50:, :50].max() <= 1  # pooled 2×2: hot square at rows 5–9, cols 75–79
    assert list(fig.data[3].x[:3]) == [0, 2, 4]  # hover shows image pixels, not pooled cells
    empty = charts.heat_grid([torch.zeros(224, 224), torch.full((224, 224), float("nan"))], ["a", "b"])
    assert int(empty.data[0].z.max()) == 0 and int(empty.data[1].z.max()) == 0


def test_heat_grid_colours_are_rgb_stops():
    """Streamlit's frontend drew plotly's hex "Inferno" (#000004 …) with a pink low end; we send rgb() stops."""
    import torch

    fig = charts.heat_grid([torch.rand(32, 32)], ["m"])
    stops = fig.data[0].colorscale
    assert stops[0][1] == "rgb(0,0,4)" and all(c.startswith("rgb(") for _, c in stops)
