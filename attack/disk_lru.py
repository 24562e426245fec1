"""A size cap with least-recently-used eviction for an on-disk cache directory: the one implementation behind
:class:`attack.cache.PatchCache` (trained patches) and :class:`attack.result_cache.ResultCache` (analysis results),
so a classroom server that runs for weeks does not fill its disk.

* The cap: ``max_bytes=`` (an explicit argument wins; ``0`` = unbounded), else ``$LAVAN_CACHE_MAX_MB`` (MiB; ``0``
  or ``none`` = unbounded), else :data:`DEFAULT_MAX_MB` (2048 MiB). It applies to each cache directory on its own
  (patches in the cache dir, results in its ``results/``).
* An entry is every file named ``<64 hex digits><suffix>`` with the same key (a patch's tensor file and its history
  side file go together). Its recency is its newest file's mtime: a put stamps the entry's files, a hit
  (:meth:`DiskLRU.touch`) re-stamps them — one ``utime`` per file, no scan.
* After a put, one scan sums the directory; above the cap it deletes the least recently used entries (all their
  files) until the total is at most 90% of the cap. The entry just written is never deleted, nor is any entry used
  after it (another process's fresh put or hit: that process evicts for itself), so an entry larger than the cap
  survives as the only one. A put skips the scan while this process's own writes since its last scan still fit
  under the cap (so at the cap a scan comes once per 10% of the cap written, not per put), and rescans at least
  every :data:`RESCAN_S` (10 min) to see other processes' writes: a directory shared with other processes may
  overshoot by what they wrote in that time.
* Shared directories (threads, processes): every file may vanish between listing, stat and unlink; that is skipped,
  never raised, and a reader whose entry is evicted under it sees a miss. Temp files (``.tmp-*``, written then
  renamed into place) are never counted; they and incomplete entries (no ``complete`` file, e.g. a patch's history
  whose tensor file is still being written) are left alone for an hour, then removed as a killed writer's leftovers.
* Cost: a get adds one ``utime`` per file of a hit; a scan is one ``scandir`` per folder and one ``stat`` per entry
  file. Measured with ``python -c "import attack.disk_lru as m; m.bench_scan()"`` (median of 5 scans, warm page
  cache, ext4) on the project's 2-core dev machine while shared with other jobs (load ~4): 5,000 patch entries
  (10,000 files) 64-118 ms over five runs, 5,000 results in 256 folders 31-38 ms: about 7-12 µs per file. A 63 px
  patch is 48 KB of tensor plus its history, so a full default cap is some tens of thousands of entries and a scan
  of several times that, which is why a put does not scan every time.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DiskLRU", "Capped", "cap_bytes", "DEFAULT_MAX_MB", "ENV_VAR", "STALE_S", "KEEP_FRACTION", "RESCAN_S"]

ENV_VAR = "LAVAN_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
KEEP_FRACTION = 0.9  # eviction stops at this fraction of the cap, so the next puts do not each evict again
STALE_S = 3600.0  # temp files and incomplete entries older than this are a killed writer's leftovers
RESCAN_S = 600.0  # a put rescans at least this often, to see what other processes wrote
_HEX = frozenset("0123456789abcdef")
# per directory (absolute path) and cap, shared by every DiskLRU of this process: (time.monotonic() of the last
# scan, bytes this process may still write before that cap is reached)
_budget: dict[tuple[str, int | None], tuple[float, int]] = {}
_budget_lock = threading.Lock()


def cap_bytes(max_bytes: int | None = None) -> int | None:
    """The byte cap: ``max_bytes`` when given (``0`` = unbounded), else ``$LAVAN_CACHE_MAX_MB`` MiB (``0``, ``none``
    = unbounded), else :data:`DEFAULT_MAX_MB` MiB. ``None`` means unbounded."""
    if max_bytes is not None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0 (0 = unbounded), not {max_bytes}")
        return int(max_bytes) or None
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if not env:
        return DEFAULT_MAX_MB * 2**20
    if env in ("none", "0", "unbounded", "unlimited"):
        return None
    try:
        mb = float(env)
    except ValueError:
        raise ValueError(f"${ENV_VAR} is a number of MiB, 0 or 'none' (unbounded), not {env!r}") from None
    if not mb > 0:
        raise ValueError(f"${ENV_VAR} must be > 0 MiB, or 0 / 'none' for unbounded, not {env!r}")
    return max(1, int(mb * 2**20))


@dataclass
class _Entry:
    size: int = 0
    last_ns: int = 0
    paths: list[str] = field(default_factory=list)  # plain strings: a Path per file would triple a scan's time
    complete: bool = False


def _key_of(name: str, suffixes: tuple[str, ...]) -> str | None:
    for s in suffixes:
        if name.endswith(s):
            stem = name[:-len(s)]
            if len(stem) == 64 and _HEX.issuperset(stem):
                return stem
    return None


class DiskLRU:
    """Bookkeeping for one cache directory. ``root``: the directory; ``depth``: 0 when entries lie in ``root``
    itself, 1 when they lie one folder down (``root/ab/<key>.json``); ``suffixes``: the file names of an entry's
    files after the key; ``complete``: the suffix whose presence marks a finished entry; ``max_bytes``: see
    :func:`cap_bytes`. Anything else in the directory (other folders, other files) is neither counted nor touched."""

    def __init__(self, root: str | Path, *, depth: int = 0, suffixes: tuple[str, ...] = (".json",),
                 complete: str | None = None, max_bytes: int | None = None):
        if depth not in (0, 1):
            raise ValueError("depth is 0 or 1")
        self.root = Path(root)
        self.depth = depth
        self.suffixes = tuple(suffixes)
        self.complete = complete or self.suffixes[0]
        self.max_bytes = cap_bytes(max_bytes)
        self._budget_key = (os.path.abspath(self.root), self.max_bytes)

    # ---------------------------------------------------------------------------------------------- recency
    @staticmethod
    def touch(*paths: str | Path, now_ns: int | None = None) -> None:
        """Mark an entry as used now (a hit, or a put): stamp its files' mtime. A file that is gone is skipped."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        for p in paths:
            try:
                os.utime(p, ns=(now_ns, now_ns))
            except OSError:
                pass

    # ---------------------------------------------------------------------------------------------- scan
    def _folders(self):
        if self.depth == 0:
            yield str(self.root)
            return
        try:
            with os.scandir(self.root) as it:
                subdirs = [e.path for e in it if e.is_dir(follow_symlinks=False)]
        except OSError:
            return
        yield from subdirs

    def scan(self, *, now: float | None = None, tidy: bool = True) -> dict[str, _Entry]:
        """Every entry in the directory, by key (incomplete ones flagged). With ``tidy``, temp files and incomplete
        entries older than :data:`STALE_S` are removed on the way (and left out)."""
        now = time.time() if now is None else now
        entries: dict[str, _Entry] = {}
        for folder in self._folders():
            try:
                with os.scandir(folder) as it:
                    items = list(it)
            except OSError:  # not created yet, or removed by another process
                continue
            for item in items:
                name = item.name
                tmp = name.startswith(".tmp-")
                key = None if tmp else _key_of(name, self.suffixes)
                if not tmp and key is None:  # not ours (another folder, another file): no stat
                    continue
                try:
                    if not item.is_file(follow_symlinks=False):
                        continue
                    st = item.stat(follow_symlinks=False)
                except OSError:  # vanished between listing and stat
                    continue
                if tmp:
                    if tidy and now - st.st_mtime > STALE_S:
                        _unlink(item.path)
                    continue
                e = entries.get(key)
                if e is None:
                    e = entries[key] = _Entry()
                e.size += st.st_size
                if st.st_mtime_ns > e.last_ns:
                    e.last_ns = st.st_mtime_ns
                e.paths.append(item.path)
                if not e.complete and name.endswith(self.complete):
                    e.complete = True
        if tidy:
            for key in [k for k, e in entries.items() if not e.complete and now - e.last_ns / 1e9 > STALE_S]:
                for p in entries.pop(key).paths:
                    _unlink(p)
        return entries

    def size_bytes(self) -> int:
        """Bytes in the directory's entries (complete ones; what the cap counts)."""
        return sum(e.size for e in self.scan(tidy=False).values() if e.complete)

    def stats(self) -> dict:
        """``{"entries", "bytes", "max_bytes"}`` (``max_bytes`` None = unbounded), from one scan."""
        done = [e for e in self.scan(tidy=False).values() if e.complete]
        return {"entries": len(done), "bytes": sum(e.size for e in done), "max_bytes": self.max_bytes}

    # ---------------------------------------------------------------------------------------------- eviction
    def after_put(self, key: str, *paths: str | Path) -> list[str]:
        """Call after writing entry ``key`` (its ``paths``): stamp it as the newest, then, when the directory is
        over the cap, delete least recently used entries until it is at most :data:`KEEP_FRACTION` of the cap.
        The scan is skipped while this process's own writes since its last scan of the directory still fit under
        the cap that scan found (and that scan is under :data:`RESCAN_S` old). Returns the evicted keys, oldest
        first."""
        now_ns = time.time_ns()
        self.touch(*paths, now_ns=now_ns)
        if self.max_bytes is None:
            return []
        written = 0
        for p in paths:
            try:
                written += os.stat(p).st_size
            except OSError:
                pass
        mono = time.monotonic()
        with _budget_lock:
            scanned_at, left = _budget.get(self._budget_key, (None, 0))
            left -= written
            if scanned_at is not None and left >= 0 and mono - scanned_at < RESCAN_S:
                _budget[self._budget_key] = (scanned_at, left)
                return []
        return self.evict(key, now_ns=now_ns)

    def evict(self, keep: str | None = None, *, now_ns: int | None = None) -> list[str]:
        """Scan now and, when over the cap, delete least recently used entries until the total is at most
        :data:`KEEP_FRACTION` of the cap; ``keep`` and entries used after it are never deleted. Returns the
        evicted keys, oldest first."""
        mono = time.monotonic()
        entries = self.scan()
        total = sum(e.size for e in entries.values() if e.complete)
        evicted: list[str] = []
        if self.max_bytes is not None and total > self.max_bytes:
            mine = entries.get(keep) if keep is not None else None
            newest_allowed = mine.last_ns if mine is not None else (now_ns or time.time_ns())
            victims = sorted((e.last_ns, k) for k, e in entries.items()
                             if k != keep and e.complete and e.last_ns <= newest_allowed)
            goal = self.max_bytes * KEEP_FRACTION
            for _, k in victims:
                if total <= goal:
                    break
                for p in entries[k].paths:
                    _unlink(p)
                total -= entries[k].size
                evicted.append(k)
        if self.max_bytes is not None:
            with _budget_lock:
                _budget[self._budget_key] = (mono, self.max_bytes - total)
        return evicted

    def clear(self) -> int:
        """Delete every entry file (complete or not; temp files being written are left); returns how many."""
        n = 0
        for e in self.scan(tidy=False).values():
            n += sum(_unlink(p) for p in e.paths)
        with _budget_lock:
            for k in [k for k in _budget if k[0] == self._budget_key[0]]:
                del _budget[k]
        return n


class Capped:
    """What a size-capped cache offers besides get/put (its ``lru``: the :class:`DiskLRU` of its directory)."""
    lru: DiskLRU

    def clear(self) -> int:
        """Delete every entry; returns how many files went."""
        return self.lru.clear()

    def stats(self) -> dict:
        """``{"entries", "bytes", "max_bytes"}`` of the directory (one scan; ``max_bytes`` None = unbounded)."""
        return self.lru.stats()

    def size_bytes(self) -> int:
        return self.lru.size_bytes()


def _unlink(path: str | Path) -> bool:
    """Remove ``path``; False when it was already gone or cannot be removed (another process got there first)."""
    try:
        os.unlink(path)
        return True
    except OSError:
        return False


def bench_scan(n: int = 5000, repeats: int = 5) -> None:  # pragma: no cover
    """Print how long a scan of ``n`` patch entries and of ``n`` results takes (the numbers in the docstring)."""
    import statistics
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        flat, nested = Path(d) / "patches", Path(d) / "results"
        flat.mkdir()
        for i in range(n):
            key = f"{i:064x}"
            (flat / f"{key}.safetensors").write_bytes(b"\0" * 50_000)
            (flat / f"{key}.json").write_text("[]" * 100)
            sub = nested / key[-2:]
            sub.mkdir(parents=True, exist_ok=True)
            (sub / f"{key}.json").write_text("{}" * 500)
        for label, lru in (("patches", DiskLRU(flat, suffixes=(".safetensors", ".json"), complete=".safetensors")),
                           ("results", DiskLRU(nested, depth=1))):
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                entries = lru.scan()
                times.append(time.perf_counter() - t)
            print(f"{label}: {len(entries)} entries, scan median {statistics.median(times) * 1e3:.1f} ms "
                  f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f})")
