"""In a real headless browser: a torchvision model from the server's torch hub cache, picked in the sidebar.

The server starts with ``TORCH_HOME`` pointing at a temporary folder that holds resnet18 with random weights under the
file name torchvision expects (tests/tv_kit.py). The test picks it in the sidebar's model picker, opens the Attack
page and checks that the page follows it: 224×224 input resized from 256, the paper's 31-px default patch at 224,
and the sidebar's memory line counting it.
"""
from __future__ import annotations

import pytest
from browser_kit import ARGS, ARTIFACTS, CHROMIUM, healthy, idle, num, require_chromium, streamlit_server, wait_for
from tv_kit import write_weights

pytestmark = pytest.mark.browser
require_chromium()
TV = "torchvision:resnet18"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("torch_home")
    write_weights(home, "resnet18")
    with streamlit_server(tmp_path_factory.mktemp("lavan-cache"), ARTIFACTS / "streamlit-models.log",
                          TORCH_HOME=str(home)) as srv:
        yield srv


def test_pick_a_cached_torchvision_model_and_the_attack_page_follows(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(120_000)
        try:
            pg.goto(f"{server['url']}/attack")
            pg.get_by_role("heading", name="Attack one image").first.wait_for()
            idle(pg)
            assert num(pg, "Patch side (px)").input_value() == "63"  # Lite0: the measured default area
            sidebar = pg.locator('[data-testid="stSidebar"]')
            sidebar.locator('[data-testid="stSelectbox"]').filter(has_text="Model").first.click()
            pg.get_by_role("option", name=f"{TV} · 224 px").click()
            wait_for(pg, lambda: sidebar.get_by_text(f"{TV} @ 224x224").count() == 1, 120,
                     "the sidebar to name resnet18")
            idle(pg)
            wait_for(pg, lambda: num(pg, "Patch side (px)").input_value() == "31", 120, "the default patch of 31 px")
            healthy(pg)
            assert pg.get_by_text("the paper's 42×42 on 299×299 (no default was measured").count() >= 1
            assert pg.get_by_text(f"for {TV}: photos are resized to 256 px").count() >= 1
            wait_for(pg, lambda: sidebar.get_by_text("Loaded models: 2 (").count() == 1, 60,
                     "the sidebar to count Lite0 (the warm-up's) and resnet18")
        finally:
            pg.screenshot(path=str(ARTIFACTS / "models_torchvision_attack.png"), full_page=True)
            browser.close()
