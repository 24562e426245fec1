"""``lavan <command>`` (``python -m lab <command>``): every sub-command of ``python -m attack`` plus the lab's own,
``reproduce`` (the paper's experiments) and ``docs`` (the generated Markdown)."""
from __future__ import annotations

import argparse

from attack import cli as attack_cli

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """:func:`attack.cli.build_parser` with ``reproduce`` and ``docs`` added to its sub-commands."""
    from .docs import add_parser as add_docs
    from .reproduce import add_parser as add_reproduce

    ap = attack_cli.build_parser(prog="lavan")
    sub = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    add_reproduce(sub)
    add_docs(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    return attack_cli.main(argv, parser=build_parser())
