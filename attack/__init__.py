"""LaVAN: Localized and Visible Adversarial Noise (Karmon, Zoran, Goldberg, ICML 2018, arXiv:1801.02608).

Pure-torch library behind the LaVAN studio app and ``python -m attack``. No streamlit import.

Shared conventions
------------------
* Images are float tensors ``(N,3,H,W)`` (or ``(3,H,W)``) with values in ``[0,1]``.
* A patch is ``(3,h,w)``, or ``(N,3,h,w)`` when batched. Patches are square in this library.
* ``loc = (top, left)`` in pixels, or a ``(N,2)`` long tensor.
* Models (:func:`load_model`: the embedded EfficientNet-Lite, ``torchvision:<name>``; :func:`wrap`: your own
  network) take ``[0,1]`` images and normalise inside; ``model.net`` is the bare network on normalised input,
  ``model.normalize`` maps ``[0,1]`` to that space.
* ``domain="image"``: the patch is a valid image in ``[0,1]`` pasted before normalisation.
  ``domain="network"``: the patch is unbounded and pasted after normalisation (the paper's network domain).
* Randomness comes only from ``generator: torch.Generator | None``.
* The training objective is one score that is always maximised: ``M(target|x') - M(source|x')``.
"""

from .cache import PatchCache, cache_key
from .evaluate import evaluate_patch, success
from .fragility import shift_map
from .images import ImageError, SampleImage, image_hash, load_image, sample_images
from .io import PatchFileError, load_patch, patch_png, save_patch
from .losses import LOSSES, target_minus_source
from .models import (
    MODELS,
    Classifier,
    ModelError,
    ModelSpec,
    WeightsMissing,
    class_index,
    class_names,
    default_device,
    load_model,
    model_spec,
    predict,
    wrap,
)
from .patch import (
    CORNERS,
    apply_patch,
    area_fraction,
    corner_loc,
    from_domain,
    paste,
    patch_mask,
    random_locs,
    size_for_area,
    to_domain,
)
from .results import PatchResult
from .saliency import ATTRIBUTION_METHODS, attribution_map, mass_in_patch
from .spec import TrainingSpec
from .train import Cancelled, train_patch, train_patches
from .transfer import border_paste, border_transfer
from .universal import train_universal

__all__ = [
    "MODELS",
    "ModelSpec",
    "Classifier",
    "ModelError",
    "WeightsMissing",
    "load_model",
    "model_spec",
    "wrap",
    "class_names",
    "class_index",
    "predict",
    "default_device",
    "ImageError",
    "load_image",
    "sample_images",
    "SampleImage",
    "image_hash",
    "CORNERS",
    "patch_mask",
    "apply_patch",
    "paste",
    "corner_loc",
    "random_locs",
    "to_domain",
    "from_domain",
    "area_fraction",
    "size_for_area",
    "LOSSES",
    "target_minus_source",
    "PatchResult",
    "TrainingSpec",
    "train_patch",
    "train_patches",
    "Cancelled",
    "train_universal",
    "success",
    "evaluate_patch",
    "shift_map",
    "border_transfer",
    "border_paste",
    "ATTRIBUTION_METHODS",
    "attribution_map",
    "mass_in_patch",
    "PatchFileError",
    "save_patch",
    "load_patch",
    "patch_png",
    "PatchCache",
    "cache_key",
]
