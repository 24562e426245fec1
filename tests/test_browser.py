"""End to end in a real headless browser: Debian chromium driven by Playwright's sync API.

A fixture starts ``streamlit run app.py`` on a free local port (fresh server, own patch cache), then the tests
open a deep link first (cold start), upload a photo, drag the patch square with the mouse and watch the x/y
inputs follow, train with a live chart and stop it, visit every page with the patch, and drag a universal patch
while timing the prediction. Screenshots go to test-artifacts/screenshots/, numbers to test-artifacts/metrics.json.
Tests run in file order and share one browser session (the session state carries the trained patch).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from browser_kit import (
    ARGS,
    ARTIFACTS,
    CHROMIUM,
    healthy,
    idle,
    num,
    require_chromium,
    sample_path,
    server_fixture,
    set_num,
    wait_for,
)

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "screenshots"
METRICS: dict[str, float] = {}
require_chromium()
server = server_fixture("streamlit-server.log", METRICS, "metrics.json")


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request):
    """Keep a picture of the page when a test fails (test-artifacts/FAILED_<test>.png)."""
    failed = request.session.testsfailed
    yield
    pg = request.node.funcargs.get("tab")
    if pg is not None and request.session.testsfailed > failed:
        pg.screenshot(path=str(ARTIFACTS / f"FAILED_{request.node.name}.png"), full_page=True)


@pytest.fixture(scope="module")
def tab(server):
    from playwright.sync_api import sync_playwright

    os.environ["LAVAN_TEST_URL"] = server["url"]  # for nav() in a test run on its own
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


# ------------------------------------------------------------------------------------------------ helpers


def shot(pg, name: str) -> Path:
    path = SHOTS / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def go(pg, server, path: str, title: str) -> None:
    pg.goto(f"{server['url']}/{path}")
    pg.get_by_role("heading", name=title).first.wait_for(timeout=120_000)
    idle(pg)
    healthy(pg)


def nav(pg, label: str, title: str) -> None:
    """Open a page from the sidebar (same browser session, so the session state is kept)."""
    if not pg.url.startswith("http"):  # this test runs on its own: open the app first
        pg.goto(os.environ["LAVAN_TEST_URL"])
        pg.get_by_role("heading", name="LaVAN studio").wait_for(timeout=120_000)
    pg.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=label).click()
    pg.get_by_role("heading", name=title).first.wait_for(timeout=120_000)
    idle(pg)
    healthy(pg)


def xy(pg) -> tuple[int, int]:
    return int(num(pg, "x (left, px)").input_value()), int(num(pg, "y (top, px)").input_value())


def drag_square(pg, canvas_index: int, start: tuple[int, int], delta: tuple[int, int]) -> float:
    """Switch the canvas to edit mode and drag the square from ``start`` by ``delta`` (canvas px).
    Returns the time of the mouse-up (perf_counter)."""
    canvas = pg.locator("canvas.upper-canvas").nth(canvas_index)
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    canvas.hover()
    edit = pg.locator(".dc-root").nth(canvas_index).locator("button[aria-label='Edit']")
    if edit.get_attribute("aria-pressed") != "true":
        edit.click()
    x0, y0 = box["x"] + start[0], box["y"] + start[1]
    pg.mouse.move(x0, y0, steps=3)
    pg.wait_for_timeout(100)
    pg.mouse.down()
    pg.wait_for_timeout(100)
    pg.mouse.move(x0 + delta[0], y0 + delta[1], steps=12)
    pg.wait_for_timeout(100)
    pg.mouse.up()
    return time.perf_counter()


def drag_until(pg, canvas_index: int, start, delta, moved, what: str) -> float:
    """Drag, and wait for ``moved()``; a drag that the canvas dropped (it happens under heavy CPU load while the
    page is still settling) is repeated up to twice. Returns the mouse-up time of the drag that worked."""
    for attempt in range(3):
        t_up = drag_square(pg, canvas_index, start, delta)
        try:
            wait_for(pg, moved, 15, what)
            METRICS["drag_retries"] = METRICS.get("drag_retries", 0) + attempt
            return t_up
        except AssertionError:
            if attempt == 2:
                raise
            idle(pg)
    raise AssertionError(what)






# ------------------------------------------------------------------------------------------------ tests
def test_cold_start_deep_link_opens_the_attack_page(tab, server):
    """The first request to a fresh server is a deep link: it must open that page, not 'Page not found'."""
    go(tab, server, "attack", "Attack one image")
    tab.locator("canvas.upper-canvas").wait_for(timeout=60_000)
    idle(tab)
    METRICS["cold_start_to_first_page_s"] = round(time.perf_counter() - server["t0"], 2)
    assert tab.locator("canvas.upper-canvas").count() == 1
    assert tab.get_by_text("the model sees:").count() == 1
    # app.py ran too (not only the page file): its navigation titles and the sidebar model picker are there
    sidebar = tab.locator('[data-testid="stSidebar"]')
    assert sidebar.get_by_role("link", name="Attack one image").count() == 1
    assert sidebar.get_by_text("EfficientNet-Lite is not the paper's Inception v3").count() == 1
    shot(tab, "01_attack_deep_link")


def test_upload_bad_then_good_photo(tab, server, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"definitely not a jpeg")
    upload = tab.locator('[data-testid="stFileUploader"]').first.locator("input[type=file]")
    upload.set_input_files(str(bad))
    tab.get_by_text("Upload rejected").first.wait_for()
    idle(tab)
    assert "notes.jpg: not an image file" in tab.locator('[data-testid="stAlert"]').first.inner_text()
    assert tab.get_by_text("skimage/coffee — the model sees").count() == 1  # still the previous photo
    good = tmp_path / "red_panda.jpg"
    shutil.copy(sample_path("ai-benchmark/3"), good)
    upload.set_input_files(str(good))
    tab.get_by_text("red_panda.jpg — the model sees").wait_for()
    idle(tab)
    healthy(tab)
    assert tab.locator('[data-testid="stAlert"]').count() == 0


def drag_patch_to(pg, size: int, scale: float, target: tuple[int, int]) -> None:
    """Drag the square (from wherever the x/y inputs say it is) so that its top-left lands on ``target``.

    Under heavy CPU load the canvas sometimes commits a drag part-way (a rerun re-renders it while the mouse is
    still moving: seen once as exactly half the distance). Then the square is dragged again from where the inputs
    say it now is — which itself checks that the inputs followed the first, partial drag."""
    for attempt in range(3):
        x, y = xy(pg)
        start = ((x + size / 2) * scale, (y + size / 2) * scale)
        delta = (round((target[0] - x) * scale), round((target[1] - y) * scale))
        drag_until(pg, 0, start, delta, lambda: xy(pg) != (x, y), "x/y inputs to follow the drag")
        idle(pg)
        if xy(pg) == target:
            METRICS["partial_drags"] = METRICS.get("partial_drags", 0) + attempt
            return
    assert xy(pg) == target


def test_drag_the_patch_and_the_inputs_follow(tab, server):
    assert xy(tab) == (0, 0)
    size = int(num(tab, "Patch side (px)").input_value())
    scale = tab.locator("canvas.upper-canvas").first.bounding_box()["width"] / 224
    target = (round(100 / scale), round(60 / scale))
    drag_patch_to(tab, size, scale, target)
    assert xy(tab) == target
    # and the other way: typing x moves the square; a second drag starts from there
    set_num(tab, "x (left, px)", "120")
    x, y = xy(tab)
    assert x == 120
    target = (120 - round(40 / scale), y + round(20 / scale))
    drag_patch_to(tab, size, scale, target)
    assert xy(tab) == target
    shot(tab, "02_attack_dragged")


def test_training_shows_a_live_chart_and_stops(tab, server):
    set_num(tab, "Max evaluations", "10000")
    # a 20 px patch cannot reach p 0.9 on Lite0 within seconds (the default 63 px won in 6 s on an idle machine,
    # before Stop was pressed): the training must still be running when the test stops it
    size_before = num(tab, "Patch side (px)").input_value()
    set_num(tab, "Patch side (px)", "20")
    tab.get_by_role("button", name="Train", exact=True).click()
    # the chart is redrawn twice a second, so poll for it rather than wait for one element to settle
    wait_for(tab, lambda: tab.locator(".st-key-attack_live .js-plotly-plot").count() > 0, 120, "the live chart")
    # iteration, evaluations, p(target), p(source), seconds
    seconds = tab.locator('[data-testid="stMetricValue"]').nth(4)
    seen, t = set(), time.perf_counter()
    while time.perf_counter() - t < 4.0:
        seen.add(seconds.inner_text())
        tab.wait_for_timeout(100)
    METRICS["live_updates_in_4s"] = len(seen)
    assert len(seen) >= 4, f"the live view refreshed {len(seen)} times in 4 s (want >= 1 Hz)"
    # the chart is replaced on every redraw; on a loaded machine one look can land between two draws, so poll
    wait_for(tab, lambda: tab.locator(".st-key-attack_live .js-plotly-plot .scatterlayer .trace").count() >= 2, 30,
             "p(target) and p(source) traces on the live chart")
    shot(tab, "03_attack_training_live")
    tab.get_by_role("button", name="Stop", exact=True).click()
    tab.locator(".st-key-attack_result_curve .js-plotly-plot").wait_for(timeout=60_000)
    tab.get_by_text("Patch (.safetensors)").wait_for(timeout=30_000)
    idle(tab)
    healthy(tab)
    assert tab.get_by_text("(stopped)").count() == 1
    assert tab.locator(".st-key-attack_live").count() == 0  # the live view is gone once the thread ended
    shot(tab, "04_attack_result")
    set_num(tab, "Patch side (px)", size_before)  # the next tests start from the page's default patch


def test_a_short_training_finishes_then_comes_from_the_cache(tab, server):
    set_num(tab, "Max evaluations", "8")
    tab.get_by_role("button", name="Train", exact=True).click()
    tab.get_by_text("(trained)").wait_for(timeout=180_000)
    tab.locator(".st-key-attack_result_curve .js-plotly-plot").wait_for(timeout=30_000)
    idle(tab)
    t = time.perf_counter()
    tab.get_by_role("button", name="Train", exact=True).click()
    tab.get_by_text("answered from the cache").wait_for(timeout=30_000)
    METRICS["cached_answer_s"] = round(time.perf_counter() - t, 2)
    idle(tab)
    healthy(tab)


@pytest.mark.parametrize("label,title,shot_name,selector", [
    ("Fragility", "Fragility", "05_fragility", ".st-key-frag_heat .js-plotly-plot"),
    ("Transfer", "Transfer", "06_transfer", ".st-key-transfer_chart .js-plotly-plot"),
    ("Gradients", "Gradients", "07_gradients", ".st-key-grad_heat .js-plotly-plot"),
    ("Models", "Models", "08_models", ".st-key-models_bars .js-plotly-plot"),
])
def test_every_page_shows_the_sessions_patch(tab, server, label, title, shot_name, selector):
    nav(tab, label, title)
    tab.locator(selector).wait_for(timeout=180_000)
    idle(tab)
    healthy(tab)
    shot(tab, shot_name)


def test_fragility_nudge(tab, server):
    nav(tab, "Fragility", "Fragility")
    caption = tab.get_by_text("(trained at x=")
    before = caption.inner_text()
    tab.get_by_role("button", name="→ 1px").click()
    wait_for(tab, lambda: caption.inner_text() != before, 30, "the nudge")
    idle(tab)
    assert num(tab, "dx (px)").input_value() == "1"


def test_universal_training_and_live_drag_latency(tab, server):
    nav(tab, "Universal patch", "Universal patch")
    shot(tab, "09_universal_empty")
    tab.get_by_role("tab", name="Train one").click()
    set_num(tab, "Training photos", "3")
    set_num(tab, "Max steps", "5")
    tab.get_by_role("button", name="Train", exact=True).click()
    tab.get_by_text("held-out photos (not used for training)").wait_for(timeout=180_000)
    idle(tab)
    healthy(tab)
    # one streak chart (polled: while the fragment reruns, the old and the new chart can briefly coexist)
    wait_for(tab, lambda: tab.locator(".st-key-uni_live .js-plotly-plot").count() == 1, 30, "one streak chart")
    canvas = tab.locator("canvas.upper-canvas").first
    scale = canvas.bounding_box()["width"] / 224
    size = int(num(tab, "Patch side (px)").input_value())
    latencies = []
    for k, (dx, dy) in enumerate([(80, 40), (40, 80), (-60, 30)]):
        x, y = xy(tab)
        want = (min(max(x + round(dx / scale), 0), 224 - size), min(max(y + round(dy / scale), 0), 224 - size))
        caption = tab.get_by_text(f"prediction for x={want[0]}, y={want[1]} in")
        t_up = drag_until(tab, 0, ((x + size / 2) * scale, (y + size / 2) * scale), (dx, dy),
                          lambda: caption.count() > 0, f"prediction for {want}")
        latencies.append((time.perf_counter() - t_up) * 1000)
        idle(tab)
        # Under heavy CPU load the canvas was once seen to report the drag (the prediction for the new place was
        # drawn) and then its original position again (the inputs back at 0, 0; no server error, no Streamlit race
        # logged). As in drag_patch_to, drag again from where the inputs say the square is, and count it.
        for _ in range(2):
            if xy(tab) == want:
                break
            METRICS["universal_redrags"] = METRICS.get("universal_redrags", 0) + 1
            x2, y2 = xy(tab)
            drag_until(tab, 0, ((x2 + size / 2) * scale, (y2 + size / 2) * scale),
                       (round((want[0] - x2) * scale), round((want[1] - y2) * scale)),
                       lambda: xy(tab) == want, f"x/y inputs at {want}")
            idle(tab)
        assert xy(tab) == want
    METRICS["universal_drag_to_prediction_ms"] = [round(v) for v in latencies]
    METRICS["universal_drag_to_prediction_ms_median"] = round(sorted(latencies)[1])
    assert sorted(latencies)[1] < 3000
    healthy(tab)
    shot(tab, "10_universal")


def test_home_and_deep_links_on_a_warm_server(tab, server):
    go(tab, server, "", "LaVAN studio")
    assert tab.get_by_text("not the paper's model").count() >= 1
    shot(tab, "00_home")
    for path, title in (("universal", "Universal patch"), ("gradients", "Gradients"), ("models", "Models"),
                        ("transfer", "Transfer"), ("fragility", "Fragility")):
        go(tab, server, path, title)  # a new browser session: no patch in its state
        tab.get_by_text("No patch yet").or_(tab.get_by_text("Pick a ready patch")).first.wait_for(timeout=60_000)
        healthy(tab)
    shot(tab, "11_deep_link_fresh_session")
    go(tab, server, "paper", "Paper vs us")
    tab.get_by_text("Patch area vs success").first.wait_for(timeout=60_000)
    healthy(tab)


def _upload_and_check(pg, upload, path: Path, ok: bool, fragment: str, prefix: str, ok_text: str | None) -> None:
    """Upload one file; a bad one must give exactly one alert naming the file, with the loader's reason."""
    upload.set_input_files(str(path))
    if ok:
        if ok_text:
            pg.get_by_text(ok_text).first.wait_for(timeout=60_000)
        idle(pg)
        assert pg.locator('[data-testid="stAlert"]').filter(has_text=prefix).count() == 0, path.name
    else:
        alert = pg.locator('[data-testid="stAlert"]').filter(has_text=f"{prefix} — {path.name}:")
        try:
            alert.first.wait_for(timeout=60_000)
        except Exception:  # the browser refuses files above server.maxUploadSize itself, before any rerun
            if "25 MiB" not in fragment:
                raise
            pg.get_by_text("must be 25").first.wait_for(timeout=10_000)
            return
        idle(pg)
        assert alert.count() == 1 and fragment.lower() in alert.inner_text().lower(), alert.inner_text()
    healthy(pg)


def one_per_reason(cases) -> list:
    """The first corpus case of each (kind, expected outcome, reason): the browser sends a file's bytes as they
    are and the server decodes them as in tests/test_app.py, which feeds *every* corpus file to every uploader;
    here each reason is shown once through a real browser's upload (multipart, its own 25 MiB refusal)."""
    seen: set = set()
    return [c for c in cases if (c.kind, c.expect, c.message_fragment) not in seen
            and not seen.add((c.kind, c.expect, c.message_fragment))]


def test_bad_input_corpus_through_the_browser(tab, server, bad_corpus):
    """A corpus file of each reason through the Attack page's photo uploader and the Fragility page's patch
    uploader of a real browser: one alert with the reason per bad file, the previous photo stays, page usable."""
    directory, cases = bad_corpus
    cases = one_per_reason(cases)
    assert {c.expect for c in cases if c.kind == "image"} == {"ok", "error"}, "the corpus lost its good photos"
    go(tab, server, "attack", "Attack one image")
    upload = tab.locator('[data-testid="stFileUploader"]').first.locator("input[type=file]")
    shown = "skimage/coffee"
    for case in [c for c in cases if c.kind == "image"]:
        ok = case.expect == "ok"
        _upload_and_check(tab, upload, directory / case.filename, ok, case.message_fragment, "Upload rejected",
                          f"{case.filename} — the model sees")
        shown = case.filename if ok else shown
        assert tab.get_by_text(f"{shown} — the model sees").count() == 1, (case.name, shown)
    # the patch uploader, with the session's last photo as the patch's image
    nav(tab, "Fragility", "Fragility")
    upload = tab.locator('[data-testid="stFileUploader"]').first.locator("input[type=file]")
    for case in [c for c in cases if c.kind == "patch"]:
        _upload_and_check(tab, upload, directory / case.filename, case.expect == "ok", case.message_fragment,
                          "Patch file rejected", None)
    shot(tab, "13_corpus_done")
