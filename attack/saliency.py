"""Attributions for a class on clean and patched images (Captum), and the paper's number: the share of the
attribution mass that falls inside the patch, compared with the patch's share of the area (paper §5: the
network does not localise the patch as the cause of its error)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .fast import local_engine
from .patch import domain_logits

__all__ = ["ATTRIBUTION_METHODS", "attribution_map", "mass_in_patch"]

ATTRIBUTION_METHODS = ("saliency", "integrated_gradients", "grad_cam", "occlusion")


class _Forward(torch.nn.Module):
    """Captum needs a module whose input is the tensor being attributed."""

    def __init__(self, model, domain: str):
        super().__init__()
        self.model, self.domain = model, domain

    def forward(self, x):
        return domain_logits(self.model, x, self.domain)


class _Occluded(_Forward):
    """Captum's forward for occlusion through a :class:`attack.fast.LocalForward` of the ``n`` attributed images:
    Captum stacks copies of the batch (row ``r`` is image ``r % n``), and each row's changed box is found by
    comparison with its image (no gradient is taken); any other batch runs in full."""

    def __init__(self, model, domain: str, engine, n: int):
        super().__init__(model, domain)
        self.engine, self.n = engine, n

    def forward(self, x):
        if x.shape[0] % self.n or (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        return self.engine(x, torch.arange(x.shape[0]) % self.n, None, self.domain)


def attribution_map(model, images: torch.Tensor, target, method: str = "saliency", domain: str = "image",
                    ig_steps: int = 32, occlusion_window: int | None = None) -> torch.Tensor:
    """Non-negative attribution heat-map ``(N,H,W)`` for class ``target`` (int or (N,) ids).

    ``images`` are model inputs in the given domain: [0,1] images for ``"image"``, normalised tensors for
    ``"network"`` (as returned by :func:`attack.apply_patch`). Methods: ``saliency`` (|∂z_t/∂x| max over channels),
    ``integrated_gradients`` (|IG| summed over channels, black baseline), ``grad_cam`` (ReLU Grad-CAM on
    ``model.cam_layer``, upsampled), ``occlusion`` (drop in logit when a window is greyed out, clipped at 0).
    Example: >>> heat = attribution_map(model, patched, target=859, method="integrated_gradients")
    """
    from captum.attr import IntegratedGradients, LayerGradCam, Occlusion, Saliency

    if method not in ATTRIBUTION_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(ATTRIBUTION_METHODS)}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    device = next(model.buffers()).device
    x = images.to(device).detach()
    n, _, h, w = x.shape
    t = torch.as_tensor(target, dtype=torch.long)
    tgt = int(t) if t.dim() == 0 else t.tolist()
    fwd = _Forward(model, domain)
    if method == "saliency":
        attr = Saliency(fwd).attribute(x.clone().requires_grad_(True), target=tgt, abs=True)
        heat = attr.max(dim=1).values
    elif method == "integrated_gradients":
        baseline = torch.zeros_like(x) if domain == "image" else model.normalize(torch.zeros_like(x))
        attr = IntegratedGradients(fwd).attribute(x, baselines=baseline, target=tgt, n_steps=ig_steps,
                                                 internal_batch_size=max(1, n * 8))
        heat = attr.abs().sum(dim=1)
    elif method == "grad_cam":
        # Captum hooks the layer of the model it is given, and a hook sees every forward of that module: on the
        # app's shared model a training thread's forward would land in this Grad-CAM's hook ("tensor not used in
        # the graph"). A private copy (18 MB, tens of ms) keeps the hooks to this call.
        if getattr(model, "cam_layer", None) is None:
            raise ValueError(f"Grad-CAM is not available for {getattr(model, 'name', type(model).__name__)}: it has "
                             "no convolutional map to read (ViT's last layer is a sequence of tokens); use saliency, "
                             "integrated_gradients or occlusion")
        own = copy.deepcopy(model)
        cam = LayerGradCam(_Forward(own, domain), own.cam_layer).attribute(x, target=tgt, relu_attributions=True)
        heat = F.interpolate(cam, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    else:
        win = int(occlusion_window or max(8, h // 14))
        stride = max(1, win // 2)
        base = 0.5 if domain == "image" else 0.0  # grey in either space (mean=0.5 normalisation maps 0.5 to 0)
        # each occluded input differs from its image inside one window only: on a folded EfficientNet-Lite,
        # Captum's forwards run incrementally (attack.fast.LocalForward finds each row's window)
        engine = local_engine(model, x, domain)
        if engine is not None:
            fwd = _Occluded(model, domain, engine, n)
        attr = Occlusion(fwd).attribute(x, target=tgt, sliding_window_shapes=(3, win, win),
                                        strides=(3, stride, stride), baselines=base,
                                        perturbations_per_eval=16)
        heat = attr.sum(dim=1).clamp(min=0)
    return heat.detach().float().cpu()


def mass_in_patch(heat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share ``(N,)`` of each map's attribution mass inside the patch mask (mask (H,W), (1,H,W) or (N,1,H,W)).

    Compare with the patch's share of the area (``mask.mean()``): a network that "blamed" the patch would put far
    more than that share inside it. Maps with zero total mass give NaN.
    """
    if heat.dim() == 2:
        heat = heat.unsqueeze(0)
    m = mask.to(heat.dtype)
    while m.dim() > 3:
        m = m.squeeze(1)
    if m.dim() == 2:
        m = m.unsqueeze(0)
    heat = heat.clamp(min=0)
    total = heat.flatten(1).sum(1)
    inside = (heat * m).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.full_like(total, float("nan")))
