"""The blocks read from the reproduce reports (``reports/<name>.json|csv``): the paper-vs-us table and how each
experiment was run."""
from __future__ import annotations

import re
from pathlib import Path

from .. import findings, tables
from .registry import block, report


@block("single-paper-geometry")
def _single_paper_geometry(root: Path) -> str:
    s = findings.load("single", root / "reports")
    d = (s or {}).get("by_variant", {}).get("paper-network")
    if not d:
        return "The `single` experiment has not been run yet (`python -m lab reproduce single`)."
    ok = round(d["success_0_9"] * d["configs"])
    return (f"at 299 our `single` experiment's 42×42 paper patch (network domain) reached p ≥ 0.9 on {ok}/"
            f"{d['configs']} configs within its cap of {d['iteration_cap']:,} iterations (`reports/single.md`).")


@block("single-run")
def _single_run(root: Path) -> str:
    """How `single` was run (configs, devices, --time-budget, caps) and how many patches the later rows reuse."""
    rep = report(root, "single")
    if not rep:
        return "`single` has not been run yet (`python -m lab reproduce single`)."
    s = rep["summary"]
    per = sorted({d["configs"] for d in s["by_variant"].values()})
    budgets = sorted({float(m.group(1)) for c in rep["commands"] for m in [re.search(r"--time-budget ([\d.]+)", c)]
                      if m})
    caps = sorted(s["iteration_caps"])
    ok = sum(1 for r in tables.read_rows(root / "reports" / "single.csv") if r["success_0_9"] == "1")
    slot = (f"side by side in one {budgets[0] / 60:.0f}-minute slot, cut by `--time-budget`, so each variant's "
            f"iteration cap is where the slot ended, " if budgets else "with iteration caps ")
    return (f"`single` ran {'/'.join(map(str, per))} configs for each of its {len(s['by_variant'])} variants on "
            f"{rep['device']} ({len(rep['commands'])} commands; {slot}{caps[0]:,}–{caps[-1]:,}, not the paper's "
            f"10,000); the fragility, transfer and saliency rows use its {ok} successful patches.")


@block("paper-vs-us")
def _paper_vs_us(root: Path) -> str:
    return findings.findings_markdown(root / "reports")


def _trained_seconds(rep: dict) -> float:
    from ..reproduce.report import trained_sessions

    return sum(x.get("wall_s", 0) for x in trained_sessions(rep.get("sessions") or []))


def _universal_run(u: dict, root: Path) -> str:
    s = u["summary"]
    rows = tables.read_rows(root / "reports" / "universal.csv")
    secs = sorted(float(r["seconds"]) for r in rows)
    conv = sum(r["converged"] == "1" for r in rows)
    cap = s["max_steps"] if isinstance(s["max_steps"], int) else max(s["max_steps"])
    return (f"The universal run trained {s['configs']} targets ({', '.join(s['by_target'])}) for up to {cap:,} "
            f"single-photo steps each, {cap / 1000:g}× the runner's default, on {u['device']} ({secs[0]:.0f}–"
            f"{secs[-1]:.0f} s of training per target); " + (f"{conv} reached" if conv else "none reached")
            + f" the paper's 30-in-a-row stop. Its {s['train_photos'] + s['test_photos']} photos are "
            f"{s.get('collections', '?').replace(' + ', ', ')} photos drawn by the seed.")


def _brown_run(br: dict, root: Path) -> str:
    s, n = br["summary"], len(br["summary"]["by_condition"])
    return (f"The Brown comparison ran {s['configs']} patches ({n // 2} areas × 2 methods × "
            f"{s['configs'] // max(1, n)} targets, same split, cap {s['max_steps']:,} steps; "
            f"{_trained_seconds(br):,.0f} s on {br['device']}).")


def _classes_run(c: dict, root: Path) -> str:
    s = c["summary"]
    return (f"The classes run: {len(s['by_class'])} classes × {s['photos_per_class']} draws, cap "
            f"{s['iteration_cap']:,}, trained on {c['device']} ({len(c['commands'])} commands, listed in "
            "`reports/classes.md`).")


def _crossmodel_run(x: dict, root: Path) -> str:
    s = x["summary"]
    return (f"The cross-model run: {s['configs'] // 3} draws × 3 models, cap {s['iteration_cap']:,}; "
            f"{_trained_seconds(x):,.0f} s on {x['device']}.")


@block("report-runs")
def _report_runs(root: Path) -> str:
    """How the universal, Brown, classes and cross-model reports were run, from their JSON and CSV."""
    runs = {"universal": _universal_run, "brown": _brown_run, "classes": _classes_run, "crossmodel": _crossmodel_run}
    return "\n".join(fn(rep, root) for name, fn in runs.items() if (rep := report(root, name)))
