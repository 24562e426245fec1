"""What the browser tests share: a fresh ``streamlit run app.py`` server, the Chromium flags, page helpers.

Not a test module (no ``test_`` prefix); the browser test files import it.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("LAVAN_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(cache_dir: Path, log: Path, **env: str):
    """Start the app on a free local port with its own patch cache; yield {"url", "t0", "proc", "log"}.
    Its stdout/stderr go to ``log`` (the tests read the ``lavan …`` lines the app writes there)."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "LAVAN_CACHE_DIR": str(cache_dir), "LAVAN_MAX_JOBS": "2", "OMP_NUM_THREADS": "2",
                "PYTHONUNBUFFERED": "1", **env}
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.port",
                                 str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start; see {log}")
            time.sleep(0.2)
        yield {"url": url, "t0": t0, "proc": proc, "log": log}
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def idle(pg, quiet_ms: int = 800, timeout_s: float = 120) -> None:
    """Wait until the app has finished running (no 'Running…' status widget for ``quiet_ms``)."""
    end, calm = time.time() + timeout_s, 0
    while time.time() < end:
        calm = calm + 100 if pg.locator('[data-testid="stStatusWidget"]').count() == 0 else 0
        if calm >= quiet_ms:
            return
        pg.wait_for_timeout(100)
    raise AssertionError("the app never became idle")


def healthy(pg) -> None:
    assert pg.locator('[data-testid="stException"]').count() == 0, pg.locator('[data-testid="stException"]').first.inner_text()
    assert pg.get_by_text("Page not found").count() == 0


def num(pg, label: str):
    """The number input called ``label`` (its help button carries the same words, so go by role)."""
    return pg.get_by_role("spinbutton", name=label, exact=True)


def wait_for(pg, cond, timeout_s: float = 60, what: str = "condition") -> None:
    end = time.time() + timeout_s
    while time.time() < end:
        if cond():
            return
        pg.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def sample_path(name: str) -> Path:
    import attack

    return next(s.path for s in attack.sample_images() if s.name == name)
