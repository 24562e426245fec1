"""``bench/ceiling.py``'s rows (``bench/results/ceiling.csv``): how far the last layers would let a patch of each size
go, beside what training reached."""
from __future__ import annotations

from .ablation import placement_of
from .rows import fmt, median


def summarise_ceiling(rows: list[dict], ablation: list[dict] | None = None) -> list[dict]:
    """One dict per patch size of bench/ceiling.py's rows: how many configs the last layers would let reach
    p ≥ 0.9 when only the fully covered cells may change (``centre``) or every overlapped cell may (``touched``),
    beside what training reached on the same configs (``ablation`` rows of the widest-measured variant at that
    size, image domain, 224 input, budget 2,000)."""
    by_size: dict[tuple[int, int, int], list[dict]] = {}
    for r in rows:
        by_size.setdefault((int(r["input_size"]), int(r.get("margin") or 0), int(r["size"])), []).append(r)
    out = []
    for (_, margin, size), rs in sorted(by_size.items()):
        trained, trained_variant = {}, None
        if ablation:
            mine = [a for a in ablation if int(a["size"]) == size and a["domain"] == "image"
                    and placement_of(a["variant"]) == "corner"
                    and int(a.get("margin") or 0) == margin
                    and int(a["input_size"]) == int(rs[0]["input_size"]) and int(a["budget"]) == 2000]
            counts: dict[str, int] = {}
            for a in mine:
                counts[a["variant"]] = counts.get(a["variant"], 0) + 1
            if counts:
                best = max(counts, key=lambda v: (counts[v], v == "adam-r8"))
                trained = {(int(a["seed"]), int(a["config"])): a for a in mine if a["variant"] == best}
                trained_variant = best
        both = [r for r in rs if (int(r["seed"]), int(r["config"])) in trained]
        out.append(dict(
            size=size, input_size=int(rs[0]["input_size"]), margin=margin, configs=len(rs),
            cells_centre=sorted({int(r["cells_centre"]) for r in rs}),
            cells_touched=sorted({int(r["cells_touched"]) for r in rs}),
            centre_ok=sum(float(r["ceiling_centre"]) >= 0.9 for r in rs),
            touched_ok=sum(float(r["ceiling_touched"]) >= 0.9 for r in rs),
            median_centre=median([float(r["ceiling_centre"]) for r in rs]),
            trained_variant=trained_variant, trained_configs=len(both),
            trained_ok=sum(trained[(int(r["seed"]), int(r["config"]))]["success"] == "1" for r in both),
            trained_beyond_centre=sum(trained[(int(r["seed"]), int(r["config"]))]["success"] == "1"
                                      and float(r["ceiling_centre"]) < 0.9 for r in both)))
    return out


def ceiling_markdown(cells: list[dict]) -> str:
    head = ("| corner patch | last-grid cells covered fully / overlapped | configs | p ≥ 0.9 possible, full cells "
            "only | median ceiling, full cells only | p ≥ 0.9 possible, overlapped cells | trained to p ≥ 0.9 "
            "(same configs, 2,000 evaluations) |\n|---|---|---|---|---|---|---|")
    lines = [head]
    for c in cells:
        trained = (f"{c['trained_ok']}/{c['trained_configs']} (`{c['trained_variant']}`; "
                   f"{c['trained_beyond_centre']} beyond the full-cell ceiling)" if c["trained_configs"] else "–")
        where = f", {c['margin']} px in" if c.get("margin") else ""
        lines.append(f"| {c['size']}×{c['size']} on {c['input_size']}{where} | "
                     f"{'/'.join(map(str, c['cells_centre']))} / {'/'.join(map(str, c['cells_touched']))} | "
                     f"{c['configs']} | {c['centre_ok']}/{c['configs']} | {fmt(c['median_centre'], 3)} | "
                     f"{c['touched_ok']}/{c['configs']} | {trained} |")
    return "\n".join(lines)
