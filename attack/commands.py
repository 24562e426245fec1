"""The commands of ``python -m attack`` (and ``lavan``): each ``cmd_<name>(args) -> int`` reads the parsed arguments,
calls the library and prints text, or one JSON object with ``--json``. The parser is :mod:`attack.cli`."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch

__all__ = ["cmd_models", "cmd_classify", "cmd_attack", "cmd_fragility", "cmd_transfer", "cmd_universal",
           "cmd_saliency", "cmd_photos"]

def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def _emit(args, obj: dict, text: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj, default=_json_default))
    else:
        print(text)


def _model(args):
    from .models import load_model

    progress = None
    if getattr(args, "download", False):
        from tqdm import tqdm

        bar = tqdm(unit="B", unit_scale=True, desc=f"downloading {args.model}", file=sys.stderr)

        def progress(done: int, total: int) -> None:
            bar.total = total or None
            bar.update(done - bar.n)
    return load_model(args.model, weights=getattr(args, "weights", None), device=args.device,
                      input_size=getattr(args, "input_size", None), channels_last=True,
                      download=getattr(args, "download", False), progress=progress)


def _image(model, name: str) -> torch.Tensor:
    """A photo (path or sample name) as the model sees it: its input size, after its own resize and centre crop."""
    from .images import load_image

    return load_image(_resolve_image(name), model.input_size, resize=model.resize_size)


def _resolve_image(spec: str) -> str:
    """A path, or a sample name such as ``ai-benchmark/17`` / ``skimage/chelsea``."""
    from .images import sample_images

    if Path(spec).exists():
        return spec
    for s in sample_images():
        if s.name == spec:
            return str(s.path)
    raise ValueError(f"no such image file or sample name: {spec!r} (see `python -m attack models --samples`)")


def _patch_on_image(args):
    """The shared start of the commands that look at a trained patch on a photo: (model, patch result, image, loc).

    The patch file must match the model and input size; ``--top/--left`` override where it was trained."""
    from .io import load_patch

    model = _model(args)
    res = load_patch(args.patch, model_name=model.name, input_size=model.input_size)
    img = _image(model, args.image)
    loc = _loc(args, model.input_size, res.size, fallback=res.loc)
    return model, res, img, loc


def _loc(args, image_size: int, size: int, fallback=None):
    from .patch import check_loc, corner_loc

    if args.corner:
        return corner_loc(args.corner, image_size, size)
    if args.x is None and args.y is None:
        if fallback is not None:
            return tuple(fallback)
        return corner_loc("top-left", image_size, size)
    return check_loc((args.y or 0, args.x or 0), size, image_size)


def _place(args, model) -> str:
    """--place, or its default: for a named corner the place measured on this model family
    (:func:`attack.meter.default_place`), exactly the given pixels otherwise."""
    from .meter import default_place

    how = getattr(args, "place", None)
    if how is not None:
        return how
    return default_place(model) if getattr(args, "corner", None) else "corner"


def _topk(probs: torch.Tensor, k: int = 5) -> list[dict]:
    from .models import class_names

    top = probs.topk(k)
    return [{"id": int(i), "label": class_names()[int(i)], "p": round(float(v), 6)}
            for i, v in zip(top.indices.tolist(), top.values.tolist())]


# ---------------------------------------------------------------- commands
def cmd_models(args) -> int:
    from .images import sample_images
    from .models import MODELS, model_spec
    from .sources import cached_torchvision_models, checkpoints_dir, torchvision_info, torchvision_names

    def row(spec, available: bool) -> dict:
        return {"name": spec.name, "source": spec.source, "native_size": spec.native_size,
                "default_size": spec.default_size, "mean": spec.mean, "std": spec.std,
                "weights_available": available, "needs_weights_file": spec.needs_weights_file,
                "description": spec.description}

    rows = [row(spec, spec.weights_available()) for spec in MODELS.values()]
    cached = set(cached_torchvision_models())
    names = [f"torchvision:{n}" for n in torchvision_names()] if args.all else sorted(cached)
    rows += [row(model_spec(n), n in cached) for n in names]
    out = {"models": rows, "default": "efficientnet-lite0", "torchvision_cache": str(checkpoints_dir()),
           "torchvision_cached": sorted(cached)}
    if args.all:
        for r in rows[len(MODELS):]:
            r["weights_file"] = torchvision_info(r["name"]).file_name
    if args.samples:
        out["samples"] = [{"name": s.name, "path": str(s.path), "label": list(s.label)} for s in sample_images()]

    def state(r: dict) -> str:
        if r["weights_available"]:
            return "cached" if r["source"] == "torchvision" else "installed"
        return "user file" if r["needs_weights_file"] else ("not cached" if r["source"] == "torchvision" else "missing")
    text = "\n".join(f"{r['name']:32s} {r['native_size']}px  {state(r):10s}  {r['description']}" for r in rows)
    if not args.all:
        text += (f"\n\n{len(cached)} torchvision model(s) in {out['torchvision_cache']}; `models --all` lists all "
                 f"{len(torchvision_names())} (use one with --model torchvision:<name> [--download])")
    if args.samples:
        text += "\n\nsample images:\n" + "\n".join(f"  {s['name']}" for s in out["samples"])
    _emit(args, out, text)
    return 0


def cmd_classify(args) -> int:
    from .io import load_patch
    from .models import predict
    from .patch import patched_logits

    model = _model(args)
    img = _image(model, args.image)
    out: dict = {"model": model.name, "input_size": model.input_size, "image": args.image}
    if args.patch:
        res = load_patch(args.patch, model_name=model.name, input_size=model.input_size)
        loc = _loc(args, model.input_size, res.size, fallback=res.loc)
        with torch.no_grad():
            logits = patched_logits(model, img.unsqueeze(0).to(model.device), res.patch.to(model.device), [loc],
                                    res.domain)
        probs = torch.softmax(logits.float(), 1)[0].cpu()
        out.update(patch=args.patch, loc=list(loc), target=res.target, p_target=float(probs[res.target]))
    else:
        probs = predict(model, img)[0]
    out["top5"] = _topk(probs)
    out["pred"] = out["top5"][0]["id"]
    out["label"] = out["top5"][0]["label"]
    text = "\n".join(f"{t['p']:.4f}  {t['id']:4d}  {t['label']}" for t in out["top5"])
    _emit(args, out, text)
    return 0


def cmd_attack(args) -> int:
    from tqdm import tqdm

    from .cache import PatchCache, get_or_train
    from .images import image_hash
    from .io import save_patch
    from .models import class_index, class_names
    from .patch import size_for_area
    from .spec import TrainingSpec

    model = _model(args)
    img = _image(model, args.image)
    target = class_index(args.target)
    spec = TrainingSpec(size=args.size or (size_for_area(args.area, model.input_size) if args.area else None),
                        domain=args.domain, optimizer=args.optimizer, restarts=args.restarts, loss=args.loss,
                        lr=args.lr, steps=args.max_iter, stop_at=args.stop_at, seed=args.seed).resolve(model)
    size = spec.size
    loc = _loc(args, model.input_size, size)
    chosen, how = loc, _place(args, model)
    if how != "corner":  # MeterUnavailable (a ValueError) where the network has no last grid: main() reports it
        from .meter import place
        loc = place(model, img, target, size, loc, how)
        if args.place is None and loc != chosen and not args.quiet:
            print(f"{args.corner}: {max(abs(loc[0] - chosen[0]), abs(loc[1] - chosen[1]))} px in, to cover more of "
                  f"the network's last-grid cells (--place corner: the exact corner)", file=sys.stderr)
    key = spec.key(model, image_hash(img), target, loc)
    bar = tqdm(total=args.max_iter, desc=f"{class_names()[target]}", unit="eval", file=sys.stderr,
               disable=args.quiet)

    def cb(info):
        bar.update(info.evaluations - bar.n)
        bar.set_postfix(p_target=f"{info.p_target:.3f}", p_source=f"{info.p_source:.3f}",
                        restarts=sum(p is not None for p in info.restarts), refresh=False)

    res, cached = get_or_train(
        None if args.no_cache else PatchCache(args.cache_dir), key,
        lambda: spec.train(model, img, target, loc, callback=cb), image_hash(img))
    bar.close()
    out_path = Path(args.out) if args.out else Path("patches") / f"{Path(args.image).stem}_{target}_{loc[1]}_{loc[0]}_{size}_{args.domain}.safetensors"
    save_patch(out_path, res)
    out = {"success_0_9": bool(res.success["confident"]), "argmax_target": bool(res.success["argmax"]),
           "not_source": bool(res.success["not_source"]), "iterations": int(res.steps),
           "evaluations": int(res.evaluations or res.steps), "restarts": int(res.meta.get("restarts", 1)),
           "optimizer": res.meta.get("optimizer"), "loss": res.loss, "relu6_leak": res.meta.get("relu6_leak", 0.0),
           "p_target": float(res.p_target), "p_source": float(res.p_source), "seconds": float(res.seconds),
           "patch_path": str(out_path), "target": target, "target_label": class_names()[target],
           "source": res.source, "source_label": class_names()[res.source], "loc": list(loc), "x": loc[1],
           "y": loc[0], "size": size, "area": size * size / model.input_size ** 2, "domain": args.domain,
           "model": model.name, "input_size": model.input_size, "cached": cached, "place": how,
           "chosen_loc": list(chosen)}
    text = (f"{'cached: ' if cached else ''}{class_names()[res.source]} -> {class_names()[target]}: "
            f"p(target)={res.p_target:.3f} p(source)={res.p_source:.3f} after {out['evaluations']} forward+backward "
            f"evaluations ({res.steps} iterations, {out['restarts']} restart(s)) "
            f"({res.seconds:.1f}s); success≥0.9={out['success_0_9']} argmax={out['argmax_target']} "
            f"not_source={out['not_source']}\npatch: {out_path}")
    _emit(args, out, text)
    return 0


def cmd_fragility(args) -> int:
    from .fragility import shift_map

    model, res, img, loc = _patch_on_image(args)
    maps = shift_map(model, img, res.patch, loc, res.target, radius=args.radius, domain=res.domain)
    r = args.radius
    out = {"radius": r, "loc": list(loc), "target": res.target, "source": maps["source"],
           "p_target": maps["p_target"].tolist(), "p_source": maps["p_source"].tolist(),
           "argmax": maps["argmax"].tolist(), "centre_p_target": float(maps["p_target"][r, r])}
    lines = ["p(target) by shift (rows dy, columns dx):", "      " + " ".join(f"{dx:+6d}" for dx in range(-r, r + 1))]
    for i, dy in enumerate(range(-r, r + 1)):
        lines.append(f"{dy:+4d}  " + " ".join("   nan" if math.isnan(v) else f"{v:6.3f}" for v in maps["p_target"][i].tolist()))
    _emit(args, out, "\n".join(lines))
    return 0


def cmd_transfer(args) -> int:
    from .io import load_patch
    from .transfer import border_transfer

    model = _model(args)
    res = load_patch(args.patch, model_name=model.name, input_size=model.input_size)
    if res.loc is None:
        raise ValueError("transfer needs a patch trained at one location (not a universal patch)")
    src = _image(model, args.src)
    dst = torch.stack([_image(model, d) for d in args.dst])
    out = border_transfer(model, src, dst, res.patch, res.loc, res.target, borders=args.borders, domain=res.domain)
    text = "border  area   p>=0.9  argmax  not_source  mean p(target)\n" + "\n".join(
        f"{b:5.2f}  {a:5.3f}  {c:6.2f}  {m:6.2f}  {n:10.2f}  {p:.3f}" for b, a, c, m, n, p in
        zip(out["borders"], out["area"], out["confident"], out["argmax"], out["not_source"], out["mean_p_target"]))
    _emit(args, out, text)
    return 0


def cmd_universal(args) -> int:
    from tqdm import tqdm

    from .evaluate import evaluate_patch
    from .images import load_image, sample_images, universal_split
    from .io import save_patch
    from .models import class_index, class_names
    from .patch import random_locs, size_for_area
    from .train import default_patch_size
    from .universal import train_universal

    model = _model(args)
    target = class_index(args.target)
    g = torch.Generator().manual_seed(args.seed)
    train_p, test_p = universal_split(sample_images(("ai-benchmark",)), args.train, args.test, g)
    train = torch.stack([load_image(p.path, model.input_size, resize=model.resize_size) for p in train_p])
    test = torch.stack([load_image(p.path, model.input_size, resize=model.resize_size) for p in test_p])
    size = args.size or (size_for_area(args.area, model.input_size) if args.area else default_patch_size(model.input_size, model))
    bar = tqdm(total=args.max_steps, desc=f"universal {class_names()[target]}", unit="it", file=sys.stderr,
               disable=args.quiet)

    def cb(info):
        bar.update(1)
        bar.set_postfix(p_target=f"{info['p_target']:.3f}", streak=info["streak"], refresh=False)

    res = train_universal(model, train, target, size=size, domain=args.domain, loss=args.loss,
                          patience=args.patience, max_steps=args.max_steps, batch_size=args.batch_size,
                          lr=args.lr, generator=g, callback=cb)
    bar.close()
    locs = random_locs(len(test), model.input_size, size, g)
    ev = evaluate_patch(model, test, res.patch, locs, target, domain=res.domain)
    out_path = Path(args.out) if args.out else Path("patches") / f"universal_{target}_{size}_{args.domain}.safetensors"
    res.meta.update(heldout={k: ev[k] for k in ("n", "confident", "argmax", "not_source", "mean_p_target")})
    save_patch(out_path, res)
    out = {"target": target, "target_label": class_names()[target], "size": size, "domain": res.domain,
           "steps": res.steps, "converged": res.success["converged"], "seconds": res.seconds,
           "heldout": res.meta["heldout"], "patch_path": str(out_path), "train_images": args.train,
           "test_images": args.test}
    h = out["heldout"]
    _emit(args, out, f"{class_names()[target]}: {res.steps} steps, converged={res.success['converged']} "
                     f"({res.seconds:.0f}s)\nheld-out ({h['n']} images): p>=0.9 {h['confident']:.1%}, "
                     f"argmax {h['argmax']:.1%}, source misclassified {h['not_source']:.1%}\npatch: {out_path}")
    return 0


def cmd_saliency(args) -> int:
    from .patch import apply_patch, patch_mask
    from .saliency import attribution_map, mass_in_patch

    model, res, img, loc = _patch_on_image(args)
    x = apply_patch(img.to(model.device), res.patch.to(model.device), loc, res.domain, model)
    mask = patch_mask(model.input_size, res.size, loc)
    out = {"loc": list(loc), "area": res.size ** 2 / model.input_size ** 2, "methods": {}}
    for method in args.methods:
        heat = attribution_map(model, x, res.target, method=method, domain=res.domain)
        out["methods"][method] = {"mass_in_patch": float(mass_in_patch(heat, mask)[0])}
    text = f"patch area share {out['area']:.3f}\n" + "\n".join(
        f"{m:22s} mass in patch {v['mass_in_patch']:.3f}" for m, v in out["methods"].items())
    _emit(args, out, text)
    return 0


def cmd_photos(args) -> int:
    from .images import extract_gcompris, gcompris_rcc_dir, photos_dir

    rcc = Path(args.rcc) if args.rcc else gcompris_rcc_dir()
    files = extract_gcompris(rcc)
    out = {"rcc_dir": str(rcc), "dest": str(photos_dir() / "gcompris"), "photos": len(files)}
    if files:
        text = f"{len(files)} gcompris photos in {out['dest']}"
    else:
        text = (f"no gcompris photos: {rcc} holds no Qt resource bundles (install Debian's gcompris-qt-data for "
                "~240 more photos; the 100 ai-benchmark photos work without them)")
    _emit(args, out, text)
    return 0
