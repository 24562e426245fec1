"""Torchvision weights for offline tests: a randomly initialised state dict of the right architecture, written under
the exact file name torchvision expects in a temporary ``$TORCH_HOME`` (torch's hub loader checks a file's hash only
when it downloads it, so the real loading path reads it like the real weights).

Not a test module (no ``test_`` prefix); test_sources.py, test_app_models.py and the browser tests import it.
"""
from __future__ import annotations

from pathlib import Path

import torch

from attack import sources


def write_weights(home: Path, name: str) -> Path:
    """Write random weights of torchvision model ``name`` into ``home``/hub/checkpoints (``home`` = TORCH_HOME)."""
    import torchvision.models as tvm

    kwargs = {"init_weights": True} if name == "inception_v3" else {}
    torch.manual_seed(0)
    net = tvm.get_model(name, weights=None, **kwargs)
    path = Path(home) / "hub" / "checkpoints" / sources.torchvision_info(name).file_name
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return path
