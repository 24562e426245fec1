"""Page bench (issue 26): every page of the studio in Chromium, both ways of arriving, first and second visit.

    .venv/bin/python bench/pages.py [--out bench/results/pages_<date>.md]

Starts ``streamlit run app.py`` on a free port with an empty patch and result cache (ui.devserver), waits until
the server has loaded the default model (the goals count from there), then:

* **sidebar**: one browser session opens Home with the shipped lesson patch as a deep link
  (``?photo=skimage/coffee&patch=lesson/single.safetensors``), then clicks every page in the sidebar in turn, twice
  (first visit, second visit);
* **url**: every page opened by its URL (with the same deep link) in a fresh browser context (a new session), twice.

**ready** = from the click (or ``goto``) until the page's title is shown, the app's script run has ended
(``[data-testid="stApp"]`` carries ``data-test-script-state="notRunning"``) and no spinner is left: what the visitor
waits for before the page answers. **done** = until no progress bar is left either (a page's background
analysis has drawn its result), for the pages that have one. For pages with a control: **control** = from the
action until its redraw (the text that shows the new value), and **progress** = until a progress bar or the
redrawn value is visible, whichever comes first. Prints a markdown printout (the docs generator reads its
tables: lab/docs/pages.py)."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ui import devserver  # noqa: E402

CHROMIUM = os.environ.get("LAVAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LINK = "photo=skimage/coffee&patch=lesson/single.safetensors"
# url path -> (sidebar label, the words its title contains)
PAGES = {"home": ("Home", "LaVAN studio"), "lesson": ("Lesson", "text:Step "), "attack": ("Attack one image", "Attack"),
         "fragility": ("Fragility", "Fragility"), "transfer": ("Transfer", "Transfer"),
         "universal": ("Universal patch", "Universal"), "gradients": ("Gradients", "Gradients"),
         "models": ("Models", "Models"), "paper": ("Paper vs us", "Paper vs us"), "defend": ("Defend", "Defend")}
POLL_MS = 25
STABLE = 4  # polls in a row (≈ 0.2 s with the page's own evaluation time) for a state to count


def _state(pg) -> tuple[str | None, int, int]:
    return pg.evaluate("""() => {
        const app = document.querySelector('[data-testid="stApp"]');
        return [app ? app.getAttribute('data-test-script-state') : null,
                document.querySelectorAll('[data-testid="stSpinner"]').length,
                document.querySelectorAll('[data-testid="stProgress"]').length];
    }""")


def _title_has(pg, words: str) -> bool:
    """The page's title (an h1) contains ``words``; ``text:…``: the page's text does (the Lesson has no title)."""
    if words.startswith("text:"):
        return pg.evaluate("(w) => document.body.innerText.includes(w)", words[5:])
    return pg.evaluate("(w) => Array.from(document.querySelectorAll('h1')).some(h => h.innerText.includes(w))",
                       words)


def wait_ready(pg, words: str, t0: float, timeout: float = 240.0) -> tuple[float, float | None]:
    """(seconds until ready, seconds until done: no progress bar either; None when not seen within the timeout)."""
    ready = None
    ok_since = calm_since = None
    n_ok = n_calm = 0
    end = t0 + timeout
    while time.perf_counter() < end:
        state, spinners, bars = _state(pg)
        now = time.perf_counter() - t0
        ok = state == "notRunning" and spinners == 0 and _title_has(pg, words)
        # each must hold for STABLE polls in a row (not the gap between the old page's run and the new one's)
        ok_since, n_ok = (ok_since if n_ok else now, n_ok + 1) if ok else (None, 0)
        if ready is None and n_ok >= STABLE:
            ready = ok_since
        calm = ok and bars == 0
        calm_since, n_calm = (calm_since if n_calm else now, n_calm + 1) if calm else (None, 0)
        if n_calm >= STABLE:
            return ready if ready is not None else calm_since, calm_since
        pg.wait_for_timeout(POLL_MS)
    return ready if ready is not None else float("inf"), None


def wait_text(pg, text: str, t0: float, timeout: float = 120.0, progress: bool = True) -> tuple[float, float]:
    """(seconds until ``text`` is on the page and the script run has ended, seconds until the text or a progress bar
    or a running-spinner status appeared: the first visible answer)."""
    first = None
    end = t0 + timeout
    while time.perf_counter() < end:
        has = pg.evaluate("(t) => document.body.innerText.includes(t)", text)
        state, spinners, bars = _state(pg)
        now = time.perf_counter() - t0
        if first is None and (has or (progress and bars)):
            first = now
        if has and state == "notRunning":
            return now, first
        pg.wait_for_timeout(POLL_MS)
    return float("inf"), first if first is not None else float("inf")


def goto(pg, url: str) -> float:
    t0 = time.perf_counter()
    pg.goto(url, wait_until="commit")
    return t0


def click_sidebar(pg, label: str) -> float:
    link = pg.locator('[data-testid="stSidebarNav"] a').filter(has_text=label).first
    t0 = time.perf_counter()
    link.click()
    return t0


def controls(pg, page: str) -> dict | None:
    """The page's control and its redraw: (control seconds, first visible answer seconds, what)."""
    if page == "fragility":
        import re

        x = int(re.search(r"patch at x=(\d+)", pg.locator("body").inner_text()).group(1))
        t0 = time.perf_counter()
        pg.get_by_role("button", name="→ 1px").click()
        c, p = wait_text(pg, f"patch at x={x + 1},", t0)  # the caption is redrawn with the new x
        return {"what": "→ 1px button: the shifted patch and its top-1", "control": c, "progress": p}
    if page == "transfer":
        thumb = pg.get_by_role("slider").nth(1)
        t0 = time.perf_counter()
        thumb.focus()
        thumb.press("ArrowRight")
        c, p = wait_text(pg, "The photos with a 30% border", t0)
        return {"what": "border slider 25 → 30 %: the photos with the new border", "control": c, "progress": p}
    if page == "defend":
        thumb = pg.get_by_role("slider").first
        t0 = time.perf_counter()
        thumb.focus()
        thumb.press("ArrowLeft")
        c, p = wait_text(pg, "25 masks of", t0)
        return {"what": "k slider 6 → 5: mask set redrawn, defence restarted (progress bar)", "control": c,
                "progress": p}
    if page == "lesson":
        t0 = time.perf_counter()
        pg.get_by_role("button", name="Next").first.click()
        c, p = wait_text(pg, "Step 2 of", t0, progress=False)
        return {"what": "Next: step 2", "control": c, "progress": p}
    if page == "attack":
        t0 = time.perf_counter()
        pg.get_by_role("button", name="Train").click()
        stop = pg.get_by_role("button", name="Stop")
        first = None
        while time.perf_counter() - t0 < 60:
            if pg.get_by_role("button", name="Train").is_disabled() and stop.is_enabled():
                first = time.perf_counter() - t0
                break
            pg.wait_for_timeout(POLL_MS)
        if first is not None:
            stop.click()
        return {"what": "Train: Train disabled and Stop enabled (the training's live view)",
                "control": first if first is not None else float("inf"),
                "progress": first if first is not None else float("inf")}
    return None


def meter_control(pg) -> dict:
    """A corner button on the Attack page: seconds until the page shows the feasibility meter's answer for the new
    place (the x input holds the new place, the meter's line is drawn and the script run has ended). The meter runs
    forward passes only (attack.meter; tests/test_meter.py checks that no backward pass runs)."""
    box = pg.get_by_role("spinbutton", name="x (left, px)", exact=True)
    old = box.input_value()
    t0 = time.perf_counter()
    pg.get_by_role("button", name="bottom-right", exact=True).click()
    first = None
    while time.perf_counter() - t0 < 60:
        moved = box.input_value() != old
        if first is None and moved:
            first = time.perf_counter() - t0
        state, spinners, _ = _state(pg)
        if moved and state == "notRunning" and spinners == 0 and \
                pg.evaluate("() => document.body.innerText.includes('at this place')"):
            t = time.perf_counter() - t0
            return {"what": "corner button bottom-right: the feasibility meter's answer for the new place",
                    "control": t, "progress": first}
        pg.wait_for_timeout(POLL_MS)
    return {"what": "corner button bottom-right: the feasibility meter's answer for the new place",
            "control": float("inf"), "progress": first if first is not None else float("inf")}


def after_training(pg) -> dict:
    """A 40-evaluation training to its end: seconds from the Result heading until no element of the page is grey
    (Streamlit's stale elements, ``data-stale="true"``) and the script run has ended (issue 26: the canvas, inputs
    and top-5 stayed grey ~8 s after a run)."""
    pg.wait_for_timeout(3500)  # one start per 3 s and tab (ui/jobs/limits.py)
    box = pg.get_by_role("spinbutton", name="Max evaluations", exact=True)
    box.fill("40")
    box.press("Enter")
    wait_ready(pg, PAGES["attack"][1], time.perf_counter())
    pg.get_by_role("button", name="Train").click()
    shown = None
    t_end = time.perf_counter() + 240
    while time.perf_counter() < t_end:
        heading = pg.evaluate("() => Array.from(document.querySelectorAll('h3'))"
                              ".some(h => h.innerText.includes('Result'))")
        if heading and shown is None:
            shown = time.perf_counter()
        if shown is not None:
            state, _, _ = _state(pg)
            stale = pg.evaluate("() => document.querySelectorAll('[data-stale=\"true\"]').length")
            if stale == 0 and state == "notRunning":
                t = time.perf_counter() - shown
                return {"what": "a 40-evaluation training ends: from its Result heading until no grey (stale) "
                                "element is left", "control": t, "progress": t}
        pg.wait_for_timeout(POLL_MS)
    return {"what": "a 40-evaluation training ends: from its Result heading until no grey (stale) element is left",
            "control": float("inf"), "progress": float("inf")}


def fmt(v) -> str:
    if v is None:
        return "–"
    return "never" if v == float("inf") else f"{v:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="also write the printout here")
    ap.add_argument("--pages", default=",".join(PAGES), help="comma-separated url paths (default: every page)")
    ap.add_argument("--note", default="", help="a line for the printout (e.g. the machine's load)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    pages = [p for p in args.pages.split(",") if p]
    rows: list[dict] = []
    ctrl: list[dict] = []
    cache = Path(tempfile.mkdtemp(prefix="lavan-pages-"))
    log = ROOT / "test-artifacts" / "bench-pages.log"
    t_start = time.time()
    with devserver.streamlit_server(cache, log, start_timeout=120, OMP_NUM_THREADS="2") as srv, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        url = srv["url"]
        # the server loads the model once (the goals count from there): open Home until its model line is drawn
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        pg = ctx.new_page()
        t0 = goto(pg, f"{url}/")  # plain Home: a fresh server draws it before torch is imported (ui/boot.py)
        warm = wait_ready(pg, "LaVAN studio", t0)[0]
        end = time.time() + 180
        while "efficientnet-lite0" not in pg.locator("body").inner_text() and time.time() < end:
            pg.wait_for_timeout(200)
        warm_model = time.time() - t_start
        print(f"server warm: Home {warm:.1f} s, model {warm_model:.0f} s", flush=True)
        t0 = goto(pg, f"{url}/?{LINK}")  # the session's patch (the lesson's), as a deep link
        wait_ready(pg, "LaVAN studio", t0)
        # sidebar walk: one session, every page twice
        for visit in (1, 2):
            for page in pages:
                t0 = click_sidebar(pg, PAGES[page][0])
                ready, done = wait_ready(pg, PAGES[page][1], t0)
                rows.append({"way": "sidebar", "visit": visit, "page": page, "ready": ready, "done": done})
                print(f"sidebar {visit} {page}: ready {fmt(ready)} s, done {fmt(done)} s", flush=True)
                if visit == 2 and page != "attack":  # Train clears the session's patch: last, below
                    c = controls(pg, page)
                    if c is not None:
                        ctrl.append({"page": page, **c})
                        print(f"  control {page}: {fmt(c['control'])} s (first answer {fmt(c['progress'])} s)",
                              flush=True)
                        wait_ready(pg, PAGES[page][1], time.perf_counter())
        if "attack" in pages:
            wait_ready(pg, PAGES["attack"][1], click_sidebar(pg, PAGES["attack"][0]))
            c = meter_control(pg)
            ctrl.append({"page": "attack", **c})
            print(f"  meter: {fmt(c['control'])} s", flush=True)
            wait_ready(pg, PAGES["attack"][1], time.perf_counter())
            c = controls(pg, "attack")
            ctrl.append({"page": "attack", **c})
            print(f"  control attack: {fmt(c['control'])} s (first answer {fmt(c['progress'])} s)", flush=True)
            c = after_training(pg)
            ctrl.append({"page": "attack", **c})
            print(f"  after a training: {fmt(c['control'])} s", flush=True)
        ctx.close()
        # by URL, a fresh session each time
        for visit in (1, 2):
            for page in pages:
                ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
                pg = ctx.new_page()
                path = "" if page == "home" else page
                t0 = goto(pg, f"{url}/{path}?{LINK}")
                ready, done = wait_ready(pg, PAGES[page][1], t0)
                rows.append({"way": "url", "visit": visit, "page": page, "ready": ready, "done": done})
                print(f"url {visit} {page}: ready {fmt(ready)} s, done {fmt(done)} s", flush=True)
                ctx.close()
        browser.close()
    out = printout(rows, ctrl, pages, warm, warm_model, args.note)
    print(out)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(out)


def printout(rows: list[dict], ctrl: list[dict], pages: list[str], warm: float, warm_model: float,
             note: str) -> str:
    def cell(way, visit, page, k):
        r = next((r for r in rows if (r["way"], r["visit"], r["page"]) == (way, visit, page)), None)
        return fmt(r[k]) if r else "–"

    lines = [f"# Page bench ({dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
             f"`.venv/bin/python bench/pages.py` on {platform.platform()}, {os.cpu_count()} cores, Chromium "
             f"headless; server with OMP_NUM_THREADS=2, empty patch and result cache at the start. Home drawn "
             f"{warm:.1f} s after the first request; default model loaded {warm_model:.0f} s after the server "
             "started (the goals count from there)."]
    if note:
        lines += ["", note]
    lines += ["", "## Pages", "",
              "Seconds. ready: until the title is shown, the script run has ended and no spinner is left; done: "
              "until no progress bar is left either (a background analysis has drawn its result).", "",
              "| page | sidebar 1st ready | sidebar 1st done | sidebar 2nd ready | sidebar 2nd done | URL 1st ready | "
              "URL 1st done | URL 2nd ready | URL 2nd done |",
              "|---|---|---|---|---|---|---|---|---|"]
    for page in pages:
        lines.append(f"| {page} | " + " | ".join(cell(way, v, page, k) for way in ("sidebar", "url")
                                                 for v in (1, 2) for k in ("ready", "done")) + " |")
    lines += ["", "## Controls", "",
              "Seconds from the action (second sidebar visit) until its redraw, and until the first visible answer "
              "(the redraw or a progress bar).", "",
              "| page | control | redraw | first answer |", "|---|---|---|---|"]
    for c in ctrl:
        lines.append(f"| {c['page']} | {c['what']} | {fmt(c['control'])} | {fmt(c['progress'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
