"""ui.jobs.keep_finished_runs_output: the workaround for Streamlit's race that dropped a finished run's last events
(lost redraws, issue 14), on a stand-in for AppSession with the same two methods; and that it is installed on the
real AppSession. The race itself is reproduced by bench/load.py (bench/results/load10_lost_redraws_2026-12-01.txt)."""
from __future__ import annotations

import enum

from ui import jobs


class Event(enum.Enum):
    SCRIPT_STARTED = 1
    ENQUEUE_FORWARD_MSG = 2
    SCRIPT_STOPPED_WITH_SUCCESS = 3
    SCRIPT_STOPPED_WITH_COMPILE_ERROR = 4
    FRAGMENT_STOPPED_WITH_SUCCESS = 5
    SHUTDOWN = 6


class Runner:
    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


def make_session_class():
    class Session:
        """What AppSession does with these two methods: the new runner becomes current, and events from any other
        runner are ignored; SHUTDOWN of the current one clears it."""
        id = "abcdef0123"

        def __init__(self):
            self._scriptrunner = None
            self.delivered = []

        def _create_scriptrunner(self, data):
            self._scriptrunner = Runner(data)

        def _handle_scriptrunner_event_on_event_loop(self, sender, event, forward_msg=None):
            if sender is not self._scriptrunner:
                return
            if event == Event.SHUTDOWN:
                self._scriptrunner = None
            else:
                self.delivered.append((sender.name, event.name, forward_msg))

    assert jobs.keep_finished_runs_output(Session, Event)
    return Session


def test_a_finished_runs_late_events_reach_the_browser():
    s = make_session_class()()
    s._create_scriptrunner("full")
    full = s._scriptrunner
    s._handle_scriptrunner_event_on_event_loop(full, Event.SCRIPT_STARTED)
    # the full run has ended (its runner refuses reruns); a poll arrives before the loop handled its last events
    s._create_scriptrunner("poll")
    poll = s._scriptrunner
    s._handle_scriptrunner_event_on_event_loop(full, Event.ENQUEUE_FORWARD_MSG, "canvas at the new x")
    s._handle_scriptrunner_event_on_event_loop(full, Event.SCRIPT_STOPPED_WITH_SUCCESS)
    s._handle_scriptrunner_event_on_event_loop(poll, Event.SCRIPT_STARTED)
    s._handle_scriptrunner_event_on_event_loop(full, Event.SHUTDOWN)  # dropped: the session's runner is the poll's
    assert s._scriptrunner is poll
    s._handle_scriptrunner_event_on_event_loop(poll, Event.SCRIPT_STOPPED_WITH_SUCCESS)
    s._handle_scriptrunner_event_on_event_loop(poll, Event.SHUTDOWN)
    assert s._scriptrunner is None
    assert s.delivered == [("full", "SCRIPT_STARTED", None), ("full", "ENQUEUE_FORWARD_MSG", "canvas at the new x"),
                           ("full", "SCRIPT_STOPPED_WITH_SUCCESS", None), ("poll", "SCRIPT_STARTED", None),
                           ("poll", "SCRIPT_STOPPED_WITH_SUCCESS", None)]
    assert s.__dict__["_lavan_finishing"] == []  # forgotten at its SHUTDOWN
    s._handle_scriptrunner_event_on_event_loop(full, Event.ENQUEUE_FORWARD_MSG, "later")  # no longer delivered
    assert s.delivered[-1][0] == "poll"


def test_a_runner_stopped_on_purpose_stays_ignored():
    """fastReruns: AppSession stops the runner and forgets it (``_scriptrunner = None``) before creating the next one;
    that interrupted run's output is superseded and stays dropped, as before."""
    s = make_session_class()()
    s._create_scriptrunner("old")
    old = s._scriptrunner
    s._scriptrunner = None  # request_stop(); self._scriptrunner = None
    s._create_scriptrunner("new")
    s._handle_scriptrunner_event_on_event_loop(old, Event.ENQUEUE_FORWARD_MSG, "stale")
    s._handle_scriptrunner_event_on_event_loop(old, Event.SCRIPT_STOPPED_WITH_SUCCESS)
    assert s.delivered == [] and "_lavan_finishing" not in s.__dict__


def test_installed_once_on_streamlits_app_session():
    from streamlit.runtime.app_session import AppSession

    handle = AppSession._handle_scriptrunner_event_on_event_loop
    assert getattr(handle, "_lavan_keeps_finished_runs", False)
    assert jobs.keep_finished_runs_output()  # idempotent: no second wrapper
    assert AppSession._handle_scriptrunner_event_on_event_loop is handle


def test_another_streamlit_is_left_alone():
    class Bare:
        pass

    assert not jobs.keep_finished_runs_output(Bare, Event)
