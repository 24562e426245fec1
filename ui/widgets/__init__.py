"""Widgets shared by the pages. Each ``*_picker`` returns plain values (a tensor, ints, a class id); state that
several pages share (model, image, current patch) lives in ``st.session_state`` under the names below.

* ``model_name``: picked in the sidebar (app.py); :func:`current_model` returns the cached model.
* ``image_src``: ``{"kind": "sample", "name", "path"}`` or ``{"kind": "upload", "name", "data"}``.
* ``result`` / ``result_image``: the last single-image patch (PatchResult) and the image it was trained on.

This package's modules:

* :mod:`.sidebar` — the sidebar's model (:func:`current_model`) and the request for any torchvision classifier.
* :mod:`.images` — the photo: gallery, sample list and uploader (:func:`image_picker`), :func:`input_note`.
* :mod:`.pickers` — the target class (:func:`target_picker`) and the patch side (:func:`size_picker`).
* :mod:`.location` — where the patch sits: the canvas (:func:`location_picker`) and :func:`grid_overlay`.
* :mod:`.patches` — a patch file (:func:`patch_loader`) or the session's last patch (:func:`current_patch`).
* :mod:`.display` — :func:`to_pil`, :func:`png_bytes`, :func:`label` and :func:`topk_table`.

What the pages and app.py call is imported here from those modules.
"""
from __future__ import annotations

from . import display, images, location, patches, pickers, sidebar
from .display import label, png_bytes, to_pil, topk_table
from .images import DEFAULT_SAMPLE, GALLERY, image_picker, image_source, input_note, load_source
from .location import CANVAS_PX, grid_overlay, location_picker, patch_square
from .patches import current_patch, patch_loader, require_patch
from .pickers import PAPER_INPUT, PAPER_SIZE, SUGGESTED_TARGETS, default_patch, paper_size, size_picker, target_picker
from .sidebar import PICKED, current_model, model_request

__all__ = ["CANVAS_PX", "DEFAULT_SAMPLE", "GALLERY", "PAPER_INPUT", "PAPER_SIZE", "PICKED", "SUGGESTED_TARGETS",
           "current_model", "current_patch", "default_patch", "display", "grid_overlay", "image_picker",
           "image_source", "images", "input_note", "label", "load_source", "location", "location_picker",
           "model_request", "paper_size", "patch_loader", "patch_square", "patches", "pickers", "png_bytes",
           "require_patch", "sidebar", "size_picker", "target_picker", "to_pil", "topk_table"]
