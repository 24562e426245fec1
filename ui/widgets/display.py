"""Showing tensors and predictions: a (3,H,W) image as a PIL picture or PNG bytes, a class id as its label, and a
top-k table with progress bars."""
from __future__ import annotations

import io

import streamlit as st
import torch
from PIL import Image

import attack


def to_pil(image: torch.Tensor) -> Image.Image:
    arr = (image.detach().cpu().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(arr)


def png_bytes(image: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    to_pil(image).save(buf, format="PNG")
    return buf.getvalue()


def label(class_id: int | None) -> str:
    return "—" if class_id is None else f"{attack.class_names()[class_id]} ({class_id})"


def topk_table(rows: list[tuple[int, str, float]], highlight: tuple[int, ...] = ()) -> None:
    import pandas as pd

    df = pd.DataFrame([{"class": f"{'▶ ' if i in highlight else ''}{name}", "id": i, "p": p} for i, name, p in rows])
    st.dataframe(df, hide_index=True, width="stretch",
                 column_config={"p": st.column_config.ProgressColumn("p", min_value=0.0, max_value=1.0,
                                                                     format="%.3f")})
