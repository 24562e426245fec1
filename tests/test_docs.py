"""Figures come from data: the committed Markdown equals what `python -m lab docs` writes from the committed
results, and the generator is idempotent and strict about its markers."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lab import docs, findings, tables
from lab.reproduce import resummary

ROOT = Path(__file__).resolve().parents[1]


def test_committed_documents_match_their_data():
    stale = docs.stale(ROOT)
    assert not stale, f"stale (run `make docs`): {[str(p.relative_to(ROOT)) for p in stale]}"


def test_every_marker_has_a_generator_and_every_table_a_raw_file():
    for rel in docs.DOCUMENTS:
        for name in docs._BLOCK.findall((ROOT / rel).read_text()):
            assert name[1] in docs.BLOCKS
    for raw in ("area_table.csv", "tune_lr.csv", "vs_art.csv", "vs_art_smoke.csv",
                *(f for f, _ in docs.PRINTED_TABLES.values())):
        assert (ROOT / "bench" / "results" / raw).is_file()
        if raw.endswith(".txt") and raw not in docs.RAW_PRINTOUTS:  # transcribed: each says where its figures come from
            assert (ROOT / "bench" / "results" / raw).read_text().startswith("# Transcribed")


def test_every_docs_page_is_generated_and_holds_no_hand_written_table():
    """The README's lab notebook lives in docs/: each page there is a generated document, and every Markdown table
    of README.md and docs/ sits inside a generated block, but for three tables without measured figures: the
    README's pages and layout, and SCALE.md's two ways to run."""
    pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages <= set(docs.DOCUMENTS), pages - set(docs.DOCUMENTS)
    assert {"docs/ATTACK_STRENGTH.md", "docs/BENCHMARKS.md", "docs/APP.md", "docs/PAPER_VS_US.md"} <= pages
    allowed = {"README.md": {"| page | what it shows |", "| folder | what it holds |"},
               "docs/SCALE.md": {"| way | where | how |"}}
    for rel in ("README.md", *sorted(pages)):
        lines = docs._BLOCK.sub("", (ROOT / rel).read_text()).splitlines()
        heads = {line for i, line in enumerate(lines) if line.lstrip().startswith("|")
                 and not (i and lines[i - 1].lstrip().startswith("|"))}
        assert heads <= allowed.get(rel, set()), (rel, heads - allowed.get(rel, set()))
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_generator_rewrites_a_block_from_changed_data_and_is_idempotent(tmp_path):
    for rel in docs.DOCUMENTS:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, tmp_path / rel)
    shutil.copytree(ROOT / "bench" / "results", tmp_path / "bench" / "results")
    shutil.copytree(ROOT / "reports", tmp_path / "reports", ignore=shutil.ignore_patterns("patches", "*.png"))
    assert docs.write(tmp_path) == []  # a clean checkout: nothing to do
    speed = tmp_path / "bench" / "results" / "speed.txt"
    speed.write_text(speed.read_text().replace("664 ms / 325 ms", "665 ms / 325 ms"))
    changed = docs.write(tmp_path)
    assert {p.name for p in changed} == {"BENCHMARKS.md"}
    assert "665 ms / 325 ms" in (tmp_path / "docs" / "BENCHMARKS.md").read_text()
    assert docs.write(tmp_path) == []  # idempotent
    lesson = tmp_path / "bench" / "results" / "lesson.json"  # a notebook page and the front page follow their data
    lesson.write_text(lesson.read_text().replace('"seconds": 3.112', '"seconds": 4.112'))
    (tmp_path / "bench" / "results" / "acceptance.json").write_text(
        (ROOT / "bench" / "results" / "acceptance.json").read_text().replace('"evaluations": 179',
                                                                             '"evaluations": 180'))
    assert {p.name for p in docs.write(tmp_path)} == {"BENCHMARKS.md", "APP.md", "README.md", "ATTACK_STRENGTH.md"}
    assert "| 1. What the model sees | 4.11 |" in (tmp_path / "docs" / "BENCHMARKS.md").read_text()
    assert "after 180 evaluations" in (tmp_path / "README.md").read_text()
    assert docs.write(tmp_path) == []
    (tmp_path / "README.md").write_text("<!-- BEGIN gen:nope -->\nx\n<!-- END gen:nope -->\n")
    with pytest.raises(KeyError, match="gen:nope"):
        docs.write(tmp_path)


def test_report_figures_are_recomputed_from_their_rows(tmp_path):
    """Every committed report equals what its CSV gives (the stale check covers JSON and Markdown); a changed cell
    in a CSV changes the report's table, and the saliency table labels its medians as medians."""
    for name in ("transfer", "single"):
        shutil.copy(ROOT / "reports" / f"{name}.csv", tmp_path)
        shutil.copy(ROOT / "reports" / f"{name}.json", tmp_path)
    before = resummary.refreshed(tmp_path / "transfer.json")["table"]
    text = (tmp_path / "transfer.csv").read_text().splitlines()
    head = text[0].split(",")
    cells = text[1].split(",")
    cells[head.index("confident")] = "1"
    (tmp_path / "transfer.csv").write_text("\n".join([text[0], ",".join(cells), *text[2:]]) + "\n")
    assert resummary.refreshed(tmp_path / "transfer.json")["table"] != before
    saliency = json.loads((ROOT / "reports" / "saliency.json").read_text())
    assert all("median" in r["what"] for r in saliency["table"])


def test_ties_share_a_rank():
    rep = json.loads((ROOT / "reports" / "classes.json").read_text())["summary"]["by_class"]
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


def test_paper_geometry_goal_pairs_the_rerun_with_the_committed_rows(tmp_path):
    """README's 299 goal line: today's trainer on the first configs of `single`'s draw beside the committed rows of
    the same configs; without the rerun's file it points at the GPU command."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "bench" / "results").mkdir(parents=True)
    head = "config,variant,success_0_9,argmax_target,max_p_target,max_iter,seconds\n"
    (tmp_path / "reports" / "single.csv").write_text(
        head + "paper-network-000,paper-network,0,0,0.01,2782,1\npaper-network-001,paper-network,1,1,0.92,2782,1\n"
        "paper-network-002,paper-network,0,1,0.3,2782,1\n")
    assert "not rerun with restarts" in docs.strength._paper_geometry_line(tmp_path)
    assert "1/3 within its cap of 2,782" in docs.strength._paper_geometry_line(tmp_path)
    (tmp_path / "bench" / "results" / "single299.csv").write_text(
        head + "paper-network-000,paper-network,1,1,0.91,2000,100\npaper-network-001,paper-network,0,1,0.85,2000,200\n")
    line = docs.strength._paper_geometry_line(tmp_path)
    assert "first 2 configs" in line and "(1 restarts, loss logprob, ReLU6 leak" in line and "network domain 1/2 within 2,000 evaluations" in line
    assert "target top-1 2/2; failures reached p 0.85" in line and "median 150 s per config" in line
    assert "cap 2,782) reached 1/2 on the same configs (target top-1 1/2)" in line and "Over all 3 configs, the committed" in line
    assert "the committed `reproduce single` run (Adam, one patch) reached 1/3" in line
