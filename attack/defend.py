"""Defences against a localized patch: PatchCleanser double masking and an occlusion heuristic.

PatchCleanser (Xiang, Mahloujifar, Mittal, USENIX Security 2022, arXiv:2108.09135): for a patch of side ``p`` on an
``n``-px image, a ``k x k`` set of square masks of side ``m = p + s - 1`` at stride ``s = ceil((n - p + 1) / k)``
covers every possible patch location (some mask contains the whole patch). Double masking classifies the image
under each mask (first round); if all agree, that label is returned; otherwise for each disagreeing mask it adds
every second mask (second round) and returns the first disagreeing label on which all its two-mask predictions
agree, else the first-round majority. An image is *certified* for patch size ``p`` when every two-mask prediction
(including each mask alone) is the same label: then no patch of side ≤ p anywhere can change the defended label,
because the masks that cover the patch leave exactly the clean two-mask inputs.

Masked pixels are set to ``fill`` (grey 0.5 in ``[0,1]``); for ``domain="network"`` inputs (already normalised,
as :func:`attack.apply_patch` returns them) the fill is the normalised grey. Every forward is batched; results
count the forwards each image cost. A mask or window changes its image only inside its box, so on a folded
EfficientNet-Lite the forwards run incrementally (:class:`attack.fast.LocalForward`: same labels, a fraction of the
early layers' work; bench/incremental.py); any other model runs them in full.

Where to put the patch: :func:`vulnerability_map` trains a short attack at every cell of a coarse location grid,
all cells as rows of one batch, and returns the p(target) each cell reached and the best cell.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .fast import local_engine, patch_boxes
from .patch import check_loc, domain_logits

__all__ = ["MaskSet", "mask_set", "CleanserResult", "double_masking", "OcclusionResult", "occlusion_defence",
           "VulnerabilityMap", "grid_locs", "vulnerability_map"]


@dataclass
class MaskSet:
    """``k x k`` square masks: ``positions`` (K,2) (top, left) of each mask, ``size`` its side, ``stride``."""
    image_size: int
    patch_size: int
    size: int
    stride: int
    positions: torch.Tensor  # (K,2) long

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def masks(self) -> torch.Tensor:
        """``(K,1,H,W)`` bool, True where a mask hides the image."""
        n = self.image_size
        out = torch.zeros(len(self), 1, n, n, dtype=torch.bool)
        for i, (t, l) in enumerate(self.positions.tolist()):
            out[i, :, t:t + self.size, l:l + self.size] = True
        return out

    def covering(self, loc) -> list[int]:
        """Indices of the masks that contain the whole patch at ``loc = (top, left)``."""
        t, l = int(loc[0]), int(loc[1])
        p, m = self.patch_size, self.size
        return [i for i, (mt, ml) in enumerate(self.positions.tolist())
                if mt <= t and t + p <= mt + m and ml <= l and l + p <= ml + m]


def _axis(n: int, p: int, k: int) -> tuple[int, int, list[int]]:
    s = math.ceil((n - p + 1) / k)
    m = p + s - 1
    idx = list(range(0, n - m + 1, s))
    if (n - m) % s != 0:
        idx.append(n - m)
    return s, m, idx


def mask_set(image_size: int, patch_size: int, k: int = 6) -> MaskSet:
    """PatchCleanser's ``k x k`` mask set for a ``patch_size`` patch on an ``image_size`` square image: stride
    ``s = ceil((n - p + 1) / k)``, mask side ``m = p + s - 1`` (so any p-window lies inside some mask), positions
    ``0, s, 2s, …`` plus ``n - m`` when the last one falls short.

    Example: >>> mask_set(224, 63).size, mask_set(224, 63).stride  # (89, 27), 6 x 6 masks"""
    if k < 1:
        raise ValueError(f"k (masks per axis) must be at least 1, got {k}")
    check_loc((0, 0), patch_size, image_size)
    s, m, idx = _axis(image_size, patch_size, k)
    pos = torch.tensor([(t, l) for t in idx for l in idx], dtype=torch.long)
    return MaskSet(image_size, patch_size, m, s, pos)


def _fill_value(model, domain: str, fill: float, device) -> torch.Tensor:
    grey = torch.full((1, 3, 1, 1), float(fill), device=device)
    return model.normalize(grey) if domain == "network" else grey


def _labels(model, x: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor, domain: str, batch_size: int,
            engine=None, rows: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
            on_batch: Callable[[int, list[int]], None] | None = None) -> torch.Tensor:
    """Top-1 labels of ``x`` (N,3,H,W) under ``masks`` (N,1,H,W) bool, in batches; with an ``engine``
    (:func:`attack.fast.local_engine`) each row changes its clean image ``rows`` only inside ``boxes`` (N,4).
    ``on_batch(start, labels)`` after each batch: the labels of rows ``start …``."""
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            xi = torch.where(masks[i:i + batch_size], fill.to(x.dtype), x[i:i + batch_size])
            logits = domain_logits(model, xi, domain) if engine is None else \
                engine(xi, rows[i:i + batch_size], boxes[i:i + batch_size], domain)
            out.append(logits.argmax(1).cpu())
            if on_batch is not None:
                on_batch(i, out[-1].tolist())
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def _second(model, images, M, fillv, domain, batch_size, pairs, second, forwards, mirror=False, boxes=None,
            engine=None) -> None:
    """Two-mask labels of ``pairs`` (image, i, j), written into ``second[n, i, j]`` (and ``[n, j, i]`` with
    ``mirror``); each pair adds one forward to its image. With the mask ``boxes`` and the images' ``engine``, the
    pairs run incrementally: a pair is the image under mask ``i`` changed inside mask ``j`` only, so the pairs of
    each ``i`` run against those one-mask images (their activations cost one forward each and stay in
    :data:`attack.fast.CLEAN_CACHE` for the next chunk); an ``i`` with only a few pairs runs them against the
    image itself, changed inside the box around both masks."""
    if not pairs:
        return
    pt = torch.tensor(pairs, dtype=torch.long)
    dev = images.device
    labs = torch.empty(len(pairs), dtype=torch.long)
    if boxes is None or engine is None:
        labs = _labels(model, images[pt[:, 0].to(dev)], M[pt[:, 1].to(dev)] | M[pt[:, 2].to(dev)], fillv, domain,
                       batch_size)
    else:
        for i in pt[:, 1].unique().tolist():
            sel = (pt[:, 1] == i).nonzero().flatten()
            ns, js = pt[sel, 0], pt[sel, 2]
            both = M[i] | M[js.to(dev)]
            if len(sel) < 4:  # a one-mask image's forward would cost more than these pairs save with it
                bi, bj = boxes[i].expand(len(sel), 4), boxes[js]
                union = torch.stack([torch.minimum(bi[:, 0], bj[:, 0]), torch.maximum(bi[:, 1], bj[:, 1]),
                                     torch.minimum(bi[:, 2], bj[:, 2]), torch.maximum(bi[:, 3], bj[:, 3])], 1)
                labs[sel] = _labels(model, images[ns.to(dev)], both, fillv, domain, batch_size, engine, ns, union)
                continue
            uniq, rows = ns.unique(return_inverse=True)
            ref = local_engine(model, torch.where(M[i], fillv.to(images.dtype), images[uniq.to(dev)]), domain)
            labs[sel] = _labels(model, images[ns.to(dev)], both, fillv, domain, batch_size, ref, rows, boxes[js])
    second[pt[:, 0], pt[:, 1], pt[:, 2]] = labs
    if mirror:
        second[pt[:, 0], pt[:, 2], pt[:, 1]] = labs
    forwards += torch.bincount(pt[:, 0], minlength=forwards.shape[0])


@dataclass
class CleanserResult:
    """Per image: ``label`` the defended prediction, ``undefended`` the plain prediction, ``certified`` (bool),
    ``case`` 1 (all first-round masks agree), 2 (a disagreeing mask confirmed by its second round) or 3 (majority),
    ``first`` (N,K) one-mask labels, ``second`` (N,K,K) two-mask labels (-1 where not computed), ``forwards`` (N,)
    model forwards spent on each image, and the ``masks`` used."""
    label: torch.Tensor
    undefended: torch.Tensor
    certified: torch.Tensor
    case: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    forwards: torch.Tensor
    masks: MaskSet


def double_masking(model, images: torch.Tensor, patch_size: int, *, k: int = 6, domain: str = "image",
                   certify: bool = True, fill: float = 0.5, batch_size: int = 64,
                   on_first: Callable[[int, list[int]], None] | None = None) -> CleanserResult:
    """PatchCleanser double masking (Xiang et al. 2022) of model inputs ``images`` against a ``patch_size`` patch.

    Args: images (N,3,H,W) model inputs ([0,1], or normalised for ``domain="network"``); patch_size: side of the
    patch to defend against; k: masks per axis (Default: 6, the paper's 6 x 6 for ImageNet); certify: also run
    the two-mask pairs that decide certification (only for images whose first round is unanimous, and
    only until a pair disagrees) (Default: True); fill: grey level of masked pixels (Default: 0.5);
    on_first: ``on_first(start, labels)`` as the first round goes, one row of masks at a time (row ``start`` of the
    image-major N·K first-round rows on): a page draws the verdicts as they come; an exception raised in it stops
    the run (Default: None, the first round in one batch).
    Returns: CleanserResult.
    Example: >>> r = double_masking(model, images, 63); r.label, r.certified, r.forwards"""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    n_img, _, h, w = images.shape
    if h != w:
        raise ValueError(f"double masking needs square images, got {h}x{w}")
    ms = mask_set(h, patch_size, k)
    K = len(ms)
    dev = images.device
    fillv = _fill_value(model, domain, fill, dev)
    M = ms.masks().to(dev)  # (K,1,H,W)
    # A mask changes its image only inside its box: on a folded EfficientNet-Lite every masked forward runs
    # incrementally against the image's own activations (attack.fast.LocalForward); other models run in full.
    engine = local_engine(model, images, domain)
    boxes = patch_boxes(ms.positions, ms.size) if engine is not None else None
    with torch.no_grad():
        undefended = engine.clean_logits.argmax(1).cpu() if engine is not None else \
            torch.cat([domain_logits(model, images[i:i + batch_size], domain).argmax(1).cpu()
                       for i in range(0, n_img, batch_size)])
    # First round: every image under every mask, one batched pass.
    xi = images.repeat_interleave(K, 0)
    first = _labels(model, xi, M.repeat(n_img, 1, 1, 1), fillv, domain,
                    batch_size if on_first is None else max(1, round(K ** 0.5)), engine,
                    torch.arange(n_img).repeat_interleave(K), None if boxes is None else boxes.repeat(n_img, 1),
                    on_batch=on_first)
    first = first.view(n_img, K)
    forwards = torch.full((n_img,), 1 + K, dtype=torch.long)
    majority = torch.mode(first, dim=1).values
    unanimous = (first == first[:, :1]).all(1)
    second = torch.full((n_img, K, K), -1, dtype=torch.long)
    # Second round, recovery: for each disagreeing mask i of a non-unanimous image, every pair (i, j).
    pairs = [(n, i, j) for n in range(n_img) if not unanimous[n]
             for i in (first[n] != majority[n]).nonzero().flatten().tolist() for j in range(K) if j != i]
    _second(model, images, M, fillv, domain, batch_size, pairs, second, forwards, boxes=boxes, engine=engine)
    # Certification: the pairs i < j of each unanimous image, K at a time per image; an image stops at its first
    # pair that disagrees (it is then not certified, and the rest of its pairs would not change that).
    if certify:
        todo = {n: [(n, i, j) for i in range(K) for j in range(i + 1, K)] for n in range(n_img) if unanimous[n]}
        while todo:
            chunk = [q for n in todo for q in todo[n][:K]]
            _second(model, images, M, fillv, domain, batch_size, chunk, second, forwards, mirror=True, boxes=boxes,
                    engine=engine)
            todo = {n: rest[K:] for n, rest in todo.items()
                    if rest[K:] and bool((second[n][second[n] >= 0] == first[n, 0]).all())}
    idx = torch.arange(K)
    second[:, idx, idx] = first
    label = majority.clone()
    case = torch.where(unanimous, 1, 3)
    for n in range(n_img):
        if unanimous[n]:
            continue
        for i in (first[n] != majority[n]).nonzero().flatten().tolist():
            if (second[n, i] == first[n, i]).all():
                label[n], case[n] = first[n, i], 2
                break
    certified = unanimous & (second == first[:, :1, None]).flatten(1).all(1) if certify else \
        torch.zeros(n_img, dtype=torch.bool)  # a stopped image has -1 entries left, so it is not certified
    return CleanserResult(label, undefended, certified, case, first, second, forwards, ms)


@dataclass
class OcclusionResult:
    """Per image: ``label`` after masking the most influential window, ``undefended``, ``loc`` (N,2) the window's
    (top, left), ``drop`` (N,) the fall in the undefended class's probability that window caused, ``forwards``."""
    label: torch.Tensor
    undefended: torch.Tensor
    loc: torch.Tensor
    drop: torch.Tensor
    forwards: torch.Tensor


def occlusion_defence(model, images: torch.Tensor, patch_size: int, *, stride: int | None = None,
                      domain: str = "image", fill: float = 0.5, batch_size: int = 64) -> OcclusionResult:
    """The occlusion heuristic: slide a grey ``patch_size`` window (stride: Default patch_size // 2), take the window
    whose occlusion lowers the probability of the undefended prediction most (occlusion attribution), and classify
    with that window masked. No guarantee: an adaptive patch can survive it.
    Example: >>> r = occlusion_defence(model, images, 63); r.label, r.loc"""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    n_img, _, h, w = images.shape
    check_loc((0, 0), patch_size, (h, w))
    s = int(stride or max(1, patch_size // 2))
    ys = sorted(set(list(range(0, h - patch_size + 1, s)) + [h - patch_size]))
    xs = sorted(set(list(range(0, w - patch_size + 1, s)) + [w - patch_size]))
    pos = torch.tensor([(t, l) for t in ys for l in xs], dtype=torch.long)
    K = pos.shape[0]
    dev = images.device
    fillv = _fill_value(model, domain, fill, dev)
    M = torch.zeros(K, 1, h, w, dtype=torch.bool)
    for i, (t, l) in enumerate(pos.tolist()):
        M[i, :, t:t + patch_size, l:l + patch_size] = True
    M = M.to(dev)
    engine = local_engine(model, images, domain)  # each window changes its image only inside itself
    with torch.no_grad():
        p0 = torch.softmax(engine.clean_logits.float(), 1).cpu() if engine is not None else \
            torch.cat([torch.softmax(domain_logits(model, images[i:i + batch_size], domain).float(), 1).cpu()
                       for i in range(0, n_img, batch_size)])
        undefended = p0.argmax(1)
        probs = []
        xi = images.repeat_interleave(K, 0)
        mi = M.repeat(n_img, 1, 1, 1)
        rows = torch.arange(n_img).repeat_interleave(K)
        boxes = patch_boxes(pos, patch_size).repeat(n_img, 1)
        for i in range(0, xi.shape[0], batch_size):
            x = torch.where(mi[i:i + batch_size], fillv.to(xi.dtype), xi[i:i + batch_size])
            logits = domain_logits(model, x, domain) if engine is None else \
                engine(x, rows[i:i + batch_size], boxes[i:i + batch_size], domain)
            probs.append(torch.softmax(logits.float(), 1).cpu())
        probs = torch.cat(probs).view(n_img, K, -1)
    p_und = probs.gather(2, undefended.view(n_img, 1, 1).expand(n_img, K, 1)).squeeze(2)  # (N,K)
    drop = p0.gather(1, undefended.view(-1, 1)) - p_und
    best = drop.argmax(1)
    label = probs[torch.arange(n_img), best].argmax(1)
    return OcclusionResult(label, undefended, pos[best], drop[torch.arange(n_img), best],
                           torch.full((n_img,), 1 + K, dtype=torch.long))


# ------------------------------------------------------------------------------------- where to put the patch
@dataclass
class VulnerabilityMap:
    """A short attack at every cell of a location grid: ``p_target`` (R,C) the p(target) each cell's patch
    reached, ``evaluations`` (R,C) forward+backward evaluations it spent, ``locs`` (R,C,2) the (top, left) of each
    cell, ``best_loc`` the cell with the highest p(target) (the first in row order on ties), ``results`` the
    PatchResults in row order, ``cpu_s`` process time of the batch."""
    p_target: torch.Tensor
    evaluations: torch.Tensor
    locs: torch.Tensor
    best_loc: tuple[int, int]
    results: list
    cpu_s: float


def grid_locs(image_size: int, size: int, stride: int) -> torch.Tensor:
    """(R,C,2) (top, left) of a grid at ``stride`` px where a ``size`` patch fits, plus the last row and column."""
    check_loc((0, 0), size, image_size)
    if stride < 1:
        raise ValueError(f"stride must be at least 1, got {stride}")
    axis = sorted(set(range(0, image_size - size + 1, stride)) | {image_size - size})
    t = torch.tensor(axis, dtype=torch.long)
    return torch.stack(torch.meshgrid(t, t, indexing="ij"), -1)


def vulnerability_map(model, image: torch.Tensor, target: int, *, size: int | None = None, stride: int = 28,
                      steps: int = 100, domain: str = "network", generator: torch.Generator | None = None,
                      **train_kwargs) -> VulnerabilityMap:
    """Train a short LaVAN attack (``steps`` evaluations) at every cell of a ``stride``-px location grid, all cells
    as rows of one :func:`attack.train_patches` batch, and return the p(target) each reached.
    Example: >>> m = vulnerability_map(model, img, 859, stride=56, steps=50); m.best_loc"""
    import time

    from .train import default_patch_size, train_patches

    if image.dim() == 4:
        image = image[0]
    size = int(size or default_patch_size(image.shape[-1], model))
    locs = grid_locs(image.shape[-1], size, stride)
    R, C = locs.shape[:2]
    flat = locs.view(-1, 2)
    n = flat.shape[0]
    t0 = time.process_time()
    results = train_patches(model, image.unsqueeze(0).expand(n, -1, -1, -1), [int(target)] * n, flat, size=size,
                            domain=domain, steps=steps, generator=generator, **train_kwargs)
    cpu = time.process_time() - t0
    p = torch.tensor([r.p_target for r in results], dtype=torch.float32)
    ev = torch.tensor([r.evaluations or r.steps for r in results], dtype=torch.long)
    best = int(p.argmax())
    return VulnerabilityMap(p.view(R, C), ev.view(R, C), locs, tuple(flat[best].tolist()), results, cpu)
