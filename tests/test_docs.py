"""Figures come from data: the committed Markdown equals what `python -m attack docs` writes from the committed
results, and the generator is idempotent and strict about its markers."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from attack import docs, findings, tables
from attack.reproduce import classes, saliency, single

ROOT = Path(__file__).resolve().parents[1]


def test_committed_documents_match_their_data():
    stale = docs.stale(ROOT)
    assert not stale, f"stale (run `make docs`): {[str(p.relative_to(ROOT)) for p in stale]}"


def test_every_marker_has_a_generator_and_every_table_a_raw_file():
    for rel in docs.DOCUMENTS:
        for name in docs._BLOCK.findall((ROOT / rel).read_text()):
            assert name[1] in docs.BLOCKS
    for raw in ("area_table.csv", "speed.txt", "speed_h200.txt", "input_size.txt", "tune_lr.csv", "vs_art.csv"):
        assert (ROOT / "bench" / "results" / raw).is_file()


def test_generator_rewrites_a_block_from_changed_data_and_is_idempotent(tmp_path):
    for rel in ("README.md", "docs/BENCHMARKS.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    shutil.copytree(ROOT / "reports", tmp_path / "reports", ignore=shutil.ignore_patterns("patches", "*.png"))
    assert docs.write(tmp_path) == []  # a clean checkout: nothing to do
    speed = tmp_path / "bench" / "results" / "speed.txt"
    speed.write_text(speed.read_text().replace("664 ms / 325 ms", "665 ms / 325 ms"))
    changed = docs.write(tmp_path)
    assert {p.name for p in changed} == {"README.md", "BENCHMARKS.md"}
    assert "665 ms / 325 ms" in (tmp_path / "README.md").read_text()
    assert docs.write(tmp_path) == []  # idempotent
    (tmp_path / "README.md").write_text("<!-- BEGIN gen:nope -->\nx\n<!-- END gen:nope -->\n")
    with pytest.raises(KeyError, match="gen:nope"):
        docs.write(tmp_path)


def _rows(name: str) -> list[dict]:
    with (ROOT / "reports" / f"{name}.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _report(name: str) -> dict:
    return json.loads((ROOT / "reports" / f"{name}.json").read_text())


def test_report_tables_are_pure_functions_of_the_committed_rows():
    rep = _report("single")
    out = single.summarise(_rows("single"), list(rep["summary"]["by_variant"]), rep["configs_planned"], 100)
    assert [list(r) for r in out["_table"]] == [[r["what"], r["paper"], r["ours"]] for r in rep["table"]]
    rep = _report("saliency")
    out = saliency.summarise(_rows("saliency"), list(rep["summary"]["by_method"]), rep["configs_planned"])
    assert [list(r) for r in out["_table"]] == [[r["what"], r["paper"], r["ours"]] for r in rep["table"]]
    assert "median" in rep["table"][0]["what"]  # the table's figures are medians, labelled as such
    rep = _report("classes")
    targets = [d["target"] for d in rep["summary"]["by_class"].values()]
    out = classes.summarise(_rows("classes"), targets, 3, rep["configs_planned"])
    assert [list(r) for r in out["_table"]] == [[r["what"], r["paper"], r["ours"]] for r in rep["table"]]


def test_ties_share_a_rank():
    rep = _report("classes")["summary"]["by_class"]
    rk = findings.ranks(rep)
    assert rk["baseball"] == rk["bubble"] == 1
    assert "baseball and bubble tie for easiest" in next(f.ours for f in findings.findings(ROOT / "reports")
                                                         if f.report == "classes")


def test_findings_say_what_the_reports_say():
    rows = {f.claim: f for f in findings.findings(ROOT / "reports")}
    assert any("79 / 91 / 98 %" in f.paper for f in rows.values())
    cross = next(f for f in rows.values() if f.report == "crossmodel")
    assert "by construction" in cross.ours
    transfer = next(f for f in rows.values() if f.report == "transfer")
    assert "p≥0.9" in transfer.claim and "**25%: 20.5" in transfer.ours


def test_missing_reports_say_not_run(tmp_path):
    assert all("not run yet" in f.ours for f in findings.findings(tmp_path))


def test_area_summary_is_shared_by_the_app_and_the_bench_script():
    import importlib
    import sys

    sys.path.insert(0, str(ROOT))
    bench = importlib.import_module("bench.area_table")
    rows = tables.read_rows(ROOT / "bench" / "results" / "area_table.csv")
    assert bench.summarise(rows) == tables.summarise_area(rows)
