"""The "Paper vs us" page's data: the reproduce runner's ``reports/`` and the README's area table, read defensively.

``python -m lab reproduce <name>`` writes ``<name>.json/.csv/.md/.png`` (see :mod:`lab.reproduce`). Here each
experiment becomes a :class:`ReportView`: the paper-vs-ours table, the run facts (command, model, seed, machine,
wall time, scale against the full scale) and a plotly figure redrawn from the CSV (or the summary JSON), falling
back to the committed PNG. Nothing here raises on a missing, partial or malformed file: the view says ``missing``
or ``broken`` and carries the message the page shows as a warning. No streamlit import: the page draws.

The folder is ``reports/`` next to app.py, or ``$LAVAN_REPORTS_DIR``; the area table is
``bench/results/area_table.csv`` or ``$LAVAN_AREA_TABLE`` (summarised by :func:`lab.tables.summarise_area`, the
same code that writes the README's table); the area table of today's defaults reads ``bench/results/ablation.csv``
or ``$LAVAN_ABLATION`` (:func:`lab.tables.default_area_cells`, as the README's).
"""
from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from lab import reproduce, tables
from lab.experiments import EXPERIMENTS as _EXPERIMENTS
from lab.reproduce import stats

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS: tuple[str, ...] = tuple(_EXPERIMENTS)
MODEL_NAMES = {"efficientnet-lite0": "EfficientNet-Lite0", "efficientnet-lite1": "EfficientNet-Lite1",
               "efficientnet-lite2": "EfficientNet-Lite2", "inception-v3": "Inception v3"}

# The scale a full run means, as the paper (or, where the paper gives no count, the runner's full default) has it.
FULL_SCALE = {
    "single": "paper: 100 configs per variant, cap 10,000 iterations",
    "fragility": "every successful `single` patch (full `single`: 100 configs per variant)",
    "transfer": "every successful `single` patch, 20 other photos each, borders 0–50%",
    "universal": "paper: 100 training / 100 held-out photos, stop at 30 steps in a row with p ≥ 0.9 (no cap "
                 "stated); runner default: 5 targets, cap 1,000 steps",
    "classes": "full run: 20 target classes × 3 photos, cap 1,000 iterations",
    "saliency": "full run: up to 30 successful `single` patches, 4 attribution methods",
    "crossmodel": "full run: 10 patches per model × 3 models, cap 1,000 iterations",
    "brown": "full run: 3 targets × 2 areas × 2 methods, cap 1,000 steps",
}
PAPER_SINGLE = reproduce.PAPER["single"]["success_0_9"]


def reports_dir() -> Path:
    return Path(os.environ.get("LAVAN_REPORTS_DIR") or ROOT / "reports")


def shown(path: str | Path) -> str:
    """A file's name as a page may show it: relative to the project (``reports/single.json``), never the server's
    absolute path (an operator's LAVAN_REPORTS_DIR elsewhere shows as its last folder and the name)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT.resolve()))
    except ValueError:
        return str(Path(path.parent.name) / path.name)


def area_table_path() -> Path:
    return Path(os.environ.get("LAVAN_AREA_TABLE") or ROOT / "bench" / "results" / "area_table.csv")


def run_command(name: str) -> str:
    return f"python -m lab reproduce {name}"


def model_label(name: str | None) -> str:
    if not name:
        return "unknown model"
    pretty = MODEL_NAMES.get(name, name)
    return pretty if pretty == "Inception v3" else f"{pretty} — not the paper's Inception v3"


@dataclass
class ReportView:
    """One experiment as the page shows it. ``status``: "ok", "missing" or "broken"."""
    name: str
    title: str
    status: str
    paper_note: str = ""
    table: list[dict] = field(default_factory=list)  # {"what", "paper", "ours"}
    facts: list[tuple[str, str]] = field(default_factory=list)  # (label, markdown value)
    notes: list[str] = field(default_factory=list)
    figure: go.Figure | None = None
    plot_path: Path | None = None
    warnings: list[str] = field(default_factory=list)
    quick: bool = False

    @property
    def command(self) -> str:
        return run_command(self.name)

    @property
    def headline(self) -> dict:
        """The first paper-vs-ours row (or the status) for the overview table."""
        row = self.table[0] if self.table else {}
        status = {"ok": "run" + (" (quick smoke run)" if self.quick else ""), "missing": "not run yet",
                  "broken": "report unreadable"}[self.status]
        return {"experiment": self.title, "status": status, "measure": row.get("what", ""),
                "paper": row.get("paper", ""), "ours": row.get("ours", "")}


def load_view(name: str, out: str | Path | None = None) -> ReportView:
    """The view of one experiment from ``out`` (default :func:`reports_dir`); never raises."""
    out = Path(out) if out is not None else reports_dir()
    title = reproduce.TITLES.get(name, name)
    note = reproduce.PAPER.get(name, {}).get("_note", "")
    if not (out / f"{name}.json").is_file():
        return ReportView(name, title, "missing", paper_note=note)
    try:
        rep = reproduce.load_report(name, out)
        if not isinstance(rep, dict):
            raise ValueError("the JSON is not an object")
        view = ReportView(name, str(rep.get("title") or title), "ok", paper_note=str(rep.get("paper_note") or note),
                          quick=bool(rep.get("quick")))
        view.table = [{"what": str(r.get("what", "")), "paper": str(r.get("paper", "")),
                       "ours": str(r.get("ours", ""))} for r in rep.get("table") or [] if isinstance(r, dict)]
        view.facts = _facts(name, rep, out)
        view.notes = [str(n) for n in rep.get("notes") or []]
    except Exception as e:  # noqa: BLE001 - any malformed report becomes a warning, never a crashed page
        return ReportView(name, title, "broken", paper_note=note,
                          warnings=[f"`{shown(out / (name + '.json'))}` could not be read ({type(e).__name__}: {e}). "
                                    f"Re-create it with `{run_command(name)}` (add `--report-only` to rebuild the "
                                    "report from the CSV without training)."])
    png = out / f"{name}.png"
    view.plot_path = png if png.is_file() else None
    try:
        view.figure = FIGURES[name](rep, _csv_rows(out / f"{name}.csv")) if name in FIGURES else None
    except Exception as e:  # noqa: BLE001
        view.warnings.append(f"The plot could not be redrawn from `{name}.csv` / `{name}.json` "
                             f"({type(e).__name__}: {e})" + ("; showing the saved PNG." if view.plot_path else "."))
    if not view.table:
        view.warnings.append(f"`{name}.json` has no paper-vs-ours table (partial report?).")
    return view


_kept_lock = threading.Lock()
_kept: dict[str, tuple[tuple, object]] = {}  # name -> (signature of the files it was built from, value)


def _kept_until_changed(name: str, sig: tuple, build):
    """``build()``'s value for ``name``, built again only when ``sig`` (what its files look like on disk now)
    differs from the one it was built from. One value per name, shared by all sessions: it must not be modified."""
    with _kept_lock:
        hit = _kept.get(name)
    if hit is not None and hit[0] == sig:
        return hit[1]
    value = build()
    with _kept_lock:
        _kept[name] = (sig, value)
    return value


def _fingerprint(out: Path) -> tuple:
    """Name, size and modification time of every file in ``out``: what :func:`load_view` may read."""
    sig = []
    try:
        entries = sorted(out.iterdir())
    except OSError:
        entries = []
    for p in entries:
        try:
            st_ = p.stat()
        except OSError:
            continue
        sig.append((p.name, st_.st_size, st_.st_mtime_ns))
    return (str(out.resolve()), tuple(sig))


def load_all(out: str | Path | None = None) -> list[ReportView]:
    """Every experiment's view, rebuilt only when a file in ``out`` changed (a rerun of ``reproduce`` shows at the
    next page load): reading and drawing all reports took ~0.2 s of the server's one GIL on every visit to the
    Paper page, which a classroom switching pages pays many times a minute. The views are shared by all sessions
    and must not be modified."""
    out = Path(out) if out is not None else reports_dir()
    return _kept_until_changed("views", _fingerprint(out), lambda: [load_view(n, out) for n in EXPERIMENTS])


# ---------------------------------------------------------------- run facts
def public_command(cmd: str) -> str:
    """A stored command as a visitor may see and rerun it: an absolute ``--out`` folder (a temporary directory of
    the machine that ran it) reads ``--out reports``, and ``python -m attack reproduce`` (the entry point before the
    experiments moved to lab/) reads ``python -m lab reproduce``. No server path is shown."""
    cmd = re.sub(r"--out\s+/\S+", "--out reports", cmd)
    return cmd.replace("python -m attack reproduce", "python -m lab reproduce")


def _facts(name: str, rep: dict, out: Path) -> list[tuple[str, str]]:
    sessions = [s for s in rep.get("sessions") or [] if isinstance(s, dict)]
    wall = rep.get("wall_s_total", rep.get("wall_s"))
    wall_txt = _duration(wall) + (f" over {len(sessions)} session(s)" if sessions else "")
    if sessions and sessions[-1].get("date"):
        wall_txt += f", last {sessions[-1]['date']}"
    commands = [public_command(c) for c in rep.get("commands") or [] if isinstance(c, str)]
    facts = [("Commands that trained these rows", "; ".join(f"`{c}`" for c in commands)) if len(commands) > 1 else
             ("Command", f"`{public_command(rep.get('command') or run_command(name))}`"),
             ("Model", f"{model_label(rep.get('model'))} (`{rep.get('model')}`)" + _sizes(rep)),
             ("Seed", str(rep.get("seed", "—"))),
             ("Device / machine", f"{rep.get('device', '—')} · {rep.get('machine', '—')}"),
             ("Wall time", wall_txt),
             ("Scale", f"ours: {scale(rep, out)} · {FULL_SCALE.get(name, '')}")]
    if rep.get("quick"):
        facts.insert(0, ("⚠️", "**quick smoke run** (`--quick`): a pipeline check, not a result"))
    return facts


def _sizes(rep: dict) -> str:
    by = (rep.get("summary") or {}).get("by_variant") or {}
    sizes = sorted({(d.get("input_size"), d.get("size")) for d in by.values() if isinstance(d, dict)
                    and d.get("input_size")}, key=str)
    return ("; " + ", ".join(f"{s}×{s} px patch on {i}×{i}" for i, s in sizes)) if sizes else ""


def _duration(s) -> str:
    try:
        s = float(s)
    except (TypeError, ValueError):
        return "—"
    return f"{s:.0f} s" if s < 120 else (f"{s / 60:.0f} min" if s < 7200 else f"{s / 3600:.1f} h")


def scale(rep: dict, out: Path | None = None) -> str:
    """"20 configs (2 variants × 10), cap 400 iterations" from the report's own fields (and, for crossmodel, whose
    report does not record its training cap, from ``crossmodel_train.csv`` in ``out``)."""
    done, planned = rep.get("configs_done"), rep.get("configs_planned")
    txt = f"{done if done is not None else '?'} config{'' if done == 1 else 's'}" + (
        f" of {planned} planned" if planned not in (None, done) else "")
    by = (rep.get("summary") or {}).get("by_variant")
    if isinstance(by, dict) and by:
        counts = {d.get("configs") for d in by.values() if isinstance(d, dict)}
        if len(counts) == 1:
            txt += f" ({len(by)} variant{'s' if len(by) > 1 else ''} × {counts.pop()})"
    cap = rep.get("iteration_cap")
    if not cap and rep.get("name") == "crossmodel" and out is not None:
        cap = sorted({int(_f(r["max_iter"])) for r in _csv_rows(Path(out) / "crossmodel_train.csv")
                      if not math.isnan(_f(r.get("max_iter")))})
    if isinstance(cap, list):
        cap = ", ".join(f"{int(c):,}" for c in cap) if cap else None
    elif isinstance(cap, (int, float)):
        cap = f"{int(cap):,}"
    unit = "steps" if rep.get("name") in ("universal", "brown") else "iterations"
    if cap:
        return txt + f", cap {cap} {unit}"
    if rep.get("name") in ("fragility", "transfer", "saliency"):
        return txt + " (the successful `single` patches; no training of its own)"
    return txt + ", cap not recorded in the report"


# ---------------------------------------------------------------- figures (plotly, from the CSV where simple)
_csv_rows = tables.read_rows  # complete rows; none when the file is missing; a torn last line is dropped
_f, _ok, _mean = stats.f, stats.b, stats.mean


def _layout(fig: go.Figure, x: str, y: str, height: int = 340, pct: bool = True) -> go.Figure:
    fig.update_layout(xaxis_title=x, yaxis_title=y, height=height, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.3))
    if pct:
        fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    return fig


def _fig_single(rep: dict, rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    for v in sorted({r["variant"] for r in rows}):
        vr = [r for r in rows if r["variant"] == v]
        cap = max(int(_f(r["max_iter"])) for r in vr)
        its = sorted(_f(r["iterations"]) for r in vr if _ok(r["success_0_9"]))
        xs = [0] + [x for x in its for _ in (0, 1)] + [cap]
        ys = [0.0] + [y for i in range(len(its)) for y in (i / len(vr), (i + 1) / len(vr))] + [len(its) / len(vr)]
        fig.add_scatter(x=xs, y=ys, name=f"{v} (n={len(vr)})", mode="lines")
    if not rows:  # no CSV: the curve the JSON summary carries
        for v, d in ((rep.get("summary") or {}).get("by_variant") or {}).items():
            fig.add_scatter(x=d["curve"]["iterations"], y=d["curve"]["success"], name=v, mode="lines")
    fig.add_hline(y=PAPER_SINGLE, line=dict(color="grey", dash="dash"),
                  annotation_text="paper 79% (Inception v3, 42 px on 299, cap 10,000)")
    return _layout(fig, "iterations", "configs with p(target) ≥ 0.9")


def _fig_fragility(rep: dict, rows: list[dict]) -> go.Figure:
    dists = (1, 2, 5)
    fig = go.Figure()
    for key, lab in (("confident", "p(target) ≥ 0.9"), ("argmax", "target top-1"),
                     ("not_source", "source not top-1")):
        if rows:
            ys = [_mean([float(_f(r["centre_p_target"]) >= 0.9) for r in rows]) if key == "confident" else None]
            ys += [_mean([_f(r[f"shift{d}_{key}"]) for r in rows]) for d in dists]
        else:
            s = rep["summary"]
            ys = [s.get("centre_confident") if key == "confident" else None] + [s.get(f"shift{d}_{key}")
                                                                              for d in dists]
        fig.add_scatter(x=[0, *dists], y=ys, name=lab, mode="lines+markers")
    fig.add_annotation(x=1, y=0, text="paper: one pixel reverts it", showarrow=True, ay=-40)
    return _layout(fig, "shift (px)", "shifted placements")


def _fig_transfer(rep: dict, rows: list[dict]) -> go.Figure:
    if rows:
        bs = sorted({_f(r["border"]) for r in rows})
        curve = {k: [_mean([_f(r[k]) for r in rows if _f(r["border"]) == b]) for b in bs]
                 for k in ("confident", "argmax", "not_source")}
    else:
        s = rep["summary"]
        bs, curve = s["borders"], {k: s[k] for k in ("confident", "argmax", "not_source")}
    fig = go.Figure()
    for key, lab in (("confident", "p(target) ≥ 0.9"), ("argmax", "target top-1"),
                     ("not_source", "source not top-1")):
        fig.add_scatter(x=[b * 100 for b in bs], y=curve[key], name=lab, mode="lines+markers")
    fig.add_vline(x=25, line=dict(color="black", dash="dash"), annotation_text="paper ≈25%")
    return _layout(fig, "border of the source photo per side (% of image side)", "other photos")


def _fig_saliency(rep: dict, rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    if rows:
        for m in sorted({r["method"] for r in rows}):
            mr = [r for r in rows if r["method"] == m]
            fig.add_scatter(x=[_f(r["area"]) for r in mr], y=[_f(r["mass_in_patch"]) for r in mr], name=m,
                            mode="markers", marker=dict(size=9, opacity=0.7))
    else:
        for m, d in rep["summary"]["by_method"].items():
            fig.add_scatter(x=[d["area"]], y=[d["mass_in_patch"]], name=m, mode="markers")
    fig.add_scatter(x=[0, 0.1], y=[0, 0.1], name="mass = area", mode="lines", line=dict(color="black", dash="dash"))
    fig.update_xaxes(tickformat=".0%")
    return _layout(fig, "patch area share", "attribution mass inside the patch")


def _fig_universal(rep: dict, rows: list[dict]) -> go.Figure:
    paper = rep.get("paper") or reproduce.PAPER["universal"]
    keys = (("confident", "p(target) ≥ 0.9"), ("argmax", "target top-1"), ("not_source", "source not top-1"))
    fig = go.Figure()
    fig.add_bar(x=[lab for _, lab in keys], y=[paper.get(k) for k, _ in keys], name="paper (Inception v3)",
                marker_color="#999999")
    if rows:
        ours = [_mean([_f(r[k]) for r in rows]) for k, _ in keys]
    else:
        ours = [rep["summary"].get(k) for k, _ in keys]
    fig.add_bar(x=[lab for _, lab in keys], y=ours, name="ours (mean over targets)", marker_color="#d62728")
    fig.update_layout(barmode="group")
    return _layout(fig, "held-out photos", "fraction")


def _fig_classes(rep: dict, rows: list[dict]) -> go.Figure:
    by = rep["summary"]["by_class"]
    fig = go.Figure()
    fig.add_bar(x=list(by), y=[d.get("success_0_9") for d in by.values()], name="p ≥ 0.9",
                marker_color=["#d62728" if d.get("target") in (980, 429) else "#1f77b4" for d in by.values()])
    fig.update_xaxes(tickangle=-45)
    return _layout(fig, "target class (red: the paper's volcano, baseball)", "configs with p(target) ≥ 0.9")


def _fig_crossmodel(rep: dict, rows: list[dict]) -> go.Figure:
    m = rep["summary"]["matrix_confident"]
    names = list(m)
    z = [[m[a][b] for b in names] for a in names]
    short = [n.replace("efficientnet-", "") for n in names]
    fig = go.Figure(go.Heatmap(z=z, x=short, y=short, zmin=0, zmax=1, colorscale="Viridis",
                               text=[["—" if v is None else f"{v:.0%}" for v in r] for r in z],
                               texttemplate="%{text}"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "evaluated on", "trained on", pct=False)


def _fig_brown(rep: dict, rows: list[dict]) -> go.Figure:
    by = rep["summary"]["by_condition"]
    fig = go.Figure()
    fig.add_bar(x=list(by), y=[d.get("confident") for d in by.values()], name="p ≥ 0.9, axis-aligned")
    fig.add_bar(x=list(by), y=[d.get("eot_confident") for d in by.values()], name="p ≥ 0.9, under EOT")
    fig.update_layout(barmode="group")
    return _layout(fig, "method and area", "held-out photos")


def _fig_defend(rep: dict, rows: list[dict]) -> go.Figure:
    by = rep["summary"]["groups"]
    fig = go.Figure()
    fig.add_bar(x=list(by), y=[d.get("recovered", d.get("agree")) for d in by.values()],
                name="patches: source recovered · clean: label kept")
    fig.add_bar(x=list(by), y=[d.get("certified") for d in by.values()], name="clean: certified")
    fig.update_layout(barmode="group")
    fig.update_xaxes(tickangle=-30)
    return _layout(fig, "group (PatchCleanser double masking)", "share of images")


FIGURES = {"single": _fig_single, "fragility": _fig_fragility, "transfer": _fig_transfer,
           "saliency": _fig_saliency, "universal": _fig_universal, "classes": _fig_classes,
           "crossmodel": _fig_crossmodel, "brown": _fig_brown, "defend": _fig_defend}


# ---------------------------------------------------------------- the README's area tables
def ablation_path() -> Path:
    return Path(os.environ.get("LAVAN_ABLATION") or ROOT / "bench" / "results" / "ablation.csv")


def _by_files(name: str, paths: tuple[Path, ...], build) -> tuple[list[dict], str | None]:
    """``build()``'s table, rebuilt only when one of ``paths`` changed (size, mtime) or appeared: like
    :func:`load_all`, so the Paper page does not re-read and re-summarise the CSVs on every visit."""
    sig = []
    for p in paths:
        try:
            st_ = p.stat()
            sig.append((str(p.resolve()), st_.st_size, st_.st_mtime_ns))
        except OSError:
            sig.append((str(p), None, None))
    return _kept_until_changed(name, tuple(sig), build)


def default_area_table(path: str | Path | None = None, input_size: int = 224) -> tuple[list[dict], str | None]:
    """(rows, warning or None): the area table of today's defaults (README "Area table with today's defaults"),
    one row per (domain, area), "not measured yet" where no row exists; never raises. Kept until a CSV changes."""
    path = Path(path) if path is not None else ablation_path()
    return _by_files(f"default_area:{input_size}", (path, area_table_path()),
                     lambda: _default_area_table(path, input_size))


def _default_area_table(path: Path, input_size: int) -> tuple[list[dict], str | None]:
    if not path.is_file():
        return [], f"`{shown(path)}` does not exist yet: run `.venv/bin/python bench/ablation.py`."
    try:
        cells = tables.default_area_cells(tables.read_ablation(path), tables.read_rows(area_table_path()),
                                          tables.default_fields_by_area(input_size), input_size=input_size)
    except Exception as e:  # noqa: BLE001
        return [], f"`{shown(path)}` could not be summarised ({type(e).__name__}: {e})."
    rows = []
    for c in cells:
        n = c["configs"]
        rows.append({"domain": c["domain"], "area": f"{c['area']:.1%}", "patch (px)": c["size"],
                     "default training": tables.describe_default(c), "configs": n,
                     f"p ≥ 0.9 within {c['budget']:,} evaluations": (
                         f"{c['successes']}/{n} ({c['successes'] / n:.0%})" if n else "not measured yet"),
                     "target top-1": f"{c['argmax']}/{n}" if n else "–",
                     "median evaluations (successes)": tables.fmt(c["median_evaluations"]),
                     "median CPU s (successes)": tables.fmt(c["median_seconds"])})
    return rows, None


def area_table(path: str | Path | None = None) -> tuple[list[dict], str | None]:
    """(rows for a table, warning or None). One row per measured cell; never raises. Kept until the CSV changes."""
    path = Path(path) if path is not None else area_table_path()
    return _by_files("area", (path,), lambda: _area_table(path))


def _area_table(path: Path) -> tuple[list[dict], str | None]:
    if not path.is_file():
        return [], f"`{shown(path)}` does not exist yet: run `.venv/bin/python bench/area_table.py`."
    try:
        cells = tables.summarise_area(tables.read_rows(path))
    except Exception as e:  # noqa: BLE001
        return [], f"`{shown(path)}` could not be summarised ({type(e).__name__}: {e})."
    rows = [{"optimiser": c["name"], "domain": c["domain"], "area": f"{c['area']:.1%}",
             "patch (px on 224)": c["size"], "cap (it)": c["max_iter"], "configs": c["configs"],
             "p ≥ 0.9 within cap": f"{c['successes']}/{c['configs']}",
             "within 1,000 it": f"{c['within_1000']}/{c['configs']}",
             "median it (successes)": (f"{c['median_it']:.0f} ({c['min_it']}–{c['max_it']})" if c["successes"]
                                       else "–"),
             "target top-1": f"{c['argmax']}/{c['configs']}", "source removed": f"{c['not_source']}/{c['configs']}"}
            for c in cells]
    return rows, None
