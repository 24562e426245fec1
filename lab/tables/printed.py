"""Tables a bench script printed and whose printout is committed (``bench/results/*.txt``: speed, input size,
payload, load): read back as Markdown lines."""
from __future__ import annotations

from pathlib import Path


def printed_tables(path: str | Path) -> tuple[list[str], list[list[str]]]:
    """(lines before the first table, [each Markdown table's lines]) of a bench script's saved printout; ``#`` lines
    are provenance comments and are left out."""
    before: list[str] = []
    found: list[list[str]] = []
    in_table = False
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("|"):
            if not in_table:
                found.append([])
            found[-1].append(line)
            in_table = True
            continue
        in_table = False
        if not found and line.strip():
            before.append(line)
    return before, found


def printed_table(path: str | Path, index: int = 0) -> tuple[list[str], list[str]]:
    """(lines before the first table, the lines of table ``index``) of a saved printout."""
    before, found = printed_tables(path)
    return before, found[index]
