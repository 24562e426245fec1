"""Background trainings, one per (browser session, job key), in a bounded process-wide pool.

``start(key, fn, *args, **kwargs)`` runs ``fn(*args, callback=…, cancel=event, **kwargs)`` in a thread; the
callback's payloads are appended to ``job.progress`` (the page polls it from :func:`live_view`, an
``st.fragment(run_every=…)``). This package's modules, one concern each:

* :mod:`.session` — what the pages call: ``start``, ``get``, ``stop``, ``forget``, ``leave_page``.
* :mod:`.pool` — :class:`Job` and the slots: at most ``LAVAN_MAX_JOBS`` (default 2) trainings hold a slot at once,
  at most one per browser session (a second training of the same session waits until the first has let go, and
  does not hold back other sessions); the others wait in arrival order.
* :mod:`.estimates` — the wait a queued page shows: the measured seconds per iteration of the running trainings
  times the iterations they still need (the median that recent trainings of the same kind needed, or the
  iteration cap when there is no history yet).
* :mod:`.limits` — whatever a browser sends, iterations are capped at ``$LAVAN_MAX_ITER`` (default 10,000, the
  paper's cap), and one session starts at most once every ``LAVAN_START_INTERVAL_S`` (default 3 s) and
  ``LAVAN_START_QUOTA`` (default 20) times per ``LAVAN_START_WINDOW_S`` (default 600 s); a refused start is a job
  with status ``refused`` whose page says why and when to try again.
* :mod:`.shared` — the shared batch (issue 14): with ``LAVAN_SHARED_BATCH`` on (``auto``, the default, only when
  the model is on CUDA; ``1`` forces it; ``0`` is the pool alone), an ``attack.train_patch`` start that a shared
  batch trains exactly (one restart, no ReLU6 leak: the attack page's default) takes no slot and joins the
  process-wide :class:`attack.scheduler.SharedBatch` of its model, input size, patch size and domain. The job ends
  with the PatchResult of a solo run with the same seed (up to float rounding), so pages need no special case; the
  start limits and every stop rule apply as to a pooled job; it is not counted in the pool's wait estimates.
* :mod:`.watchdog` — a job stops when Stop is pressed (``stop``), the user opens another page (``leave_page``), a
  new job with the same key starts, its browser session disconnects for ``GONE_S`` seconds (tab closed: the
  watchdog checks the Streamlit runtime every ``TICK_S``), or nobody has polled it for ``HEARTBEAT_S`` seconds. A
  job whose session has gone gives its slot back at once; any other stopped job keeps its slot until its thread
  has ended.
* :mod:`.threads` — every training thread runs below the page threads (``LAVAN_TRAIN_NICE``); a training that
  raises is logged with its traceback under an error id, and the page shows only the id.
* :mod:`.view` — the status lines and the live view of a training page.
* :mod:`.streamlit_patch` — a workaround for a Streamlit race that lost redraws, installed on import.

Each job's end is logged on stderr (``lavan job <id> <key> <status> …``) with how long the thread took to end
after it was told to stop and, when it gave its slot back before its thread ended, when.

The names below are the pages' interface. Settings are read where they live: a test patches ``pool.MAX_JOBS``,
``watchdog.HEARTBEAT_S``, ``view.BUSY`` or the seams ``session._state`` / ``session._session_id``, not this module.
"""
from __future__ import annotations

from . import estimates, limits, pool, session, shared, streamlit_patch, threads, view, watchdog
from .estimates import estimate_wait
from .limits import max_iter, start_limits
from .pool import MAX_JOBS, Job, running, stop_all, wait
from .session import forget, get, leave_page, start, stop
from .shared import shared_configs, shared_mode
from .streamlit_patch import keep_finished_runs_output
from .threads import lower_priority, train_nice
from .view import POLL_FAST, POLL_SLOW, live_view, poll_interval, show_status, status_lines
from .watchdog import GONE_S, HEARTBEAT_S, TICK_S

__all__ = ["GONE_S", "HEARTBEAT_S", "MAX_JOBS", "POLL_FAST", "POLL_SLOW", "TICK_S", "Job", "estimate_wait",
           "estimates", "forget", "get", "keep_finished_runs_output", "leave_page", "limits", "live_view",
           "lower_priority", "max_iter", "poll_interval", "pool", "running", "session", "shared", "shared_configs",
           "shared_mode", "show_status", "start", "start_limits", "status_lines", "stop", "stop_all",
           "streamlit_patch", "threads", "train_nice", "view", "wait", "watchdog"]
