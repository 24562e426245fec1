"""Five students at once, in a real headless browser: five browser contexts (five Streamlit sessions) train
different configurations on one server whose pool runs two trainings at a time.

Proves: the sessions that find the pool full are queued and each shows its own place and an estimated wait; each
session's live chart, patch and result carry only its own target and place; Stop and closing a tab end the
training thread within seconds (measured from the server's own log line, ``lavan job … at <epoch>``) and the
closed tab's slot is free within 2 s; the queued sessions then run; the process loaded the model once for
everybody. And the server refuses a file upload without Streamlit's XSRF token (plain HTTP, no browser).
"""
from __future__ import annotations

import re
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
    server_fixture,
    set_num,
    wait_for,
)

pytestmark = pytest.mark.browser
require_chromium()

# (target shown on its suggestion button, patch x, max evaluations, patch side): A and B run long (they are stopped /
# closed) with an 8-px patch, which cannot reach p(target) 0.9 and end on its own before the Stop (a 63-px network
# patch did once, on a fast CI machine); C, D and E are short, keep the default side and wait for a slot.
SESSIONS = {"A": ("goldfish", 0, 10_000, 8), "B": ("jellyfish", 40, 10_000, 8), "C": ("banana", 80, 12, 63),
            "D": ("school bus", 120, 12, 63), "E": ("analog clock", 150, 12, 63)}
QUEUED = ("C", "D", "E")
JOB_LINE = re.compile(r"lavan job (\d+) attack (\w+) \((.*?); ([\d.]+) s, (\d+) progress reports"
                      r"(?:, ended ([\d.]+) s after the stop)?(?:, slot freed [\d.]+ s after the stop at ([\d.]+))?"
                      r"\) at ([\d.]+)")
METRICS: dict[str, float] = {}
server = server_fixture("streamlit-sessions.log", METRICS, "metrics-sessions.json", LAVAN_MAX_JOBS="2")


@pytest.fixture(scope="module")
def pages(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # five students have five foreground windows: keep Chromium from throttling the timers of the windows
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


def job_lines(server) -> list[tuple[int, str, str, float, float, float, float]]:
    """(job id, status, why it ended, when it ended, seconds per iteration, seconds from the stop request to the
    thread's end, when its slot was freed) of each ended attack training, from the server's log."""
    text = Path(server["log"]).read_text()
    return [(int(i), st, why, float(at), float(ran) / max(int(n), 1), float(after or "nan"), float(freed or at))
            for i, st, why, ran, n, after, freed, at in JOB_LINE.findall(text)]


def check_ended_soon(what: str, job: tuple, asked: float) -> None:
    """The thread must end at the next iteration boundary once asked: within ~2 s on a quiet machine (an iteration
    is 0.1–0.3 s there); under heavy load one iteration can take seconds, so allow two iterations on top.
    From the user's action (``asked``, test clock) to the end is recorded too; it adds the server's time to
    answer the click or notice the closed socket, which only a benchmark should judge."""
    _, status, _, ended, per_it, after_request, _ = job
    assert status == "cancelled"
    METRICS[f"{what}_request_to_thread_end_s"] = after_request
    METRICS[f"{what}_to_thread_end_s"] = round(ended - asked, 2)
    METRICS[f"{what}_seconds_per_iteration"] = round(per_it, 2)
    assert after_request < 2.0 + 2 * per_it, f"{what}: thread ended {after_request:.1f} s after the request"
    assert ended - asked < 60, f"{what}: {ended - asked:.0f} s from the user's action to the thread's end"


def legend(pg) -> str:
    return " | ".join(pg.locator(".st-key-attack_live .legendtext").all_text_contents())


def result_line(pg) -> str:
    return (pg.locator('[data-testid="stMarkdownContainer"]').filter(has_text=re.compile(r"forward\+backward evaluations \("))
            .first.inner_text())


def patched_src(pg) -> str:
    """The media URL of the session's "with the patch" picture (its bytes decide the URL)."""
    return (pg.locator('[data-testid="stImage"]').filter(has_text="with the patch").locator("img").first
            .get_attribute("src"))


def queue_text(pg) -> str:
    box = pg.locator('[data-testid="stAlert"]').filter(has_text="in the queue")
    return box.first.inner_text() if box.count() else ""


def configure(pg, name: str) -> None:
    target, x, steps, side = SESSIONS[name]
    idle(pg)
    pg.get_by_role("button", name=target, exact=True).click()
    box = pg.locator('[data-testid="stSelectbox"]').filter(has_text="Target class")

    def shown() -> str:
        return box.inner_text() + " " + " ".join(box.locator("input").evaluate_all("els => els.map(e => e.value)"))

    # as a user does: see the suggestion take effect before the next edit. Under CPU load the rerun can start
    # after idle() has already seen a quiet page (the status widget shows only once a run is under way).
    wait_for(pg, lambda: target in shown(), 60, f"session {name}: the target {target} to show in the selectbox")
    idle(pg)
    assert num(pg, "Patch side (px)").input_value() == "63", f"session {name}: the default patch side is not 63"
    for label, value in (("Patch side (px)", side), ("Max evaluations", steps), ("x (left, px)", x)):
        set_num(pg, label, value)
    assert num(pg, "Patch side (px)").input_value() == str(side), f"session {name}: patch side changed"
    assert target in shown(), shown()


def test_five_sessions_train_apart_queue_fairly_and_stop_fast(server, pages):
    tabs, contexts = pages
    for name in SESSIONS:
        configure(tabs[name], name)
    # A and B take the pool's two slots, each drawing only its own target
    for name in ("A", "B"):
        tabs[name].get_by_role("button", name="Train", exact=True).click()
    for name in ("A", "B"):
        pg = tabs[name]
        try:
            wait_for(pg, lambda pg=pg, name=name: f"target: {SESSIONS[name][0]}" in legend(pg), 240, "chart")
        except AssertionError:
            raise AssertionError(f"{name}'s live chart never showed its target; legend now: {legend(pg)!r}")
        for other in SESSIONS:
            if other != name:
                assert f"target: {SESSIONS[other][0]}" not in legend(pg), (name, legend(pg))
    # C, D, E find the pool full: each is told its own place in the line, then an estimated wait
    for place, name in enumerate(QUEUED, 1):
        tabs[name].get_by_role("button", name="Train", exact=True).click()
        tabs[name].get_by_text(f"position {place} in the queue").wait_for(timeout=120_000)
    for name in QUEUED:
        wait_for(tabs[name], lambda name=name: "Estimated wait" in queue_text(tabs[name]), 60,
                 f"{name}'s wait estimate")
        METRICS[f"queued_{name}_says"] = re.sub(r"\s+", " ", queue_text(tabs[name]))[:200]
    healthy(tabs["A"])

    # Stop in A: the thread ends within seconds (the server logs when)
    t_stop = time.time()
    tabs["A"].get_by_role("button", name="Stop", exact=True).click()
    wait_for(tabs["A"], lambda: any(j[2] == "Stop pressed" for j in job_lines(server)), 60, "A's job to end")
    (job,) = [j for j in job_lines(server) if j[2] == "Stop pressed"]
    check_ended_soon("stop_click", job, t_stop)
    tabs["A"].get_by_text("(stopped)").wait_for(timeout=60_000)

    # close B's tab mid-training: the watchdog sees the session gone, frees its slot and ends its thread
    t_close = time.time()
    contexts["B"].close()
    wait_for(tabs["A"], lambda: any(j[2] == "session closed" for j in job_lines(server)), 60, "B's job to end")
    (job,) = [j for j in job_lines(server) if j[2] == "session closed"]
    check_ended_soon("tab_close", job, t_close)  # the request comes GONE_S (0.5 s) after the socket closed
    METRICS["tab_close_to_slot_freed_s"] = round(job[6] - t_close, 2)
    # the design: GONE_S + one watchdog tick (~0.6 s) after the server saw the socket close; the bound is loose
    # because the test's clock starts before Chromium has even closed the socket on a loaded machine
    assert job[6] - t_close < 4.0, f"B's slot was freed {job[6] - t_close:.1f} s after its tab closed"

    # C, D, E got a slot in turn and finished their own trainings; each session shows only its own result
    for name in QUEUED:
        tabs[name].get_by_text("(trained)").wait_for(timeout=240_000)
    lines, srcs = {}, {}
    for name in ("A",) + QUEUED:
        pg = tabs[name]
        idle(pg)
        healthy(pg)
        lines[name], srcs[name] = result_line(pg), patched_src(pg)
        target, x, _, _ = SESSIONS[name]
        assert f"→ {target}" in lines[name] and f"x={x}," in lines[name], (name, lines[name])
        for other in SESSIONS:
            if other != name:
                assert SESSIONS[other][0] not in lines[name], (name, lines[name])
        pg.screenshot(path=str(ARTIFACTS / "screenshots" / f"12_session_{name}.png"), full_page=True)
    assert "(stopped)" in lines["A"]
    assert len(set(srcs.values())) == len(srcs), srcs  # four different patched pictures, one per session
    ends = [j for j in job_lines(server) if j[1] == "done"]
    assert len(ends) == 3, ends

    # one model copy in the process for all five sessions
    log = Path(server["log"]).read_text()
    assert log.count("lavan loaded model efficientnet-lite0") == 1, log
    assert "lavan error" not in log, "an unexpected error in the app: see the server's log"
    rss = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{server['proc'].pid}/status").read_text())
    METRICS["server_rss_mb_after_5_sessions"] = round(int(rss.group(1)) / 1024)


def test_an_upload_without_the_xsrf_token_is_refused(server):
    """Streamlit's XSRF protection is on: a PUT to the upload endpoint without the token gets 403; the same PUT with
    the token from the server's cookie gets past that check (and is then refused for its made-up session, 400)."""
    import urllib.error
    import urllib.request

    url = f"{server['url']}/_stcore/upload_file/not-a-session/file-1"
    body = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            b"Content-Type: image/png\r\n\r\nxx\r\n--b--\r\n")

    def put(headers: dict) -> tuple[int, str]:
        req = urllib.request.Request(url, data=body, method="PUT",
                                     headers={"Content-Type": "multipart/form-data; boundary=b", **headers})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    status, text = put({})
    assert status == 403 and "XSRF" in text, (status, text)
    with urllib.request.urlopen(f"{server['url']}/_stcore/health", timeout=30) as r:
        cookie = next(v for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("_streamlit_xsrf="))
    token = cookie.split(";")[0].split("=", 1)[1]
    status, text = put({"X-Xsrftoken": token, "Cookie": f"_streamlit_xsrf={token}"})
    assert status == 400 and "session" in text.lower(), (status, text)
    status, text = put({"X-Xsrftoken": "forged", "Cookie": f"_streamlit_xsrf={token}"})
    assert status == 403, (status, text)
