"""What the browser tests share: a fresh ``streamlit run app.py`` server (the ``server`` fixture of every browser
test file: :func:`server_fixture`), the Chromium flags and check, page helpers.

Not a test module (no ``test_`` prefix); the browser test files import it.
"""
from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from ui import devserver

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("LAVAN_CHROMIUM", "/usr/bin/chromium")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def streamlit_server(cache_dir: Path, log: Path, **env: str):
    """``ui.devserver.streamlit_server`` (shared with bench/load.py) with the tests' defaults: 2 torch threads."""
    return devserver.streamlit_server(cache_dir, log, start_timeout=90, **{"OMP_NUM_THREADS": "2", **env})


def require_chromium() -> None:
    """Skip the calling browser test module when there is no Chromium (call it at module level)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (run `make browser`)", allow_module_level=True)


def server_fixture(log_name: str, metrics: dict | None = None, metrics_file: str | None = None, **env: str):
    """The module-scoped ``server`` fixture of a browser test file (``server = server_fixture("streamlit-x.log")``):
    a fresh server with its own patch cache (:func:`streamlit_server`), its log in test-artifacts/<log_name> and
    ``env`` in its environment. With ``metrics``, the dict gets the seconds the server took to answer its health
    check (``server_health_s``) and is written to test-artifacts/<metrics_file> when the module's tests are done."""

    @pytest.fixture(scope="module", name="server")
    def server(tmp_path_factory):
        """{"url", "t0", "proc", "log"} of this module's fresh server (browser_kit.server_fixture)."""
        with streamlit_server(tmp_path_factory.mktemp("lavan-cache"), ARTIFACTS / log_name, **env) as srv:
            if metrics is not None:
                metrics["server_health_s"] = round(time.perf_counter() - srv["t0"], 2)
            try:
                yield srv
            finally:
                if metrics is not None:
                    (ARTIFACTS / metrics_file).write_text(json.dumps(metrics, indent=2))

    return server


def idle(pg, quiet_ms: int = 800, timeout_s: float = 120) -> None:
    """Wait until the app has finished running (no 'Running…' status widget for ``quiet_ms``)."""
    end, calm = time.time() + timeout_s, 0
    while time.time() < end:
        calm = calm + 100 if pg.locator('[data-testid="stStatusWidget"]').count() == 0 else 0
        if calm >= quiet_ms:
            return
        pg.wait_for_timeout(100)
    raise AssertionError("the app never became idle")


# An absolute path of the server machine: a temporary folder, a home directory, the repository root or any other
# system folder. Nothing a visitor sees may name one (every browser test checks every page it draws).
SERVER_PATH = re.compile(r"(?<![\w.:/])/(?:tmp|home|root|var|srv|work|usr|opt|etc|mnt|proc)/|"
                         + re.escape(str(Path(__file__).resolve().parents[1])))


def healthy(pg) -> None:
    assert pg.locator('[data-testid="stException"]').count() == 0, pg.locator('[data-testid="stException"]').first.inner_text()
    assert pg.get_by_text("Page not found").count() == 0
    text = pg.locator("body").inner_text()
    hit = SERVER_PATH.search(text)
    assert hit is None, f"a server path is shown: …{text[max(0, hit.start() - 60):hit.end() + 60]}…"


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
