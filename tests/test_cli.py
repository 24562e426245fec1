"""`python -m attack …`: models, classify, attack --json (keys, patch file re-applied), cache hits/misses, errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

import attack
import attack.models
from attack.cli import main

ROOT = Path(__file__).resolve().parent.parent
ATTACK_KEYS = {"success_0_9", "argmax_target", "not_source", "iterations", "p_target", "p_source", "seconds",
               "patch_path"}


def _run(capsys, *argv) -> tuple[int, dict | None, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = [ln for ln in out.splitlines() if ln.strip()]
    payload = json.loads(lines[-1]) if "--json" in argv and lines else None
    if "--json" in argv:
        assert len(lines) == 1, f"--json must print exactly one line on stdout, got {out!r}"
    return code, payload, err


@pytest.fixture
def fast_models(monkeypatch):
    """Reuse one loaded model per (name, size) across in-process CLI calls (loading is not what these test)."""
    real = attack.models.load_model

    @lru_cache(maxsize=4)
    def cached(name="efficientnet-lite0", weights=None, device=None, input_size=None, channels_last=False,
               download=False, progress=None):
        return real(name, weights=weights, device=device, input_size=input_size, channels_last=channels_last)

    monkeypatch.setattr(attack.models, "load_model", cached)
    return cached


def test_models_json_subprocess(tmp_path):
    env = {**os.environ, "TORCH_HOME": str(tmp_path)}  # no torchvision weights cached
    proc = subprocess.run([sys.executable, "-m", "attack", "models", "--json"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    models = {m["name"]: m for m in out["models"]}
    assert set(models) == {"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2", "inception-v3"}
    assert sum(m["weights_available"] for m in models.values()) == 3
    assert not models["inception-v3"]["weights_available"] and models["inception-v3"]["needs_weights_file"]
    assert out["default"] == "efficientnet-lite0"


@pytest.mark.parametrize("command", ["models", "classify", "attack", "fragility", "transfer", "universal",
                                     "saliency"])
def test_help(capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "--json" in capsys.readouterr().out


def test_classify_sample(capsys, model, samples):
    sample = samples[1]
    code, out, _ = _run(capsys, "classify", "--image", sample.name, "--device", "cpu", "--json")
    assert code == 0
    probs = attack.predict(model, attack.load_image(sample.path, 224))[0]
    assert out["pred"] == int(probs.argmax()) and out["label"] == attack.class_names()[out["pred"]]
    assert len(out["top5"]) == 5 and out["top5"][0]["p"] == pytest.approx(float(probs.max()), abs=1e-4)
    code, by_path, _ = _run(capsys, "classify", "--image", str(sample.path), "--device", "cpu", "--json")
    assert code == 0 and by_path["top5"] == out["top5"]


def test_attack_json_and_patch_reapplied(capsys, tmp_path, fast_models):
    out_file = tmp_path / "p.safetensors"
    code, res, _ = _run(capsys, "attack", "--image", "ai-benchmark/76", "--target", "toaster", "--x", "0", "--y",
                        "0", "--max-iter", "3", "--device", "cpu", "--json", "--quiet", "--out", str(out_file),
                        "--cache-dir", str(tmp_path / "cache"))
    assert code == 0
    assert ATTACK_KEYS <= set(res)
    assert isinstance(res["success_0_9"], bool) and isinstance(res["argmax_target"], bool)
    assert isinstance(res["not_source"], bool) and isinstance(res["iterations"], int)
    assert 0 <= res["iterations"] <= 3 and 0 <= res["p_target"] <= 1 and 0 <= res["p_source"] <= 1
    assert res["seconds"] >= 0 and res["target"] == 859 and res["loc"] == [0, 0]
    assert res["size"] == attack.train.default_patch_size(224) and res["cached"] is False
    assert res["loss"] == attack.train.default_loss(res["size"], 224)  # "auto" resolved: the loss that trained
    assert Path(res["patch_path"]) == out_file and out_file.is_file()
    patch = attack.load_patch(out_file, model_name="efficientnet-lite0", input_size=224)
    assert patch.loc == (0, 0) and patch.target == 859
    # the saved patch, re-applied by `classify`, gives the prediction the attack reported
    code, cls, _ = _run(capsys, "classify", "--image", "ai-benchmark/76", "--patch", str(out_file), "--device",
                        "cpu", "--json")
    assert code == 0
    assert cls["p_target"] == pytest.approx(res["p_target"], abs=1e-4)
    assert (cls["pred"] == 859) == res["argmax_target"]
    assert (cls["pred"] != res["source"]) == res["not_source"]


def test_attack_cache_hits_and_misses(capsys, tmp_path, fast_models, samples):
    """Every input that determines the result is part of the CLI's cache key: an identical request is a hit, a
    change to any one of them (image, target, location, size, domain, loss, optimizer, seed, …) is a miss."""
    cache = str(tmp_path / "cache")
    other_image = str(next(s for s in samples if s.name == "ai-benchmark/77").path)
    base = ["attack", "--image", "ai-benchmark/76", "--input-size", "96", "--target", "859", "--x", "0", "--y", "0",
            "--size", "24",
            "--domain", "network", "--loss", "logprob", "--optimizer", "adam", "--seed", "0", "--stop-at", "0.9",
            "--max-iter", "1", "--device", "cpu", "--json", "--quiet", "--cache-dir", cache,
            "--out", str(tmp_path / "out.safetensors")]

    def cached(flag=None, value=None):
        argv = list(base)
        if flag is not None:
            argv[argv.index(flag) + 1] = value
        code, out, err = _run(capsys, *argv)
        assert code == 0, err
        return out["cached"]

    assert cached() is False
    assert cached() is True  # identical request: served from the cache
    for flag, value in [("--image", other_image), ("--target", "858"), ("--x", "1"), ("--y", "1"), ("--size", "25"),
                        ("--input-size", "97"), ("--domain", "image"), ("--loss", "logit"), ("--optimizer", "sgd"), ("--seed", "1"),
                        ("--stop-at", "0.8"), ("--max-iter", "2")]:
        assert cached(flag, value) is False, flag
    assert cached() is True  # the original entry is still there


def test_bad_image_path_exit_2(capsys, tmp_path):
    code, out, err = _run(capsys, "classify", "--image", str(tmp_path / "missing.jpg"), "--device", "cpu", "--json")
    assert code == 2
    assert "no such image file" in err and "missing.jpg" in err
    assert "error" in out


def test_bad_inputs_exit_2(capsys, tmp_path, fast_models, bad_corpus):
    directory, _ = bad_corpus
    code, _, err = _run(capsys, "classify", "--image", str(directory / "notes.jpg"), "--device", "cpu")
    assert code == 2 and "ImageError" in err and "not an image" in err
    code, _, err = _run(capsys, "classify", "--image", "ai-benchmark/76", "--patch",
                        str(directory / "pickle.safetensors"), "--device", "cpu")
    assert code == 2 and "PatchFileError" in err and "pickle" in err
    code, _, err = _run(capsys, "attack", "--image", "ai-benchmark/76", "--target", "no such class", "--device",
                        "cpu", "--quiet", "--no-cache", "--max-iter", "1", "--out", str(tmp_path / "x.safetensors"))
    assert code == 2 and "unknown class name" in err
    code, _, err = _run(capsys, "attack", "--image", "ai-benchmark/76", "--target", "859", "--x", "500",
                        "--device", "cpu", "--quiet", "--no-cache", "--max-iter", "1")
    assert code == 2 and "does not fit" in err
    code, _, err = _run(capsys, "classify", "--image", "ai-benchmark/76", "--model", "resnet-9000")
    assert code == 2 and "unknown model" in err


def test_bad_image_subprocess_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "attack", "classify", "--image", str(tmp_path / "nope.png"),
                           "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "no such image file" in proc.stderr and "Traceback" not in proc.stderr
