"""``bench/vs_art.py``'s rows (``bench/results/vs_art*.csv``): our trainer against ART's ``AdversarialPatchPyTorch``."""
from __future__ import annotations

from .rows import fmt, median

VS_ART_METHODS = ("art-image", "ours-image", "ours-network")


def summarise_vs_art(rows: list[dict], budgets: list[float]) -> list[dict]:
    """One dict per (method, lr, max_iter, size): counts, success within the cap and within each budget (s),
    medians over successful configs, and seconds per iteration over all iterations run."""
    groups = sorted({(r["method"], float(r["lr"]), int(r["max_iter"]), int(r["size"])) for r in rows},
                    key=lambda g: (VS_ART_METHODS.index(g[0]) if g[0] in VS_ART_METHODS else 9, g[1], g[2], g[3]))
    out = []
    for method, lr, cap, size in groups:
        rs = [r for r in rows if (r["method"], float(r["lr"]), int(r["max_iter"]), int(r["size"]))
              == (method, lr, cap, size)]
        ok = [r for r in rs if r["success"] == "1"]
        its = sum(int(r["iterations"]) for r in rs)
        out.append({"method": method, "lr": lr, "max_iter": cap, "size": size, "n": len(rs), "ok": len(ok),
                    "within": {b: sum(float(r["seconds"]) <= b for r in ok) for b in budgets},
                    "median_it": median([float(r["iterations"]) for r in ok]),
                    "median_s": median([float(r["seconds"]) for r in ok]),
                    "s_per_it": sum(float(r["seconds"]) for r in rs) / its if its else None,
                    "median_p": median([float(r["p_target"]) for r in rs]),
                    "seeds": sorted({int(r["seed"]) for r in rs}), "rows": rs})
    return out


def paired(a: dict, b: dict) -> dict:
    """Per-config ratios a/b on the configs both solved (matched by seed and config)."""
    bi = {(r["seed"], r["config"]): r for r in b["rows"] if r["success"] == "1"}
    pairs = [(r, bi[(r["seed"], r["config"])]) for r in a["rows"] if r["success"] == "1"
             and (r["seed"], r["config"]) in bi]
    return {"n": len(pairs),
            "it": median([int(x["iterations"]) / max(1, int(y["iterations"])) for x, y in pairs]),
            "s": median([float(x["seconds"]) / max(1e-9, float(y["seconds"])) for x, y in pairs])}


def vs_art_markdown(rows: list[dict], budgets: list[float], art_lr: float) -> str:
    """The vs-ART tables: per method, then ours / ART at ``art_lr``, then the machines."""
    cells = summarise_vs_art(rows, budgets)
    head = ("| method | lr | cap (it) | patch px | configs (seeds) | p≥0.9 within cap | "
            + " | ".join(f"within {b:g} s" for b in budgets)
            + " | median it (successes) | median s (successes) | s / iteration | median final p(target) |")
    lines = [head, "|" + "---|" * (10 + len(budgets))]
    for c in cells:
        n = c["n"]
        lines.append(f"| {c['method']} | {c['lr']:g} | {c['max_iter']} | {c['size']} | {n} "
                     f"({', '.join(map(str, c['seeds']))}) | {c['ok']}/{n} | "
                     + " | ".join(f"{c['within'][b]}/{n}" for b in budgets)
                     + f" | {fmt(c['median_it'])} | {fmt(c['median_s'], 1)} | {fmt(c['s_per_it'], 3)} "
                     f"| {fmt(c['median_p'], 3)} |")
    out = ["\n".join(lines)]

    def ratio(a, b):
        return "–" if a is None or not b else f"{a / b:.2f}×"
    for art in [c for c in cells if c["method"] == "art-image" and abs(c["lr"] - art_lr) < 1e-12]:
        block = ["", f"Ours / ART (ART lr {art['lr']:g}, cap {art['max_iter']}; < 1 means ours is faster):", "",
                 "| ours | median it ratio (medians) | median s ratio (medians) | s/it ratio | "
                 "paired median it ratio | paired median s ratio | configs both solved |", "|---|---|---|---|---|---|---|"]
        for c in cells:
            if c["method"].startswith("ours") and (c["max_iter"], c["size"]) == (art["max_iter"], art["size"]):
                pr = paired(c, art)
                block.append(f"| {c['method']} | {ratio(c['median_it'], art['median_it'])} | "
                             f"{ratio(c['median_s'], art['median_s'])} | {ratio(c['s_per_it'], art['s_per_it'])} | "
                             f"{fmt(pr['it'], 2, '×')} | {fmt(pr['s'], 2, '×')} | {pr['n']} |")
        if len(block) > 5:  # at least one of ours beside this ART group
            out.append("\n".join(block))
    out.append("\nMachine(s): " + "; ".join(sorted({r["machine"] for r in rows})))
    return "\n".join(out)
