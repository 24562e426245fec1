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
* for every ``auto_rerun`` message (the page's ``st.fragment(run_every=0.5)``) it sends the fragment rerun on a
  fixed timer, as the frontend's ``setInterval`` does, until the next full run or ``stop_auto_rerun``;
* every 2–6 s (random) it types a new x into the patch's "x (left, px)" input. **Response** = time from
  sending that change to receiving the re-rendered canvas that draws the square at the new x (what the user
  sees move); **full run** = until the server reports that run finished.

Also measured: the progress poll (fragment rerun sent → fragment run finished), a one-session baseline before any
training starts, and the server's resident memory (VmRSS) before and after. Prints markdown tables. An interaction
still unanswered when the window closes (plus ``--grace``) counts as infinitely slow.

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
                         "attack", fragment_id=fragment_id, is_auto_rerun=auto)
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
            self._element(msg.delta.new_element, t)
        elif kind == "script_finished":
            status = msg.script_finished
            if status == ForwardMsgStatus.FRAGMENT:
                self.updates += 1
                for fid, t0 in list(self.poll_sent.items()):
                    self.stats["poll"].append(t - t0)
                    del self.poll_sent[fid]
            elif status == ForwardMsgStatus.FULL:
                self.full_done.set()
                if self.pending_x and self.pending_x[2]:
                    self.stats["full_run"].append(t - self.pending_x[1])
                    self.pending_x = None

    def _element(self, el, t: float) -> None:
        which = el.WhichOneof("type")
        if which in ("number_input", "button"):
            wid = getattr(el, which).id
            self.widget_ids[wid.rsplit("-", 1)[-1]] = wid
        elif which == "bidi_component" and self.pending_x and not self.pending_x[2]:
            try:
                data = json.loads(el.bidi_component.json)
                left = data["initialDrawing"]["objects"][0]["left"]
            except (ValueError, KeyError, IndexError, TypeError):
                return
            x, t0, _ = self.pending_x
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

    async def move_x(self, timeout: float = 120) -> None:
        """Type a new x and wait until the canvas shows it (and the run has finished). An interaction that shows
        nothing within ``timeout`` is counted as unanswered (it enters the percentiles as infinitely slow)."""
        x = random.choice([v for v in range(0, INPUT - 63, 7) if v != self.values.get(
            self.widget_ids["attack_loc_x"], (None, None))[1]])
        self.set_int("attack_loc_x", x)
        self.pending_x = (x, time.perf_counter(), False)
        await self.rerun()
        end = time.perf_counter() + timeout
        while self.pending_x is not None and time.perf_counter() < end:
            await asyncio.sleep(0.02)
        if self.pending_x is not None:
            if not self.pending_x[2]:
                self.stats[self.phase].append(float("inf"))
                self.stats["lost"].append((self.index, round(time.perf_counter() - self.pending_x[1]),
                                           self.result_shown))
            self.pending_x = None

    async def close(self) -> None:
        for task in self.timers.values():
            task.cancel()
        await self.ws.close()
        if self.reader:
            self.reader.cancel()


class ForwardMsgStatus:
    FULL, FRAGMENT = 0, 3  # ForwardMsg.ScriptFinishedStatus: FINISHED_SUCCESSFULLY, FINISHED_FRAGMENT_RUN_...


async def run(args) -> dict:
    stats = {"interaction": [], "baseline": [], "full_run": [], "poll": [], "lost": []}
    tmp = Path(tempfile.mkdtemp(prefix="lavan-load-"))
    extra = [part for arg in args.streamlit_arg for part in arg.split("=", 1)]
    with streamlit_server(tmp / "cache", tmp / "server.log", extra_args=extra) as srv:
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
        for s in sessions:  # each its own configuration: iterations and seed, then Train (clicked one after another)
            s.set_int("attack_steps", args.iters)
            s.set_int("attack_seed", 1000 + s.index)
            s.full_done.clear()
            await s.rerun(trigger=s.widget_ids["attack_train"])
            await asyncio.sleep(0.2)
        t_click = time.perf_counter()
        await asyncio.wait([asyncio.create_task(s.full_done.wait()) for s in sessions], timeout=args.setup_timeout)
        out["train_answered"] = sum(s.full_done.is_set() for s in sessions)
        out["train_wait"] = time.perf_counter() - t_click
        await asyncio.sleep(2)  # the first polls arrive
        stats["poll"].clear()
        for s in sessions:
            s.updates = 0
        rss_peak = rss_mb(proc.pid)
        t_end = time.perf_counter() + args.seconds
        load0, cpu0, server0, wall0 = os.getloadavg(), time.process_time(), cpu_s(proc.pid), time.perf_counter()

        async def user(s: Session) -> None:
            await asyncio.sleep(random.uniform(0, 2))
            while time.perf_counter() < t_end:
                await s.move_x(timeout=t_end + args.grace - time.perf_counter())
                await asyncio.sleep(random.uniform(2, 6))

        async def watch_rss() -> None:
            nonlocal rss_peak
            while time.perf_counter() < t_end:
                rss_peak = max(rss_peak, rss_mb(proc.pid))
                await asyncio.sleep(1)

        await asyncio.gather(watch_rss(), *(user(s) for s in sessions))
        out["load_during"] = (load0, os.getloadavg())
        out["client_cpu"], out["server_cpu"] = time.process_time() - cpu0, cpu_s(proc.pid) - server0
        out["window"] = time.perf_counter() - wall0
        out["updates"] = sorted(s.updates for s in sessions)
        out["queued_pages"] = sum(bool(s.queue_places) for s in sessions)
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
    print(f"sessions: {args.sessions}, each training up to {args.iters} iterations (LAVAN_MAX_JOBS=2: 2 run, "
          f"the others queue); {out['polling']} pages still polling at the end of the window ({args.seconds:.0f} s, "
          f"{out['window']:.0f} s with the last answers); "
          f"progress updates received per page in the window: min {out['updates'][0]}, median "
          f"{statistics.median(out['updates']):.0f}, max {out['updates'][-1]}; {out['queued_pages']} pages showed "
          f"a queue place, {out['training_pages']} showed training progress (last iterations seen: "
          f"{', '.join(map(str, out['iterations']))})")
    print(f"Train clicked on every page: {out['train_answered']}/{args.sessions} of those runs had finished "
          f"{out['train_wait']:.0f} s after the last click (the window starts then, at most "
          f"{args.setup_timeout:.0f} s)")
    print(f"CPU used in the window: server {out['server_cpu']:.0f} s ({out['server_cpu'] / out['window']:.2f} cores), "
          f"this client {out['client_cpu']:.1f} s")
    print()
    print("| measurement | sessions | samples | median | p95 | max |")
    print("|---|---|---|---|---|---|")
    rows = [("response: x typed → canvas redrawn at x, 1 session, nothing training", 1, st["baseline"]),
            ("**response: x typed → canvas redrawn at x**", args.sessions, st["interaction"]),
            ("same interaction, until its full run finished", args.sessions, st["full_run"]),
            ("progress poll: fragment rerun sent → fragment run finished", args.sessions, st["poll"])]
    for name, n, xs in rows:
        print(f"| {name} | {n} | {len(xs)} | {ms(statistics.median(xs) if xs else float('nan'))} | "
              f"{ms(pct(xs, 0.95))} | {ms(max(xs, default=float('nan')))} |")
    lost = sum(x == float("inf") for x in st["interaction"])
    if lost:
        print(f"\n∞: {lost} interactions got no redrawn canvas before the window closed (+{args.grace:.0f} s grace); "
              f"they count as infinitely slow in the percentiles. (page, seconds waited, page had shown a finished "
              f"training's result): {st['lost']}")
    print()
    print("| server RSS | MiB |")
    print("|---|---|")
    for k, label in (("rss_start", "started, no session"), ("rss_one_session", "1 session (model loaded)"),
                     ("rss_sessions_open", f"{args.sessions} sessions open, nothing training"),
                     ("rss_peak", "peak in the window (2 trainings running)"), ("rss_end", "end of the window")):
        print(f"| {label} | {out[k]:.0f} |")
    opened = out["rss_sessions_open"] - out["rss_one_session"]
    print(f"\nefficientnet-lite0 weights: {size:.1f} MiB. Opening {args.sessions - 1} more sessions: {opened:+.0f} MiB "
          f"({opened / size:.1f}× the model; a model copy per session would add {args.sessions - 1}×). The peak "
          f"adds the 2 running trainings' activations and the sessions' states: "
          f"{out['rss_peak'] - out['rss_one_session']:+.0f} MiB over one session.")


if __name__ == "__main__":
    main()
