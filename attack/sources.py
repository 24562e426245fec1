"""Where a model's weights come from: torchvision's weights API (the torch hub cache) or a local state-dict file.

``torchvision:<name>`` is any classification model of ``torchvision.models.list_models(module=torchvision.models)``,
with the DEFAULT weights of ``torchvision.models.get_model_weights(name)``. The weights file is looked up in the
torch hub cache (``$TORCH_HOME/hub/checkpoints``, :func:`checkpoints_dir`) under the exact name torchvision gives
it; it is downloaded there only when the caller asks (``download=True``). A local ``.pth``/``.safetensors`` state
dict (``weights=FILE``) is read with ``weights_only=True`` or safetensors, never unpickled.

Example: >>> net, info = build_torchvision("resnet18")   # from the hub cache; WeightsMissing if it is not there
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = ["PREFIX", "TorchvisionInfo", "WeightsMissing", "checkpoints_dir", "torchvision_names", "torchvision_info",
           "cached_torchvision_models", "build_torchvision", "download_weights", "cam_layer_for", "is_torchvision",
           "read_state_dict", "ModelError"]

PREFIX = "torchvision:"
# Families whose weights expect the (x - 0.5) / 0.5 normalisation that torchvision applies inside the network
# (``transform_input=True`` after ImageNet normalisation). We set ``transform_input=False`` and normalise with
# mean = std = 0.5 ourselves: the same input reaches the first convolution, and "network domain" means that input.
_HALF_INPUT = ("inception_v3", "googlenet")
# Transformers with learnt position embeddings for one input size only.
_FIXED_SIZE = ("vit_", "maxvit_")


class ModelError(ValueError):
    """A weights file or model name that cannot be used (the message says why)."""


class WeightsMissing(ModelError):
    """The weights of a torchvision model are not in the local cache and no download was asked for.

    ``str()`` names the file and the folder (for the command line); :meth:`public_message` names only the file and
    ``$TORCH_HOME/hub/checkpoints`` (for pages that visitors see: no server path)."""

    def __init__(self, name: str, file_name: str, folder: Path, reason: str = ""):
        self.name, self.file_name, self.folder = name, file_name, Path(folder)
        tail = f" ({reason})" if reason else ""
        super().__init__(f"{PREFIX}{name}: weights not in the local cache{tail}; torchvision expects the file "
                         f"{file_name} in {self.folder} (put it there, or add --download on a machine with internet)")

    def public_message(self) -> str:
        return (f"{PREFIX}{self.name}: its weights ({self.file_name}) are not in this machine's torch hub cache "
                "($TORCH_HOME/hub/checkpoints) and could not be downloaded")


def is_torchvision(name: str) -> bool:
    return name.strip().lower().startswith(PREFIX)


def checkpoints_dir() -> Path:
    """The folder torchvision reads and writes weights files in: ``torch.hub.get_dir()/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def torchvision_names() -> list[str]:
    """Every ImageNet classification model torchvision builds (80 in torchvision 0.29)."""
    import torchvision.models as tvm

    return list(tvm.list_models(module=tvm))


@dataclass(frozen=True)
class TorchvisionInfo:
    """What torchvision says about a model's DEFAULT weights, read without touching the network."""
    name: str  # builder name, e.g. "resnet18"
    weights: str  # e.g. "ResNet18_Weights.IMAGENET1K_V1"
    url: str
    file_name: str  # the name torchvision stores the file under in checkpoints_dir()
    input_size: int  # centre-crop side
    resize_size: int  # short side before the crop
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    num_params: int
    acc1: float | None  # ImageNet-1k top-1 torchvision reports for these weights (%)
    fixed_size: bool  # runs only at input_size

    @property
    def path(self) -> Path:
        return checkpoints_dir() / self.file_name

    def cached(self) -> bool:
        return self.path.is_file()

    def description(self) -> str:
        acc = f", {self.acc1:.1f}% ImageNet top-1" if self.acc1 is not None else ""
        return (f"{self.name} from torchvision ({self.num_params / 1e6:.1f}M params{acc}), weights "
                f"{self.weights.split('.')[-1]}")


def _canonical(name: str) -> str:
    key = name.strip()
    if key.lower().startswith(PREFIX):
        key = key[len(PREFIX):]
    return key.strip().lower().replace("-", "_")


def torchvision_info(name: str) -> TorchvisionInfo:
    """:class:`TorchvisionInfo` of ``name`` (``"resnet18"`` or ``"torchvision:resnet18"``); ModelError if
    torchvision has no such classification model."""
    import torchvision.models as tvm

    key = _canonical(name)
    names = torchvision_names()
    if key not in names:
        close = [n for n in names if n.startswith(key[:4])][:6]
        raise ModelError(f"torchvision has no classification model {key!r}"
                          + (f" (did you mean {', '.join(close)}?)" if close else
                             "; `python -m attack models --all` lists them"))
    w = tvm.get_model_weights(key).DEFAULT
    tf = w.transforms()
    mean, std = tuple(float(v) for v in tf.mean), tuple(float(v) for v in tf.std)
    if key in _HALF_INPUT:
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    acc = w.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
    return TorchvisionInfo(key, str(w), w.url, os.path.basename(urlparse(w.url).path), int(tf.crop_size[0]),
                           int(tf.resize_size[0]), mean, std, int(w.meta.get("num_params", 0)),
                           float(acc) if acc is not None else None, key.startswith(_FIXED_SIZE))


def cached_torchvision_models() -> list[str]:
    """Names (``torchvision:<name>``) of the models whose DEFAULT weights file is in :func:`checkpoints_dir`."""
    folder = checkpoints_dir()
    if not folder.is_dir():
        return []
    present = {p.name for p in folder.iterdir()}
    import torchvision.models as tvm

    out = []
    for name in torchvision_names():
        url = tvm.get_model_weights(name).DEFAULT.url
        if os.path.basename(urlparse(url).path) in present:
            out.append(PREFIX + name)
    return out


def download_weights(name: str, progress: Callable[[int, int], None] | None = None, timeout: float = 30.0) -> Path:
    """Download the DEFAULT weights of torchvision model ``name`` into :func:`checkpoints_dir` (the user asked
    for it). ``progress(done_bytes, total_bytes)`` is called as chunks arrive. The file's SHA-256 is checked against
    the prefix in its name (as torch.hub does) before it is moved into place; a failure leaves nothing behind and
    raises WeightsMissing with the reason."""
    info = torchvision_info(name)
    dest = info.path
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".partial-", suffix=".pth")
    sha = hashlib.sha256()
    try:
        with urllib.request.urlopen(info.url, timeout=timeout) as resp, os.fdopen(fd, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while chunk := resp.read(1 << 20):
                out.write(chunk)
                sha.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        m = re.search(r"-([a-f0-9]+)\.", info.file_name)
        if m and not sha.hexdigest().startswith(m.group(1)):
            raise ModelError("the downloaded file's hash does not match its name")
        shutil.move(tmp, dest)
        return dest
    except (OSError, ModelError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise WeightsMissing(info.name, info.file_name, dest.parent, f"download failed: {reason}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a ``.safetensors`` file or a ``.pth`` read with ``weights_only=True``
    (``{"state_dict": …}`` and DataParallel's ``module.`` prefixes accepted)."""
    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the user's file, reported plainly
        raise ModelError(f"cannot read weights file {path.name}: {type(exc).__name__}: {str(exc)[:300]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"weights file {path.name} is not a state_dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _drop_aux(net: nn.Module) -> None:
    """Inference needs no auxiliary classifiers (Inception v3's AuxLogits, GoogLeNet's aux1/aux2)."""
    for attr in ("AuxLogits", "aux1", "aux2"):
        if getattr(net, attr, None) is not None:
            setattr(net, attr, None)
    if hasattr(net, "aux_logits"):
        net.aux_logits = False
    if hasattr(net, "transform_input"):
        net.transform_input = False  # normalised with mean = std = 0.5 by the Classifier (see _HALF_INPUT)


def _from_file(info: TorchvisionInfo, weights: str | Path) -> nn.Module:
    import torchvision.models as tvm

    kwargs = {"init_weights": False} if info.name in _HALF_INPUT else {}
    net = tvm.get_model(info.name, weights=None, **kwargs)
    state = read_state_dict(weights)
    _drop_aux(net)
    state = {k: v for k, v in state.items() if not k.startswith(("AuxLogits.", "aux1.", "aux2."))}
    expected = net.state_dict()
    bad = [k for k, v in state.items() if k in expected and expected[k].shape != v.shape]
    if bad:
        raise ModelError(f"weights file: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, expected "
                          f"{tuple(expected[bad[0]].shape)} for {PREFIX}{info.name}")
    res = net.load_state_dict(state, strict=False)
    if res.missing_keys or res.unexpected_keys:
        raise ModelError(f"weights file does not match torchvision's {info.name}: {len(res.missing_keys)} missing "
                          f"(e.g. {res.missing_keys[:2]}), {len(res.unexpected_keys)} unexpected "
                          f"(e.g. {res.unexpected_keys[:2]})")
    return net


def build_torchvision(name: str, weights: str | Path | None = None, download: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> tuple[nn.Module, TorchvisionInfo]:
    """The network of ``torchvision:<name>`` with its ImageNet weights, in eval mode, and its info.

    ``weights``: a local state-dict file instead of the DEFAULT weights. Otherwise the DEFAULT weights come from
    the hub cache through torchvision's own loader (``get_model(name, weights=DEFAULT)``); when the file is not
    there, ``download=True`` fetches it first (:func:`download_weights`), else :class:`WeightsMissing`."""
    import torchvision.models as tvm

    info = torchvision_info(name)
    if weights is not None:
        net = _from_file(info, weights)
    else:
        if not info.cached():
            if not download:
                raise WeightsMissing(info.name, info.file_name, info.path.parent)
            download_weights(info.name, progress)
        try:
            net = tvm.get_model(info.name, weights=tvm.get_model_weights(info.name).DEFAULT)
        # a truncated or foreign file under the expected name (an old-style pickle raises UnpicklingError)
        except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise ModelError(f"{PREFIX}{info.name}: cannot load {info.file_name} from the hub cache: "
                              f"{type(exc).__name__}: {str(exc)[:200]}") from None
        _drop_aux(net)
    return net.eval(), info


def cam_layer_for(name: str, net: nn.Module) -> nn.Module | None:
    """The module whose (N,C,h,w) output Grad-CAM reads for a torchvision family: the last convolutional stage of
    a CNN; Swin's channels-first view after its last stage; None for ViT (tokens, not a map: Grad-CAM is not
    available)."""
    key = _canonical(name)
    table = (("resnet", "layer4"), ("resnext", "layer4"), ("wide_resnet", "layer4"), ("regnet", "trunk_output"),
             ("inception_v3", "Mixed_7c"), ("googlenet", "inception5b"), ("shufflenet", "conv5"),
             ("swin", "permute"), ("maxvit", "blocks"), ("mnasnet", "layers"), ("vit_", None))
    for prefix, attr in table:
        if key.startswith(prefix):
            mod = getattr(net, attr, None) if attr else None
            return mod[-1] if isinstance(mod, (nn.Sequential, nn.ModuleList)) and prefix == "maxvit" else mod
    # vgg, alexnet, squeezenet, densenet, mobilenet, efficientnet, convnext: the feature extractor ends on the last
    # convolutional map
    return getattr(net, "features", None)
