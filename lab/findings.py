"""The paper's findings beside ours, each read from a committed report (``reports/<name>.json``).

One list, :func:`findings`, feeds the README's "Paper vs us" table (:mod:`lab.docs`) and the app's Home page,
so a number can only change where its report changes. Every "ours" text is computed from the report's summary;
a report that is missing gives "not run yet" instead of a number.

Example: >>> [f.ours for f in findings("reports") if f.report == "single"][0]
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .fmt import pct

ROOT = Path(__file__).resolve().parent.parent

# The paper's figures (Karmon et al. 2018, arXiv:1801.02608), and the reading of its qualitative claims.
PAPER = {
    "single": {"success_0_9": 0.79, "argmax_target": 0.91, "not_source": 0.98,
               "_note": "network domain, 42×42 patch (2% of a 299×299 image), Inception v3, cap 10,000 iterations"},
    "fragility": {"shift1_confident": 0.0,
                  "_note": "moving the patch by one pixel reverts the prediction (qualitative claim)"},
    "transfer": {"border_needed": 0.25,
                 "_note": "a patch moved to another image needs about 25% of its source image around it per side"},
    "universal": {"confident": 0.283, "argmax": 0.741, "not_source": 0.789,
                  "_note": "image-domain universal patches, trained on 100 photos, 100 held-out photos"},
    "classes": {"_note": "targets differ: a globally structured class (volcano) is harder than a local one "
                         "(baseball) (qualitative)"},
    "saliency": {"_note": "the network does not localise the patch: attribution mass inside it is not "
                          "concentrated (qualitative)"},
    "crossmodel": {"off_diagonal_confident": 0.0, "_note": "patches fool only the network they were trained on"},
    "brown": {"_note": "Brown et al.'s patch covers ~10% of the image and survives transformations; LaVAN's "
                       "covers 2% and does not (qualitative comparison in the paper)"},
    "defend": {"_note": "no defence is evaluated in the paper; PatchCleanser (Xiang, Mahloujifar, Mittal, USENIX "
                        "Security 2022) certifies a label against any patch of a given size"},
}
_P = PAPER


def _p(v, digits: int = 0) -> str:
    """A share as a bare percentage for the findings' "a / b %" cells: 0.205 -> "21" ("20.5" at digits=1)."""
    return pct(v, digits, "")


def _trio(d: dict, keys=("success_0_9", "argmax_target", "not_source"), digits: int = 0) -> str:
    return " / ".join(_p(d.get(k), digits) for k in keys) + " %"


def _cap(c) -> str:
    return f"{int(c):,}" if c is not None else "?"


@dataclass(frozen=True)
class Finding:
    """One row: the claim, the paper's figure, ours (from ``report``), and the app page that shows it."""
    claim: str
    paper: str
    ours: str
    report: str
    page: str | None = None


def load(name: str, out: Path) -> dict | None:
    path = Path(out) / f"{name}.json"
    try:
        return json.loads(path.read_text())["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _single(s: dict) -> list[tuple[str, str, str]]:
    by = s["by_variant"]
    rows = []
    for v, geo, dom in (("paper-network", "42×42 on 299", "network"), ("paper-image", "42×42 on 299", "image domain"),
                        ("app-network", "63×63 on 224", "network"), ("app-image", "63×63 on 224", "image domain")):
        d = by.get(v)
        if not d:
            continue
        med = f", median {d['median_iterations']:.0f} it" if d.get("median_iterations") and d["success_0_9"] >= 0.1 \
            else ""
        paper = (f"{_trio(_P['single'])} (cap 10,000)" if v == "paper-network" else "—")
        claim = (f"single image, {geo} ({dom}): p≥0.9 / argmax / source removed" if v == "paper-network"
                 else f"single image, {geo} ({dom}): same")
        rows.append((claim, paper, f"{_trio(d)}{med} (cap {_cap(d.get('iteration_cap'))})"))
    return rows


def _fragility(s: dict) -> str:
    return (f"{_p(s['shift1_confident'])} % / {_p(s['shift1_argmax'])} % ({s['configs']} patches; 2 px: "
            f"{_p(s['shift2_confident'])} / {_p(s['shift2_argmax'], 1)} %, 5 px: {_p(s['shift5_confident'])} / "
            f"{_p(s['shift5_argmax'])} %)")


def _transfer(s: dict) -> str:
    parts = [f"{b:.0%}: {_p(c, 1)} / {_p(a, 1)} %" for b, c, a in zip(s["borders"], s["confident"], s["argmax"])
             if round(b, 2) in (0.0, 0.1, 0.25, 0.5)]
    parts = [f"**{p}**" if p.startswith("25%") else p for p in parts]
    return f"{', '.join(parts)} ({s['configs']} patches × {s['dst_photos_per_patch']} photos)"


_SHORT = {"saliency": "saliency", "integrated_gradients": "IG", "grad_cam": "Grad-CAM", "occlusion": "occlusion"}


def _saliency(s: dict) -> str:
    return ", ".join(f"{_SHORT.get(m, m)} {d['median_ratio']:.1f}×" for m, d in s["by_method"].items())


def _universal(s: dict) -> str:
    return (f"{_p(s['confident'], 1)} / {_p(s['argmax'], 1)} / {_p(s['not_source'], 1)} % "
            f"({s['size']}×{s['size']} on 224, {s['configs']} targets, cap {_cap(s['max_steps'])} steps)")


def _universal_lg(s: dict) -> str:
    by = s["by_target"]
    return ", ".join(f"{t} {_p(by[t]['confident'])} / {_p(by[t]['argmax'])} %" for t in ("baseball", "volcano")
                     if t in by)


def ranks(by_class: dict) -> dict[str, int]:
    """Competition ranks (1, 1, 3, …) of classes ordered by success, then median iterations: a tie shares a rank."""
    key = {k: (-d["success_0_9"], d["median_iterations_capped"]) for k, d in by_class.items()}
    return {k: 1 + sum(1 for o in key.values() if o < key[k]) for k in key}


def _classes(s: dict) -> str:
    by, rk = s["by_class"], ranks(s["by_class"])
    first = [k for k in by if rk[k] == 1]
    last_rank = max(rk.values())
    last = [k for k in by if rk[k] == last_rank] if len({d["success_0_9"] for d in by.values()}) > 1 else []

    def one(k):
        d = by[k]
        return f"{round(d['success_0_9'] * d['configs'])}/{d['configs']}, median {d['median_iterations_capped']:.0f} it"
    head = (f"{' and '.join(first)} tie for easiest ({one(first[0])})" if len(first) > 1
            else f"{first[0]} easiest ({one(first[0])})")
    volcano = f"; volcano {one('volcano')}, rank {rk['volcano']} of {len(by)}" if "volcano" in by else ""
    worst = min(by[k]["success_0_9"] for k in by)
    hard = [k for k in by if by[k]["success_0_9"] == worst]
    tail = f"; hardest: {', '.join(hard)} ({round(worst * by[hard[0]]['configs'])}/{by[hard[0]]['configs']})" \
        if last else ""
    return head + volcano + tail


def _crossmodel(s: dict) -> str:
    n = s["patches_successful"]
    total = s["configs"]
    return (f"own model {_p(s['diagonal_confident'])} % by construction (only the {n} of {total} patches that "
            f"reached p≥0.9 on their own model within {_cap(s['iteration_cap'])} it are scored); other models "
            f"{_p(s['off_diagonal_confident'])} % p≥0.9, {_p(s['off_diagonal_argmax'])} % top-1, "
            f"{_p(s['off_diagonal_not_source'], 1)} % source lost")


def _brown(s: dict) -> str:
    by = s["by_condition"]
    out = []
    for tag in ("app-area", "10pct"):
        la, br = by.get(f"lavan-{tag}"), by.get(f"brown-{tag}")
        if la and br:
            out.append(f"{la['area']:.1%} area: LaVAN {_p(la['confident'], 1)} [{_p(la['eot_confident'], 1)}] %, "
                       f"Brown {_p(br['confident'], 1)} [{_p(br['eot_confident'], 1)}] %")
    return "; ".join(out)


def _defend(s: dict) -> str:
    clean = "; ".join(f"clean photos, {size} px: {_p(s[f'clean_{size}']['agree'])} % keep their label, "
                      f"{_p(s[f'clean_{size}']['certified'])} % certified (n={s[f'clean_{size}']['n']}, median "
                      f"{s[f'clean_{size}']['median_forwards']:.0f} forwards)" for size in s["sizes"])
    of = f" of {s['patches_available']}" if s.get("patches_available") is not None else ""
    grid = s.get("on_occlusion_grid")
    on = ("" if grid is None else ", every patch on its window grid" if grid == s.get("patches_placed") else
          f", {grid} of {s.get('patches_placed')} patches on its window grid")
    return (f"{s['k']}×{s['k']} masks: source recovered on {_p(s['recovered'])} % of {s['patches']}{of} successful "
            f"patches (occlusion heuristic {_p(s['occlusion_recovered'])} %{on}); {clean}")


def findings(out: str | Path | None = None) -> list[Finding]:
    """Every paper finding with our figure from the reports in ``out`` (default ``reports/``)."""
    out = Path(out) if out is not None else ROOT / "reports"
    rep = {n: load(n, out) for n in PAPER}

    def ours(name, fn):
        if rep[name] is None:
            return f"not run yet (`python -m lab reproduce {name}`)"
        try:
            return fn(rep[name])
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            return f"report unreadable ({type(e).__name__})"

    rows: list[Finding] = []
    try:
        rows += [Finding(c, p, o, "single", "attack") for c, p, o in _single(rep["single"])]
    except (KeyError, TypeError, ValueError, AttributeError):
        rows = []
    if not rows:
        rows.append(Finding("single image, 42×42 on 299 (network): p≥0.9 / argmax / source removed",
                            f"{_trio(_P['single'])} (cap 10,000)", ours("single", lambda s: ""), "single", "attack"))
    rows += [
        Finding("shift a successful patch by 1 px: still p≥0.9 / target top-1", "0 % (one pixel reverts it)",
                ours("fragility", _fragility), "fragility", "fragility"),
        Finding("transfer to other photos with a border per side: p≥0.9 / target top-1",
                "≈ 25 % border needed", ours("transfer", _transfer), "transfer", "transfer"),
        Finding("attribution mass inside the patch / its area share (median over patches)", "not localised",
                ours("saliency", _saliency), "saliency", "gradients"),
        Finding("universal image-domain patch, 100 train / 100 held-out photos: p≥0.9 / argmax / source "
                "misclassified", f"{_p(_P['universal']['confident'], 1)} / {_p(_P['universal']['argmax'], 1)} / "
                f"{_p(_P['universal']['not_source'], 1)} %", ours("universal", _universal), "universal", "universal"),
        Finding("universal, local vs global target (held-out p≥0.9 / argmax)", "volcano harder than baseball",
                ours("universal", _universal_lg), "universal", "universal"),
        Finding("target difficulty, 20 classes × 3 (photo, corner) draws (63×63 on 224, network, cap 1,000)",
                "volcano (global) harder than baseball (local)", ours("classes", _classes), "classes", None),
        Finding("patch trained on one Lite model, shown to the two others (image domain, same relative place and "
                "area share)", "fools only its own network", ours("crossmodel", _crossmodel), "crossmodel", "models"),
        Finding("LaVAN vs Brown et al. (EOT) universal patch, held-out p≥0.9 at fixed placements [under random "
                "scale/rotation]", "LaVAN smaller but not robust; Brown robust", ours("brown", _brown), "brown",
                None),
        Finding("beyond the paper: PatchCleanser double masking (Xiang et al. 2022) against the successful single "
                "patches, and on clean photos", "no defence evaluated", ours("defend", _defend), "defend", "defend"),
    ]
    return rows


def findings_markdown(out: str | Path | None = None) -> str:
    lines = ["| finding | paper | ours | report |", "|---|---|---|---|"]
    lines += [f"| {f.claim} | {f.paper} | {f.ours} | `reports/{f.report}.md` |" for f in findings(out)]
    return "\n".join(lines)


# The Home page: one row per page, in the app's words, with the figures of that page's finding.
HOME = (
    ("attack", "A 42×42 patch (2% of a 299×299 image) flips the prediction to any target", "single"),
    ("fragility", "The patch is fragile: moving it by one pixel mostly undoes it", "fragility"),
    ("transfer", "A patch moved to another image needs ≈25% of its source image around it (per side) to keep "
                 "working", "transfer"),
    ("universal", "One universal patch trained on many images, at random places", "universal"),
    ("gradients", "Gradients do not single out the patch as the cause of the error", "saliency"),
    ("models", "Patches do not transfer across networks", "crossmodel"),
    ("defend", "Beyond the paper: can masking the patch away (PatchCleanser) recover the label?", "defend"),
)


def home_rows(out: str | Path | None = None) -> list[tuple[str, str, str, str]]:
    """(page, claim, paper's figure, ours) for the Home page, from the same :func:`findings` as the README."""
    first = {}
    for f in findings(out):
        first.setdefault(f.report, f)
    return [(page, claim, first[rep].paper, first[rep].ours) for page, claim, rep in HOME]
