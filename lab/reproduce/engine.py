"""Where an experiment's chunks of configs are trained: in this process (``--engine local``, the default) or as Ray
tasks on a cluster (``--engine ray [--address ADDRESS]``).

Both engines run the same chunk function over the same chunks (``--batch`` configs each, seeded from the chunk's
first config key), so they write the same rows. The driver (this process) keeps the resumable CSV: it appends
each chunk's rows as the chunk arrives and drops rows whose ``config`` is already there, so a retried Ray task or
a restarted run never writes a row twice. A Ray task returns its rows and the files it wrote (patches) instead of
writing on its node, so a multi-node cluster needs no shared disk.

Ray is imported only here, inside :class:`RayEngine`: ``attack``, ``lab`` and the app never need it.
"""
from __future__ import annotations

import importlib.util
import os
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

RAY_VERSION = "2.60.0"  # requirements-dev.txt pins the same; every node of a cluster needs the same version
RAY_HINT = (f"--engine ray needs Ray, which is not installed: pip install 'ray=={RAY_VERSION}' (every node of the "
            "cluster needs the same Ray and Python, plus this project's requirements.txt); or leave out --engine "
            "to train in this process")
ENGINES = ("local", "ray")

# fn(ctx, job, chunk) -> rows: a module-level function (Ray pickles it by name) that writes its files under
# ctx.opts.out and returns one row per config of the chunk. An engine maps it over a list of (job, chunk) pairs
# and yields (job, chunk, rows) as chunks finish.
ChunkFn = Callable[..., list[dict]]


def make_engine(opts):
    """The engine ``opts.engine`` names; fails at once (before any training) when Ray is asked for but missing."""
    name = getattr(opts, "engine", None) or "local"
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    if name == "local":
        return LocalEngine()
    if importlib.util.find_spec("ray") is None:
        raise ValueError(RAY_HINT)
    return RayEngine(opts)


class LocalEngine:
    """Chunks one after the other in this process; stops before a chunk once ``--time-budget`` is spent."""

    name = "local"

    def map(self, ctx, fn: ChunkFn, work: Iterable[tuple]) -> Iterator[tuple]:
        for job, chunk in work:
            if ctx.out_of_time():
                return
            yield job, chunk, fn(ctx, job, chunk)

    def close(self) -> None:
        pass


class RayEngine:
    """Each chunk is one Ray task: a GPU each when the cluster has GPUs (and ``--device`` is not cpu), else
    ``--threads`` CPUs (default 1; Ray sets the task's OMP_NUM_THREADS to it). Connects to ``--address`` or, without
    one, starts a local Ray instance (no dashboard, a small object store) that :meth:`close` shuts down again.

    A task loads the model once for its whole chunk. CPU workers are reused between tasks and keep their models;
    GPU workers are not (Ray's default for GPU tasks), so a GPU task pays one model load per chunk: use a large
    ``--batch`` there. At most one task per free slot is in flight, so a ``--time-budget`` stops the run with
    few configs started: the tasks in flight get the budget's wall-clock deadline and end their configs at the
    iteration reached, as in-process.
    """

    name = "ray"

    def __init__(self, opts):
        self.opts = opts
        self.address = getattr(opts, "address", None)
        self._started = False

    def _ray(self):
        import ray  # noqa: PLC0415  (only on this path)

        if not ray.is_initialized():
            import attack
            import lab
            from attack.images import photos_dir

            # The nodes get this checkout's attack/ and lab/ (not the rest of it) and the LAVAN_* settings; the photos
            # folder is named by its path here, which is where a one-node cluster (or a shared disk) has it.
            env_vars = {"LAVAN_PHOTOS_DIR": str(photos_dir().resolve()),
                        **{k: v for k, v in os.environ.items() if k.startswith("LAVAN_")}}
            env = {"py_modules": [str(Path(m.__file__).parent) for m in (attack, lab)], "env_vars": env_vars}
            if self.address:  # an existing cluster (or ray:// for Ray Client) keeps its own resources and settings
                ray.init(address=self.address, runtime_env=env)
            else:  # a new local instance ("local": never a cluster found via RAY_ADDRESS or `ray start`), no
                # dashboard, a small object store (rows and patches are small)
                ray.init(address="local", num_cpus=int(os.environ.get("LAVAN_RAY_CPUS", os.cpu_count() or 1)),
                         object_store_memory=int(os.environ.get("LAVAN_RAY_STORE_MB", "200")) * 2 ** 20,
                         include_dashboard=False, configure_logging=False, runtime_env=env)
            self._started = True
        return ray

    def resources(self, ray) -> dict:
        """Ray options for one chunk's task and the number of tasks the cluster runs at once."""
        total = ray.cluster_resources()
        cpus = max(1, int(self.opts.threads or 1))
        if total.get("GPU", 0) >= 1 and self.opts.device != "cpu":
            return {"num_gpus": 1, "num_cpus": cpus, "slots": int(total["GPU"])}
        return {"num_gpus": 0, "num_cpus": cpus, "slots": max(1, int(total.get("CPU", 1)) // cpus)}

    def map(self, ctx, fn: ChunkFn, work: Iterable[tuple]) -> Iterator[tuple]:
        ray = self._ray()
        res = self.resources(ray)
        task = ray.remote(max_retries=3, retry_exceptions=False)(_run_chunk).options(
            num_gpus=res["num_gpus"], num_cpus=res["num_cpus"])
        fields = {k: v for k, v in vars(self.opts).items() if k not in ("log", "command", "engine", "address")}
        fields["out"] = None
        todo = list(work)
        pending: dict = {}
        ctx.opts.log(f"[{ctx.opts.name}] ray: {len(todo)} chunks, {res['slots']} at a time, "
                     f"{'1 GPU' if res['num_gpus'] else str(res['num_cpus']) + ' CPU'} each")
        while todo or pending:
            while todo and len(pending) < res["slots"] and not ctx.out_of_time():
                job, chunk = todo.pop(0)
                deadline = None if ctx.deadline is None else time.time() + max(0.0, ctx.deadline - _clock())
                pending[task.remote(fields, fn, job, chunk, deadline)] = (job, chunk)
            if not pending:
                return  # out of time: the chunks left wait for a later run
            ready, _ = ray.wait(list(pending), num_returns=1)
            job, chunk = pending.pop(ready[0])
            rows, files = ray.get(ready[0])
            for rel, data in files.items():  # patches first: a row never names a file that is not there
                _write(ctx.opts.out / rel, data)
            yield job, chunk, rows

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _clock() -> float:
    from . import runner

    return runner._clock()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


_WORKER_CTX: dict = {}  # per worker process: one Ctx (models, photos) per set of options


def _run_chunk(fields: dict, fn: ChunkFn, job, chunk: list[dict], deadline: float | None):
    """A Ray task: train one chunk with a Ctx built from the driver's options in a scratch folder; return the rows
    and every file written there (relative path -> bytes). The seed comes from the chunk, so a retry repeats it."""
    import torch

    from .runner import Ctx, Options
    from .runner import _clock as clock

    key = repr(sorted(fields.items()))
    if key not in _WORKER_CTX:
        if fields.get("threads"):
            torch.set_num_threads(int(fields["threads"]))
        _WORKER_CTX.clear()
        _WORKER_CTX[key] = Ctx(Options(**{**fields, "out": Path("."), "time_budget": None}))
    ctx = _WORKER_CTX[key]
    ctx.deadline = None if deadline is None else clock() + (deadline - time.time())
    ctx.cancel = ctx.out_of_time if deadline is not None else None
    with tempfile.TemporaryDirectory(prefix="lavan-chunk-") as tmp:
        ctx.opts.out = Path(tmp)
        rows = fn(ctx, job, chunk)
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    return rows, files
