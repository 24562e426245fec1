"""``python -m attack <command>``: the library from the command line. Every command has ``--help`` and ``--json``.

Commands: models, classify, attack, fragility, transfer, universal, saliency, photos. ``lavan`` (:mod:`lab.cli`)
offers these and the lab's ``reproduce`` and ``docs``.
Progress bars go to stderr; with ``--json`` stdout holds exactly one JSON object.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from .commands import (
    cmd_attack,
    cmd_classify,
    cmd_fragility,
    cmd_models,
    cmd_photos,
    cmd_saliency,
    cmd_transfer,
    cmd_universal,
)

__all__ = ["main", "build_parser"]


def _common(p: argparse.ArgumentParser, model=True) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is faster on a busy small machine)")
    if model:
        p.add_argument("--model", default="efficientnet-lite0",
                       help="efficientnet-lite0/1/2 (embedded), torchvision:<name> (any torchvision classifier, "
                            "e.g. torchvision:inception_v3, the paper's model; weights from the torch hub cache), "
                            "or inception-v3 with --weights (see `models`)")
        p.add_argument("--weights", default=None,
                       help="a local state-dict file (.pth, read with weights_only=True, or .safetensors); required "
                            "for inception-v3, optional for torchvision:<name>")
        p.add_argument("--download", action="store_true",
                       help="torchvision:<name>: download the weights into the torch hub cache if they are not "
                            "there (nothing is downloaded without this flag)")
        p.add_argument("--input-size", type=int, default=None, help="input side in px (default: the model's)")


def _add_loc(p: argparse.ArgumentParser) -> None:
    p.add_argument("--x", type=int, default=None, help="left column of the patch (px)")
    p.add_argument("--y", type=int, default=None, help="top row of the patch (px)")
    p.add_argument("--corner", default=None, choices=["top-left", "top-right", "bottom-left", "bottom-right"])


# ---------------------------------------------------------------- parser
def _patch_on_image_parser(sub, name: str, help: str, func, patch_required: bool = True) -> argparse.ArgumentParser:
    """A command that reads a patch file and shows it on an image: --image, --patch and the location options."""
    p = sub.add_parser(name, help=help)
    _common(p)
    p.add_argument("--image", required=True, help="image path or sample name (ai-benchmark/17)")
    p.add_argument("--patch", required=patch_required, default=None,
                   help="safetensors patch file to apply (at its own location unless --x/--y or --corner)")
    _add_loc(p)
    p.set_defaults(func=func)
    return p


def _attack_parser(sub, LOSSES, OPTIMIZERS) -> None:
    """``attack``: train one patch for one photo at one place."""
    p = sub.add_parser("attack", help="train a LaVAN patch for one image at one location")
    _common(p)
    p.add_argument("--image", required=True, help="image path or sample name")
    p.add_argument("--target", required=True, help="target class: id or name (toaster)")
    _add_loc(p)
    p.add_argument("--place", default=None, choices=["corner", "grid", "meter"],
                   help="from the chosen place (--corner, --x/--y): corner = exactly there; grid = moved up to 16 px "
                        "to cover the most cells of the network's last grid; meter = the feasibility meter's best "
                        "place within 16 px (attack.meter; CNNs whose head averages a last grid). Default: exactly "
                        "there for --x/--y; for --corner, attack.meter.DEFAULT_PLACE where the network has a grid")
    p.add_argument("--size", type=int, default=None, help="patch side in px (default: the measured default)")
    p.add_argument("--area", type=float, default=None, help="patch area as a fraction (0.02 = paper)")
    p.add_argument("--domain", default="network", choices=["network", "image"])
    p.add_argument("--loss", default=None, choices=LOSSES, help="objective (default: the measured default)")
    p.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                   help="update rule (default: the measured default; sgd = the paper's plain gradient)")
    p.add_argument("--restarts", type=int, default=None,
                   help="patches trained side by side under successive halving (default: 1 at the default patch "
                        "area or larger, 8 below it)")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-iter", type=int, default=10_000,
                   help="budget of forward+backward evaluations, restarts x iterations (paper: 10,000 iterations)")
    p.add_argument("--stop-at", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="patch file to write (default: patches/…)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_attack)


def _universal_parser(sub, LOSSES) -> None:
    """``universal``: one patch for many photos, evaluated on held-out ones."""
    p = sub.add_parser("universal", help="train a universal patch on sample photos, evaluate on held-out ones")
    _common(p)
    p.add_argument("--target", required=True)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--area", type=float, default=None)
    p.add_argument("--domain", default="image", choices=["network", "image"])
    p.add_argument("--loss", default="logprob", choices=LOSSES)
    p.add_argument("--train", type=int, default=50, help="training photos")
    p.add_argument("--test", type=int, default=50, help="held-out photos")
    p.add_argument("--patience", type=int, default=30)
    p.add_argument("--max-steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_universal)


def build_parser(prog: str = "python -m attack") -> argparse.ArgumentParser:
    from .losses import LOSSES
    from .optim import RULES as OPTIMIZERS
    from .saliency import ATTRIBUTION_METHODS

    ap = argparse.ArgumentParser(prog=prog, description="LaVAN: localized and visible adversarial "
                                 "noise (Karmon et al. 2018) on real ImageNet classifiers.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list models and whether their weights are available")
    _common(p, model=False)
    p.add_argument("--samples", action="store_true", help="also list the sample photos")
    p.add_argument("--all", action="store_true",
                   help="list every torchvision classifier, cached or not (the file name torchvision expects)")
    p.set_defaults(func=cmd_models)

    _patch_on_image_parser(sub, "classify", "top-5 for an image, optionally with a patch file applied",
                           cmd_classify, patch_required=False)

    _attack_parser(sub, LOSSES, OPTIMIZERS)

    p = _patch_on_image_parser(sub, "fragility", "p(target) when the patch is shifted by ±radius px", cmd_fragility)
    p.add_argument("--radius", type=int, default=2)

    p = sub.add_parser("transfer", help="paste a patch with a border of its source image onto other images")
    _common(p)
    p.add_argument("--patch", required=True)
    p.add_argument("--src", required=True, help="the image the patch was trained on")
    p.add_argument("--dst", nargs="+", required=True, help="other images")
    p.add_argument("--borders", type=float, nargs="+", default=[0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5])
    p.set_defaults(func=cmd_transfer)

    _universal_parser(sub, LOSSES)

    p = _patch_on_image_parser(sub, "saliency", "share of attribution mass inside the patch vs its area", cmd_saliency)
    p.add_argument("--methods", nargs="+", default=list(ATTRIBUTION_METHODS), choices=ATTRIBUTION_METHODS)

    p = sub.add_parser("photos", help="extract the photos of Debian's gcompris-qt-data into the sample set")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--rcc", default=None, help="folder of .rcc bundles (default /usr/share/gcompris-qt/rcc)")
    p.set_defaults(func=cmd_photos)

    return ap


def main(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Parse ``argv`` with ``parser`` (default :func:`build_parser`; ``lavan`` passes one with the lab's commands
    added) and run the chosen command."""
    lab_command = next(iter(sys.argv[1:] if argv is None else argv), None) in ("reproduce", "docs")
    if parser is None and lab_command:  # the lab's commands live beside the library, not in it
        print("error: `reproduce` and `docs` are the lab's commands: run `lavan …` or `python -m lab …`",
              file=sys.stderr)
        return 2
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(max(1, args.threads))
    try:
        return int(args.func(args) or 0)
    except (ValueError, OSError) as exc:  # ImageError, PatchFileError, ModelError are ValueErrors
        msg = f"{type(exc).__name__}: {exc}"
        if getattr(args, "json", False):
            print(json.dumps({"error": msg}))
        print(f"error: {msg}", file=sys.stderr)
        return 2
