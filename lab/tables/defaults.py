"""The area table of today's defaults: the ablation rows trained with exactly the trainer's default settings at each
of the area table's sizes, beside the old default's area-table rows (``ablation.csv`` + ``area_table.csv``)."""
from __future__ import annotations

from .ablation import placement_of
from .rows import fmt, median

DEFAULT_AREAS = (0.02, 0.035, 0.05, 0.08)  # bench/area_table.py's areas: the rows of the defaults' area table


def default_fields_by_area(input_size: int) -> dict[int, dict]:
    """:func:`attack.train.default_fields` for the patch side of each of :data:`DEFAULT_AREAS`: the ``defaults``
    argument of :func:`default_area_cells`."""
    from attack.patch import size_for_area
    from attack.train import default_fields

    return {s: default_fields(s, input_size) for s in (size_for_area(a, input_size) for a in DEFAULT_AREAS)}


def _is_default(row: dict, fields: dict, placed: bool = False) -> bool:
    """Whether an ablation row trained with exactly the trainer's defaults at its size (``fields``: restarts, leak,
    loss, and ``lr``, the default step size per domain) at its corner; ``placed``: at any placement (``-pgrid`` /
    ``-pmeter`` rows too)."""
    if not placed and placement_of(row["variant"]) != "corner":
        return False
    lr = fields.get("lr", {}).get(row["domain"])
    return ((lr is None or not row.get("lr") or float(row["lr"]) == float(lr)) and row["rule"] == "adam"
            and row["loss"] == fields.get("loss", "logprob") and row["init"] == "mixed"
            and int(row["restarts"]) == fields["restarts"] and float(row.get("leak") or 0) == fields["leak"]
            and row.get("leak_last", "1") == "1" and all(row.get(k, "0") in ("0", "0.0", "") for k in
                                                          ("st_relu6", "cosine", "polish", "margin", "tau", "patience")))


def default_area_cells(rows: list[dict], baseline: list[dict], defaults: dict[int, dict], input_size: int = 224,
                       budget: int = 2000, domains: tuple[str, ...] = ("image", "network"),
                       place: str = "corner") -> list[dict]:
    """The area table of the trainer's defaults (issue 12): for each patch side in ``defaults`` (side -> the fields a
    default training at that side has: ``restarts``, ``leak``, ``loss`` (default "logprob"), ``lr`` per domain) and each
    domain, the ablation rows trained with exactly those settings (Adam, init mixed, nothing else on; any variant
    name), beside the old default's area-table rows (Adam, one patch) on the same (seed, config). A cell nobody
    measured has ``configs`` 0. ``place``: the rows at the exact corner (default) or at a placement (``"grid"``,
    ``"meter"``: the ``-pgrid`` / ``-pmeter`` rows)."""
    out = []
    for dom in domains:
        for size, fields in sorted(defaults.items()):
            picked: dict[tuple[int, int], dict] = {}
            for r in rows:
                if (r["domain"] == dom and int(r["size"]) == size and int(r["input_size"]) == input_size
                        and int(r["budget"]) == budget and placement_of(r["variant"]) == place
                        and _is_default(r, fields, placed=True)):
                    picked.setdefault((int(r["seed"]), int(r["config"])), r)
            rs = list(picked.values())
            ev = [int(r["evaluations"]) for r in rs if r["success"] == "1"]
            base = [b for b in baseline if b["optimizer"] == "adam" and b["domain"] == dom
                    and int(b["size"]) == size and int(b["input_size"]) == input_size
                    and int(b["max_iter"]) == budget and (int(b["seed"]), int(b["config"])) in picked]
            out.append(dict(domain=dom, size=size, input_size=input_size, area=size ** 2 / input_size ** 2,
                            budget=budget, restarts=fields["restarts"], leak=fields["leak"],
                            loss=fields.get("loss", "logprob"),
                            variants=sorted({r["variant"] for r in rs}), configs=len(rs),
                            seeds=sorted({k[0] for k in picked}), successes=len(ev),
                            argmax=sum(r["argmax"] == "1" for r in rs),
                            not_source=sum(r["not_source"] == "1" for r in rs),
                            median_evaluations=median(ev),
                            median_seconds=median([float(r["seconds"]) for r in rs if r["success"] == "1"]),
                            p_failed=sorted((round(float(r["p_target"]), 2) for r in rs if r["success"] != "1"),
                                            reverse=True),
                            base=dict(configs=len(base), successes=sum(b["success"] == "1" for b in base),
                                      argmax=sum(b["argmax"] == "1" for b in base),
                                      now=sum(picked[(int(b["seed"]), int(b["config"]))]["success"] == "1"
                                              for b in base)) if base else None))
    return out


def describe_default(cell: dict) -> str:
    """The default training of a :func:`default_area_cells` cell in words, e.g. "Adam, 8 restarts, ReLU6 leak 0.05"."""
    how = f"{cell['restarts']} restarts" if cell["restarts"] > 1 else "one patch"
    loss = cell.get("loss", "logprob")
    return (f"Adam, {how}" + (f", ReLU6 leak {cell['leak']:g}" if cell["leak"] else "")
            + (f", loss {loss}" if loss != "logprob" else ""))


def default_area_markdown(cells: list[dict]) -> str:
    budget = f"{cells[0]['budget']:,}" if cells else "the budget"
    lines = ["| area | patch | domain | the default training at this size | configs (seeds) | "
             f"p ≥ 0.9 within {budget} evaluations | target top-1 | source removed | median evaluations (successes) | "
             "median CPU s (successes) | the configs the old default (Adam, one patch) ran: p ≥ 0.9 today · old (old top-1) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        head = f"| {c['area']:.1%} | {c['size']}×{c['size']} on {c['input_size']} | {c['domain']} | {describe_default(c)} "
        n = c["configs"]
        if not n:
            lines.append(head + "| 0 | not measured yet | – | – | – | – | – |")
            continue
        b = c["base"]
        old = f"{b['now']}/{b['configs']} · {b['successes']}/{b['configs']} ({b['argmax']}/{b['configs']})" if b else "–"
        lines.append(head + f"(`{'`, `'.join(c['variants'])}`) | {n} ({', '.join(map(str, c['seeds']))}) | "
                     f"{c['successes']}/{n} ({c['successes'] / n:.0%}) | {c['argmax']}/{n} | {c['not_source']}/{n} | "
                     f"{fmt(c['median_evaluations'])} | {fmt(c['median_seconds'])} | {old} |")
    return "\n".join(lines)
