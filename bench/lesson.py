"""Lesson page: time from a click to the drawn prediction, per step, in a real browser (run by hand; the browser
test tests/test_browser_lesson.py walks the same way once and keeps its numbers and screenshots).

    .venv/bin/python bench/lesson.py --walks 3

Starts a fresh ``streamlit run app.py`` (own patch cache, as the browser tests do) and opens headless Debian
chromium at 1280×720. Each walk is a new browser session: it opens ``/lesson`` (step 1 is timed from the request),
clicks **Next** through every step and times each click until that step's prediction (the ``lesson_pred_<n>``
container) is drawn, and times one use of each step's control until what it changes is drawn. The first walk
meets a cold server (model, photos and Captum loaded on first use); later walks a warm one. Prints a markdown
table (median over the warm walks) and writes ``bench/results/lesson.json``.

Step 1 is also split into its phases (page loaded, websocket open, header drawn, prediction drawn), and what a cold
server pays before step 1 can draw is measured once in a fresh interpreter (imports, model, class names, first
forward), with the machine's load average at the start and the end.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ui.devserver import streamlit_server  # noqa: E402

CHROMIUM = os.environ.get("LAVAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 720}
STEPS = ["What the model sees", "A patch in the corner", "Nudge it by one pixel", "Where the square sits",
         "The patch on another photo", "One patch for every photo", "Where does the network look?", "Another network",
         "Masking recovers the label"]  # ui.lesson.STEPS


def _pred(pg, step: int):
    return pg.locator(f".st-key-lesson_pred_{step} .lesson-big")


def _text(pg, step: int) -> str:
    loc = _pred(pg, step)
    return loc.first.inner_text() if loc.count() else ""


def _until(pg, cond, timeout_s: float, what: str) -> float:
    """Poll ``cond`` every 10 ms; return the time it became true (perf_counter)."""
    end = time.perf_counter() + timeout_s
    while time.perf_counter() < end:
        if cond():
            return time.perf_counter()
        pg.wait_for_timeout(10)
    raise AssertionError(f"timed out waiting for {what}")


def _settle(pg, quiet_ms: int = 400, timeout_s: float = 60) -> None:
    """Wait until no script run is in progress (Streamlit's 'Running…' status widget gone for ``quiet_ms``)."""
    end, calm = time.time() + timeout_s, 0
    while time.time() < end:
        calm = calm + 50 if pg.locator('[data-testid="stStatusWidget"]').count() == 0 else 0
        if calm >= quiet_ms:
            return
        pg.wait_for_timeout(50)


def _control(pg, step: int) -> tuple[str, float] | None:
    """Use the step's control once; return (what, seconds until its effect is drawn)."""
    before = _text(pg, step)
    if step == 3:
        t = time.perf_counter()
        pg.get_by_role("button", name="→", exact=True).click()
        return "→ 1 px", _until(pg, lambda: _text(pg, 3) not in ("", before), 30, "the nudge") - t
    if step == 4:  # the toggle's second option names lesson.json's offset ("11 px in")
        t = time.perf_counter()
        pg.locator('[data-testid="stRadio"]').get_by_text(re.compile(r"^\d+ px in$")).first.click()
        return "px in", _until(pg, lambda: _text(pg, 4) not in ("", before), 30, "the grid place's prediction") - t
    if step == 6:
        box = pg.get_by_role("spinbutton", name="x (left, px)", exact=True)
        x = int(box.input_value())
        box.fill(str(160 if x < 80 else 0))
        caption = f"patch at x={160 if x < 80 else 0},"
        t = time.perf_counter()
        box.press("Enter")
        return "x input", _until(pg, lambda: pg.get_by_text(caption).count() > 0, 30, "the moved patch") - t
    if step == 7:
        t = time.perf_counter()
        pg.get_by_text("Grad-CAM", exact=True).click()
        return "Grad-CAM", _until(pg, lambda: pg.get_by_text("Grad-CAM for").count() > 0, 30, "the Grad-CAM map") - t
    if step == 8:
        t = time.perf_counter()
        pg.get_by_text("efficientnet-lite2", exact=True).click()
        return "Lite2", _until(pg, lambda: pg.get_by_text("as efficientnet-lite2 sees it").count() > 0, 60,
                               "Lite2's prediction") - t
    if step == 9:
        t = time.perf_counter()
        pg.get_by_text("no defence", exact=True).click()
        return "no defence", _until(pg, lambda: _text(pg, 9) not in ("", before), 30, "the undefended prediction") - t
    return None


def walk_lesson(pg, base_url: str, shots: Path | None = None, controls: bool = True) -> list[dict]:
    """Walk every step of the lesson in ``pg`` (a fresh browser page); return one row per step:
    {"step", "title", "seconds" (click or request -> drawn prediction), "prediction", "control", "control_s",
    "fits" (picture and prediction inside the viewport)}. Screenshots (viewport only) go to ``shots``."""
    rows = []
    opened: dict[str, float] = {}  # step 1's phases: page loaded, websocket open, header drawn
    pg.on("websocket", lambda ws: opened.setdefault("websocket", time.perf_counter()))
    t = time.perf_counter()
    pg.goto(f"{base_url}/lesson", wait_until="load")
    opened["load"] = time.perf_counter()
    header = _until(pg, lambda: pg.get_by_text("Step 1 of").count() > 0, 120, "step 1's header")
    for step, title in enumerate(STEPS, start=1):
        if step > 1:
            _settle(pg)
            t = time.perf_counter()
            pg.get_by_role("button", name="Next →").click()
        done = _until(pg, lambda: _pred(pg, step).count() > 0 and _pred(pg, step).first.is_visible(), 120,
                      f"step {step}'s prediction")
        row = {"step": step, "title": title, "seconds": round(done - t, 3), "prediction": _text(pg, step)}
        if step == 1:  # where a new tab's wait goes: the frontend, the script run up to the header, the step itself
            row["phases"] = {"page_loaded": round(opened["load"] - t, 3),
                             "websocket_open": round(opened.get("websocket", float("nan")) - t, 3),
                             "header_drawn": round(header - t, 3), "prediction_drawn": round(done - t, 3)}
        _settle(pg)
        pic = pg.locator('[data-testid="stImage"]').first.bounding_box()
        pred = _pred(pg, step).first.bounding_box()
        row["fits"] = bool(pic and pred and pic["y"] + pic["height"] <= VIEWPORT["height"]
                           and pred["y"] + pred["height"] <= VIEWPORT["height"])
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(shots / f"lesson_{step}.png"))
        if controls:
            used = _control(pg, step)
            if used:
                row["control"], row["control_s"] = used[0], round(used[1], 3)
                row["prediction_after"] = _text(pg, step)
                _settle(pg)
                if shots is not None:
                    pg.screenshot(path=str(shots / f"lesson_{step}_control.png"))
        rows.append(row)
    return rows


COLD_COSTS = """
import json, sys, time
sys.path.insert(0, {root!r})
out, t = {{}}, time.perf_counter()
def lap(name):
    global t
    now = time.perf_counter(); out[name] = round(now - t, 2); t = now
import streamlit; lap("import streamlit")
import torch; lap("import torch")
import attack; lap("import attack")
model = attack.load_model("efficientnet-lite0", channels_last=True); lap("load efficientnet-lite0")
attack.class_names(); lap("attack.class_names() (imports torchvision)")
img = attack.load_image(next(s.path for s in attack.sample_images() if s.name == "skimage/coffee"), 224)
attack.predict(model, img); lap("first forward")
import captum.attr; lap("import captum.attr (step 7, in the background)")
print(json.dumps(out))
"""


def cold_costs() -> dict[str, float]:
    """What a fresh server process pays before step 1 can draw, each in a fresh interpreter, in the order the
    first script run meets them (imports, the model, the class names, the first forward)."""
    import subprocess

    code = COLD_COSTS.format(root=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "2"}).stdout
    return json.loads(out.strip().splitlines()[-1])


def _machine() -> str:
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{platform.platform()}; CPU {cpu} ({os.cpu_count()} cores visible)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--walks", type=int, default=3, help="walks through the lesson (the first on a cold server)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "lesson.json"))
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    load0 = os.getloadavg()[0]
    costs = cold_costs()
    print("cold costs: " + ", ".join(f"{k} {v:.2f} s" for k, v in costs.items()), file=sys.stderr)

    walks = []
    with tempfile.TemporaryDirectory() as tmp, \
            streamlit_server(Path(tmp) / "cache", Path(tmp) / "server.log", start_timeout=120,
                             OMP_NUM_THREADS="2") as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for i in range(args.walks):
            pg = browser.new_page(viewport=VIEWPORT)
            pg.set_default_timeout(60_000)
            walks.append(walk_lesson(pg, srv["url"]))
            pg.close()
            print(f"walk {i + 1}: " + ", ".join(f"{r['seconds']:.2f}" for r in walks[-1]), file=sys.stderr)
        browser.close()
    warm = walks[1:] or walks
    load = (load0, os.getloadavg()[0])
    lines = [f"`.venv/bin/python bench/lesson.py --walks {args.walks}` — {dt.date.today()}, {_machine()}; "
             f"headless chromium {VIEWPORT['width']}×{VIEWPORT['height']}; load average (1 min) at start/end "
             f"{load[0]:.1f} / {load[1]:.1f}", "",
             "| step | cold server: click → prediction drawn (s) | warm: median (s) | control "
             "| control → drawn, warm median (s) | fits 1280×720 |",
             "|---|---|---|---|---|---|"]
    for j, row in enumerate(walks[0]):
        ws = [w[j]["seconds"] for w in warm]
        cs = [w[j]["control_s"] for w in warm if "control_s" in w[j]]
        lines.append(f"| {row['step']}. {row['title']} | {row['seconds']:.2f} | {statistics.median(ws):.2f} | "
                     f"{row.get('control', '–')} | {statistics.median(cs):.2f} | "
                     f"{'yes' if all(w[j]['fits'] for w in walks) else 'no'} |" if cs else
                     f"| {row['step']}. {row['title']} | {row['seconds']:.2f} | {statistics.median(ws):.2f} | – | – | "
                     f"{'yes' if all(w[j]['fits'] for w in walks) else 'no'} |")
    for i, w in enumerate(walks, start=1):
        ph = w[0].get("phases", {})
        lines.append(f"\nwalk {i}, step 1 (new tab): " + ", ".join(f"{k.replace('_', ' ')} {v:.2f} s"
                                                            for k, v in ph.items()))
    lines.append("\nA fresh process, one at a time: " + ", ".join(f"{k} {v:.2f} s" for k, v in costs.items()))
    print("\n".join(lines))
    Path(args.out).write_text(json.dumps({"date": str(dt.date.today()), "machine": _machine(), "load_average": load,
                                          "cold_costs": costs,
                                          "walks": walks}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
