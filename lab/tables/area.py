"""``bench/area_table.py``'s rows (``bench/results/area_table.csv``): success against patch area, Adam against the
paper's plain gradient steps on the same configs."""
from __future__ import annotations

import statistics

OPTIMIZER_NAMES = {"adam": "Adam (default)", "sgd": "plain gradient (paper)"}


def summarise_area(rows: list[dict]) -> list[dict]:
    """One dict per measured (optimiser, domain, area, cap) cell, Adam first: the area table as data.

    Keys: optimizer, name, domain, area, size, max_iter, configs, successes, within_1000, median_it, min_it, max_it,
    argmax, not_source."""
    cells = sorted({(r["optimizer"], r["domain"], float(r["area"]), int(r["max_iter"])) for r in rows},
                   key=lambda c: (c[0] != "adam", c[1], c[2], c[3]))
    out = []
    for opt, dom, area, cap in cells:
        rs = [r for r in rows if (r["optimizer"], r["domain"], float(r["area"]), int(r["max_iter"]))
              == (opt, dom, area, cap)]
        succ = [int(r["steps"]) for r in rs if r["success"] == "1"]
        out.append(dict(optimizer=opt, domain=dom, area=area, size=int(rs[0]["size"]), max_iter=cap,
                        name=OPTIMIZER_NAMES.get(opt, opt), configs=len(rs), successes=len(succ),
                        within_1000=sum(1 for s in succ if s <= 1000),
                        median_it=statistics.median(succ) if succ else None, min_it=min(succ, default=None),
                        max_it=max(succ, default=None), argmax=sum(r["argmax"] == "1" for r in rs),
                        not_source=sum(r["not_source"] == "1" for r in rs)))
    return out


def area_markdown(rows: list[dict], max_iter: int | None = None) -> str:
    """The area table (one line per cell of :func:`summarise_area`)."""
    cap = f"{max_iter:,}" if max_iter else "cap"
    lines = [f"| optimiser | domain | area | patch (px on 224) | configs | p≥0.9 within {cap} it | within 1,000 it "
             "| median it (successes) | argmax target | source removed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in summarise_area(rows):
        n = c["configs"]
        med = f"{c['median_it']:.0f} ({c['min_it']}–{c['max_it']})" if c["successes"] else "–"
        lines.append(f"| {c['name']} | {c['domain']} | {c['area']:.1%} | {c['size']} | {n} | {c['successes']}/{n} "
                     f"| {c['within_1000']}/{n} | {med} | {c['argmax']}/{n} | {c['not_source']}/{n} |")
    return "\n".join(lines)


def compare_optimisers(rows: list[dict]) -> list[dict]:
    """Adam vs plain gradient on the same configs, per seed and pooled, for each (domain, area, cap) that has both:
    successes, the median iterations to p >= 0.9 with quartiles (successes only), and the median of per-config
    iterations counting a failure as the cap (so a method cannot look fast by failing the hard configs)."""
    out = []
    for dom, area, cap in sorted({(r["domain"], float(r["area"]), int(r["max_iter"])) for r in rows}):
        rs = [r for r in rows if (r["domain"], float(r["area"]), int(r["max_iter"])) == (dom, area, cap)]
        if {r["optimizer"] for r in rs} < {"adam", "sgd"}:
            continue
        seeds = sorted({int(r["seed"]) for r in rs})
        for sel in [[s] for s in seeds] + ([seeds] if len(seeds) > 1 else []):
            for opt in ("adam", "sgd"):
                o = [r for r in rs if r["optimizer"] == opt and int(r["seed"]) in sel]
                if not o:
                    continue
                succ = [int(r["steps"]) for r in o if r["success"] == "1"]
                out.append(dict(domain=dom, area=area, max_iter=cap, seeds=sel, optimizer=opt, configs=len(o),
                                successes=len(succ), its=succ,
                                median_capped=statistics.median(int(r["steps"]) if r["success"] == "1" else cap
                                                                for r in o)))
    return out


def _median_iqr(xs: list[int]) -> str:
    if len(xs) < 2:
        return f"{xs[0]:.0f}" if xs else "–"
    a, _, c = statistics.quantiles(xs, n=4)
    return f"{statistics.median(xs):.0f} ({a:.0f}–{c:.0f})"


def compare_markdown(rows: list[dict]) -> str:
    lines = ["| domain | area | cap | seeds | optimiser | p≥0.9 | median it, successes (IQR) | "
             "median it, failures = cap |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {c['domain']} | {c['area']:.0%} | {c['max_iter']} | {', '.join(map(str, c['seeds']))} | "
              f"{'Adam' if c['optimizer'] == 'adam' else 'plain gradient'} | {c['successes']}/{c['configs']} | "
              f"{_median_iqr(c['its'])} | {c['median_capped']:.0f} |" for c in compare_optimisers(rows)]
    return "\n".join(lines)
