"""The success-vs-budget table read from the ablation's long runs (README "Attack strength")."""
from __future__ import annotations

from lab import tables


def _row(variant, budget, seed, config, success, evaluations, p=0.9):
    return dict(variant=variant, domain="image", size="42", input_size="224", budget=str(budget), seed=str(seed),
                config=str(config), success=str(int(success)), evaluations=str(evaluations), p_target=str(p),
                seconds="10.0")


def test_budget_curves_count_successes_by_evaluations_and_pair_the_short_run():
    rows = [_row("v", 10000, 1, 0, True, 800), _row("v", 10000, 1, 1, True, 2600),
            _row("v", 10000, 2, 0, True, 9000), _row("v", 10000, 2, 1, False, 10000, p=0.42),
            _row("v", 2000, 1, 0, True, 700), _row("v", 2000, 1, 1, False, 2000, p=0.3),
            _row("v", 2000, 2, 0, False, 2000, p=0.8), _row("v", 2000, 2, 1, False, 2000, p=0.01),
            _row("w", 2000, 1, 0, True, 100)]  # a short run only: no curve
    (c,) = tables.budget_curves(rows)
    assert (c["variant"], c["budget"], c["configs"], c["seeds"]) == ("v", 10000, 4, [1, 2])
    assert c["within"] == {500: 0, 1000: 1, 2000: 1, 3000: 2, 5000: 2, 7500: 2, 10000: 3}
    assert c["short"] == {2000: 1} and c["p_failed"] == [0.42] and c["median_evaluations"] == 2600
    md = tables.budget_markdown([c])
    assert "| 0/4 | 1/4 | 1/4 | 2/4 | 2/4 | 2/4 | 3/4 |" in md and "2,000: 1/4" in md
    # the short run counts only where it ran every config of the long one
    (c2,) = tables.budget_curves(rows[:5])
    assert c2["short"] == {}


def test_best_of_runs_counts_a_config_won_by_any_run_and_leaves_moved_patches_out():
    rows = [_row("v", 2000, 1, 0, False, 2000, p=0.5), _row("w", 10000, 1, 0, True, 3000),  # won by one of two
            _row("v", 2000, 1, 1, False, 2000, p=0.7), _row("w", 2000, 1, 1, False, 2000, p=0.8),
            _row("v", 2000, 2, 0, False, 2000, p=0.2),
            dict(_row("m", 2000, 2, 0, True, 500), margin="8"),  # a patch moved in from its corner: not counted
            dict(_row("v", 2000, 1, 0, True, 100), size="50")]  # another size
    (c,) = tables.best_of_runs(rows, 42, many=2)
    assert (c["domain"], c["configs"], c["won"], c["runs_min"], c["runs_max"]) == ("image", 3, 1, 1, 2)
    assert (c["configs_many"], c["won_many"], c["seeds"]) == (2, 1, [1, 2])
    assert c["best_failed"] == [0.8, 0.2] and c["median_evaluations"] == 4000
    assert tables.best_of_runs(rows, 32) == []
