"""What the browser tests share: a fresh ``streamlit run app.py`` server, the Chromium flags, page helpers.

Not a test module (no ``test_`` prefix); the browser test files import it.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from ui import devserver

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("LAVAN_CHROMIUM", "/usr/bin/chromium")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def streamlit_server(cache_dir: Path, log: Path, **env: str):
    """``ui.devserver.streamlit_server`` (shared with bench/load.py) with the tests' defaults: 2 torch threads."""
    return devserver.streamlit_server(cache_dir, log, start_timeout=90, **{"OMP_NUM_THREADS": "2", **env})


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


def set_num(pg, label: str, value) -> None:
    """Type ``value`` into the number input ``label``, press Enter and wait for the rerun to finish."""
    num(pg, label).fill(str(value))
    num(pg, label).press("Enter")
    idle(pg)


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
