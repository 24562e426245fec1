"""Each experiment's plotly figure, redrawn from its CSV rows (or, without them, from the summary JSON)."""
from __future__ import annotations

import plotly.graph_objects as go

from lab import reproduce

from .files import _f, _mean, _ok

PAPER_SINGLE = reproduce.PAPER["single"]["success_0_9"]


def _layout(fig: go.Figure, x: str, y: str, height: int = 340, pct: bool = True) -> go.Figure:
    fig.update_layout(xaxis_title=x, yaxis_title=y, height=height, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", y=-0.3))
    if pct:
        fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%")
    return fig


def _fig_single(rep: dict, rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    for v in sorted({r["variant"] for r in rows}):
        vr = [r for r in rows if r["variant"] == v]
        cap = max(int(_f(r["max_iter"])) for r in vr)
        its = sorted(_f(r["iterations"]) for r in vr if _ok(r["success_0_9"]))
        xs = [0] + [x for x in its for _ in (0, 1)] + [cap]
        ys = [0.0] + [y for i in range(len(its)) for y in (i / len(vr), (i + 1) / len(vr))] + [len(its) / len(vr)]
        fig.add_scatter(x=xs, y=ys, name=f"{v} (n={len(vr)})", mode="lines")
    if not rows:  # no CSV: the curve the JSON summary carries
        for v, d in ((rep.get("summary") or {}).get("by_variant") or {}).items():
            fig.add_scatter(x=d["curve"]["iterations"], y=d["curve"]["success"], name=v, mode="lines")
    fig.add_hline(y=PAPER_SINGLE, line=dict(color="grey", dash="dash"),
                  annotation_text="paper 79% (Inception v3, 42 px on 299, cap 10,000)")
    return _layout(fig, "iterations", "configs with p(target) ≥ 0.9")


def _fig_fragility(rep: dict, rows: list[dict]) -> go.Figure:
    dists = (1, 2, 5)
    fig = go.Figure()
    for key, lab in (("confident", "p(target) ≥ 0.9"), ("argmax", "target top-1"),
                     ("not_source", "source not top-1")):
        if rows:
            ys = [_mean([float(_f(r["centre_p_target"]) >= 0.9) for r in rows]) if key == "confident" else None]
            ys += [_mean([_f(r[f"shift{d}_{key}"]) for r in rows]) for d in dists]
        else:
            s = rep["summary"]
            ys = [s.get("centre_confident") if key == "confident" else None] + [s.get(f"shift{d}_{key}")
                                                                              for d in dists]
        fig.add_scatter(x=[0, *dists], y=ys, name=lab, mode="lines+markers")
    fig.add_annotation(x=1, y=0, text="paper: one pixel reverts it", showarrow=True, ay=-40)
    return _layout(fig, "shift (px)", "shifted placements")


def _fig_transfer(rep: dict, rows: list[dict]) -> go.Figure:
    if rows:
        bs = sorted({_f(r["border"]) for r in rows})
        curve = {k: [_mean([_f(r[k]) for r in rows if _f(r["border"]) == b]) for b in bs]
                 for k in ("confident", "argmax", "not_source")}
    else:
        s = rep["summary"]
        bs, curve = s["borders"], {k: s[k] for k in ("confident", "argmax", "not_source")}
    fig = go.Figure()
    for key, lab in (("confident", "p(target) ≥ 0.9"), ("argmax", "target top-1"),
                     ("not_source", "source not top-1")):
        fig.add_scatter(x=[b * 100 for b in bs], y=curve[key], name=lab, mode="lines+markers")
    fig.add_vline(x=25, line=dict(color="black", dash="dash"), annotation_text="paper ≈25%")
    return _layout(fig, "border of the source photo per side (% of image side)", "other photos")


def _fig_saliency(rep: dict, rows: list[dict]) -> go.Figure:
    fig = go.Figure()
    if rows:
        for m in sorted({r["method"] for r in rows}):
            mr = [r for r in rows if r["method"] == m]
            fig.add_scatter(x=[_f(r["area"]) for r in mr], y=[_f(r["mass_in_patch"]) for r in mr], name=m,
                            mode="markers", marker=dict(size=9, opacity=0.7))
    else:
        for m, d in rep["summary"]["by_method"].items():
            fig.add_scatter(x=[d["area"]], y=[d["mass_in_patch"]], name=m, mode="markers")
    fig.add_scatter(x=[0, 0.1], y=[0, 0.1], name="mass = area", mode="lines", line=dict(color="black", dash="dash"))
    fig.update_xaxes(tickformat=".0%")
    return _layout(fig, "patch area share", "attribution mass inside the patch")


def _fig_universal(rep: dict, rows: list[dict]) -> go.Figure:
    paper = rep.get("paper") or reproduce.PAPER["universal"]
    keys = (("confident", "p(target) ≥ 0.9"), ("argmax", "target top-1"), ("not_source", "source not top-1"))
    fig = go.Figure()
    fig.add_bar(x=[lab for _, lab in keys], y=[paper.get(k) for k, _ in keys], name="paper (Inception v3)",
                marker_color="#999999")
    if rows:
        ours = [_mean([_f(r[k]) for r in rows]) for k, _ in keys]
    else:
        ours = [rep["summary"].get(k) for k, _ in keys]
    fig.add_bar(x=[lab for _, lab in keys], y=ours, name="ours (mean over targets)", marker_color="#d62728")
    fig.update_layout(barmode="group")
    return _layout(fig, "held-out photos", "fraction")


def _fig_classes(rep: dict, rows: list[dict]) -> go.Figure:
    by = rep["summary"]["by_class"]
    fig = go.Figure()
    fig.add_bar(x=list(by), y=[d.get("success_0_9") for d in by.values()], name="p ≥ 0.9",
                marker_color=["#d62728" if d.get("target") in (980, 429) else "#1f77b4" for d in by.values()])
    fig.update_xaxes(tickangle=-45)
    return _layout(fig, "target class (red: the paper's volcano, baseball)", "configs with p(target) ≥ 0.9")


def _fig_crossmodel(rep: dict, rows: list[dict]) -> go.Figure:
    m = rep["summary"]["matrix_confident"]
    names = list(m)
    z = [[m[a][b] for b in names] for a in names]
    short = [n.replace("efficientnet-", "") for n in names]
    fig = go.Figure(go.Heatmap(z=z, x=short, y=short, zmin=0, zmax=1, colorscale="Viridis",
                               text=[["—" if v is None else f"{v:.0%}" for v in r] for r in z],
                               texttemplate="%{text}"))
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "evaluated on", "trained on", pct=False)


def _fig_brown(rep: dict, rows: list[dict]) -> go.Figure:
    by = rep["summary"]["by_condition"]
    fig = go.Figure()
    fig.add_bar(x=list(by), y=[d.get("confident") for d in by.values()], name="p ≥ 0.9, axis-aligned")
    fig.add_bar(x=list(by), y=[d.get("eot_confident") for d in by.values()], name="p ≥ 0.9, under EOT")
    fig.update_layout(barmode="group")
    return _layout(fig, "method and area", "held-out photos")


def _fig_defend(rep: dict, rows: list[dict]) -> go.Figure:
    by = rep["summary"]["groups"]
    fig = go.Figure()
    fig.add_bar(x=list(by), y=[d.get("recovered", d.get("agree")) for d in by.values()],
                name="patches: source recovered · clean: label kept")
    fig.add_bar(x=list(by), y=[d.get("certified") for d in by.values()], name="clean: certified")
    fig.update_layout(barmode="group")
    fig.update_xaxes(tickangle=-30)
    return _layout(fig, "group (PatchCleanser double masking)", "share of images")


FIGURES = {"single": _fig_single, "fragility": _fig_fragility, "transfer": _fig_transfer,
           "saliency": _fig_saliency, "universal": _fig_universal, "classes": _fig_classes,
           "crossmodel": _fig_crossmodel, "brown": _fig_brown, "defend": _fig_defend}
