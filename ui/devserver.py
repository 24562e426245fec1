"""Start the app as a local ``streamlit run app.py`` server for the browser tests and ``bench/load.py``.

No Streamlit import here: the server runs in a child process with its own patch cache dir; this module only
starts it, waits for its health endpoint and stops it.
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

__all__ = ["free_port", "streamlit_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(cache_dir: Path | str, log: Path, extra_args: tuple[str, ...] | list[str] = (),
                     start_timeout: float = 120, **env: str):
    """Start the app on a free local port with its own patch cache; yield {"url", "t0", "proc", "log"}.

    Its stdout/stderr go to ``log`` (the tests read the ``lavan …`` lines the app writes there); ``extra_args`` are
    more ``streamlit run`` options (``--runner.postScriptGC true`` …); ``env`` overrides environment variables.
    The server is terminated (then killed) on exit.
    """
    port = free_port()
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, "LAVAN_CACHE_DIR": str(cache_dir), "LAVAN_MAX_JOBS": "2", "PYTHONUNBUFFERED": "1", **env}
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "streamlit"), "run", "app.py", "--server.port",
                                 str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
                                 "--browser.gatherUsageStats", "false", *extra_args],
                                cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + start_timeout
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
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
