"""Three students at once, in a real headless browser: three browser contexts (three Streamlit sessions) train
different configurations on one server whose pool runs two trainings at a time.

Proves: the third session is queued and shows its place; each session's live chart and result carry only its own
target; Stop and closing a tab end the training thread within seconds (measured from the server's own log line,
``lavan job … at <epoch>``); the queued session then runs; the process loaded the model once for everybody.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from browser_kit import ARGS, ARTIFACTS, CHROMIUM, healthy, idle, num, set_num, wait_for

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip(f"no chromium at {CHROMIUM} (run `make browser`)", allow_module_level=True)

# (target shown on its suggestion button, patch x, max iterations): A and B run long (they are stopped / closed),
# C is short and waits for a slot.
SESSIONS = {"A": ("goldfish", 0, 10_000), "B": ("jellyfish", 40, 10_000), "C": ("banana", 80, 12)}
JOB_LINE = re.compile(r"lavan job (\d+) attack (\w+) \((.*?); ([\d.]+) s, (\d+) progress reports"
                      r"(?:, ended ([\d.]+) s after the stop)?\) at ([\d.]+)")
METRICS: dict[str, float] = {}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from browser_kit import streamlit_server

    with streamlit_server(tmp_path_factory.mktemp("lavan-cache"), ARTIFACTS / "streamlit-sessions.log",
                          LAVAN_MAX_JOBS="2") as srv:
        yield srv
    (ARTIFACTS / "metrics-sessions.json").write_text(json.dumps(METRICS, indent=2))


@pytest.fixture(scope="module")
def pages(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # three students have three foreground windows: keep Chromium from throttling the timers of the windows
        # that are not in front (the page's st.fragment(run_every=…) polling is a browser timer)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS + [
            "--disable-background-timer-throttling", "--disable-backgrounding-occluded-windows",
            "--disable-renderer-backgrounding"])
        contexts = {name: browser.new_context(viewport={"width": 1300, "height": 1000}) for name in SESSIONS}
        tabs = {}
        for name, ctx in contexts.items():
            pg = ctx.new_page()
            pg.set_default_timeout(120_000)
            pg.goto(f"{server['url']}/attack")
            pg.get_by_role("heading", name="Attack one image").first.wait_for()
            tabs[name] = pg
        try:
            yield tabs, contexts
        finally:  # pictures of every session, kept whether the test passed or not
            for name, pg in tabs.items():
                if not pg.is_closed():
                    pg.screenshot(path=str(ARTIFACTS / f"sessions_{name}.png"), full_page=True)
            browser.close()


def job_lines(server) -> list[tuple[int, str, str, float, float, float]]:
    """(job id, status, why it ended, when it ended, seconds per iteration, seconds from the stop request to the
    thread's end) of each ended attack training, from the server's log."""
    text = Path(server["log"]).read_text()
    return [(int(i), st, why, float(at), float(ran) / max(int(n), 1), float(after or "nan"))
            for i, st, why, ran, n, after, at in JOB_LINE.findall(text)]


def check_ended_soon(what: str, job: tuple, asked: float) -> None:
    """The thread must end at the next iteration boundary once asked: within ~2 s on a quiet machine (an iteration
    is 0.1–0.3 s there); under heavy load one iteration can take seconds, so allow two iterations on top.
    From the user's action (``asked``, test clock) to the end is recorded too; it adds the server's time to
    answer the click or notice the closed socket, which only a benchmark should judge."""
    _, status, _, ended, per_it, after_request = job
    assert status == "cancelled"
    METRICS[f"{what}_request_to_thread_end_s"] = after_request
    METRICS[f"{what}_to_thread_end_s"] = round(ended - asked, 2)
    METRICS[f"{what}_seconds_per_iteration"] = round(per_it, 2)
    assert after_request < 2.0 + 2 * per_it, f"{what}: thread ended {after_request:.1f} s after the request"
    assert ended - asked < 60, f"{what}: {ended - asked:.0f} s from the user's action to the thread's end"


def legend(pg) -> str:
    return " | ".join(pg.locator(".st-key-attack_live .legendtext").all_text_contents())


def result_line(pg) -> str:
    return (pg.locator('[data-testid="stMarkdownContainer"]').filter(has_text=re.compile(r"iterations, [\d.]+ s"))
            .first.inner_text())


def test_three_sessions_train_apart_and_stop_fast(server, pages):
    tabs, contexts = pages
    for name, (target, x, steps) in SESSIONS.items():
        pg = tabs[name]
        idle(pg)
        pg.get_by_role("button", name=target, exact=True).click()
        box = pg.locator('[data-testid="stSelectbox"]').filter(has_text="Target class")

        def shown(box=box) -> str:
            return box.inner_text() + " " + " ".join(box.locator("input").evaluate_all("els => els.map(e => e.value)"))

        # as a user does: see the suggestion take effect before the next edit. Under CPU load the rerun can start
        # after idle() has already seen a quiet page (the status widget shows only once a run is under way).
        wait_for(pg, lambda: target in shown(), 60, f"session {name}: the target {target} to show in the selectbox")
        idle(pg)
        for label, value in (("Max iterations", steps), ("x (left, px)", x)):
            set_num(pg, label, value)
        assert num(pg, "Patch side (px)").input_value() == "63", f"session {name}: patch side changed"
        assert target in shown(), shown()
    for name in SESSIONS:
        tabs[name].get_by_role("button", name="Train", exact=True).click()

    # C waits: the pool runs two trainings at once, and the page says where it stands
    tabs["C"].get_by_text("position 1 in the queue").wait_for(timeout=120_000)
    # A and B train, each drawing only its own target
    for name, other in (("A", "B"), ("B", "A")):
        pg = tabs[name]
        try:
            wait_for(pg, lambda pg=pg, name=name: f"target: {SESSIONS[name][0]}" in legend(pg), 240, "chart")
        except AssertionError:
            raise AssertionError(f"{name}'s live chart never showed its target; legend now: {legend(pg)!r}")
        assert f"target: {SESSIONS[other][0]}" not in legend(pg)
        assert f"target: {SESSIONS['C'][0]}" not in legend(pg)
    healthy(tabs["A"])

    # Stop in A: the thread ends within seconds (the server logs when)
    t_stop = time.time()
    tabs["A"].get_by_role("button", name="Stop", exact=True).click()
    wait_for(tabs["A"], lambda: any(j[2] == "Stop pressed" for j in job_lines(server)), 60, "A's job to end")
    (job,) = [j for j in job_lines(server) if j[2] == "Stop pressed"]
    check_ended_soon("stop_click", job, t_stop)
    tabs["A"].get_by_text("(stopped)").wait_for(timeout=60_000)

    # close B's tab mid-training: the watchdog sees the session gone and ends its thread
    t_close = time.time()
    contexts["B"].close()
    wait_for(tabs["A"], lambda: any(j[2] == "session closed" for j in job_lines(server)), 60, "B's job to end")
    (job,) = [j for j in job_lines(server) if j[2] == "session closed"]
    check_ended_soon("tab_close", job, t_close)  # the request comes GONE_S (1 s) after the socket closed

    # C got a slot and finished its own training; each remaining session shows only its own result
    tabs["C"].get_by_text("(trained)").wait_for(timeout=180_000)
    idle(tabs["C"])
    c_line, a_line = result_line(tabs["C"]), result_line(tabs["A"])
    assert "→ banana" in c_line and "goldfish" not in c_line and "jellyfish" not in c_line, c_line
    assert "→ goldfish" in a_line and "(stopped)" in a_line and "banana" not in a_line, a_line
    assert "x=80" in c_line and "x=0," in a_line
    for name in ("A", "C"):
        healthy(tabs[name])
        tabs[name].screenshot(path=str(ARTIFACTS / "screenshots" / f"12_session_{name}.png"), full_page=True)

    # one model copy in the process for all three sessions
    log = Path(server["log"]).read_text()
    assert log.count("lavan loaded model efficientnet-lite0") == 1, log
    rss = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{server['proc'].pid}/status").read_text())
    METRICS["server_rss_mb_after_3_sessions"] = round(int(rss.group(1)) / 1024)
