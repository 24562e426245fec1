"""`reproduce --engine ray`: a real local Ray instance (Ray has no local mode any more) trains the same rows as the
in-process engine; Ray is needed only on that path, says how to install it when missing, and a chunk delivered
twice (a retried task) writes its rows once."""
from __future__ import annotations

import csv
import subprocess
import sys
import time

import torch

from lab.cli import main


def _rows(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _same(rows):  # everything but the wall time of each config
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_attack_imports_without_ray():
    code = ("import sys, attack, attack.cli, lab.cli, lab.reproduce, lab.reproduce.engine; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_ray_says_how_to_install(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    assert main(["reproduce", "single", "--quick", "--engine", "ray", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'ray==" in err and "leave out --engine" in err
    assert not (tmp_path / "single.csv").exists()  # failed before any training


def test_address_needs_engine_ray(tmp_path, capsys):
    assert main(["reproduce", "single", "--quick", "--address", "auto", "--out", str(tmp_path)]) == 2
    assert "--engine ray" in capsys.readouterr().err


def test_a_chunk_delivered_twice_is_written_once(tmp_path, monkeypatch, capsys):
    from lab.reproduce import engine

    class Twice(engine.LocalEngine):  # what a retried Ray task whose first result also arrived would look like
        name = "twice"

        def map(self, ctx, fn, work):
            for out in super().map(ctx, fn, work):
                yield out
                yield out

    monkeypatch.setattr(engine, "make_engine", lambda opts: Twice())
    assert main(["reproduce", "single", "--quick", "--max-iter", "2", "--out", str(tmp_path)]) == 0
    assert sorted(r["config"] for r in _rows(tmp_path / "single.csv")) == ["app-network-000", "app-network-001"]


def test_ray_engine_gives_the_in_process_rows(tmp_path, monkeypatch, capsys):
    import ray  # requirements-dev.txt pins it (make setup): this test must run, not skip

    from attack.io import load_patch

    # Two chunks of one config each: both engines seed a chunk from its first config, so rows must match.
    args = ["reproduce", "single", "--quick", "--batch", "1", "--threads", "1", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "local")]) == 0
    monkeypatch.setenv("LAVAN_RAY_CPUS", "2")  # the local Ray instance the engine starts: 2 CPUs, no dashboard
    monkeypatch.setenv("LAVAN_RAY_STORE_MB", "100")
    t0 = time.perf_counter()
    assert main([*args, "--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    wall = time.perf_counter() - t0
    assert not ray.is_initialized()  # the engine shut down the instance it started
    local, remote = _rows(tmp_path / "local" / "single.csv"), _rows(tmp_path / "ray" / "single.csv")
    assert len(local) == 2 and _same(sorted(remote, key=lambda r: r["config"])) == _same(local)
    for r in local:  # the tasks' patches came back to the driver's folder
        a, b = load_patch(tmp_path / "local" / r["patch"]), load_patch(tmp_path / "ray" / r["patch"])
        assert torch.equal(a.patch, b.patch)
    md = (tmp_path / "ray" / "single.md").read_text()
    assert "--engine ray" in md
    # resuming with every config done starts no Ray instance and adds no rows
    assert main([*args, "--engine", "ray", "--out", str(tmp_path / "ray")]) == 0
    assert len(_rows(tmp_path / "ray" / "single.csv")) == 2
    print(f"ray engine run: {wall:.1f}s wall")


def test_ray_engine_runs_a_torchvision_model_from_the_hub_cache(tmp_path, monkeypatch):
    """The cross-model matrix on an embedded and a torchvision model, trained by Ray tasks that load the
    torchvision model from the same hub cache (TORCH_HOME) as the driver."""
    from tv_kit import write_weights

    write_weights(tmp_path / "torch_home", "mobilenet_v3_small")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("LAVAN_RAY_CPUS", "2")
    monkeypatch.setenv("LAVAN_RAY_STORE_MB", "100")
    models = ["efficientnet-lite0", "torchvision:mobilenet_v3_small"]
    assert main(["reproduce", "crossmodel", "--quick", "--max-iter", "2", "--threads", "1", "--engine", "ray",
                 "--models", *models, "--out", str(tmp_path / "ray")]) == 0
    trained = _rows(tmp_path / "ray" / "crossmodel_train.csv")
    assert sorted(r["model"] for r in trained) == models
    scored = _rows(tmp_path / "ray" / "crossmodel.csv")
    assert {(r["train_model"], r["eval_model"]) for r in scored} == {(a, b) for a in models for b in models}
    md = (tmp_path / "ray" / "crossmodel.md").read_text()
    assert "--models efficientnet-lite0 torchvision:mobilenet_v3_small" in md
    assert md.startswith("# Cross-model transfer between efficientnet-lite0, mobilenet_v3_small\n")
