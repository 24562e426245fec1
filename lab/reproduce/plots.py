"""The reports' PNG plots (matplotlib, Agg): one function per kind of figure, each writing ``<out>/<name>.png``."""
from __future__ import annotations

import math
from pathlib import Path

from ..findings import PAPER
from .stats import b, f


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(out: Path, fig, name: str) -> None:
    fig.tight_layout()
    fig.savefig(out / f"{name}.png", dpi=110)
    _plt().close(fig)


def plot_single(out: Path, summary: dict, rows: list[dict]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    for v, d in summary["by_variant"].items():
        if d["curve"]["iterations"]:
            ax[0].plot(d["curve"]["iterations"], d["curve"]["success"], label=v)
    ax[0].axhline(PAPER["single"]["success_0_9"], ls="--", c="gray", label="paper (network, cap 10k)")
    ax[0].set(xlabel="iterations", ylabel="fraction of configs with p(target) ≥ 0.9", ylim=(0, 1),
              title="Success vs iterations")
    ax[0].legend(fontsize=8)
    for v in summary["by_variant"]:
        its = [f(r["iterations"]) for r in rows if r["variant"] == v and b(r["success_0_9"])]
        if its:
            ax[1].hist(its, bins=20, alpha=0.5, label=v)
    ax[1].set(xlabel="iterations to p ≥ 0.9", ylabel="configs", title="Iterations to success")
    if ax[1].has_data():
        ax[1].legend(fontsize=8)
    _save(out, fig, "single")


def plot_lines(out: Path, name: str, xs, series: dict, xlabel: str, ylabel: str, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, ys in series.items():
        pts = [(x, y) for x, y in zip(xs, ys) if y is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=k)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, ylim=(-0.02, 1.02))
    if ax.has_data():
        ax.legend()
    _save(out, fig, name)


def plot_bars(out: Path, name: str, labels: list[str], series: dict, ylabel: str, title: str,
               second: tuple[str, list] | None = None) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(labels) * max(1, len(series))), 4.5))
    width = 0.8 / max(1, len(series))
    for j, (k, ys) in enumerate(series.items()):
        ax.bar([i + j * width for i in range(len(labels))], [0 if y is None else y for y in ys], width, label=k)
    ax.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(labels))])
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel=ylabel, title=title, ylim=(0, 1.05))
    if second is not None:
        ax2 = ax.twinx()
        ax2.plot(range(len(labels)), [0 if y is None else y for y in second[1]], "k.", label=second[0])
        ax2.set_ylabel(second[0])
    if labels:
        ax.legend(fontsize=8, loc="upper right")
    _save(out, fig, name)


def plot_scatter(out: Path, rows: list[dict]) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for m in sorted({r["method"] for r in rows}):
        mr = [r for r in rows if r["method"] == m]
        ax.scatter([f(r["area"]) for r in mr], [f(r["mass_in_patch"]) for r in mr], label=m, alpha=0.6)
    ax.plot([0, 0.1], [0, 0.1], "k--", lw=1, label="mass = area")
    ax.set(xlabel="patch area share", ylabel="attribution mass inside the patch", ylim=(0, 1),
           title="Attribution mass in the patch vs its area")
    ax.legend(fontsize=8)
    _save(out, fig, "saliency")


def plot_matrix(out: Path, matrix: dict) -> None:
    plt = _plt()
    names = list(matrix)
    vals = [[matrix[a][b] if matrix[a][b] is not None else float("nan") for b in names] for a in names]
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    im = ax.imshow(vals, vmin=0, vmax=1, cmap="viridis")
    short = [n.replace("efficientnet-", "") for n in names]
    ax.set_xticks(range(len(names)), short)
    ax.set_yticks(range(len(names)), short)
    ax.set(xlabel="evaluated on", ylabel="trained on", title="p(target) ≥ 0.9 across models")
    for i, row in enumerate(vals):
        for j, v in enumerate(row):
            ax.text(j, i, "—" if math.isnan(v) else f"{v:.0%}", ha="center", va="center", color="w")
    fig.colorbar(im)
    _save(out, fig, "crossmodel")

