"""bench/load.py --gil-profile: the py-spy raw output is summarised by thread kind, library and our functions."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import load  # noqa: E402


def test_gil_table_attributes_samples(tmp_path):
    raw = tmp_path / "gil.raw"
    raw.write_text(
        "thread (1): MainThread;run (asyncio/base_events.py:600);_run (asyncio/events.py:80) 6\n"
        "thread (2): ScriptRunner.scriptThread;_run_script (streamlit/runtime/x.py:1);_live (ui/jobs/view.py:100);"
        "_draw (1_attack.py:128);confidence_curve (ui/charts.py:90);"
        "to_scalar_or_list (_plotly_utils/basevalidators.py:41) 3\n"
        "thread (3): lavan-attack-1;train_patches (attack/train.py:340);grad (torch/autograd/__init__.py:5) 1\n"
        "thread (4): ScriptRunner.scriptThread;<module> (app.py:3);forward (attack/models.py:216) 2\n"
        "\n")
    g = load.gil_table(raw, seconds=1)
    assert g["total"] == 12 and g["possible"] == load.GIL_RATE
    assert g["threads"] == {"event loop (MainThread)": 6, "page scripts (ScriptRunner)": 5, "training threads": 1}
    assert g["libs"] == {"asyncio": 6, "_plotly_utils": 3, "this project": 2, "torch": 1}
    ours = dict(g["ours"])
    assert ours["confidence_curve (charts.py)"] == 3 and ours["_draw (1_attack.py)"] == 3
    assert ours["train_patches (train.py)"] == 1 and ours["<module> (app.py)"] == ours["forward (models.py)"] == 2
    assert len(ours) == 6
