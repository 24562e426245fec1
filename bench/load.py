"""Page response of the studio while N browser sessions poll training progress (run by hand, not by pytest).

    .venv/bin/python bench/load.py --sessions 10 --seconds 60

Starts ``streamlit run app.py`` on a free port (own patch cache in a temp dir, LAVAN_MAX_JOBS=2, headless) and
connects N sessions that speak the browser's own protocol on the app's websocket (``/_stcore/stream``: the
BackMsg / ForwardMsg protobufs the Streamlit frontend sends and receives) without rendering anything, so that
the client's CPU use stays small next to the server's. Each session behaves like the frontend:

* it opens the attack page (``rerun_script`` with the page name), keeps its widget values and sends them all with
  every rerun, and keeps the forward-message cache (``cached_message_hashes`` / ``ref_hash``);
* it clicks **Train** with its own seed (N distinct configurations, so nothing comes from the patch cache): two
  trainings run, the others wait and show their queue place;
* for every ``auto_rerun`` message (the page's ``st.fragment(run_every=…)``, 0.5 or 1 s: ui/jobs.poll_interval) it sends the fragment rerun on a
  fixed timer, as the frontend's ``setInterval`` does, until the next full run or ``stop_auto_rerun``;
* every 2–6 s (random) it types a new x into the patch's "x (left, px)" input. **Response** = time from
  sending that change to receiving the re-rendered canvas that draws the square at the new x (what the user
  sees move); **full run** = until the server reports that run finished.

Also measured: the progress poll (fragment rerun sent → fragment run finished), a one-session baseline before any
training starts, and the server's resident memory (VmRSS) before and after. Prints markdown tables. An interaction
still unanswered when the window closes (plus ``--grace``) counts as infinitely slow.

**Classroom mode** (issue 14): ``--trainers K`` makes only the first K sessions train (the others do not click
Train); ``--universal U`` of the remaining sessions open the Universal page, take the shipped ready patch ("Use
this patch") and move it on the photo — by typing a new x into the drag view's x input, which reruns the same
``st.fragment`` a drag does; **universal move** = until the fragment's canvas shows the square at the new x;
``--switchers W`` of the remaining sessions switch pages (Home, Lesson, Fragility, Transfer, Gradients, Models,
Paper, Attack in turn) every 2–6 s; **page switch** = from the request until that page's run finished. Any other
session only types x on the attack page. Every kind reports p50/p95/max and how many were never redrawn. E.g.

    .venv/bin/python bench/load.py --sessions 30 --trainers 8 --universal 8 --switchers 8 --seconds 60

**Lost redraws** (an interaction never answered): ``--stacks-after S`` (default 20) makes the server dump every
thread's Python stack into its log (``faulthandler`` on SIGUSR1, registered by a ``sitecustomize`` that only the
server's PYTHONPATH sees) when an interaction has waited S seconds, and again every S seconds while it waits; the
printout names the dumps and counts the server's own notes about dropped reruns.

``--streamlit-arg=--runner.postScriptGC=false`` passes options to ``streamlit run``. That one matters here:
Streamlit's default (true) runs ``gc.collect(2)`` after *every* script run, fragment runs included, and one full
collection of this server's heap (torch, plotly, ~400k objects) takes ~0.6 s on the loaded 2-core machine, so
10 pages polling twice a second ask for far more GC time than there is (docs/BENCHMARKS.md: App load).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ui.devserver import streamlit_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CANVAS_PX, INPUT = 448, 224  # ui.widgets.CANVAS_PX and the default model's input size
UNIVERSAL_PX = 63  # side of the shipped universal patches (assets/universal_lite0_*.safetensors) on 224


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(x: float) -> str:
    return "∞" if x == float("inf") else "–" if x != x else f"{x * 1000:.0f} ms"


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))] if xs else float("nan")


# the server's sitecustomize (bench only): `kill -USR1 <pid>` writes every thread's Python stack to its stderr;
# with LAVAN_TRACE set, every session's rerun requests and script runs are appended to that file (one line each:
# time, session id, what), so a lost redraw can be followed through the server.
STACK_HOOK = """import faulthandler, os, signal, sys, threading, time
faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
_path = os.environ.get("LAVAN_TRACE")
if _path:
    _out, _lock = open(_path, "a", buffering=1), threading.Lock()

    def _log(sid, what):
        with _lock:
            _out.write(f"{time.time():.3f} {sid[:8]} {threading.current_thread().name} {what}\\n")

    import importlib.abc, importlib.machinery

    def _patch_app_session(mod):
        cls = mod.AppSession
        req = cls.request_rerun

        def request_rerun(self, client_state):
            cs = client_state
            _log(self.id, f"request_rerun fragment={getattr(cs, 'fragment_id', '')!r} "
                          f"auto={getattr(cs, 'is_auto_rerun', None)} runner={id(self._scriptrunner) if self._scriptrunner else None} "
                          f"state={self._state}")
            return req(self, client_state)
        cls.request_rerun = request_rerun
        handle = cls._handle_scriptrunner_event_on_event_loop

        def handle_event(self, sender, event, *a, **k):
            if "SCRIPT" in str(event) or "SHUTDOWN" in str(event):
                _log(self.id, f"event {event} sender={id(sender) if sender else None} "
                              f"current={sender is self._scriptrunner}")
            return handle(self, sender, event, *a, **k)
        cls._handle_scriptrunner_event_on_event_loop = handle_event

    def _patch_script_runner(mod):
        cls = mod.ScriptRunner
        run = cls._run_script

        def _run_script(self, rerun_data):
            _log(self._session_id, f"run start runner={id(self)} fragments={list(rerun_data.fragment_id_queue)}")
            try:
                return run(self, rerun_data)
            finally:
                _log(self._session_id, f"run end runner={id(self)}")
        cls._run_script = _run_script

    _targets = {"streamlit.runtime.app_session": _patch_app_session,
                "streamlit.runtime.scriptrunner.script_runner": _patch_script_runner}

    class _Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in _targets:
                return None
            for finder in sys.meta_path:
                if finder is self:
                    continue
                spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
                if spec is not None:
                    loader, patch = spec.loader, _targets[name]

                    class _Loader(importlib.abc.Loader):
                        def create_module(self, spec):
                            return loader.create_module(spec)

                        def exec_module(self, module):
                            loader.exec_module(module)
                            patch(module)
                    spec.loader = _Loader()
                    return spec
            return None
    sys.meta_path.insert(0, _Finder())
"""


GIL_RATE = 50  # py-spy samples per second


def start_gil_profile(pid: int, seconds: float, raw: Path):
    """``--gil-profile``: sample, ``GIL_RATE`` times a second for the window, the server thread that holds the GIL
    (py-spy ``record --gil``; requirements-bench.txt). None (with a note) when py-spy is missing or may not attach."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        print("--gil-profile: py-spy is not installed (pip install -r requirements-bench.txt); skipped", flush=True)
        return None
    import subprocess
    return subprocess.Popen([exe, "record", "--gil", "--threads", "--nonblocking", "-r", str(GIL_RATE),
                             "-d", str(max(1, int(seconds))), "-f", "raw", "-o", str(raw), "--pid", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _frame_file(frame: str) -> str:
    """The file of a py-spy frame ``func (path/file.py:12)``; py-spy writes it relative to its sys.path entry
    (``ui/jobs.py``, ``torch/nn/functional.py``, a page script as ``1_attack.py``)."""
    return frame.rpartition(" (")[2].split(":")[0]


def _ours(path: str) -> bool:
    return path.startswith(("attack/", "ui/", "pages/")) or bool(re.fullmatch(r"\d_\w+\.py|app\.py", path))


def _frame_key(frame: str) -> str:
    """``func (path/file.py:12)`` -> ``func (file.py)``: one row per function whatever the line."""
    return f"{frame.rpartition(' (')[0]} ({_frame_file(frame).rsplit('/', 1)[-1]})"


def gil_table(raw: Path, seconds: float, top: int = 12) -> dict:
    """Who held the GIL: samples per thread kind, per package of the innermost frame (its file's first path part;
    this project's files as one) and per function of this project (inclusive)."""
    threads, libs, ours, total = {}, {}, {}, 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n, frames = int(n), stack.split(";")
        total += n
        head = frames[0]
        kind = ("event loop (MainThread)" if "MainThread" in head else "training threads" if "lavan-" in head
                else "page scripts (ScriptRunner)" if "ScriptRunner" in stack else "other threads")
        threads[kind] = threads.get(kind, 0) + n
        leaf = _frame_file(frames[-1])
        lib = "this project" if _ours(leaf) else leaf.split("/", 1)[0].removesuffix(".py")
        libs[lib] = libs.get(lib, 0) + n
        for f in {_frame_key(f) for f in frames[1:] if _ours(_frame_file(f))}:
            ours[f] = ours.get(f, 0) + n
    return {"total": total, "possible": int(GIL_RATE * seconds), "threads": threads,
            "libs": dict(sorted(libs.items(), key=lambda kv: -kv[1])[:top]),
            "ours": sorted(ours.items(), key=lambda kv: -kv[1])[:top]}


def finish_gil_profile(spy, raw: Path, seconds: float) -> dict | None:
    try:
        _, err = spy.communicate(timeout=seconds + 60)
    except Exception:  # noqa: BLE001 - a profile that does not finish must not lose the measurements
        spy.kill()
        return None
    if spy.returncode != 0 or not raw.exists():
        print(f"--gil-profile: py-spy failed ({(err or '').strip()[-200:]})", flush=True)
        return None
    return gil_table(raw, seconds)


def print_gil(g: dict) -> None:
    total = max(1, g["total"])
    print(f"\nGIL held in {g['total']} of {g['possible']} samples of the window ({100 * g['total'] / max(1, g['possible']):.0f}%; "
          f"py-spy record --gil at {GIL_RATE} Hz). Who held it:\n")
    print("| holder | share of GIL samples |\n|---|---|")
    for k, v in sorted(g["threads"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {100 * v / total:.0f}% |")
    print("\n| innermost frame in (package) | share |\n|---|---|")
    for k, v in sorted(g["libs"].items(), key=lambda kv: -kv[1]):
        print(f"| {k} | {100 * v / total:.0f}% |")
    print("\n| this project's function (inclusive) | share |\n|---|---|")
    for k, v in g["ours"]:
        print(f"| `{k}` | {100 * v / total:.0f}% |")


def dump_stacks(server: dict, why: str) -> None:
    """Ask the server for every thread's stack (into its log), marked with ``why`` and the log offset it starts at."""
    import signal

    log = Path(server["log"])
    server["dumps"].append((why, log.stat().st_size))
    os.kill(server["pid"], signal.SIGUSR1)


def dropped_reruns(log: Path) -> dict[str, int]:
    """The server's own notes about rerun requests it dropped, counted from its log."""
    text = log.read_text(errors="replace")
    return {"fragment gone (rerun ignored)": text.count("does not exist anymore"),
            "rerun after shutdown (discarded)": text.count("Discarding rerun request"),
            "stack dumps": text.count("Current thread") + text.count("Thread 0x")}


class Session:
    """One browser tab, at the protocol level."""

    def __init__(self, url: str, index: int, stats: dict):
        self.url, self.index, self.stats = url, index, stats
        self.ws = None
        self.page_hash = ""
        self.widget_ids: dict[str, str] = {}  # user key -> element id (from the deltas)
        self.values: dict[str, tuple[str, object]] = {}  # element id -> (field, value), sent with every rerun
        self.cache: dict[str, object] = {}  # ForwardMsg cache: hash -> message
        self.timers: dict[str, asyncio.Task] = {}  # fragment id -> auto-rerun timer
        self.full_done = asyncio.Event()
        self.queue_places: set[int] = set()  # queue places the page showed ("position k in the queue")
        self.iteration = -1  # last training iteration the page showed
        self.result_shown = False  # the page showed a finished training's result (its download buttons)
        self.pending_x: tuple[int, float, bool] | None = None  # (x, t_sent, canvas seen)
        self.poll_sent: dict[str, float] = {}  # fragment id -> time its last auto rerun was sent
        self.reader: asyncio.Task | None = None
        self.updates = 0  # fragment runs finished (progress updates received) during the window
        self.kind = "train"  # train | attack (types x only) | universal | switch
        self.page_name = "attack"  # the page asked for by name while no page hash is known
        self.fragment_of: dict[str, str] = {}  # user key -> fragment id of the element (drag view of Universal)
        self.pending_switch: tuple[str, float] | None = None  # (page, t_sent)
        self.canvas_seen: list[int] = []  # x of every canvas drawn while a typed x waited for its redraw
        self.full_runs = 0  # full runs finished (to tell "the server never ran" from "ran with another x")
        self.session_id = ""  # the server's AppSession id (its trace lines start with its first 8 characters)

    # ------------------------------------------------------------------------------------------------ sending
    def _client_state(self, fragment_id: str = "", auto: bool = False, trigger: str | None = None):
        from streamlit.proto.ClientState_pb2 import ClientState
        from streamlit.proto.WidgetStates_pb2 import WidgetStates

        ws = WidgetStates()
        for wid, (field, value) in self.values.items():
            w = ws.widgets.add()
            w.id = wid
            setattr(w, field, value)
        if trigger is not None:
            w = ws.widgets.add()
            w.id, w.trigger_value = trigger, True
        cs = ClientState(query_string="", page_script_hash=self.page_hash, page_name="" if self.page_hash else
                         self.page_name, fragment_id=fragment_id, is_auto_rerun=auto)
        cs.widget_states.CopyFrom(ws)
        cs.cached_message_hashes.extend(self.cache)
        return cs

    async def rerun(self, **kw) -> None:
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        msg.rerun_script.CopyFrom(self._client_state(**kw))
        await self.ws.send(msg.SerializeToString())

    async def full_rerun(self, trigger: str | None = None, timeout: float = 300) -> None:
        self.full_done.clear()
        await self.rerun(trigger=trigger)
        await asyncio.wait_for(self.full_done.wait(), timeout)

    def set_int(self, key: str, value: int) -> None:
        self.values[self.widget_ids[key]] = ("int_value", int(value))

    # ------------------------------------------------------------------------------------------------ receiving
    async def connect(self) -> None:
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, subprotocols=["streamlit"], max_size=None, open_timeout=60,
                                ping_interval=None)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        async for raw in self.ws:
            t = time.perf_counter()
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "ref_hash":
                cached = self.cache.get(msg.ref_hash)
                if cached is None:
                    continue
                cached_msg = ForwardMsg()
                cached_msg.CopyFrom(cached)
                cached_msg.metadata.CopyFrom(msg.metadata)
                msg, kind = cached_msg, cached_msg.WhichOneof("type")
            elif msg.metadata.cacheable and msg.hash:
                self.cache[msg.hash] = msg
            self._handle(msg, kind, t)

    def _handle(self, msg, kind: str, t: float) -> None:
        if kind == "new_session":
            if msg.new_session.HasField("initialize"):
                self.session_id = msg.new_session.initialize.session_id
            self.page_hash = msg.new_session.page_script_hash or self.page_hash
            if not msg.metadata.run.fragment_ids:  # a full run: the frontend clears its auto-rerun timers
                for task in self.timers.values():
                    task.cancel()
                self.timers.clear()
        elif kind == "navigation":
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "auto_rerun":
            fid = msg.auto_rerun.fragment_id
            if fid and fid not in self.timers:
                self.timers[fid] = asyncio.create_task(self._poll(fid, msg.auto_rerun.interval))
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                task = self.timers.pop(fid, None)
                if task:
                    task.cancel()
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            self._element(msg.delta.new_element, t, msg.delta.fragment_id)
        elif kind == "script_finished":
            status = msg.script_finished
            if status == ForwardMsgStatus.FRAGMENT:
                self.updates += 1
                if self.kind == "universal" and self.pending_x and self.pending_x[2]:
                    self.pending_x = None  # a move in the drag view: its fragment run has finished
                for fid, t0 in list(self.poll_sent.items()):
                    self.stats["poll"].append(t - t0)
                    del self.poll_sent[fid]
            elif status == ForwardMsgStatus.FULL:
                self.full_done.set()
                self.full_runs += 1
                if self.pending_switch:
                    self.stats["switch"].append(t - self.pending_switch[1])
                    self.pending_switch = None
                if self.pending_x and self.pending_x[2]:
                    self.stats["full_run"].append(t - self.pending_x[1])
                    self.pending_x = None

    def _element(self, el, t: float, fragment_id: str = "") -> None:
        which = el.WhichOneof("type")
        if which in ("number_input", "button"):
            wid = getattr(el, which).id
            self.widget_ids[wid.rsplit("-", 1)[-1]] = wid
            self.fragment_of[wid.rsplit("-", 1)[-1]] = fragment_id
        elif which == "bidi_component" and self.pending_x and not self.pending_x[2]:
            try:
                data = json.loads(el.bidi_component.json)
                left = data["initialDrawing"]["objects"][0]["left"]
            except (ValueError, KeyError, IndexError, TypeError):
                return
            x, t0, _ = self.pending_x
            self.canvas_seen.append(round(left * INPUT / CANVAS_PX))  # diagnostics for a lost redraw
            if abs(left - x * CANVAS_PX / INPUT) < 1e-6:
                self.stats[self.phase].append(t - t0)
                self.pending_x = (x, t0, True)
        elif which == "alert" and "position" in el.alert.body and "queue" in el.alert.body:
            self.queue_places.add(int(el.alert.body.split("position ")[1].split(" ")[0]))
        elif which == "download_button":
            self.result_shown = True
        elif which == "metric" and el.metric.label == "iteration":
            self.iteration = int(el.metric.body)

    async def _poll(self, fid: str, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.poll_sent.setdefault(fid, time.perf_counter())
            await self.rerun(fragment_id=fid, auto=True)

    # ------------------------------------------------------------------------------------------------ behaviour
    phase = "interaction"

    async def move_x(self, timeout: float = 120, key: str = "attack_loc_x", size: int = 63) -> None:
        """Type a new x and wait until the canvas shows it (and the run has finished). An interaction that shows
        nothing within ``timeout`` is counted as unanswered (it enters the percentiles as infinitely slow). A widget
        inside an ``st.fragment`` (the Universal page's drag view) reruns only that fragment, as the frontend does."""
        x = random.choice([v for v in range(0, INPUT - size, 7) if v != self.values.get(
            self.widget_ids[key], (None, None))[1]])
        self.set_int(key, x)
        self.canvas_seen, runs0, polling = [], self.full_runs, bool(self.timers)
        self.pending_x = (x, time.perf_counter(), False)
        await self.rerun(fragment_id=self.fragment_of.get(key, ""))
        end = time.perf_counter() + timeout
        server = self.stats.get("server")
        next_dump = time.perf_counter() + server["every"] if server and server["every"] > 0 else float("inf")
        while self.pending_x is not None and time.perf_counter() < end:
            if time.perf_counter() >= next_dump and not self.pending_x[2]:
                dump_stacks(server, f"page {self.index}: {key}={x} unanswered for "
                                    f"{time.perf_counter() - self.pending_x[1]:.0f} s (full runs since: "
                                    f"{self.full_runs - runs0})")
                next_dump += server["every"]
            await asyncio.sleep(0.02)
        if self.pending_x is not None:
            if not self.pending_x[2]:
                self.stats[self.phase].append(float("inf"))
                self.stats["lost"].append((self.index, self.session_id[:8], round(time.perf_counter() - self.pending_x[1]),
                                           self.result_shown, f"{key}={x}", f"polling={polling}",
                                           f"full runs since={self.full_runs - runs0}",
                                           f"canvases drawn at x={self.canvas_seen[-5:]}"))
            self.pending_x = None

    async def switch_page(self, name: str, timeout: float = 120) -> None:
        """Open another page (by its url name, as a link does) and wait until its run has finished."""
        for task in self.timers.values():
            task.cancel()
        self.timers.clear()
        self.page_hash, self.page_name = "", name
        self.values.clear()
        self.widget_ids.clear()
        self.pending_switch = (name, time.perf_counter())
        self.full_done.clear()
        await self.rerun()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.full_done.wait(), timeout)
        if self.pending_switch is not None:
            self.stats["switch"].append(float("inf"))
            self.stats["lost"].append((self.index, "switch to " + name, round(time.perf_counter() -
                                                                              self.pending_switch[1])))
            self.pending_switch = None

    async def open_universal(self) -> None:
        """Universal page, the shipped ready patch ("Use this patch"), until its drag view's x input is there."""
        self.page_hash, self.page_name = "", "universal"
        self.values.clear()
        for _ in range(3):
            await self.full_rerun(timeout=300)
            if "uni_use_asset" in self.widget_ids:
                break
        await self.full_rerun(trigger=self.widget_ids["uni_use_asset"], timeout=300)
        for _ in range(3):
            if "uni_loc_x" in self.widget_ids:
                return
            await self.full_rerun(timeout=300)
        raise RuntimeError(f"session {self.index}: the Universal page showed no drag view")

    async def close(self) -> None:
        for task in self.timers.values():
            task.cancel()
        await self.ws.close()
        if self.reader:
            self.reader.cancel()


class ForwardMsgStatus:
    FULL, FRAGMENT = 0, 3  # ForwardMsg.ScriptFinishedStatus: FINISHED_SUCCESSFULLY, FINISHED_FRAGMENT_RUN_...


async def run(args) -> dict:
    stats = {"interaction": [], "baseline": [], "full_run": [], "poll": [], "lost": [], "universal": [],
             "switch": []}
    tmp = Path(tempfile.mkdtemp(prefix="lavan-load-"))
    extra = [part for arg in args.streamlit_arg for part in arg.split("=", 1)]
    hook = tmp / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STACK_HOOK)
    pythonpath = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    with streamlit_server(tmp / "cache", tmp / "server.log", extra_args=extra, PYTHONPATH=pythonpath,
                          LAVAN_TRACE=str(tmp / "trace.log")) as srv:
        stats["server"] = {"pid": srv["proc"].pid, "log": srv["log"], "every": args.stacks_after, "dumps": [],
                           "trace": str(tmp / "trace.log")}
        try:
            return await _drive(args, srv["proc"], srv["url"], stats, tmp)
        finally:
            shutil.rmtree(tmp / "cache", ignore_errors=True)


async def _drive(args, proc, url: str, stats: dict, tmp: Path) -> dict:
    ws_url = url.replace("http", "ws") + "/_stcore/stream"
    out: dict = {"server_log": str(tmp / "server.log")}
    sessions: list[Session] = []
    try:
        out["rss_start"] = rss_mb(proc.pid)
        first = Session(ws_url, 0, stats)
        await first.connect()
        await first.full_rerun(timeout=300)  # first run: loads the model
        for _ in range(3):  # a fresh server may rerun the first page once through app.py (ui/boot.py)
            if "attack_loc_x" in first.widget_ids:
                break
            await first.full_rerun(timeout=300)
        out["rss_one_session"] = rss_mb(proc.pid)
        sessions.append(first)
        # baseline: one session, nothing training
        first.phase = "baseline"
        for _ in range(args.baseline):
            await first.move_x()
            await asyncio.sleep(0.3)
        first.phase = "interaction"
        stats["full_run"].clear()
        for i in range(1, args.sessions):
            s = Session(ws_url, i, stats)
            await s.connect()
            await s.full_rerun(timeout=300)
            sessions.append(s)
        out["rss_sessions_open"] = rss_mb(proc.pid)
        trainers = args.sessions if args.trainers is None else args.trainers
        for s in sessions[trainers:]:
            s.kind = "attack"
        for s in sessions[trainers:trainers + args.universal]:
            s.kind = "universal"
            s.phase = "universal"
            await s.open_universal()
        for s in sessions[trainers + args.universal:trainers + args.universal + args.switchers]:
            s.kind = "switch"
        out["rss_universal_open"] = rss_mb(proc.pid)
        for s in sessions[:trainers]:  # each its own configuration: iterations and seed, then Train (one after another)
            s.set_int("attack_steps", args.iters)
            s.set_int("attack_seed", 1000 + s.index)
            s.full_done.clear()
            await s.rerun(trigger=s.widget_ids["attack_train"])
            await asyncio.sleep(0.2)
        t_click = time.perf_counter()
        await asyncio.wait([asyncio.create_task(s.full_done.wait()) for s in sessions[:trainers]],
                           timeout=args.setup_timeout)
        out["train_answered"] = sum(s.full_done.is_set() for s in sessions[:trainers])
        out["train_wait"] = time.perf_counter() - t_click
        await asyncio.sleep(2)  # the first polls arrive
        stats["poll"].clear()
        for s in sessions:
            s.updates = 0
        rss_peak = rss_mb(proc.pid)
        t_end = time.perf_counter() + args.seconds
        load0, cpu0, server0, wall0 = os.getloadavg(), time.process_time(), cpu_s(proc.pid), time.perf_counter()
        spy = start_gil_profile(proc.pid, args.seconds, tmp / "gil.raw") if args.gil_profile else None

        tour = ["home", "lesson", "fragility", "transfer", "gradients", "models", "paper", "attack"]

        async def user(s: Session) -> None:
            await asyncio.sleep(random.uniform(0, 2))
            k = s.index
            while time.perf_counter() < t_end:
                left = t_end + args.grace - time.perf_counter()
                if s.kind == "universal":
                    await s.move_x(timeout=left, key="uni_loc_x", size=UNIVERSAL_PX)
                elif s.kind == "switch":
                    k += 1
                    await s.switch_page(tour[k % len(tour)], timeout=left)
                else:
                    await s.move_x(timeout=left)
                await asyncio.sleep(random.uniform(2, 6))

        async def watch_rss() -> None:
            nonlocal rss_peak
            while time.perf_counter() < t_end:
                rss_peak = max(rss_peak, rss_mb(proc.pid))
                await asyncio.sleep(1)

        await asyncio.gather(watch_rss(), *(user(s) for s in sessions))
        if spy is not None:
            out["gil"] = finish_gil_profile(spy, tmp / "gil.raw", args.seconds)
        out["load_during"] = (load0, os.getloadavg())
        out["client_cpu"], out["server_cpu"] = time.process_time() - cpu0, cpu_s(proc.pid) - server0
        out["window"] = time.perf_counter() - wall0
        out["updates"] = sorted(s.updates for s in sessions)
        out["queued_pages"] = sum(bool(s.queue_places) for s in sessions)
        out["kinds"] = {kind: sum(s.kind == kind for s in sessions) for kind in ("train", "attack", "universal",
                                                                                  "switch")}
        out["training_pages"] = sum(s.iteration >= 0 for s in sessions)
        out["iterations"] = sorted(s.iteration for s in sessions)
        out["polling"] = sum(1 for s in sessions if s.timers)
        out["rss_peak"] = rss_peak
        out["rss_end"] = rss_mb(proc.pid)
        for s in sessions:  # stop the trainings (Stop button), then leave
            if "attack_stop" in s.widget_ids:
                await s.rerun(trigger=s.widget_ids["attack_stop"])
        await asyncio.sleep(1)
    finally:
        for s in sessions:
            with contextlib.suppress(Exception):
                await s.close()
    out["stats"] = stats
    return out


def streamlit_version() -> str:
    from importlib.metadata import version

    return version("streamlit")


def post_script_gc(extra: list[str]) -> str:
    for arg in extra:
        if arg.startswith("--runner.postScriptGC"):
            return arg.split("=", 1)[1]
    import tomllib

    path = ROOT / ".streamlit" / "config.toml"
    conf = tomllib.loads(path.read_text()) if path.exists() else {}
    return str(conf.get("runner", {}).get("postScriptGC", True)).lower()


def model_mb(name: str = "efficientnet-lite0") -> float:
    sys.path.insert(0, str(ROOT))
    import torch

    import attack

    torch.set_num_threads(1)
    m = attack.load_model(name, device="cpu")
    return sum(t.numel() * t.element_size() for t in list(m.parameters()) + list(m.buffers())) / 2 ** 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=60, help="length of the measured window")
    ap.add_argument("--iters", type=int, default=400, help="max iterations of each session's training")
    ap.add_argument("--baseline", type=int, default=8, help="interactions of one idle session before the load")
    ap.add_argument("--setup-timeout", type=float, default=60, help="wait at most this for the Train runs (s)")
    ap.add_argument("--grace", type=float, default=30, help="how long after the window an answer still counts (s)")
    ap.add_argument("--streamlit-arg", action="append", default=[], metavar="--SECTION.OPTION=VALUE",
                    help="extra option for `streamlit run`, e.g. --streamlit-arg=--runner.postScriptGC=true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trainers", type=int, default=None, help="only this many sessions click Train (default: all)")
    ap.add_argument("--universal", type=int, default=0, help="sessions that move the ready universal patch")
    ap.add_argument("--switchers", type=int, default=0, help="sessions that switch pages")
    ap.add_argument("--gil-profile", action="store_true",
                    help="sample which server thread and function holds the GIL during the window (py-spy)")
    ap.add_argument("--stacks-after", type=float, default=20,
                    help="dump the server's thread stacks into its log when an interaction waited this long (s); 0: "
                         "never")
    args = ap.parse_args()
    random.seed(args.seed)
    started = dt.datetime.now()
    out = asyncio.run(run(args))
    st = out["stats"]
    size = model_mb()
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    print(f"command: .venv/bin/python bench/load.py {' '.join(sys.argv[1:])}   (server log: {out['server_log']})")
    print(f"date: {started:%Y-%m-%d %H:%M}; machine: {platform.machine()}, {os.cpu_count()} cores ({cpu}), "
          f"Python {platform.python_version()}; load average (1 min) at start/end of the window: "
          f"{out['load_during'][0][0]:.1f} / {out['load_during'][1][0]:.1f}")
    print(f"streamlit {streamlit_version()}, runner.postScriptGC = {post_script_gc(args.streamlit_arg)} "
          f"(.streamlit/config.toml unless --streamlit-arg overrides it; Streamlit's default is true)")
    print(f"sessions: {args.sessions} ({out['kinds']['train']} training), each training up to {args.iters} "
          f"iterations (LAVAN_MAX_JOBS=2: 2 run, "
          f"the others queue); {out['polling']} pages still polling at the end of the window ({args.seconds:.0f} s, "
          f"{out['window']:.0f} s with the last answers); "
          f"progress updates received per page in the window: min {out['updates'][0]}, median "
          f"{statistics.median(out['updates']):.0f}, max {out['updates'][-1]}; {out['queued_pages']} pages showed "
          f"a queue place, {out['training_pages']} showed training progress (last iterations seen: "
          f"{', '.join(map(str, out['iterations']))})")
    print(f"Train clicked on {out['kinds']['train']} pages: {out['train_answered']}/{out['kinds']['train']} of those runs had finished "
          f"{out['train_wait']:.0f} s after the last click (the window starts then, at most "
          f"{args.setup_timeout:.0f} s)")
    print(f"CPU used in the window: server {out['server_cpu']:.0f} s ({out['server_cpu'] / out['window']:.2f} cores), "
          f"this client {out['client_cpu']:.1f} s")
    print()
    print("| measurement | sessions | samples | median | p95 | max |")
    print("|---|---|---|---|---|---|")
    kinds = out["kinds"]
    on_attack = kinds["train"] + kinds["attack"]
    rows = [("response: x typed → canvas redrawn at x, 1 session, nothing training", 1, st["baseline"]),
            ("**response: x typed → canvas redrawn at x**", on_attack, st["interaction"]),
            ("same interaction, until its full run finished", on_attack, st["full_run"]),
            ("progress poll: fragment rerun sent → fragment run finished", kinds["train"], st["poll"])]
    if kinds["universal"]:
        rows.append(("**universal patch moved (drag view fragment) → canvas redrawn at x**", kinds["universal"],
                     st["universal"]))
    if kinds["switch"]:
        rows.append(("**page switch → that page's run finished**", kinds["switch"], st["switch"]))
    for name, n, xs in rows:
        print(f"| {name} | {n} | {len(xs)} | {ms(statistics.median(xs) if xs else float('nan'))} | "
              f"{ms(pct(xs, 0.95))} | {ms(max(xs, default=float('nan')))} |")
    never = {k: sum(x == float("inf") for x in st[k]) for k in ("interaction", "universal", "switch")}
    print(f"\nnever redrawn: attack x {never['interaction']}/{len(st['interaction'])}, universal move "
          f"{never['universal']}/{len(st['universal'])}, page switch {never['switch']}/{len(st['switch'])}; "
          f"sessions by kind: {kinds}")
    lost = sum(never.values())
    if lost:
        print(f"\n∞: {lost} interactions got no redrawn canvas before the window closed (+{args.grace:.0f} s grace); "
              f"they count as infinitely slow in the percentiles. (page, server session id, seconds waited, page had shown a finished "
              f"training's result, what was typed, whether its progress poll was on, full runs finished and the x of "
              f"the canvases drawn while it waited): {st['lost']}")
    server = st.get("server")
    if server:
        print(f"\nserver log {server['log']}: {dropped_reruns(Path(server['log']))}; stack dumps taken (why, log "
              f"offset): {server['dumps']}; per-session trace of reruns and runs: {server['trace']}")
    print()
    print("| server RSS | MiB |")
    print("|---|---|")
    for k, label in (("rss_start", "started, no session"), ("rss_one_session", "1 session (model loaded)"),
                     ("rss_sessions_open", f"{args.sessions} sessions open, nothing training"),
                     ("rss_universal_open", "universal sessions on their patch, nothing training"),
                     ("rss_peak", "peak in the window (2 trainings running)"), ("rss_end", "end of the window")):
        print(f"| {label} | {out[k]:.0f} |")
    opened = out["rss_sessions_open"] - out["rss_one_session"]
    print(f"\nefficientnet-lite0 weights: {size:.1f} MiB. Opening {args.sessions - 1} more sessions: {opened:+.0f} MiB "
          f"({opened / size:.1f}× the model; a model copy per session would add {args.sessions - 1}×). The peak "
          f"adds the 2 running trainings' activations and the sessions' states: "
          f"{out['rss_peak'] - out['rss_one_session']:+.0f} MiB over one session.")
    if out.get("gil"):
        print_gil(out["gil"])


if __name__ == "__main__":
    main()
