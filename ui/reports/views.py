"""One experiment as the Paper page shows it (:class:`ReportView`), built from its report files without ever
raising, and every experiment's view, rebuilt only when a file in the reports folder changed."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go

from lab import reproduce
from lab.experiments import EXPERIMENTS as _EXPERIMENTS

from .facts import _facts, run_command
from .figures import FIGURES
from .files import _csv_rows, _fingerprint, _kept_until_changed, reports_dir, shown

EXPERIMENTS: tuple[str, ...] = tuple(_EXPERIMENTS)


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


def load_all(out: str | Path | None = None) -> list[ReportView]:
    """Every experiment's view, rebuilt only when a file in ``out`` changed (a rerun of ``reproduce`` shows at the
    next page load): reading and drawing all reports took ~0.2 s of the server's one GIL on every visit to the
    Paper page, which a classroom switching pages pays many times a minute. The views are shared by all sessions
    and must not be modified."""
    out = Path(out) if out is not None else reports_dir()
    return _kept_until_changed("views", _fingerprint(out), lambda: [load_view(n, out) for n in EXPERIMENTS])
