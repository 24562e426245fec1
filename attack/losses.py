"""The LaVAN objective and the variants worth comparing. Every score is *maximised*.

``kind``:
* ``"logprob"`` (default, the paper's objective on log-probabilities): ``log p(t) - log p(s)``, with the source
  term floored at ``log p(t) - margin`` so that once the source is far below the target, all the gradient goes
  to raising the target (without the floor the optimiser drives p(s) to 0 and leaves p(t) near 0 as well).
* ``"logprob_raw"``: ``log p(t) - log p(s)`` exactly as written in the paper, no floor.
* ``"logit"``: logit margin ``z_t - z_s``.
* ``"prob"``: probability difference ``p(t) - p(s)``.
* ``"target_ce"``: ``log p(t)`` only (minus the target cross-entropy, as ART's targeted patch attack does).
* ``"margin_ce"``: a targeted logit margin ``z_t - max_{j != t} z_j`` while the target is not top-1, then
  ``log p(t)`` (the margin cannot saturate while the target is far down the ranking; cross-entropy then pushes
  p(t) to the threshold).
"""
from __future__ import annotations

import torch

__all__ = ["LOSSES", "target_minus_source"]

LOSSES = ("logprob", "logprob_raw", "logit", "prob", "target_ce", "margin_ce")


def target_minus_source(logits: torch.Tensor, target, source, kind: str = "logprob",
                        margin: float = 2.0) -> torch.Tensor:
    """Per-example score ``(N,)`` to maximise: M(target|x') - M(source|x').

    Args: logits (N,C); target, source: int or (N,) long tensors (source may equal target for images already of
    that class: its term is then dropped); kind: one of :data:`LOSSES`; margin: floor for ``"logprob"``.
    Example: >>> score = target_minus_source(model(x), 859, 281)
    """
    n = logits.shape[0]
    dev = logits.device
    t = torch.as_tensor(target, device=dev, dtype=torch.long).expand(n) if torch.as_tensor(target).dim() == 0 \
        else torch.as_tensor(target, device=dev, dtype=torch.long)
    s = torch.as_tensor(source, device=dev, dtype=torch.long).expand(n) if torch.as_tensor(source).dim() == 0 \
        else torch.as_tensor(source, device=dev, dtype=torch.long)
    rows = torch.arange(n, device=dev)
    same = (s == t).to(logits.dtype)
    if kind in ("logprob", "logprob_raw", "target_ce"):
        logp = torch.log_softmax(logits.float(), dim=1)
        lt, ls = logp[rows, t], logp[rows, s]
        if kind == "target_ce":
            return lt
        if kind == "logprob":
            ls = torch.maximum(ls, lt.detach() - margin)
        return lt - ls * (1 - same)
    if kind == "margin_ce":
        z = logits.float()
        zt = z[rows, t]
        others = z.scatter(1, t.view(-1, 1), float("-inf")).max(1).values
        logpt = torch.log_softmax(z, dim=1)[rows, t]
        return torch.where(zt > others, logpt, zt - others)
    if kind == "logit":
        z = logits.float()
        return z[rows, t] - z[rows, s] * (1 - same)
    if kind == "prob":
        p = torch.softmax(logits.float(), dim=1)
        return p[rows, t] - p[rows, s] * (1 - same)
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
