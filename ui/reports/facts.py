"""The run facts a report view lists: the command a visitor may rerun (no server path), the model, seed, machine,
wall time, and the scale of the run against the scale a full run means."""
from __future__ import annotations

import math
import re
from pathlib import Path

from .files import _csv_rows, _f

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


def run_command(name: str) -> str:
    return f"python -m lab reproduce {name}"


def model_label(name: str | None) -> str:
    if not name:
        return "unknown model"
    pretty = MODEL_NAMES.get(name, name)
    return pretty if pretty == "Inception v3" else f"{pretty} — not the paper's Inception v3"


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
