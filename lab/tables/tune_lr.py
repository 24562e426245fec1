"""``bench/tune_lr.py``'s rows: the step-size sweep per optimiser and domain."""
from __future__ import annotations

import math
import statistics


def summarise_tune_lr(rows: list[dict]) -> list[dict]:
    """Per (optimizer, domain, lr) in file order: configs, successes and the median iterations counting a failure as
    infinite (what bench/tune_lr.py prints; None when half or more failed)."""
    keys = list(dict.fromkeys((r["optimizer"], r["domain"], float(r["lr"])) for r in rows))
    out = []
    for opt, dom, lr in keys:
        rs = [r for r in rows if (r["optimizer"], r["domain"], float(r["lr"])) == (opt, dom, lr)]
        its = [int(r["steps"]) if r["success"] == "1" else math.inf for r in rs]
        med = statistics.median(its)
        out.append(dict(optimizer=opt, domain=dom, lr=lr, configs=len(rs), successes=sum(r["success"] == "1"
                                                                                       for r in rs),
                        median_it=None if math.isinf(med) else med, area=float(rs[0]["area"])))
    return out
