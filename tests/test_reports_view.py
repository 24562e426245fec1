"""What the Paper page shows of the stored reports."""
from __future__ import annotations

import json
from pathlib import Path


def test_paper_page_commands_name_no_server_path():
    from ui.reports import public_command

    cmd = "python -m attack reproduce classes --out /tmp/r/classes --model efficientnet-lite0 --threads 2"
    shown = public_command(cmd)
    assert "/tmp" not in shown and shown.startswith("python -m lab reproduce classes --out reports")
    assert public_command("python -m lab reproduce single --out reports") == "python -m lab reproduce single --out reports"


def test_no_committed_report_command_shows_a_server_path():
    from ui.reports import public_command

    for path in Path(__file__).resolve().parents[1].joinpath("reports").glob("*.json"):
        rep = json.loads(path.read_text())
        for cmd in [rep.get("command") or ""] + list(rep.get("commands") or []):
            assert "--out /" not in public_command(cmd), (path.name, cmd)


def test_a_run_records_its_out_folder_without_a_machine_path(tmp_path, monkeypatch):
    import argparse

    from lab.reproduce.cli import _command

    base = dict(name="single", quick=True, seed=0, model="efficientnet-lite0", device=None, max_iter=None,
                configs=None, batch=None, targets=None, threads=None, time_budget=None, report_only=False,
                variants=None)
    outside = _command(argparse.Namespace(**base, out=str(tmp_path / "r")))
    assert str(tmp_path) not in outside and "--out OUT" in outside
    monkeypatch.chdir(tmp_path)
    inside = _command(argparse.Namespace(**base, out=str(tmp_path / "reports" / "quick")))
    assert "--out reports/quick" in inside
