"""AppTest for the Attack page's feasibility meter (band, reason, "move to the best place nearby") and the overlay
of the network's last-grid cells on the photo (issue 27, item 4)."""
from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1.element_tree import UnknownElement

import attack.meter
from tests.test_app import _isolated_cache, _server_after_first_run, _walk, app, texts  # noqa: F401  (fixtures)
from ui import widgets

PAGE = "pages/1_attack.py"


def _canvas_args(at) -> dict:
    (el,) = [e for e in _walk(at._tree) if isinstance(e, UnknownElement) and e.type == "bidi_component"
             and e.proto.id.endswith("-attack_loc_canvas")]
    return json.loads(el.proto.json)


def test_meter_beside_train_and_one_click_to_the_best_place():
    at = app(PAGE)
    at.number_input(key="attack_size").set_value(42).run()
    at.checkbox(key="attack_loc_cells").set_value(False).run()  # the exact corner, whatever the default place
    at.button(key="attack_loc_corner_top-left").click().run()
    body = texts(at)
    assert "Possible at this place" in body and "it touches reach" in body  # 1 cell covered, 4 touched
    move = at.button(key="attack_meter_move")
    assert "x=11, y=11: likely" in move.label
    move.click().run()
    assert not at.exception
    assert (at.number_input(key="attack_loc_x").value, at.number_input(key="attack_loc_y").value) == (11, 11)
    assert "Likely at this place" in texts(at)
    assert not [b for b in at.button if b.key == "attack_meter_move"]  # nothing nearby is better now


def test_grid_overlay_checkbox_redraws_the_canvas_background():
    at = app(PAGE)
    box = at.checkbox(key="attack_grid")
    assert "32 px cell grid" in box.label and not box.disabled and box.value is False
    before = _canvas_args(at)["backgroundImageURL" if "backgroundImageURL" in _canvas_args(at) else "background_image"]
    box.check().run()
    assert not at.exception
    after = _canvas_args(at)
    after = after["backgroundImageURL" if "backgroundImageURL" in after else "background_image"]
    assert after != before


def test_grid_overlay_draws_cell_borders_and_centres():
    img = torch.zeros(3, 224, 224)
    out = widgets.grid_overlay(img, 32)
    assert out[:, 32, 5].tolist() == pytest.approx([1.0, 0.85, 0.0]) and out[:, 5, 64].sum() > 0  # borders
    assert out[:, 16, 16].sum() > 0 and out[:, 48, 16].sum() > 0  # centre dots
    assert out[:, 5, 5].sum() == 0 and img.sum() == 0  # elsewhere untouched, input not modified


def test_corner_buttons_move_onto_the_cells_when_ticked():
    at = app(PAGE)
    at.number_input(key="attack_size").set_value(42).run()
    box = at.checkbox(key="attack_loc_cells")
    assert "11 px in" in box.label and box.value is (attack.meter.DEFAULT_PLACE == "grid")
    at.checkbox(key="attack_loc_cells").set_value(False).run()
    at.button(key="attack_loc_corner_bottom-right").click().run()
    assert (at.number_input(key="attack_loc_x").value, at.number_input(key="attack_loc_y").value) == (182, 182)
    at.checkbox(key="attack_loc_cells").set_value(True).run()
    at.button(key="attack_loc_corner_bottom-right").click().run()
    assert (at.number_input(key="attack_loc_x").value, at.number_input(key="attack_loc_y").value) == (171, 171)
    assert "Likely at this place" in texts(at)
