"""Size cap with least-recently-used eviction (attack.disk_lru), shared by PatchCache and ResultCache: a hit protects
an old entry, the entry just written survives even above the cap, the cap comes from max_bytes= or
$LAVAN_CACHE_MAX_MB, files vanishing under a scan (another process) are tolerated, temp files are left alone."""
from __future__ import annotations

import os
import time

import pytest
import torch

import attack.disk_lru as disk_lru
from attack.cache import PatchCache, cache_key
from attack.disk_lru import DiskLRU, cap_bytes
from attack.result_cache import ResultCache
from attack.results import PatchResult


def _patch(seed=0) -> PatchResult:
    return PatchResult(patch=torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(seed)), loc=(0, 0),
                       target=859, source=281, domain="network", size=8, steps=5, success={}, p_target=0.2,
                       p_source=0.3, history={"p_target": [0.1, 0.2]}, model_name="efficientnet-lite0",
                       input_size=224)


class Patches:
    """PatchCache through one small interface, so every test runs on both caches."""
    name = "patches"

    def __init__(self, root, **kw):
        self.cache = PatchCache(root, **kw)

    def put(self, key):
        self.cache.put(key, _patch())

    def get(self, key):
        return self.cache.get(key)

    def files(self, key):
        return [self.cache.root / f"{key}.safetensors", self.cache.root / f"{key}.json"]


class Results:
    name = "results"

    def __init__(self, root, **kw):
        self.cache = ResultCache(root, **kw)

    def put(self, key):
        self.cache.put(key, {"curve": [0.5] * 50})

    def get(self, key):
        return self.cache.get(key)

    def files(self, key):
        return [self.cache.path(key)]


CACHES = [Patches, Results]


def _key(i: int) -> str:
    return cache_key(test="disk_lru", i=i)


def _entry_bytes(kind, tmp_path) -> int:
    c = kind(tmp_path / "measure", max_bytes=0)
    c.put(_key(0))
    return c.cache.size_bytes()


def _present(c, key) -> bool:
    return all(p.exists() for p in c.files(key))


@pytest.mark.parametrize("kind", CACHES, ids=lambda k: k.name)
def test_eviction_is_least_recently_used_and_a_hit_protects_an_old_entry(kind, tmp_path):
    size = _entry_bytes(kind, tmp_path)
    c = kind(tmp_path / "c", max_bytes=int(3.5 * size))
    a, b, cc, d = (_key(i) for i in range(4))
    for k in (a, b, cc):
        c.put(k)
    assert all(_present(c, k) for k in (a, b, cc))  # 3 entries fit under 3.5
    assert c.get(a) is not None  # a, the oldest, is used again …
    c.put(d)  # … so the fourth put evicts b, now the least recently used, down to <= 90% of the cap
    assert _present(c, a) and not any(p.exists() for p in c.files(b)) and _present(c, cc) and _present(c, d)
    assert c.get(b) is None and c.get(a) is not None
    st = c.cache.stats()
    assert st == {"entries": 3, "bytes": 3 * size, "max_bytes": int(3.5 * size)}


@pytest.mark.parametrize("kind", CACHES, ids=lambda k: k.name)
def test_the_entry_just_written_survives_even_when_larger_than_the_cap(kind, tmp_path):
    c = kind(tmp_path, max_bytes=1)
    c.put(_key(0))
    assert c.get(_key(0)) is not None  # alone and over the cap: kept
    c.put(_key(1))
    assert c.get(_key(1)) is not None and c.get(_key(0)) is None
    assert not any(p.exists() for p in c.files(_key(0)))  # all of an entry's files went together


def test_cap_from_environment_and_argument(monkeypatch, tmp_path):
    monkeypatch.delenv("LAVAN_CACHE_MAX_MB", raising=False)
    assert cap_bytes() == disk_lru.DEFAULT_MAX_MB * 2**20 == 2048 * 2**20
    monkeypatch.setenv("LAVAN_CACHE_MAX_MB", "3")
    assert cap_bytes() == 3 * 2**20
    assert PatchCache(tmp_path).lru.max_bytes == ResultCache(tmp_path).lru.max_bytes == 3 * 2**20
    assert PatchCache(tmp_path, max_bytes=1234).lru.max_bytes == 1234  # the argument wins
    assert ResultCache(tmp_path, max_bytes=0).lru.max_bytes is None  # 0 = unbounded, whatever the environment
    for unbounded in ("0", "none", "None"):
        monkeypatch.setenv("LAVAN_CACHE_MAX_MB", unbounded)
        assert cap_bytes() is None and PatchCache(tmp_path).lru.max_bytes is None
    monkeypatch.setenv("LAVAN_CACHE_MAX_MB", "0.5")
    assert cap_bytes() == 2**19
    for bad in ("lots", "-5"):
        monkeypatch.setenv("LAVAN_CACHE_MAX_MB", bad)
        with pytest.raises(ValueError, match="LAVAN_CACHE_MAX_MB"):
            cap_bytes()
    with pytest.raises(ValueError):
        cap_bytes(-1)


@pytest.mark.parametrize("kind", CACHES, ids=lambda k: k.name)
def test_unbounded_never_evicts(kind, tmp_path):
    c = kind(tmp_path, max_bytes=0)
    for i in range(5):
        c.put(_key(i))
    assert c.cache.stats()["entries"] == 5 and c.cache.stats()["max_bytes"] is None


@pytest.mark.parametrize("kind", CACHES, ids=lambda k: k.name)
def test_files_deleted_by_another_process_are_a_miss_never_an_error(kind, tmp_path, monkeypatch):
    c = kind(tmp_path, max_bytes=1)
    c.put(_key(0))
    for p in c.files(_key(0)):  # another process evicted it between our calls
        p.unlink()
    assert c.get(_key(0)) is None
    c.put(_key(1))
    c.put(_key(2))  # evicts 1, whose files are gone under the scan:
    real_scandir = os.scandir

    def scandir_then_vanish(path):  # list the folder, then another process deletes every entry file before stat
        with real_scandir(path) as it:
            items = list(it)
        for item in items:
            if not item.name.startswith(".") and item.is_file():
                os.unlink(item.path)

        class Listing(list):
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False
        return Listing(items)
    monkeypatch.setattr(disk_lru.os, "scandir", scandir_then_vanish)
    assert c.cache.lru.evict() == []  # nothing left to stat or delete; no exception
    c.put(_key(3))
    monkeypatch.undo()
    assert c.get(_key(1)) is None and c.get(_key(2)) is None
    c.put(_key(4))
    assert c.get(_key(4)) is not None


def test_a_patch_missing_one_of_its_files_is_a_miss_and_removed_by_eviction(tmp_path):
    c = Patches(tmp_path, max_bytes=1)
    c.put(_key(0))
    c.files(_key(0))[1].unlink()  # its history went (another process's get found it corrupt, say)
    assert c.get(_key(0)) is None
    c.put(_key(1))
    c.put(_key(2))
    assert not c.files(_key(1))[0].exists() and c.get(_key(2)) is not None


@pytest.mark.parametrize("kind", CACHES, ids=lambda k: k.name)
def test_temp_files_being_written_are_not_counted_nor_deleted_old_ones_are(kind, tmp_path):
    c = kind(tmp_path, max_bytes=1)
    c.put(_key(0))
    folder = c.files(_key(0))[0].parent
    fresh, old = folder / ".tmp-writing.json", folder / ".tmp-killed.json"
    fresh.write_bytes(b"x" * 10_000)  # a writer is still at it
    old.write_bytes(b"x" * 10_000)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))  # a writer killed long ago
    assert c.cache.size_bytes() < 10_000
    c.put(_key(1))
    assert fresh.exists() and not old.exists()
    assert c.cache.clear() >= 1 and fresh.exists()  # clear leaves a temp file being written alone


def test_an_incomplete_patch_entry_is_left_alone_while_fresh_and_removed_when_stale(tmp_path):
    """A patch's history is written before its tensor file: a history alone may be a put in progress."""
    c = Patches(tmp_path, max_bytes=1)
    writing, killed = _key(10), _key(11)
    (tmp_path / f"{writing}.json").write_text("{}")
    (tmp_path / f"{killed}.json").write_text("{}")
    two_hours_ago = time.time() - 2 * 3600
    os.utime(tmp_path / f"{killed}.json", (two_hours_ago, two_hours_ago))
    c.put(_key(0))
    c.put(_key(1))
    assert (tmp_path / f"{writing}.json").exists() and not (tmp_path / f"{killed}.json").exists()
    assert c.cache.stats()["entries"] == 1


def test_the_patch_cache_counts_only_its_own_files(tmp_path):
    """PatchCache and ResultCache share a cache dir (results/ under the patches) and have separate caps; other
    files there (matplotlib's font cache) are neither counted nor evicted."""
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "fontlist.json").write_bytes(b"x" * 5000)
    (tmp_path / "notes.json").write_bytes(b"x" * 5000)
    rc = ResultCache(tmp_path, max_bytes=0)
    rc.put(_key(5), {"big": "y" * 20_000})
    pc = PatchCache(tmp_path, max_bytes=1)
    pc.put(_key(0), _patch())
    pc.put(_key(1), _patch())
    assert pc.stats()["entries"] == 1 and pc.size_bytes() < 20_000
    assert rc.get(_key(5)) is not None and (tmp_path / "notes.json").exists()
    assert (tmp_path / "matplotlib" / "fontlist.json").exists()
    assert rc.stats()["entries"] == 1 and rc.size_bytes() > 20_000


def test_both_caches_use_the_same_code_path(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(DiskLRU, "after_put", lambda self, key, *paths: calls.append(("put", self.root, key)))
    real_touch = DiskLRU.touch
    monkeypatch.setattr(DiskLRU, "touch", staticmethod(lambda *p, **kw: (calls.append(("hit",)),
                                                                        real_touch(*p, **kw))))
    pc, rc = PatchCache(tmp_path), ResultCache(tmp_path)
    assert type(pc.lru) is type(rc.lru) is DiskLRU
    pc.put(_key(0), _patch())
    rc.put(_key(1), [1, 2])
    assert pc.get(_key(0)) is not None and rc.get(_key(1)) == [1, 2]
    assert calls == [("put", tmp_path, _key(0)), ("put", tmp_path / "results", _key(1)), ("hit",), ("hit",)]


def test_a_put_scans_only_when_its_writes_may_have_reached_the_cap(tmp_path, monkeypatch):
    scans = []
    real_scan = DiskLRU.scan
    monkeypatch.setattr(DiskLRU, "scan", lambda self, **kw: (scans.append(1), real_scan(self, **kw))[1])
    c = Results(tmp_path / "c", max_bytes=10**6)
    c.put(_key(0))
    assert len(scans) == 1  # a process's first put in a directory scans
    for i in range(1, 5):
        c.put(_key(i))
    assert len(scans) == 1  # far under the cap: no more scans
    scans.clear()
    small = Results(tmp_path / "c", max_bytes=1)
    small.put(_key(5))
    small.put(_key(6))
    assert len(scans) == 2  # at the cap every put scans (a second cap on the same folder keeps its own count)
    assert small.cache.stats()["entries"] == 1
