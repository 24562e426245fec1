"""The blocks of the app on this machine: the README's acceptance run, the Lesson's timings, a cold server, the
classroom under load (``bench/results/``: ``acceptance.json``, ``lesson.json``, ``coldstart*.txt``, ``load*.txt``).
Every figure and every verdict is read from those files."""
from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from .. import tables
from .registry import RESULTS, block

LESSON = "lesson.json"
ACCEPTANCE = "acceptance.json"
# bench/load.py printouts of the lost-redraw race: the run before the workaround and the two after it.
RACE_RUNS = (("10 sessions, 8 training, before the workaround", "load10_lost_redraws_2026-12-01.txt"),
             ("10 sessions, 8 training, after", "load10_2026-12-01_race_fixed.txt"),
             ("30-session classroom, after", "load30_2026-12-01_race_fixed.txt"))
# 30-session classroom runs compared pairwise: (what changed, the runs with it, the runs without it).
CLASSROOM = {"nice": ("training threads niced +10", ("load30_2026-12-01_nice10.txt",),
                      ("load30_2026-12-01_nice0.txt",)),
             "charts": ("the cuts found by the GIL profile",
                        ("load30_2026-12-01_charts_run1.txt", "load30_2026-12-01_charts_run2.txt"),
                        ("load30_2026-12-01_before_charts_run1.txt", "load30_2026-12-01_before_charts_run2.txt"))}


def _lesson(root: Path) -> dict:
    return json.loads((root / RESULTS / LESSON).read_text())


def lesson_rows(d: dict) -> list[dict]:
    """Per step: the cold walk's time, the warm walks' median, the control and its warm median, whether it fit."""
    walks = d["walks"]
    warm = walks[1:] or walks
    out = []
    for j, row in enumerate(walks[0]):
        cs = [w[j]["control_s"] for w in warm if "control_s" in w[j]]
        out.append(dict(step=row["step"], title=row["title"], cold=row["seconds"],
                        warm=statistics.median(w[j]["seconds"] for w in warm), control=row.get("control"),
                        control_warm=statistics.median(cs) if cs else None, fits=all(w[j]["fits"] for w in walks)))
    return out


@block("lesson")
def _lesson_table(root: Path) -> str:
    """The table bench/lesson.py printed, from its committed rows."""
    lines = ["| step | cold server: click → prediction drawn (s) | warm: median (s) | control "
             "| control → drawn, warm median (s) | fits 1280×720 |", "|---|---|---|---|---|---|"]
    for r in lesson_rows(_lesson(root)):
        ctl = f"{r['control']} | {r['control_warm']:.2f}" if r["control_warm"] is not None else "– | –"
        lines.append(f"| {r['step']}. {r['title']} | {r['cold']:.2f} | {r['warm']:.2f} | {ctl} | "
                     f"{'yes' if r['fits'] else 'no'} |")
    return "\n".join(lines)


@block("lesson-line")
def _lesson_line(root: Path) -> str:
    d = _lesson(root)
    rows = [r for r in lesson_rows(d) if r["step"] > 1]
    warm = sorted(r["warm"] for r in rows)
    ctl = sorted(r["control_warm"] for r in rows if r["control_warm"] is not None)
    first = next(r for r in lesson_rows(d) if r["step"] == 1)
    load = d.get("load_average") or []
    return (f"Measured ({d['date']}, this 2-core machine, load average "
            f"{' → '.join(f'{x:.1f}' for x in load)}): {warm[0]:.2f}–{warm[-1]:.2f} s from Next to the drawn "
            "prediction "
            f"(steps {rows[0]['step']}–{rows[-1]['step']}, warm medians), {ctl[0]:.2f}–{ctl[-1]:.2f} s from a "
            f"control to its redraw; step 1 in a new tab {first['warm']:.2f} s warm, {first['cold']:.2f} s on a cold "
            "server "
            "(`bench/results/lesson.json`, docs/BENCHMARKS.md).")


@block("lesson-step1")
def _lesson_step1(root: Path) -> str:
    """Where step 1's time goes in a new tab (the walks' phases) and what a cold server pays first (``cold_costs``)."""
    d = _lesson(root)
    firsts = [w[0] for w in d["walks"] if w and w[0]["step"] == 1 and "phases" in w[0]]
    if not firsts:
        return "No step-1 phases in `bench/results/lesson.json`."
    warm = firsts[1:] or firsts
    med = {k: statistics.median(f["phases"][k] for f in warm) for k in warm[0]["phases"]}
    cold = firsts[0]["phases"]
    costs = d.get("cold_costs", {})
    goal = "meets" if med["prediction_drawn"] <= 1.0 else "misses"
    return (f"**Step 1 in a new tab {goal} the 1 s goal** (warm, median of {len(warm)} walks): the page's own "
            f"JavaScript loads first (page `load` event {med['page_loaded']:.2f} s after the request, websocket open "
            f"at {med['websocket_open']:.2f} s; Streamlit's frontend bundle, the same for every page), then the "
            f"script run draws the header at {med['header_drawn']:.2f} s and the prediction at "
            f"{med['prediction_drawn']:.2f} s. A cold server (walk 1) drew the header at {cold['header_drawn']:.2f} s "
            f"and the prediction at {cold['prediction_drawn']:.2f} s; what a fresh interpreter pays, one thing after "
            "another: " + ", ".join(f"{k} {v:.2f} s" for k, v in costs.items()) + ".")


def _coldstart_rows(root: Path, name: str) -> dict[str, float]:
    rows = tables.printed_table(root / RESULTS / name)[1][2:]
    return {c[0]: float(c[1]) for c in ([x.strip() for x in r.strip("|").split("|")] for r in rows)}


@block("coldstart-line")
def _coldstart_line(root: Path) -> str:
    """The first page of a fresh server, on a near-idle and on a loaded machine (bench/coldstart.py's printouts)."""
    idle, loaded = _coldstart_rows(root, "coldstart_idle.txt"), _coldstart_rows(root, "coldstart.txt")
    title, deep = "server: home title drawn", "server: /attack deep link drawn"
    return (f"a fresh server draws Home's title {idle[title]:.1f} s after `streamlit run` on a near-idle machine and "
            f"{loaded[title]:.1f} s under load, a deep link to the Attack page {idle[deep]:.1f} s and "
            f"{loaded[deep]:.1f} s (`bench/coldstart.py`; `bench/results/coldstart_idle.txt`, `coldstart.txt`)")


@block("acceptance-line")
def _acceptance_line(root: Path) -> str:
    d = json.loads((root / RESULTS / ACCEPTANCE).read_text())
    r, c = d["result"], d["classify"]
    top = c["top5"][0]
    return (f"`{d['command'].split('=1 ', 1)[-1]}` trains a {r['size']}×{r['size']} {r['domain']}-domain patch "
            f"on {r['model']} ({r['input_size']} px): p({r['target_label']}) = {r['p_target']:.3f} after "
            f"{r['evaluations']} evaluations, {r['seconds']:.1f} s of training; `classify --patch` on "
            f"the saved file says {top['label']} {top['p']:.3f} ({d['date']}, {d['code'].split(' (')[0]}, one thread; "
            "`bench/results/acceptance.json`).")


def load_runs(root: Path, files) -> list[dict]:
    """The bold interaction rows, the never-redrawn counts, date and load average of bench/load.py printouts."""
    out = []
    for f in files:
        text = (root / RESULTS / f).read_text()
        date = re.search(r"^date: ([\d-]+ [\d:]+)", text, re.M).group(1)
        load = re.search(r"start/end of the window: ([\d.]+) / ([\d.]+)", text)
        rows = {}
        for line in text.splitlines():
            if line.startswith("| **"):
                cells = [x.strip().strip("*") for x in line.strip("|").split("|")]
                rows[cells[0]] = dict(n=int(cells[2]), median=cells[3], p95=cells[4])
        never = next(x for x in text.splitlines() if x.startswith("never redrawn:"))
        pairs = [(int(a), int(b)) for a, b in re.findall(r"(\d+)/(\d+)", never.split(";")[0])]
        out.append(dict(file=f, date=date, load=(float(load.group(1)), float(load.group(2))), rows=rows,
                        lost=sum(a for a, _ in pairs), interactions=sum(b for _, b in pairs)))
    return out


@block("load-race")
def _load_race(root: Path) -> str:
    lines = ["| run (bench/load.py) | date | load average, start / end | interactions | never redrawn | printout |",
             "|---|---|---|---|---|---|"]
    for (what, _), r in zip(RACE_RUNS, load_runs(root, [f for _, f in RACE_RUNS])):
        lines.append(f"| {what} | {r['date']} | {r['load'][0]:.1f} / {r['load'][1]:.1f} | {r['interactions']} | "
                     f"{r['lost']} | `{r['file']}` |")
    return "\n".join(lines)


def _ms(v: str) -> float:
    return float("inf") if v == "∞" else float(v.split()[0])


def _span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    if hi < 1000:
        return f"{lo:.0f}–{hi:.0f} ms"
    return f"{lo / 1000:.1f}–{hi / 1000:.1f} s"


def classroom_line(root: Path, key: str) -> str:
    what, with_, without = CLASSROOM[key]
    a, b = load_runs(root, with_), load_runs(root, without)

    def stat(runs, k):
        return [_ms(row[k]) for r in runs for row in r["rows"].values()]
    lost = sum(r["lost"] for r in a + b)
    n = sum(r["interactions"] for r in a + b)
    runs = f"{len(a)} run{'s' if len(a) > 1 else ''} each"
    return (f"with {what}, medians {_span(stat(a, 'median'))} against {_span(stat(b, 'median'))} without, p95 "
            f"{_span(stat(a, 'p95'))} against {_span(stat(b, 'p95'))} (every kind of interaction; {runs}, back to "
            f"back; {lost} of {n} interactions never redrawn; `bench/results/` "
            + ", ".join(f"`{r['file']}`" for r in a + b) + ")")


@block("classroom-nice")
def _classroom_nice(root: Path) -> str:
    return classroom_line(root, "nice")


@block("classroom-charts")
def _classroom_charts(root: Path) -> str:
    return classroom_line(root, "charts")


@block("classroom-goal")
def _classroom_goal(root: Path) -> str:
    """Whether the latest classroom runs meet p95 <= 1 s with every interaction redrawn."""
    runs = load_runs(root, CLASSROOM["charts"][1])
    p95 = [_ms(row["p95"]) for r in runs for row in r["rows"].values()]
    ok = max(p95) <= 1000 and not sum(r["lost"] for r in runs)
    return (f"The goal of p95 ≤ 1 s for 30 sessions is {'met' if ok else 'still missed'} in the latest runs "
            f"(p95 {_span(p95)})")


@block("load30-first")
def _load30_first(root: Path) -> str:
    """The first 30-session classroom run's table, as bench/load.py printed it."""
    return "\n".join(tables.printed_table(root / RESULTS / "load30_2026-12-01.txt", 0)[1])
