"""Result objects returned by the trainers (trainers return their patch instead of keeping state)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

__all__ = ["PatchResult"]


@dataclass
class PatchResult:
    """A trained patch and how it got there.

    patch: (3,s,s) — in [0,1] for the image domain, in the model's normalised space for the network domain.
    loc: (top, left) it was trained at, or None for a universal patch (random locations).
    history: per-iteration lists ``p_target``, ``p_source`` (and for single runs ``top5`` as [[id, p], …]).
    success: the paper's three criteria at the final patch: ``confident`` (p(target) ≥ stop_at),
    ``argmax`` (target is top-1), ``not_source`` (source no longer top-1).
    """

    patch: torch.Tensor
    loc: tuple[int, int] | None
    target: int
    source: int | None
    domain: str
    size: int
    steps: int
    success: dict[str, bool]
    p_target: float
    p_source: float
    seconds: float = 0.0
    history: dict[str, list] = field(default_factory=dict)
    model_name: str = ""
    input_size: int = 0
    loss: str = "logprob"
    stop_at: float = 0.9
    cancelled: bool = False
    evaluations: int = 0  # forward+backward evaluations spent (restarts x iterations); 0 where not recorded
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return bool(self.success.get("confident", self.success.get("converged", False)))

    def summary(self) -> dict[str, Any]:
        """JSON-friendly summary (no tensors, no history)."""
        d = asdict(self)
        for k in ("patch", "history"):
            d.pop(k)
        d["loc"] = list(self.loc) if self.loc is not None else None
        return d
