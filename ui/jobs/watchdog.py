"""The watchdog: one thread that checks every live job each ``TICK_S`` and stops it when nobody has polled it for
``HEARTBEAT_S`` seconds, or when its browser session has been disconnected for ``GONE_S`` seconds (tab closed);
the latter gives its slot back at once, since nobody will see its end."""
from __future__ import annotations

import os
import threading
import time

from streamlit.runtime import Runtime

from .pool import Job, _every_job, _release

HEARTBEAT_S = float(os.environ.get("LAVAN_JOB_HEARTBEAT_S", "60"))
GONE_S = float(os.environ.get("LAVAN_JOB_GONE_S", "0.5"))  # grace for a dropped websocket that reconnects
TICK_S = 0.1  # the watchdog's period: a closed tab's slot is free GONE_S + TICK_S after the server saw it close


def _session_alive(session_id: str) -> bool | None:
    """Whether the Streamlit session is connected (None: no runtime to ask, e.g. AppTest or a script)."""
    if not Runtime.exists():
        return None
    return Runtime.instance().is_active_session(session_id)


def watch(job: Job, now: float) -> None:
    """Stop ``job`` when its session has gone or nobody polls it."""
    if now - job.last_seen > HEARTBEAT_S:
        job.request_stop(f"no poll for {HEARTBEAT_S:g} s")
    elif job.session_id is not None:
        alive = _session_alive(job.session_id)
        if alive is None or alive:
            job.gone_since = None
        else:
            job.gone_since = job.gone_since or now
            if now - job.gone_since >= GONE_S:
                job.request_stop("session closed")
                _release(job)  # nobody will see its end: the next student need not wait for its iteration


def _watchdog() -> None:
    while True:
        time.sleep(TICK_S)
        now = time.time()
        for job in list(_every_job):
            if job.active:
                try:
                    watch(job, now)
                except Exception:  # noqa: BLE001 - the watchdog must survive a runtime shutting down
                    import traceback

                    traceback.print_exc()


_watchdog_started = threading.Event()
_watchdog_lock = threading.Lock()


def ensure_watchdog() -> None:
    """Start the watchdog thread once per process."""
    with _watchdog_lock:
        if not _watchdog_started.is_set():
            threading.Thread(target=_watchdog, name="lavan-job-watchdog", daemon=True).start()
            _watchdog_started.set()
