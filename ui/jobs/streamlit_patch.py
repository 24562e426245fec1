"""A workaround for a Streamlit race that lost whole redraws under load (issue 14), installed when ``ui.jobs`` is
imported."""
from __future__ import annotations

import sys


def keep_finished_runs_output(app_session_cls=None, events=None) -> bool:
    """Work around a race in Streamlit's AppSession (1.67) that lost whole redraws under load (issue 14).

    A ScriptRunner posts its events (deltas, ``script_finished``) to the session's event loop from its own thread.
    When a rerun request (typically a page's progress poll, twice a second) reaches the loop after a run's script
    thread has finished but before the loop has handled that run's last events, the finished runner refuses the
    request and AppSession starts a new one, which becomes current; the finished run's queued events then arrive
    and are dropped as coming "from a non-current ScriptRunner" — its last deltas (a redrawn canvas, the
    ``auto_rerun`` that re-arms the page's poll) and its ``script_finished`` never reach the browser, which keeps a
    half-drawn page and stops polling (then the job is cancelled for "no poll"). bench/load.py's server-side trace
    showed exactly this for every lost redraw (bench/results/load10_lost_redraws_2026-12-01.txt).

    The patch: a runner that refused a request (so it had already ended its run chain) stays "finishing" until its
    SHUTDOWN, and its events are handled as if it were still current. They cannot interleave with the new runner's:
    it posted them before it refused, so before the new runner existed. Its SHUTDOWN is dropped (the session's
    runner is the new one). Runners stopped on purpose (fastReruns' request_stop) are not affected: AppSession
    forgets them before it creates the next one. Installed once per process (idempotent); returns whether it is.
    ``app_session_cls`` and ``events`` are seams for the unit test."""
    if app_session_cls is None:
        try:
            from streamlit.runtime.app_session import AppSession as app_session_cls
            from streamlit.runtime.scriptrunner import ScriptRunnerEvent as events
        except ImportError:
            return False
    cls = app_session_cls
    create = getattr(cls, "_create_scriptrunner", None)
    handle = getattr(cls, "_handle_scriptrunner_event_on_event_loop", None)
    if create is None or handle is None or not hasattr(events, "SHUTDOWN"):
        return False  # another Streamlit: nothing to patch
    if getattr(handle, "_lavan_keeps_finished_runs", False):
        return True

    def _create_scriptrunner(self, initial_rerun_data):
        finished = self._scriptrunner  # not None only when it refused the rerun: its run chain has ended
        create(self, initial_rerun_data)
        if finished is not None and finished is not self._scriptrunner:
            self.__dict__.setdefault("_lavan_finishing", []).append(finished)

    def _handle_scriptrunner_event_on_event_loop(self, sender, event, *args, **kwargs):
        finishing = self.__dict__.get("_lavan_finishing") or []
        if sender is None or sender is self._scriptrunner or not any(r is sender for r in finishing):
            return handle(self, sender, event, *args, **kwargs)
        if event == events.SHUTDOWN:
            finishing[:] = [r for r in finishing if r is not sender]
            return None
        if event in (events.SCRIPT_STOPPED_WITH_SUCCESS, events.SCRIPT_STOPPED_WITH_COMPILE_ERROR,
                     getattr(events, "FRAGMENT_STOPPED_WITH_SUCCESS", None)):
            print(f"lavan streamlit race: delivered the end of a finished run of session {self.id[:8]} "
                  "(ui/jobs/streamlit_patch.py)", file=sys.stderr, flush=True)
        current, self._scriptrunner = self._scriptrunner, sender
        try:
            return handle(self, sender, event, *args, **kwargs)
        finally:
            self._scriptrunner = current

    _handle_scriptrunner_event_on_event_loop._lavan_keeps_finished_runs = True
    cls._create_scriptrunner = _create_scriptrunner
    cls._handle_scriptrunner_event_on_event_loop = _handle_scriptrunner_event_on_event_loop
    return True


keep_finished_runs_output()
