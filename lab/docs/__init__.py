"""``python -m lab docs`` (``make docs``): every figure in the Markdown comes from committed data, by code.

A generated block in README.md or a page of docs/ (``DOCUMENTS``) is a marker pair with the text between them::

    <!-- BEGIN gen:NAME -->
    …whatever BLOCKS["NAME"]() returns…
    <!-- END gen:NAME -->

(indented as the BEGIN marker is, so a block can sit inside a list item)

``python -m lab docs`` rewrites every such block from the data (``bench/results/*``, ``reports/*.json|csv``),
recomputes each report's summary, table and notes from its CSV rows (:mod:`lab.reproduce.resummary`; the run's
record of commands, machines and wall time stays) and re-renders ``reports/<name>.md`` from it
(:mod:`lab.reproduce.report`); text outside the markers is left alone. Running it twice changes nothing.
``python -m lab docs --check`` changes nothing and exits 1 naming each document that differs from what its data
gives; ``tests/test_docs.py`` runs the same check in ``make test``, so drift cannot land.

To add a block (e.g. an ablation table) — for a bench script's saved Markdown printout, one entry in
``PRINTED_TABLES`` is all it takes; otherwise:
  1. write ``def _ablation(root: Path) -> str`` below that reads its committed raw file and returns Markdown, decorated with
     ``@block("ablation")`` (put the reader/summary in :mod:`lab.tables` if a bench script or the app shows it too);
  2. put ``<!-- BEGIN gen:ablation -->`` and ``<!-- END gen:ablation -->`` where it goes in README.md or a page of
     docs/ (the same block may stand in several files; a new page goes into ``registry.DOCUMENTS``), and run
     ``make docs``.
A marker whose NAME has no function is an error, so a typo cannot silently leave stale text.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from . import app, area, costs, machines, pages, runs, strength  # noqa: F401  (each registers its blocks)
from .registry import _BLOCK, BLOCKS, DOCUMENTS, PRINTED_TABLES, RAW_PRINTOUTS, RESULTS, ROOT, block

__all__ = ["BLOCKS", "DOCUMENTS", "PRINTED_TABLES", "RAW_PRINTOUTS", "RESULTS", "ROOT", "block", "render",
           "generated", "stale", "write", "add_parser"]


# ---------------------------------------------------------------- the machinery
def render(text: str, root: Path = ROOT, where: str = "") -> str:
    """``text`` with every generated block rewritten from the data under ``root``."""
    def sub(m: re.Match) -> str:
        indent, name = m.group(1), m.group(2)
        if name not in BLOCKS:
            raise KeyError(f"{where}: no generator for block gen:{name} (known: {', '.join(sorted(BLOCKS))})")
        body = "\n".join((indent + line).rstrip() for line in BLOCKS[name](root).rstrip("\n").splitlines())
        # a block inside a list item keeps the item's indentation
        return f"{indent}<!-- BEGIN gen:{name} -->\n{body}\n{indent}<!-- END gen:{name} -->"
    return _BLOCK.sub(sub, text)


def generated(root: Path = ROOT) -> dict[Path, str]:
    """Every generated document under ``root`` -> the text its data gives: the marked blocks of README.md and
    the docs/ pages (``DOCUMENTS``), and each report's JSON (summary, table, notes recomputed from its CSV rows)
    and Markdown."""
    from ..reproduce.report import render_markdown
    from ..reproduce.resummary import refreshed

    out = {}
    for rel in DOCUMENTS:
        path = root / rel
        if path.is_file():
            out[path] = render(path.read_text(), root, rel)
    for js in sorted((root / "reports").glob("*.json")):
        rep = refreshed(js)
        out[js] = json.dumps(rep, indent=1, default=str)
        out[js.with_suffix(".md")] = render_markdown(rep)
    return out


def stale(root: Path = ROOT) -> list[Path]:
    """Documents whose committed text differs from what their data gives."""
    return [p for p, text in generated(root).items() if not p.is_file() or p.read_text() != text]


def write(root: Path = ROOT) -> list[Path]:
    """Rewrite every stale document; returns the ones changed (none on a second run)."""
    changed = stale(root)
    texts = generated(root)
    for p in changed:
        p.write_text(texts[p])
    return changed


def cmd_docs(args) -> int:
    root = Path(args.root)
    if args.check:
        bad = stale(root)
        for p in bad:
            print(f"stale: {p.relative_to(root)} (run `make docs`)", file=sys.stderr)
        return 1 if bad else 0
    for p in write(root):
        print(f"rewrote {p.relative_to(root)}")
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("docs", help="rewrite the generated blocks of README.md, the docs/ pages and "
                              "reports/*.md from the committed data", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a document is stale")
    p.add_argument("--root", default=str(ROOT), help="the checkout (default: this one)")
    p.set_defaults(func=cmd_docs)
    return p
