"""Result cache: keyed by every input that matters, atomic writes (a killed writer never leaves a servable entry),
corrupted entries detected, removed and reported as a miss."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image

import attack
from attack.cache import PatchCache, cache_key
from attack.results import PatchResult

ROOT = Path(__file__).resolve().parent.parent

BASE = dict(model="efficientnet-lite0", input_size=224, image="0123456789abcdef", target=859, source=None,
            loc=[0, 0], size=56, domain="network", loss="logprob", steps=1000, lr=0.1, optimizer="adam",
            stop_at=0.9, seed=0, init="random")
CHANGES = dict(model="efficientnet-lite1", input_size=299, image="0123456789abcdee", target=858, source=281,
               loc=[0, 1], size=55, domain="image", loss="logit", steps=999, lr=0.1000001, optimizer="sgd",
               stop_at=0.95, seed=1, init="gray")


def _result(seed=0) -> PatchResult:
    patch = torch.randn(3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return PatchResult(patch=patch, loc=(0, 0), target=859, source=281, domain="network", size=8, steps=5,
                       success={"confident": False, "argmax": False, "not_source": True}, p_target=0.2,
                       p_source=0.3, history={"p_target": [0.1, 0.2], "p_source": [0.5, 0.3]},
                       model_name="efficientnet-lite0", input_size=224)


def test_key_is_stable_and_order_independent():
    assert cache_key(**BASE) == cache_key(**dict(reversed(list(BASE.items()))))
    assert len(cache_key(**BASE)) == 64


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_key_changes_with_every_input(field):
    assert cache_key(**{**BASE, field: CHANGES[field]}) != cache_key(**BASE)


def test_one_changed_image_byte_changes_the_image_hash():
    """The cache keys images by image_hash of the loaded tensor: one pixel off by one level is a different key."""
    arr = (torch.rand(224, 224, 3, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8).numpy()
    a = io.BytesIO()
    Image.fromarray(arr).save(a, "PNG")
    arr[100, 100, 0] ^= 1
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "PNG")
    ha, hb = attack.image_hash(attack.load_image(a.getvalue())), attack.image_hash(attack.load_image(b.getvalue()))
    assert ha != hb
    assert ha == attack.image_hash(attack.load_image(a.getvalue()))


def test_put_get_round_trip(tmp_path):
    cache = PatchCache(tmp_path)
    key = cache_key(**BASE)
    assert cache.get(key) is None
    res = _result()
    cache.put(key, res)
    hit = cache.get(key)
    assert hit is not None and hit.meta["cached"] is True
    assert torch.equal(hit.patch, res.patch) and hit.history == res.history
    assert cache.get(cache_key(**{**BASE, "target": 1})) is None
    assert not list(tmp_path.glob(".tmp-*"))


def test_keys_never_become_paths(tmp_path):
    cache = PatchCache(tmp_path / "c")
    for bad in ("../../etc/passwd", "a" * 63 + "/", "x" * 64, "", "A" * 64):
        with pytest.raises(ValueError, match="64 hex"):
            cache.get(bad)
        with pytest.raises(ValueError, match="64 hex"):
            cache.put(bad, _result())
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def _entry(tmp_path):
    cache = PatchCache(tmp_path)
    key = cache_key(**BASE)
    cache.put(key, _result())
    return cache, key, tmp_path / f"{key}.safetensors", tmp_path / f"{key}.json"


def _assert_miss_and_removed(cache, key, patch_path, hist_path):
    assert cache.get(key) is None
    assert not patch_path.exists() and not hist_path.exists()
    cache.put(key, _result(1))  # and it can be retrained and stored again
    assert torch.equal(cache.get(key).patch, _result(1).patch)


def test_garbage_entry_is_a_miss(tmp_path):
    cache, key, p, h = _entry(tmp_path)
    p.write_bytes(b"\x00garbage" * 10)
    _assert_miss_and_removed(cache, key, p, h)


def test_truncated_entry_is_a_miss(tmp_path):
    cache, key, p, h = _entry(tmp_path)
    p.write_bytes(p.read_bytes()[:-40])
    _assert_miss_and_removed(cache, key, p, h)


def test_flipped_byte_in_the_tensor_is_a_miss(tmp_path):
    """Bit rot inside the tensor data still parses as a valid patch: only a checksum can catch it."""
    cache, key, p, h = _entry(tmp_path)
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x01  # last tensor bytes (the data section ends the file)
    p.write_bytes(bytes(data))
    attack.load_patch(p)  # still a well-formed patch file …
    _assert_miss_and_removed(cache, key, p, h)  # … but not served from the cache


def test_corrupt_or_missing_history_is_a_miss(tmp_path):
    cache, key, p, h = _entry(tmp_path)
    h.write_text("{not json")
    _assert_miss_and_removed(cache, key, p, h)
    h.write_text(json.dumps({"p_target": [0.99]}))  # valid JSON, but not what was stored
    _assert_miss_and_removed(cache, key, p, h)
    h.unlink()
    _assert_miss_and_removed(cache, key, p, h)


def test_entry_under_another_key_is_a_miss(tmp_path):
    cache, key, p, h = _entry(tmp_path)
    other = cache_key(**{**BASE, "seed": 7})
    os.rename(p, tmp_path / f"{other}.safetensors")
    os.rename(h, tmp_path / f"{other}.json")
    assert cache.get(other) is None
    assert cache.get(key) is None


_KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {root!r})
    from attack.cache import PatchCache
    from attack.results import PatchResult
    res = PatchResult(patch=torch.ones(3, 8, 8), loc=(0, 0), target=859, source=1, domain="network", size=8,
                      steps=1, success={{}}, p_target=0.5, p_source=0.5, history={{"p_target": [0.5]}},
                      model_name="efficientnet-lite0", input_size=224)
    # die like a killed process at the worst moment: the patch bytes are written to the temp file, not yet renamed
    os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)
    PatchCache({cache!r}).put({key!r}, res)
    print("not killed")
""")


def test_killed_writer_leaves_nothing_servable(tmp_path):
    key = cache_key(**BASE)
    script = _KILLED_WRITER.format(root=str(ROOT), cache=str(tmp_path), key=key)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    leftovers = list(tmp_path.glob(".tmp-*"))
    assert leftovers, "the simulated kill should leave a temp file behind"
    assert leftovers[0].stat().st_size > 0  # a complete-looking file, yet never served
    assert not (tmp_path / f"{key}.safetensors").exists()
    cache = PatchCache(tmp_path)
    assert cache.get(key) is None
    cache.put(key, _result())  # the next writer completes normally, the leftover does not interfere
    assert torch.equal(cache.get(key).patch, _result().patch)


def test_clear(tmp_path):
    cache, key, p, h = _entry(tmp_path)
    assert cache.clear() == 2 and cache.get(key) is None


def test_training_key_is_the_cli_and_page_key_and_get_or_train_stores_once(tmp_path):
    from types import SimpleNamespace

    from attack.cache import get_or_train, training_key

    model = SimpleNamespace(name="efficientnet-lite0", input_size=224)
    key = training_key(model, "0123456789abcdef", 859, (0, 0), 56, domain="network", loss="logprob", steps=1000,
                       lr=0.1)
    assert key == cache_key(**BASE)  # the field list both callers used to spell out
    cache, calls = PatchCache(tmp_path), []

    def train():
        calls.append(1)
        return _result()
    res, hit = get_or_train(cache, key, train, "0123456789abcdef")
    assert not hit and res.meta["image_hash"] == "0123456789abcdef"
    res, hit = get_or_train(cache, key, train, "0123456789abcdef")
    assert hit and len(calls) == 1
