"""Generated sentences say what their data says: the verdicts of lab.docs and the defence report are computed from
the rows they describe, the paper's figures come from lab.findings.PAPER, and one pct helper formats shares."""
from __future__ import annotations

from pathlib import Path

from lab import findings
from lab.docs import area, strength
from lab.experiments import defend
from lab.fmt import pct

ROOT = Path(__file__).resolve().parent.parent


def _curve(won: int, n: int = 20, budget: int = 10_000) -> dict:
    return {"configs": n, "budget": budget, "within": {budget: won}, "median_evaluations": 100, "p_failed": [0.5],
            "variant": "v"}


def test_the_longer_budget_verdict_follows_the_counts():
    missed = {"budget": 2000, "successes": 10, "configs": 20}
    assert "Five times the budget does not reach 80% either" in strength._longer_line(_curve(9), missed)
    assert "Five times the budget reaches 80%" in strength._longer_line(_curve(17), missed)
    met = {"budget": 2000, "successes": 17, "configs": 20}
    line = strength._longer_line(_curve(9, budget=4000), met)
    assert "Twice the budget does not reach 80% (" in line  # no "either": the shorter run met the goal


def test_the_papers_figure_comes_from_findings(monkeypatch):
    monkeypatch.setitem(findings.PAPER["single"], "success_0_9", 0.5)
    assert "(the paper: 50% on Inception v3" in area._area_reading(ROOT)
    assert "≥ 50% within 10,000" in strength._paper_geometry_line(ROOT)


def test_pct_is_the_one_formatter():
    assert pct(0.205) == "20.5%" and pct(0.205, 0, "") == "20" and pct(None) == "—" and pct(float("nan")) == "—"


def _patch_row(config: str, size: int = 63, n: int = 224) -> dict:
    return {"config": f"patch-{config}-k4", "kind": "patch", "variant": "app-image", "domain": "image", "size": size,
            "input_size": n, "k": 4, "recovered": "1", "target_kept": "0", "occlusion_recovered": "1",
            "forwards": 62, "cpu_s": 1.0, "occlusion_forwards": 17, "occlusion_cpu_s": 1.0, "agree": "",
            "certified": "", "occlusion_agree": ""}


def test_defend_states_its_denominator_and_where_the_patches_sit():
    singles = [{"config": f"app-image-00{i}", "corner": c, "top": t, "left": left}
               for i, (c, t, left) in enumerate([("top-left", 0, 0), ("bottom-right", 161, 161), ("top-left", 5, 5)])]
    out = defend.summarise([_patch_row("app-image-000"), _patch_row("app-image-001")], 2, 0, [63], k=4,
                           singles=singles)
    assert (out["patches_available"], out["patches_placed"], out["on_occlusion_grid"]) == (3, 2, 2)
    assert "(2 of 3 patches)" in out["_table"][0][2]
    assert any("every one sits exactly on the occlusion heuristic's window grid" in n for n in out["_notes"])
    off = defend.summarise([_patch_row("app-image-002")], 1, 0, [63], k=4, singles=singles)
    assert any("0 of the 1 sit exactly" in n for n in off["_notes"])
    assert defend.on_occlusion_grid(0, 161, 63, 224) and not defend.on_occlusion_grid(5, 5, 63, 224)


def test_the_crossmodel_report_and_the_models_page_size_patches_by_one_rule():
    """Both go through attack.evaluate.transplant (same area share): Lite0's 63 px is 73 px on Lite2's 260, not the
    74 px of Lite2's own default patch."""
    import torch

    from attack.evaluate import transplant
    from attack.models import model_spec
    from lab.tables import read_rows

    rows = read_rows(ROOT / "reports" / "crossmodel.csv")
    own = {r["train_model"]: int(r["size"]) for r in rows if r["same"] == "1"}
    for r in (r for r in rows if r["same"] != "1"):
        a, e = model_spec(r["train_model"]).native_size, model_spec(r["eval_model"]).native_size
        moved, _ = transplant(torch.zeros(3, own[r["train_model"]], own[r["train_model"]]), (0, 0), a, e)
        assert int(r["size"]) == moved.shape[-1], r
    assert transplant(torch.zeros(3, 63, 63), (0, 0), 224, 260)[0].shape[-1] == 73
