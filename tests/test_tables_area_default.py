"""The area table of the trainer's defaults (README "Attack strength", issue 12 item 4)."""
from __future__ import annotations

import pytest

from lab import tables

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


def test_rows_with_another_step_size_are_described_and_are_not_the_default(tmp_path):
    """The ablation's "lr" column (variant flag ``-lrx<k>``): rows written before it read the rule's default of that
    time; a row with another step size says so and never counts as the default training."""
    path = tmp_path / "ablation.csv"
    old = _row("adam-r8-lk5", 42, 1, 0, True)
    new = dict(_row("adam-r8-lk5-lrx2", 42, 1, 1, True, domain="network"), lr="0.1")
    cols = list(new)
    path.write_text(",".join(c for c in cols if c != "lr") + "\n" + ",".join(old[c] for c in cols if c != "lr") + "\n")
    assert tables.read_ablation(path)[0]["lr"] == "0.3"  # legacy: Adam's image-domain default when it was written
    assert "step size" not in tables.describe_variant(tables.read_ablation(path)[0])
    assert "step size 0.1 (default 0.05)" in tables.describe_variant(new)
    lr = {"image": 0.3, "network": 0.05}
    defaults = {42: dict(restarts=8, leak=0.05, lr=lr)}
    cells = {c["domain"]: c for c in tables.default_area_cells([new, dict(new, config="2", lr="0.05")], [], defaults)}
    assert cells["network"]["configs"] == 1  # only the row at the default step size


def test_ablation_variant_names_parse_the_step_size_flag():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("ablation_bench", Path(__file__).parents[1] / "bench" / "ablation.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    v = mod.parse_variant("adam-r8-lk5-lrx2")
    assert (v["restarts"], v["leak"], v["lr_scale"]) == (8, 0.05, 2.0)
    assert mod.parse_variant("adam-r8")["lr_scale"] == 1.0
    assert mod.parse_variant("adam-r8-margin_ce-mixed-lk5-lrx0p5")["lr_scale"] == 0.5
    # the columns of variants that left the library stay, so their committed rows are still read and described
    assert all(c in mod.FIELDS for c in ("lr", "tau", "tau_last", "patience", "st_relu6", "cosine", "polish",
                                         "leak_last"))
    for retired in ("adam-r8-st", "adam-r8-cos", "adam-r8-rs", "adam-r8-lk5-sd3", "adam-r8-lk5a", "adam-r8-pt20"):
        with pytest.raises(ValueError, match="bad variant"):
            mod.parse_variant(retired)
    assert tables.describe_variant(dict(_row("adam-r8-pt20", 42, 1, 0, True), patience="20")).endswith(
        "step halved (back to the best point) after 20 steps without gain")
    assert not tables.default_area_cells([dict(_row("adam-r8-lk5-pt20", 42, 1, 0, True), patience="20")], [],
                                         DEFAULTS, domains=("image",))[0]["configs"]


def test_a_default_loss_other_than_logprob_picks_its_rows_and_is_named():
    rows = [_row("adam-r8-lk5", 42, 1, 0, True), dict(_row("adam-r8-margin_ce-mixed-lk5", 42, 1, 1, False),
                                                      loss="margin_ce")]
    defaults = {42: dict(restarts=8, leak=0.05, loss="margin_ce")}
    cell = next(c for c in tables.default_area_cells(rows, [], defaults) if c["domain"] == "image")
    assert cell["configs"] == 1 and cell["variants"] == ["adam-r8-margin_ce-mixed-lk5"]
    assert tables.describe_default(cell) == "Adam, 8 restarts, ReLU6 leak 0.05, loss margin_ce"
    assert tables.describe_default(dict(cell, loss="logprob")) == "Adam, 8 restarts, ReLU6 leak 0.05"


def test_paired_ablation_counts_only_configs_both_variants_trained():
    a, b = "adam-r8-lk5", "adam-r8-margin_ce-mixed-lk5"
    rows = [_row(a, 42, 1, 0, True), _row(b, 42, 1, 0, True),                      # both won: no difference
            _row(a, 42, 1, 1, False), dict(_row(b, 42, 1, 1, True)),               # only b won, b higher
            dict(_row(a, 42, 1, 2, False), p_target="0.40"), dict(_row(b, 42, 1, 2, False), p_target="0.30"),
            _row(b, 42, 1, 3, True),                                                 # a never ran config 3
            _row(a, 42, 2, 0, True, domain="network"), dict(_row(b, 42, 2, 0, False, domain="network"))]
    cells = {c["domain"]: c for c in tables.paired_ablation(rows, a, b)}
    img = cells["image"]
    assert (img["configs"], img["ok_a"], img["ok_b"], img["only_a"], img["only_b"]) == (3, 1, 2, 0, 1)
    assert (img["higher"], img["lower"], img["seeds"]) == (1, 1, [1])
    net = cells["network"]
    assert (net["configs"], net["only_a"], net["only_b"], net["lower"]) == (1, 1, 0, 1)
    md = tables.paired_markdown(list(cells.values()))
    assert "| 42×42 on 224 | image | 3 (1) | 1/3 | 2/3 | 0 / 1 | 1 / 1 |" in md
    assert tables.paired_markdown([]).startswith("No configs")


def test_rows_with_a_distance_decaying_leak_are_described_and_are_not_the_default(tmp_path):
    """The ablation's "tau" column (variant flag ``-sd<tau×10>``): rows written before it read tau 0; a row with tau
    says so and never counts as the default training."""
    path = tmp_path / "ablation.csv"
    old = _row("adam-r8-lk5", 42, 1, 0, True)
    path.write_text(",".join(old) + "\n" + ",".join(old.values()) + "\n")
    assert tables.read_ablation(path)[0]["tau"] == "0"
    new = dict(old, variant="adam-r8-lk5-sd10", config="1", tau="1.0")
    assert tables.describe_variant(new).endswith("exp(−distance/1) outside the clips")
    assert tables.describe_variant(dict(new, tau_last="0")).endswith("outside the clips before the last stage")
    assert "exp(" not in tables.describe_variant(tables.read_ablation(path)[0])
    cells = {c["size"]: c for c in tables.default_area_cells([new, dict(old, config="2", tau="0.0")], [], DEFAULTS,
                                                              domains=("image",))}
    assert cells[42]["configs"] == 1 and cells[42]["variants"] == ["adam-r8-lk5"]
