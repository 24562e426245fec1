"""Streamlit-side helpers for the LaVAN studio: cached resources (cache.py), widgets (widgets/), background
jobs (the jobs/ package), plotly charts (charts.py). No attack logic lives here: every computation is an
``attack`` call."""
