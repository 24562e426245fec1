"""The Defend page in a real headless browser, from a freshly started server: opened by a deep link with the
lesson's patch, it draws the masks and both verdicts; a small vulnerability map runs as a background job with a
progress bar; a click on a cell's marker in the heat-map places the patch there, and the page's link opens the
Attack page with that place in its x/y inputs (the lesson's patch was trained at x = y = 0, so 161 can only
come from the click). A screenshot is kept in test-artifacts/screenshots/defend_map.png.
"""
from __future__ import annotations

import re

import pytest
from browser_kit import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    healthy,
    idle,
    num,
    require_chromium,
    server_fixture,
    set_num,
    wait_for,
)

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "screenshots"
require_chromium()
server = server_fixture("streamlit-defend.log")


@pytest.fixture
def tab(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = b.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            b.close()


def test_map_click_places_the_patch_on_the_attack_page(tab, server):
    tab.goto(f"{server['url']}/defend?photo=skimage/coffee&patch=lesson/single.safetensors")
    tab.get_by_role("heading", name="Defend").first.wait_for(timeout=120_000)
    main = tab.locator('[data-testid="stMain"]')
    # the page draws at once; the verdicts come from a background job (ui/background.py) some seconds later
    wait_for(tab, lambda: num(tab, "Grid step (px)").count() == 1
             and main.get_by_text("Occlusion heuristic").count() == 1, 240,
             "the masks, the verdicts and the map's inputs")
    idle(tab)
    healthy(tab)
    assert tab.get_by_text(re.compile(r"\d+ masks of \d+×\d+ px")).count() == 1
    assert main.get_by_text("undefended").count() >= 1 and main.get_by_text("Occlusion heuristic").count() == 1
    set_num(tab, "Grid step (px)", 81)
    set_num(tab, "Evaluations per cell", 3)
    tab.get_by_role("button", name=re.compile(r"^Map 9 places")).click()
    chart = tab.locator(".st-key-defend_map_chart")
    chart.wait_for(timeout=180_000)  # the job's progress bar shows meanwhile; the chart once the map is done
    idle(tab)
    healthy(tab)
    points = chart.locator(".scatterlayer .point")
    wait_for(tab, lambda: points.count() == 9, 30, "nine cell markers")
    chart.scroll_into_view_if_needed()
    tab.wait_for_timeout(300)
    box = points.nth(8).bounding_box()  # row order: the last cell is the bottom-right corner, x = y = 224 - 63
    tab.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tab.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    wait_for(tab, lambda: tab.get_by_text("The patch is placed at x=161, y=161").count() > 0, 60, "the placed patch")
    idle(tab)
    healthy(tab)
    tab.screenshot(path=str(SHOTS / "defend_map.png"), full_page=True)
    tab.get_by_text("Train at x=161, y=161 on the Attack page").click()
    tab.get_by_role("heading", name="Attack one image").first.wait_for(timeout=120_000)
    idle(tab)
    healthy(tab)
    assert "ax=161" in tab.url and "ay=161" in tab.url
    wait_for(tab, lambda: num(tab, "x (left, px)").count() == 1, 60, "the Attack page's x input")
    assert num(tab, "x (left, px)").input_value() == "161" and num(tab, "y (top, px)").input_value() == "161"
