"""Shared fixtures: one real model per session, real sample photos, small iteration counts."""
from __future__ import annotations

import os

import pytest
import torch

import attack

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def model():
    return attack.load_model("efficientnet-lite0", device="cpu", channels_last=True)


@pytest.fixture(scope="session")
def samples():
    s = attack.sample_images(("ai-benchmark",))
    assert len(s) >= 100, "ai-benchmark photos missing: run `make setup`"
    return s


@pytest.fixture(scope="session")
def photo(model, samples):
    return attack.load_image(samples[1].path, model.input_size)


@pytest.fixture(scope="session")
def photos(model, samples):
    return torch.stack([attack.load_image(s.path, model.input_size) for s in samples[:8]])
