"""Number formatting shared by the lab's reports, tables and findings (pure: no torch, no attack)."""
from __future__ import annotations

import math

__all__ = ["pct", "missing"]


def missing(v) -> bool:
    """Whether ``v`` is no figure at all: None or NaN."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def pct(v, digits: int = 1, unit: str = "%") -> str:
    """A share in [0, 1] as a percentage: ``pct(0.205)`` -> "20.5%", ``pct(0.205, 0, "")`` -> "20"; None or NaN
    -> "—". The one percentage formatter of the reports, the findings and the tables."""
    return "—" if missing(v) else f"{100 * v:.{digits}f}{unit}"
