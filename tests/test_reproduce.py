"""`python -m lab reproduce <name> --quick`: every experiment writes its CSV/MD/PNG/JSON, resumes, and the
acceptance command prints the documented JSON keys. Quick runs: 1–2 configs, 10 iterations, batched."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from attack.eot import EOTParams, eot_paste, random_eot_params
from attack.patch import paste
from lab.cli import main
from lab.experiments import EXPERIMENTS
from lab.reproduce import load_report

ROOT = Path(__file__).resolve().parents[1]


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _run(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(["reproduce", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """reports/quick under a temporary working directory, with `single` partly run (1 of 2 configs)."""
    cwd = tmp_path_factory.mktemp("repro")
    d = cwd / "reports" / "quick"
    assert main(["reproduce", "single", "--quick", "--configs", "1", "--out", str(d)]) == 0
    assert len(_rows(d / "single.csv")) == 1
    return d


def test_single_acceptance_command_resumes_and_prints_json(out):
    # exactly the acceptance command, run where its default --out (reports/quick) is our temp folder
    before = _rows(out / "single.csv")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "lab", "reproduce", "single", "--quick", "--json"],
                          cwd=out.parent.parent, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)
    for key in ("configs", "success_0_9", "argmax_target", "not_source", "median_iterations"):
        assert key in obj
    assert obj["configs"] == 2
    for key in ("success_0_9", "argmax_target", "not_source"):
        assert 0.0 <= obj[key] <= 1.0
    rows = _rows(out / "single.csv")
    assert len(rows) == 2 and rows[0] == before[0]  # resumed: the first config was not trained again
    for r in rows:
        assert (out / r["patch"]).is_file()
    assert "iteration cap" in (out / "single.md").read_text().lower()


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n != "single"])
def test_experiment_quick_writes_report(out, capsys, name):
    summary = _run(capsys, name, "--quick", "--out", str(out))
    assert summary["configs"] >= 1
    for ext in ("csv", "md", "png", "json"):
        assert (out / f"{name}.{ext}").is_file(), ext
    md = (out / f"{name}.md").read_text()
    assert "| | paper | ours |" in md and "Command: `python -m lab reproduce" in md and "Machine:" in md
    rep = load_report(name, out)
    assert rep["summary"]["configs"] == summary["configs"] and rep["table"]


def test_rerun_adds_no_rows(out, capsys):
    for name in ("single", "universal"):
        n = len(_rows(out / f"{name}.csv"))
        _run(capsys, name, "--quick", "--out", str(out))
        assert len(_rows(out / f"{name}.csv")) == n
    n = len(_rows(out / "classes.csv"))
    summary = _run(capsys, "classes", "--quick", "--out", str(out), "--targets", "3", "--report-only")
    assert len(_rows(out / "classes.csv")) == n and summary["planned"] == 3 and summary["configs"] == n
    assert len(load_report("single", out)["sessions"]) >= 3


def test_load_report_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_report("single", tmp_path)


def test_eot_identity_matches_paste_and_is_differentiable():
    img = torch.rand(2, 3, 32, 32)
    patch = torch.rand(3, 8, 8, requires_grad=True)
    prm = EOTParams(torch.ones(2), torch.zeros(2), torch.tensor([[3 + 3.5, 5 + 3.5], [20 + 3.5, 10 + 3.5]]))
    out = eot_paste(img, patch, prm)
    assert torch.allclose(out, paste(img, patch.detach(), [(3, 5), (20, 10)]), atol=1e-5)
    prm = random_eot_params(2, 32, 8, generator=torch.Generator().manual_seed(0))
    eot_paste(img, patch, prm).sum().backward()
    assert patch.grad is not None and patch.grad.abs().sum() > 0


def _counting_clock(monkeypatch):
    """Each read of the --time-budget clock advances it by one second, so a budget of k ends the run at a
    known read whatever the machine's speed."""
    import itertools

    import lab.reproduce.runner as rp

    ticks = itertools.count()
    monkeypatch.setattr(rp, "_clock", lambda: float(next(ticks)))


def test_time_budget_cuts_single_at_a_recorded_cap(tmp_path, capsys, monkeypatch):
    _counting_clock(monkeypatch)
    # reads: start (0), before chunk 1 (1), iterations 0,1,2 (2,3,4), iteration 3 (5 = the deadline)
    summary = _run(capsys, "single", "--quick", "--configs", "2", "--batch", "1", "--max-iter", "50",
                   "--time-budget", "5", "--out", str(tmp_path))
    rows = _rows(tmp_path / "single.csv")
    assert len(rows) == 1  # the second chunk would start after the deadline: left for a later run
    r = rows[0]
    if r["success_0_9"] == "0":
        assert r["iterations"] == "3" and r["max_iter"] == "3"
    assert summary["configs"] == 1 and summary["planned"] == 2
    assert summary["by_variant"]["app-network"]["iteration_cap"] == int(r["max_iter"])
    assert "--time-budget 5" in (tmp_path / "single.md").read_text()


def test_time_budget_cuts_universal_and_records_steps(tmp_path, capsys, monkeypatch):
    _counting_clock(monkeypatch)
    # reads: start (0), before target 1 (1), steps 1..3 (2..4), step 4 (5 = the deadline)
    summary = _run(capsys, "universal", "--quick", "--targets", "2", "--max-iter", "50", "--time-budget", "5",
                   "--out", str(tmp_path))
    rows = _rows(tmp_path / "universal.csv")
    assert len(rows) == 1 and summary["planned"] == 2
    if rows[0]["converged"] == "0":
        assert rows[0]["steps"] == rows[0]["max_steps"] == "4"
        assert summary["max_steps"] == 4


def test_cap_text_names_the_rows_a_time_budget_cut_short():
    from lab.reproduce.stats import cap_text as _cap_text

    rows = [{"max_steps": "5000", "t": "volcano"}, {"max_steps": "3691", "t": "baseball"}]
    assert _cap_text(rows, "max_steps", "t") == "5000; cut by --time-budget at 3691 for baseball"
    assert _cap_text(rows[:1], "max_steps", "t") == "5000"
    assert _cap_text([], "max_steps", "t") == "none yet"


def test_the_crossmodel_title_names_its_models():
    from lab.reproduce.report import title

    lite = {"matrix_confident": {"efficientnet-lite0": {}, "efficientnet-lite2": {}}}
    assert title("crossmodel", lite) == "Cross-model transfer between EfficientNet-Lite models"
    mixed = {"matrix_confident": {"efficientnet-lite0": {}, "torchvision:resnet18": {}}}
    assert title("crossmodel", mixed) == "Cross-model transfer between efficientnet-lite0, resnet18"
    assert title("single", {}) == "Single-image LaVAN patches: success and iterations"
