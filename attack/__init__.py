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
from .models import (MODELS, ModelSpec, Classifier, ModelError, WeightsMissing, load_model, model_spec, wrap,
                     class_names, class_index, predict, default_device)
from .images import ImageError, load_image, sample_images, SampleImage, image_hash
from .patch import (
    CORNERS, patch_mask, apply_patch, paste, corner_loc, random_locs, to_domain, from_domain, area_fraction,
    size_for_area,
)
from .losses import LOSSES, target_minus_source
from .results import PatchResult
from .spec import TrainingSpec
from .train import train_patch, train_patches, Cancelled
from .universal import train_universal
from .evaluate import success, evaluate_patch
from .fragility import shift_map
from .transfer import border_transfer, border_paste
from .saliency import ATTRIBUTION_METHODS, attribution_map, mass_in_patch
from .io import PatchFileError, save_patch, load_patch, patch_png
from .cache import PatchCache, cache_key

__all__ = [name for name in dir() if not name.startswith("_")]
