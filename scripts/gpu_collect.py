"""Merge the results of scripts/gpu_reproduce.sh (unpacked into a folder) into reports/ and rewrite the reports.

FALLBACK, for this project's lent device machine only (docs/SCALE.md, "Two ways"): a run with ``--engine ray``
writes its rows straight into the driver's resumable CSV and needs no merge.

    .venv/bin/python scripts/gpu_collect.py /tmp/gpu [--out reports]

single: the four variant runs are concatenated (each ran as its own process); fragility, transfer, saliency come
from the merged folder; classes adds its rows to the ones already here. The sessions (command, machine, wall time)
of every run are kept, so each report names the commands and machines that trained its rows. Reports are then
rewritten here with --report-only.
"""
from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.cli import main as cli  # noqa: E402
from lab.reproduce import trained_sessions as trained  # noqa: E402

VARIANTS = ("paper-network", "app-network", "paper-image", "app-image")


def sessions(path: Path) -> list[dict]:
    try:
        return json.loads(path.read_text()).get("sessions", [])
    except (OSError, ValueError):
        return []


def put(name: str, out: Path, csv_src: list[Path], sess: list[dict], patch_dirs: list[Path]) -> None:
    rows, fields = [], None
    for p in csv_src:
        with p.open(newline="") as f:
            r = csv.DictReader(f)
            fields = fields or r.fieldnames
            rows += list(r)
    seen = set()  # a row written twice (a run resumed from a copy of this CSV) is kept once
    rows = [r for r in rows if not (tuple(r.items()) in seen or seen.add(tuple(r.items())))]
    with (out / f"{name}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    seen = set()  # collecting twice must not list a session twice
    sess = [x for x in sess if not ((x.get("date"), x.get("command")) in seen or seen.add((x.get("date"), x.get("command"))))]
    (out / f"{name}.json").write_text(json.dumps({"sessions": sess}, indent=1))
    for d in patch_dirs:
        dest = out / "patches" / d.name
        if d.is_dir():
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(d, dest)
    print(f"{name}: {len(rows)} rows, {len(sess)} trained sessions")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", type=Path)
    ap.add_argument("--out", type=Path, default=Path("reports"))
    a = ap.parse_args()
    src, out = a.src, a.out
    # single: rows and patches from the merged folder, sessions from the four variant runs
    put("single", out, [src / "all" / "single.csv"],
        [s for v in VARIANTS for s in trained(sessions(src / f"single-{v}" / "single.json"))],
        [src / "all" / "patches" / "single"])
    for name in ("fragility", "transfer", "saliency"):
        if (src / "all" / f"{name}.csv").is_file():
            put(name, out, [src / "all" / f"{name}.csv"], trained(sessions(src / "all" / f"{name}.json")),
                [src / "all" / "patches" / name])
    if (src / "classes" / "classes.csv").is_file():  # the GPU run resumed from a copy of our CSV: its rows hold ours
        put("classes", out, [src / "classes" / "classes.csv"],
            trained(sessions(out / "classes.json")) + trained(sessions(src / "classes" / "classes.json")),
            [src / "classes" / "patches" / "classes"])
    rc = 0
    for name, extra in (("single", ["--configs", "100", "--variants", *VARIANTS]), ("fragility", []),
                        ("transfer", []), ("saliency", []), ("classes", ["--configs", "3", "--targets", "20"])):
        rc |= cli(["reproduce", name, "--report-only", "--out", str(out), *extra])
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
