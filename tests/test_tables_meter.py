"""lab.tables.meter: the meter's bands against training rows, the ROC AUC, and the paired placement table."""
from __future__ import annotations

import random

import pytest

from lab import tables

FIELDS = {"restarts": 8, "leak": 0.05, "loss": "margin_ce", "lr": {"image": 0.3, "network": 0.05}}


def _abl(variant, domain, seed, config, success, p, size=42):
    return dict(variant=variant, rule="adam", restarts="8", loss="margin_ce", init="mixed", domain=domain,
                size=str(size), input_size="224", budget="2000", seed=str(seed), config=str(config),
                success="1" if success else "0", p_target=str(p), leak="0.05", lr="0.3" if domain == "image" else "0.05",
                margin="0", st_relu6="0", cosine="0", polish="0", tau="0", patience="0", leak_last="1")


def _meter(seed, config, size=42, band="possible", moved_meter=False):
    loc = (0, 0)
    grid = (11, 11) if size == 42 else loc
    return dict(seed=str(seed), config=str(config), size=str(size), input_size="224", top="0", left="0", band=band,
                ceiling_centre="0.01", ceiling_touched="0.99", grid_top=str(grid[0]), grid_left=str(grid[1]),
                grid_band="likely", grid_ceiling_centre="0.99", grid_ceiling_touched="0.99",
                meter_top=str(grid[0] + moved_meter), meter_left=str(grid[1]), meter_band="likely",
                meter_ceiling_centre="0.99", meter_ceiling_touched="0.99", seconds="0.2")


def test_auc_matches_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    ys = [rng.random() < 0.4 for _ in range(60)]
    scores = [round(rng.random() + 0.5 * y, 1) for y in ys]  # ties on purpose
    assert tables.auc(ys, scores) == pytest.approx(metrics.roc_auc_score(ys, scores))
    assert tables.auc([1, 1], [0.2, 0.3]) is None


def test_bands_and_paired_places():
    meter = [_meter(1, c) for c in range(4)] + [_meter(1, 4, moved_meter=True)]
    meter += [_meter(1, c, size=32, band="unlikely") for c in range(2)]
    ab = [_abl("adam-r8-margin_ce-mixed-lk5", "image", 1, c, c < 2, 0.95 if c < 2 else 0.5) for c in range(5)]
    ab += [_abl("adam-r8-margin_ce-mixed-lk5-pgrid", "image", 1, c, c < 3, 0.95 if c < 3 else 0.6) for c in range(4)]
    ab += [_abl("adam-r8-margin_ce-mixed-lk5", "image", 1, c, False, 0.1, size=32) for c in range(2)]
    ab += [_abl("adam-r8-lk5", "image", 1, 0, True, 0.95)]  # not the default training: left out
    joined = tables.meter_joined(meter, ab, {32: FIELDS, 42: FIELDS})
    assert len(joined) == 11 and {j["place"] for j in joined} == {"corner", "grid"}
    (img, both) = tables.meter_bands(joined)
    assert img["likely"] == (3, 4) and img["possible"] == (2, 5) and img["unlikely"] == (0, 2)
    assert img["auc_band"] == pytest.approx(tables.auc([j["success"] for j in joined],
                                                       [{"unlikely": 0, "possible": 1, "likely": 2}[j["band"]]
                                                        for j in joined]))
    assert "3/4 (75%)" in tables.meter_markdown([img, both])
    cells = tables.summarise_places(joined, meter)
    (cell,) = cells
    assert (cell["paired"], cell["configs"], cell["corner"], cell["grid"]) == (4, 5, 2, 3)
    assert (cell["meter"], cell["meter_configs"], cell["meter_at_grid"]) == (3, 4, 4)  # config 4: no grid row
    assert (cell["grid_higher"], cell["grid_lower"]) == (2, 0)
    md = tables.places_markdown(cells)
    assert "| image | 1 | 4 of 5 | 2/4 | 3/4 | 3/4 (the grid's place on 4/4) | 2 / 0 | 3/4 |" in md
    assert tables.placement_wins(cells) == {"grid": False, "meter": False}  # no network rows: no win
    # the placed rows stay out of the defaults' area table and of the ceiling table's trained column
    assert all(tables.placement_of(r["variant"]) == "corner" for r in
               [r for r in ab if tables.defaults._is_default(r, FIELDS)])


def test_a_place_that_is_the_corner_counts_the_corner_row_and_a_moved_meter_needs_its_own_row():
    # 50 px: grid and meter stay at the corner; 32 px: the grid stays, the meter moves 1 px in (its own -pmeter row)
    meter = [_meter(1, c, size=50, band="likely") for c in range(3)]
    meter += [dict(_meter(1, c, size=32, band="unlikely"), meter_top="1", meter_left="1") for c in range(3)]
    ab = [_abl("adam-r8-margin_ce-mixed-lk5", "image", 1, c, c < 2, 0.95 if c < 2 else 0.5, size=50) for c in range(3)]
    ab += [_abl("adam-r8-margin_ce-mixed-lk5", "image", 1, c, False, 0.1, size=32) for c in range(3)]
    ab += [_abl("adam-r8-margin_ce-mixed-lk5-pmeter", "image", 1, c, c == 0, 0.92 if c == 0 else 0.2, size=32)
           for c in range(2)]  # config 2: not trained yet
    joined = tables.meter_joined(meter, ab, {32: FIELDS, 50: FIELDS})
    (c50,) = tables.summarise_places(joined, meter, size=50)
    assert (c50["paired"], c50["corner"], c50["grid"], c50["meter"], c50["meter_configs"]) == (3, 2, 2, 2, 3)
    assert (c50["grid_at_corner"], c50["meter_at_corner"], c50["meter_at_grid"], c50["best"]) == (3, 3, 0, 2)
    (c32,) = tables.summarise_places(joined, meter, size=32)
    assert (c32["paired"], c32["corner"], c32["grid"], c32["grid_at_corner"]) == (3, 0, 0, 3)
    assert (c32["meter"], c32["meter_configs"], c32["meter_at_corner"], c32["best"], c32["best_of"]) == (1, 2, 0, 1, 2)
    md = tables.places_markdown([c32])
    assert "| image | 1 | 3 of 3 | 0/3 | 0/3 (the corner on 3/3) | 1/2 | – (the same place) | 1/2 |" in md


def test_placement_wins_needs_more_successes_on_complete_seeds_in_both_domains():
    def cell(dom, seed, corner, grid, paired=10, configs=10):
        return dict(domain=dom, seed=seed, configs=configs, paired=paired, corner=corner, grid=grid, meter=grid,
                    meter_configs=paired)
    both = [cell("image", 1, 4, 5), cell("network", 1, 4, 6)]
    assert tables.placement_wins(both) == {"grid": True, "meter": True}
    assert tables.placement_wins([cell("image", 1, 4, 4), cell("network", 1, 4, 6)])["grid"] is False  # a tie
    partial = [cell("image", 1, 4, 5), cell("network", 2, 1, 3, paired=4)]  # network seed 2 not finished
    assert tables.placement_wins(partial)["grid"] is False
    assert tables.placement_wins(partial + [cell("network", 1, 4, 5)])["grid"] is True  # the complete seed counts
