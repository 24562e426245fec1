"""bench/ceiling.py: the cell geometry of a patch on the last feature grid, and the head-only ceiling of p(target)."""
from __future__ import annotations

import importlib

import torch

ceiling_mod = importlib.import_module("bench.ceiling")


def test_cells_of_corner_patches_on_the_7x7_grid():
    cells = ceiling_mod.cells
    # 42 px at the top-left corner: only cell (0,0)'s centre (16,16) is inside; it overlaps 2x2 cells
    assert cells((0, 0), 42, 7, 32) == ([(0, 0)], [(0, 0), (0, 1), (1, 0), (1, 1)])
    # 50 px reaches the next centres (48): 2x2 full cells
    assert cells((0, 0), 50, 7, 32)[0] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # bottom-right 42 px on 224 (top-left at 182): cell 6's centre 208 inside, cells 5 and 6 overlapped
    assert cells((182, 182), 42, 7, 32) == ([(6, 6)], [(5, 5), (5, 6), (6, 5), (6, 6)])
    # 32 px aligned with the grid covers exactly one cell
    assert cells((0, 0), 32, 7, 32) == ([(0, 0)], [(0, 0)])


def test_ceiling_is_clean_without_free_cells_and_grows_with_them():
    torch.manual_seed(0)
    fc = torch.nn.Linear(16, 10)
    feats = torch.rand(16, 7, 7) * 6
    clean = float(torch.softmax(fc(feats.mean((1, 2))), 0)[3].detach())
    assert ceiling_mod.ceiling(feats, fc, [], 3, 6.0) == clean
    one = ceiling_mod.ceiling(feats, fc, [(0, 0)], 3, 6.0, steps=300)
    four = ceiling_mod.ceiling(feats, fc, [(0, 0), (0, 1), (1, 0), (1, 1)], 3, 6.0, steps=300)
    every = ceiling_mod.ceiling(feats, fc, [(i, j) for i in range(7) for j in range(7)], 3, 6.0, steps=300)
    assert clean <= one + 1e-6 <= four + 2e-6 <= every + 3e-6
    # with every cell free the optimum is a corner of the box: each feature at 0 or 6 by the sign of w_t - mean w
    w = fc.weight
    best = torch.where(w[3] - torch.softmax(fc(torch.full((16,), 3.0)), 0) @ w > 0, 6.0, 0.0)
    assert every >= float(torch.softmax(fc(best), 0)[3].detach()) - 1e-3
