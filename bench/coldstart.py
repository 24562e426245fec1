"""Cold start of the app: from ``streamlit run app.py`` to the first page drawn in a browser, with its breakdown.

    .venv/bin/python bench/coldstart.py [--runs 3] [--deep-link attack]

Each run starts a fresh server (``ui.devserver``, its own patch cache) and opens it in headless Chromium
(/usr/bin/chromium through Playwright, the browser tests' flags; launched before the server, so the browser's own
start is not counted). Times from the server's ``Popen``: health endpoint up, Home's title drawn (the first page),
Home's model line drawn (torch and the ui modules imported), and, with ``--deep-link``, a second fresh server opened directly on that
page (its canvas drawn). The breakdown runs each step in a fresh interpreter: ``import streamlit``, ``import torch``,
the app's other imports, and ``attack.load_model()`` (wall and CPU seconds). Prints a markdown table of medians
and the load average, since the 2-core machine is shared: CPU seconds are what an idle machine would take.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as `python bench/x.py`

from ui import devserver  # noqa: E402  (no streamlit / torch import)

CHROMIUM = os.environ.get("LAVAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Each step in a fresh interpreter, after the steps before it (so a step's time is its own).
STEPS = {
    "import streamlit": ("", "import streamlit"),
    "import torch": ("import streamlit", "import torch"),
    "import attack + ui (after torch)": ("import streamlit, torch",
                                         "import attack; from ui import boot, cache, deeplink, jobs, widgets"),
    "load_model() (after imports)": ("import torch, attack; torch.set_num_threads(1)", "attack.load_model()"),
}


def _step(before: str, code: str) -> tuple[float, float]:
    prog = (f"import time, json; {before}\nt = time.perf_counter(); c = time.process_time()\n{code}\n"
            "print(json.dumps([time.perf_counter() - t, time.process_time() - c]))")
    out = subprocess.run([sys.executable, "-c", prog], cwd=ROOT, capture_output=True, text=True, check=True)
    wall, cpu = json.loads(out.stdout.strip().splitlines()[-1])
    return wall, cpu


def _cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _browser_run(page, deep_link: str | None) -> dict[str, tuple[float, float]]:
    with tempfile.TemporaryDirectory() as cache:
        log = Path(cache) / "server.log"
        with devserver.streamlit_server(cache, log, start_timeout=180, OMP_NUM_THREADS="1") as srv:
            pid = srv["proc"].pid

            def now():
                return time.perf_counter() - srv["t0"], _cpu(pid)
            out = {"health": now()}
            if deep_link:
                page.goto(f"{srv['url']}/{deep_link}")
                page.locator("canvas.upper-canvas").wait_for(timeout=300_000)
                out["deep link drawn"] = now()
                return out
            page.goto(srv["url"])
            page.get_by_role("heading", name="LaVAN studio").wait_for(timeout=300_000)
            out["home title drawn"] = now()
            page.get_by_text(" @ 224x224 on ").first.wait_for(timeout=300_000)
            out["home model line drawn"] = now()
            return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--deep-link", default="attack", help="page to open on a fresh server too ('' to skip)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    load0 = os.getloadavg()
    rows: dict[str, list] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in range(args.runs):  # interleaved: one of each per round
            for name, (before, code) in STEPS.items():
                rows.setdefault(name, []).append(_step(before, code))
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for k, v in _browser_run(page, None).items():
                rows.setdefault(f"server: {k}", []).append(v)
            page.close()
            if args.deep_link:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                for k, v in _browser_run(page, args.deep_link).items():
                    if k != "health":
                        rows.setdefault(f"server: /{args.deep_link} {k}", []).append(v)
                page.close()
        browser.close()
    load1 = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load average {load0[0]:.1f} before / "
          f"{load1[0]:.1f} after, {args.runs} runs, medians; server rows: wall time since `streamlit run` (Popen) "
          "and the server process's CPU time by then (the browser's own CPU is not counted)")
    print("| step | wall s | CPU s |\n|---|---|---|")
    for name, vals in rows.items():
        print(f"| {name} | {statistics.median(v[0] for v in vals):.2f} | "
              f"{statistics.median(v[1] for v in vals):.2f} |")


if __name__ == "__main__":
    main()
