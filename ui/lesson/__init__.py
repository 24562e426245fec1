"""The Lesson page's logic: nine screens of the paper's findings, each one picture, two or three sentences and a
prediction in large type, computed with forwards only on the patches shipped in ``assets/`` (``lesson.json`` says
which; ``make lesson-assets`` regenerates them with the CLI).

Every ``step_*`` draws one screen into two columns and returns what it shows (``label``: the top-1 class,
``p_target``: the probability of the patch's target), so that the tests can check that a control changes it.
The prediction sits in a container keyed ``lesson_pred_<n>``, which the browser test and ``bench/lesson.py`` wait for.

This package's modules:

* :mod:`.assets` — the manifest, the shipped patches and photos (cached), and the patched forward the steps show.
* :mod:`.view` — the step list, the CSS, the picture, the prediction, the top-5 bars, "Try it yourself", the header.
* :mod:`.photos` — steps 1-6: the photo, the patch, the one-pixel nudge, the grid place, another photo, universal.
* :mod:`.network` — steps 7-9: attribution maps (prefetched in a worker thread), another network, the defence.

The names below are the page's interface (``pages/0_lesson.py``).
"""
from __future__ import annotations

from . import assets, network, photos, view
from .assets import MANIFEST, ROOT, manifest, patch, photo
from .network import DEFENCES, METHODS, OTHER_MODELS, overlay, prefetch, step_defend, step_gradients, step_models
from .photos import PLACES, step_nudge, step_patch, step_photo, step_place, step_transfer, step_universal
from .view import CSS, PAGE_FILES, PICTURE_PX, STEPS, header, picture, prediction, top5, try_it

STEP_FUNCS = [step_photo, step_patch, step_nudge, step_place, step_transfer, step_universal, step_gradients, step_models,
              step_defend]

__all__ = ["CSS", "DEFENCES", "MANIFEST", "METHODS", "OTHER_MODELS", "PAGE_FILES", "PICTURE_PX", "PLACES", "ROOT",
           "STEPS", "STEP_FUNCS", "assets", "header", "manifest", "network", "overlay", "patch", "photo", "photos",
           "prediction", "prefetch", "picture", "step_defend", "step_gradients", "step_models", "step_nudge",
           "step_patch", "step_photo", "step_place", "step_transfer", "step_universal", "top5", "try_it", "view"]
