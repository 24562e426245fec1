"""Every setting of a single-image LaVAN training, with its defaults resolved in one place.

A :class:`TrainingSpec` holds what decides a training's result besides the image, target and location: patch size,
domain, update rule, restarts, loss, step size, initialisation, ReLU6 leak, budget, stop threshold and seed. A field
left at None (or "auto") is resolved by :meth:`TrainingSpec.resolve` from the model, its input size, the patch size
and the domain, by the rules below, which were chosen by measurement (docs/ATTACK_STRENGTH.md, bench/ablation.py).
The CLI, the pages, the shared batch and the lab all train and key their caches through it.

Example:
    >>> spec = TrainingSpec(size=42, steps=2000, seed=0).resolve(model)   # 8 restarts, margin_ce, leak 0.05
    >>> res = spec.train(model, img, target=859, loc=(0, 0))
    >>> key = spec.key(model, image_hash(img), 859, (0, 0))
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from .losses import LOSSES
from .optim import RULES
from .patch import size_for_area

__all__ = ["TrainingSpec", "DEFAULT_AREA", "DEFAULTS", "RESTARTS_SMALL", "LEAK_SMALL", "LOSS_SMALL", "INITS",
           "default_patch_size", "default_restarts", "default_relu6_leak", "default_loss", "default_lr",
           "default_param", "default_fields", "resolve_loss", "resolve_relu6_leak", "check_options", "has_relu6"]

# Default patch area for the app and CLI, chosen by measurement (docs/ATTACK_STRENGTH.md: smallest area where >= 80% of random
# corner configs reach p >= 0.9 within 1,000 iterations on the default model).
DEFAULT_AREA = 0.08
# The default attack (update rule, restarts, loss, initialisation, ReLU6 leak). See docs/ATTACK_STRENGTH.md and
# bench/ablation.py for the measurements behind each choice.
DEFAULTS = {"optimizer": "adam", "restarts": "auto", "loss": "auto", "init": "mixed", "relu6_leak": "auto"}
# "auto" restarts: one patch at the default area or larger (Adam alone reached p >= 0.9 on 9/10 configs at 8%),
# RESTARTS_SMALL under successive halving below it (42x42 on 224, 2,000 evaluations: docs/ATTACK_STRENGTH.md).
RESTARTS_SMALL = 8
# "auto" ReLU6 leak: none at the default area or larger, LEAK_SMALL below it (42x42 on 224, image domain, 2,000
# evaluations, seeds 1 and 2: 7/20 reach p >= 0.9 with adam-r8-lk5 against 5/20 for adam-r8;
# docs/ATTACK_STRENGTH.md). A model without nn.ReLU6 modules has nothing to leak through: its leak is 0.
LEAK_SMALL = 0.05
# "auto" loss: logprob at the default area or larger, LOSS_SMALL below it. margin_ce equals logprob while the source
# leads and pushes down a third class when one leads; paired with logprob (42x42 on 224, 8 restarts with the leak,
# 2,000 evaluations) it ended with a higher p(target) on most configs where they differ (docs/ATTACK_STRENGTH.md, "loss-paired").
LOSS_SMALL = "margin_ce"
INITS = ("random", "gray", "mixed")
HALVING = 4  # successive halving keeps the best quarter of a config's restarts at each stage


def default_patch_size(input_size: int, model: nn.Module | None = None) -> int:
    """The default patch side at ``input_size``: the area the model's spec names (``spec.default_area``: the paper's
    42x42 on 299 for torchvision, file and wrapped models, on which no default was measured), else
    :data:`DEFAULT_AREA`, measured on EfficientNet-Lite0. The "auto" rules below compare a patch with the latter."""
    area = getattr(getattr(model, "spec", None), "default_area", None) or DEFAULT_AREA
    return size_for_area(area, input_size)


def default_restarts(size: int, input_size: int) -> int:
    """Restarts for ``restarts="auto"``: 1 at the default area or larger, :data:`RESTARTS_SMALL` below it."""
    return 1 if size >= default_patch_size(input_size) else RESTARTS_SMALL


def default_relu6_leak(size: int, input_size: int) -> float:
    """ReLU6 backward leak for ``relu6_leak="auto"``: 0 at the default area or larger, :data:`LEAK_SMALL` below it."""
    return 0.0 if size >= default_patch_size(input_size) else LEAK_SMALL


def default_loss(size: int, input_size: int) -> str:
    """Objective for ``loss="auto"``: "logprob" at the default area or larger, :data:`LOSS_SMALL` below it."""
    return "logprob" if size >= default_patch_size(input_size) else LOSS_SMALL


def resolve_loss(loss: str | None, size: int, input_size: int) -> str:
    """The objective a training uses: None = ``DEFAULTS["loss"]``, "auto" = :func:`default_loss`."""
    loss = loss or DEFAULTS["loss"]
    return default_loss(size, input_size) if loss == "auto" else loss


def resolve_relu6_leak(relu6_leak, size: int, input_size: int) -> float:
    """The leak a training on a model with ReLU6 uses: None = ``DEFAULTS["relu6_leak"]``, "auto" =
    :func:`default_relu6_leak`."""
    leak = DEFAULTS["relu6_leak"] if relu6_leak is None else relu6_leak
    leak = default_relu6_leak(size, input_size) if leak == "auto" else float(leak)
    if not 0.0 <= leak <= 1.0:
        raise ValueError(f"relu6_leak must be in [0, 1] (or 'auto'), got {relu6_leak}")
    return leak


def default_fields(size: int, input_size: int) -> dict:
    """What a training with default options uses at this patch side: ``restarts``, ReLU6 ``leak``, the ``loss`` and
    Adam's step size per domain, ``lr`` (the area table of the defaults, :func:`lab.tables.default_area_cells`,
    reads rows trained with exactly these)."""
    return dict(restarts=default_restarts(size, input_size), leak=default_relu6_leak(size, input_size),
                loss=default_loss(size, input_size),
                lr={d: default_lr(DEFAULTS["optimizer"], d) for d in ("image", "network")})


def default_param(optimizer: str) -> str:
    """Image-domain parametrisation: Adam and plain gradient train sigmoid parameters, signed rules train the
    pixels themselves with a projection to [0,1] (a signed step in sigmoid space is not a pixel step)."""
    return "clamp" if optimizer in ("sign", "apgd") else "sigmoid"


def default_lr(optimizer: str, domain: str) -> float:
    """Default step sizes. Adam: probed with bench/tune_lr.py (network domain, 6 corner configs at 6.25% area:
    lr 0.03 -> 4/6 ok, median 219 it; 0.1 -> 4/6, 261 it; 0.3 -> 3/6; the default 0.05 lies between the two best
    probed values and was not itself probed; image domain, sigmoid space: 0.1 -> 3/6, 0.3 -> 4/6, median 245 it).
    Plain gradient ("sgd", the paper's method): lr chosen so that the first step has the same mean size as Adam's
    (mean |grad| at a random patch is ~0.007 in the network domain and ~0.0025 in sigmoid space). "apgd": the
    initial signed step in pixel units (0.2 of the [0,1] range; in the network domain it is scaled by 1/std so that
    it is the same pixel step)."""
    table = {("adam", "network"): 0.05, ("adam", "image"): 0.3,
             ("sgd", "network"): 7.0, ("sgd", "image"): 120.0,
             ("sign", "network"): 0.01, ("sign", "image"): 0.05,
             ("apgd", "network"): 0.2, ("apgd", "image"): 0.2}
    if (optimizer, domain) not in table:
        raise ValueError(f"unknown optimizer/domain {optimizer!r}/{domain!r}")
    return table[(optimizer, domain)]


def check_options(optimizer: str, param: str, steps: int, stop_at: float) -> None:
    """The training options every trainer shares (train_patches, attack.scheduler, attack.universal)."""
    if optimizer not in RULES:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(RULES)}")
    if param not in ("sigmoid", "clamp"):
        raise ValueError("param must be 'sigmoid' or 'clamp'")
    if steps < 0:
        raise ValueError("steps must be >= 0")
    if not 0.0 < stop_at <= 1.0:
        raise ValueError("stop_at must lie in (0, 1]")


def has_relu6(model: nn.Module) -> bool:
    """Whether ``model`` has ``nn.ReLU6`` modules, the units a ReLU6 leak acts on (EfficientNet-Lite and MobileNet
    do; Inception v3 and most torchvision classifiers use plain ReLU)."""
    return any(isinstance(m, nn.ReLU6) for m in model.modules())


@dataclass(frozen=True)
class TrainingSpec:
    """The settings of a single-image training (Karmon et al. 2018, arXiv:1801.02608); None / "auto" = resolved.

    Args:
        size: patch side (Default: :func:`default_patch_size`: the area measured on Lite0, or the paper's 2% on
            models it was not measured on). domain: "network" (the
            paper's: unbounded, pasted after normalisation) | "image" (a printable patch in [0,1]).
        optimizer: update rule of :mod:`attack.optim`: "adam" (Default), "sgd" (the paper's plain gradient steps),
            "sign", "apgd". restarts: patches per config under successive halving, or "auto"
            (:func:`default_restarts`). loss: :mod:`attack.losses` name or "auto" (:func:`default_loss`).
        lr: step size (Default: :func:`default_lr` of the rule and domain). init: "random", "gray" or "mixed"
            (Default). relu6_leak: share of the gradient passed through ReLU6's clips, or "auto"
            (:func:`default_relu6_leak`); 0 on a model without ReLU6 (:func:`has_relu6`).
        steps: budget of forward+backward evaluations per config (restarts × iterations; paper: 10,000).
        stop_at: p(target) that ends a config (paper: 0.9). seed: the config's own seed (None: the caller's
            generator). param: image domain only, "sigmoid" or "clamp" (Default: :func:`default_param`).
        halving: successive halving keeps 1/halving of the restarts per stage.
        local / pad_batches: how the batch runs (early layers only where the patches reach; padding to powers of
            two), the same results up to float rounding; never part of the cache key.
    Example:
        >>> TrainingSpec(size=42).resolve(model).restarts   # 8 below the default area of a 224 model
    """
    size: int | None = None
    domain: str = "network"
    optimizer: str | None = None
    restarts: int | str | None = None
    loss: str | None = None
    lr: float | None = None
    init: str | None = None
    relu6_leak: float | str | None = None
    steps: int = 10_000
    stop_at: float = 0.9
    seed: int | None = None
    param: str | None = None
    halving: int = HALVING
    local: bool | None = None
    pad_batches: bool | None = None

    @classmethod
    def of(cls, spec: "TrainingSpec | None" = None, **fields) -> "TrainingSpec":
        """``spec`` (Default: all defaults) with ``fields`` replaced; an unknown field is a TypeError."""
        return dataclasses.replace(spec if spec is not None else cls(), **fields)

    def replace(self, **fields) -> "TrainingSpec":
        return dataclasses.replace(self, **fields)

    def resolve(self, model: nn.Module, input_size: int | None = None) -> "TrainingSpec":
        """Every None / "auto" field filled in for ``model`` at ``input_size`` (Default: ``model.input_size``),
        and every field checked (ValueError)."""
        if self.domain not in ("network", "image"):
            raise ValueError(f"unknown domain {self.domain!r}; choose 'image' or 'network'")
        input_size = int(input_size or getattr(model, "input_size", 224))
        size = default_patch_size(input_size, model) if self.size is None else int(self.size)  # 0 is an error
        optimizer = self.optimizer or DEFAULTS["optimizer"]
        param = self.param or default_param(optimizer)
        check_options(optimizer, param, self.steps, self.stop_at)
        restarts = self.restarts if self.restarts is not None else DEFAULTS["restarts"]
        restarts = default_restarts(size, input_size) if restarts == "auto" else int(restarts)
        if restarts < 1:
            raise ValueError("restarts must be >= 1 (or 'auto')")
        if self.halving < 2:
            raise ValueError("halving must be >= 2")
        loss = resolve_loss(self.loss, size, input_size)
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
        init = self.init or DEFAULTS["init"]
        if init not in INITS:
            raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
        leak = resolve_relu6_leak(self.relu6_leak, size, input_size)
        leak = leak if has_relu6(model) else 0.0
        lr = float(self.lr if self.lr is not None else default_lr(optimizer, self.domain))
        return dataclasses.replace(self, size=size, optimizer=optimizer, param=param, restarts=restarts, loss=loss,
                                   init=init, relu6_leak=leak, lr=lr, steps=int(self.steps),
                                   stop_at=float(self.stop_at), seed=None if self.seed is None else int(self.seed))

    def key(self, model: nn.Module, image_hash: str, target: int, loc, source: int | None = None) -> str:
        """The cache key of this training of one image (:func:`attack.cache.training_key`). A field at its default
        stays out of the key (restarts 1, no leak, the rule's parametrisation, halving by 4), so the keys of
        trainings from before those options existed stay valid. Needs a seed: an unseeded run is not reproducible."""
        from .cache import training_key

        s = self.resolve(model)
        if s.seed is None:
            raise ValueError("a cache key needs a seed (an unseeded training is not reproducible)")
        extra = {"restarts": s.restarts} if s.restarts != 1 else {}
        extra.update({"relu6_leak": s.relu6_leak} if s.relu6_leak else {})
        extra.update({"param": s.param} if s.domain == "image" and s.param != default_param(s.optimizer) else {})
        extra.update({"halving": s.halving} if s.restarts > 1 and s.halving != HALVING else {})
        return training_key(model, image_hash, target, loc, s.size, domain=s.domain, loss=s.loss, steps=s.steps,
                            lr=s.lr, optimizer=s.optimizer, stop_at=s.stop_at, seed=s.seed, source=source,
                            init=s.init, **extra)

    def kwargs(self) -> dict:
        """Keyword arguments of :func:`attack.train.train_patch` / :func:`attack.train.train_patches` that train
        with this spec, for callers that pass a trainer and its arguments along: the budget also as ``steps`` (a
        field given beside the spec wins), which ui/jobs reads and clamps to the server's cap."""
        return {"spec": self, "steps": self.steps}

    def train(self, model: nn.Module, image, target: int, loc=(0, 0), *, source: int | None = None,
              generator=None, callback=None, cancel=None):
        """:func:`attack.train.train_patch` with this spec: a PatchResult."""
        from .train import train_patch

        return train_patch(model, image, target, loc, self, source=source, generator=generator, callback=callback,
                           cancel=cancel)

    def meta(self) -> dict:
        """The resolved settings recorded in a PatchResult's ``meta``."""
        return {"optimizer": self.optimizer, "lr": self.lr, "param": self.param if self.domain == "image" else None,
                "init": self.init, "halving": self.halving, "relu6_leak": self.relu6_leak}
