"""The report writer: ``<out>/<name>.json`` (the summary, the paper-vs-ours table, notes and every session that ran)
and ``<out>/<name>.md``, which :func:`render_markdown` draws from that JSON alone, so ``python -m lab docs`` can
re-render it and the drift test can check it."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from ..findings import PAPER

TITLES = {
    "single": "Single-image LaVAN patches: success and iterations",
    "fragility": "Fragility: the patch moved by a few pixels",
    "transfer": "Transfer to other photos with a border of the source photo",
    "universal": "Universal (image-domain) patches on held-out photos",
    "classes": "Target difficulty per class",
    "saliency": "Does the network localise the patch? Attribution mass inside it",
    "crossmodel": "Cross-model transfer between {models}",
    "brown": "LaVAN vs Brown et al.'s adversarial patch (EOT)",
    "defend": "Defending against the patch: PatchCleanser double masking and occlusion",
}


def title(name: str, out: dict) -> str:
    """The report's title; the cross-model one names its models ("EfficientNet-Lite models" when all are Lite)."""
    models = list((out.get("matrix_confident") or {}).keys())
    if not models:
        what = "models"
    elif all(m.startswith("efficientnet-lite") for m in models):
        what = "EfficientNet-Lite models"
    else:
        what = ", ".join(m.removeprefix("torchvision:") for m in models)
    return TITLES[name].format(models=what)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return (f"{platform.platform()}; CPU {cpu} ({os.cpu_count()} cores visible, torch threads "
            f"{torch.get_num_threads()}); GPU {gpu}; Python {platform.python_version()}, torch {torch.__version__}")


def trained_sessions(sessions: list[dict]) -> list[dict]:
    """The sessions of a report's JSON that trained rows (not --report-only re-summaries)."""
    return [x for x in sessions if not x.get("report_only") and "--report-only" not in x.get("command", "")]


def write_report(opts, out: dict, wall: float, device: str) -> dict:
    """Write ``<name>.json`` and ``<name>.md`` for the summary ``out`` (with its ``_table`` and ``_notes``)."""
    from attack import train as train_mod

    path_json = opts.out / f"{opts.name}.json"
    sessions = []
    if path_json.is_file():
        try:
            sessions = json.loads(path_json.read_text()).get("sessions", [])
        except (OSError, ValueError):
            sessions = []
    trained = trained_sessions(sessions)
    this = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(wall, 1), "command": opts.command,
            "configs_done": out.get("configs"), "machine": machine(), "device": device,
            "report_only": opts.report_only}
    sessions.append(this)
    if opts.report_only:  # the report names the commands that trained the rows, not the re-summary
        opts.command = trained[-1]["command"] if trained else opts.command
    # Rows trained by several commands (variants run side by side, a run resumed elsewhere) on several machines:
    # the report names them all, and where the rows were computed, not where a re-summary ran.
    sources = trained + ([this] if not opts.report_only or not trained else [])
    device = ", ".join(dict.fromkeys(x.get("device") or ("cpu" if "GPU none" in x.get("machine", "") else "cuda")
                                     for x in sources))
    commands = list(dict.fromkeys(x["command"] for x in sources))
    machines = list(dict.fromkeys(x["machine"] for x in sources if x.get("machine")))
    table, notes = out.pop("_table", []), out.pop("_notes", [])
    paper = {k: v for k, v in PAPER[opts.name].items() if not k.startswith("_")}
    caps = out.get("iteration_caps") or out.get("iteration_cap") or out.get("max_steps")
    meta = {"name": opts.name, "title": title(opts.name, out), "command": opts.command, "commands": commands,
            "model": opts.model, "device": device, "seed": opts.seed, "quick": opts.quick,
            "machine": " | ".join(machines), "wall_s": round(wall, 1),
            "wall_s_total": round(sum(s["wall_s"] for s in sessions), 1), "configs_done": out.get("configs"),
            "configs_planned": out.get("planned"), "iteration_cap": caps,
            "default_optimizer": "adam", "default_area": train_mod.DEFAULT_AREA,
            "paper": paper, "paper_note": PAPER[opts.name]["_note"],
            "table": [{"what": a, "paper": b, "ours": c} for a, b, c in table], "notes": notes,
            "csv": f"{opts.name}.csv", "plot": f"{opts.name}.png", "sessions": sessions}
    report = {**meta, "summary": out}
    path_json.write_text(json.dumps(report, indent=1, default=str))
    (opts.out / f"{opts.name}.md").write_text(render_markdown(report))
    return report


def render_markdown(rep: dict) -> str:
    """``<name>.md`` from the report's JSON: the paper-vs-ours table, the run (commands, machines, wall time,
    configs, caps) and the notes."""
    name, sessions = rep["name"], rep.get("sessions") or [{}]
    this = sessions[-1]
    commands = rep.get("commands") or [rep["command"]]
    machines = [m for m in (rep.get("machine") or "").split(" | ") if m]
    md = [f"# {rep['title']}", "", f"Paper (Karmon et al. 2018, arXiv:1801.02608): {rep['paper_note']}.",
          "", "| | paper | ours |", "|---|---|---|"]
    md += [f"| {r['what']} | {r['paper']} | {r['ours']} |" for r in rep["table"]]
    md += ["", f"![{name}]({name}.png)", "", "## Run", ""]
    if len(commands) > 1:
        md += ["- Commands that trained these rows:"] + [f"  - `{c}`" for c in commands]
    else:
        md += [f"- Command: `{rep['command']}`" + (" (quick: a tiny smoke run, not a result)" if rep.get("quick")
                                                    else "")]
    md += [f"- Model: {rep['model']} (see notes for the input sizes); device: {rep['device']}; seed: {rep['seed']}",
           *[f"- Machine: {m}" for m in machines],
           f"- Wall time: {rep['wall_s_total']:.0f} s summed over {len(sessions)} session(s), which may have run "
           f"side by side (this one {this.get('wall_s', rep.get('wall_s', 0)):.0f} s"
           + (", a --report-only re-summary)" if this.get("report_only") else ")"),
           f"- Configs done / planned: {rep.get('configs_done')} / {rep.get('configs_planned')}",
           f"- Iteration cap: {rep.get('iteration_cap')} (paper: 10,000)",
           f"- Raw rows: [`{name}.csv`]({name}.csv); summary: [`{name}.json`]({name}.json)",
           "", "## Notes", ""] + [f"- {n}" for n in rep.get("notes") or []] + [""]
    return "\n".join(md)


def load_report(name: str, out: str | Path = "reports") -> dict:
    """The report of one experiment for the app: ``{"title", "command", "paper", "table": [{"what", "paper",
    "ours"}], "summary": {...}, "wall_s", "configs_done", "configs_planned", "iteration_cap", "machine", …}``.
    Raises FileNotFoundError when the experiment has not been run into ``out``.
    Example: >>> rep = load_report("single"); rep["summary"]["success_0_9"]"""
    path = Path(out) / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no report for {name!r} in {out}: run `python -m lab reproduce {name}`")
    rep = json.loads(path.read_text())
    base = Path(out)
    rep["md_path"] = str(base / f"{name}.md")
    rep["plot_path"] = str(base / f"{name}.png") if (base / f"{name}.png").is_file() else None
    return rep
