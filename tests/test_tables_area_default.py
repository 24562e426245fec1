"""The area table of the trainer's defaults (README "Attack strength", issue 12 item 4)."""
from __future__ import annotations

from attack import tables

DEFAULTS = {42: dict(restarts=8, leak=0.05), 63: dict(restarts=1, leak=0.0)}


def _row(variant, size, seed, config, success, *, restarts=8, leak="0.05", domain="image", cosine="0", p=0.95,
         evaluations=900, argmax=None):
    return dict(variant=variant, rule="adam", restarts=str(restarts), loss="logprob", init="mixed", domain=domain,
                size=str(size), input_size="224", budget="2000", seed=str(seed), config=str(config),
                success=str(int(success)), p_target=str(p if success else 0.5),
                argmax=str(int(success if argmax is None else argmax)), not_source="1", evaluations=str(evaluations),
                seconds="30.0", st_relu6="0", cosine=cosine, polish="0", margin="0", leak=leak, leak_last="1")


def _base(size, seed, config, success, argmax):
    return dict(optimizer="adam", domain="image", size=str(size), input_size="224", max_iter="2000", seed=str(seed),
                config=str(config), success=str(int(success)), argmax=str(int(argmax)))


def test_cells_take_only_rows_trained_with_exactly_the_defaults_and_pair_the_old_default():
    rows = [_row("adam-r8-lk5", 42, 1, 0, True, evaluations=800),
            _row("adam-r8-lk5", 42, 1, 1, False, argmax=True),
            _row("adam-r8-lk5", 42, 2, 0, True, evaluations=1200),
            _row("adam-r8-lk5-again", 42, 1, 0, False),  # same config under another name: the first row counts
            _row("adam-r8-cos-lk5", 42, 1, 2, True, cosine="1"),  # an option on: not the default
            _row("adam-r16-lk5", 42, 1, 3, True, restarts=16),  # other restarts: not the default
            _row("adam-r8", 42, 1, 4, True, leak="0"),  # no leak below the default area: not the default
            _row("adam-r1-logprob-mixed", 63, 1, 0, True, restarts=1, leak="0", evaluations=150),
            _row("adam-r8-lk5", 42, 1, 5, True, domain="network")]
    base = [_base(42, 1, 0, False, True), _base(42, 1, 1, False, False), _base(42, 1, 9, True, True)]
    cells = {(c["domain"], c["size"]): c for c in tables.default_area_cells(rows, base, DEFAULTS)}
    assert set(cells) == {("image", 42), ("image", 63), ("network", 42), ("network", 63)}
    c = cells[("image", 42)]
    assert (c["configs"], c["successes"], c["argmax"], c["seeds"]) == (3, 2, 3, [1, 2])
    assert c["variants"] == ["adam-r8-lk5"] and c["median_evaluations"] == 1000 and c["p_failed"] == [0.5]
    assert c["base"] == dict(configs=2, successes=0, argmax=1, now=1)  # config 9 was not run by the default: left out
    assert cells[("image", 63)]["successes"] == 1 and cells[("image", 63)]["base"] is None
    assert cells[("network", 42)]["configs"] == 1 and cells[("network", 63)]["configs"] == 0
    md = tables.default_area_markdown(list(cells.values()))
    assert "| 2/3 (67%) | 3/3 |" in md and "| 1/2 · 0/2 (1/2) |" in md
    assert md.count("not measured yet") == 1 and "one patch" in md and "8 restarts, ReLU6 leak 0.05" in md
