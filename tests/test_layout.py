"""The library and the lab: ``attack/`` never imports ``lab/`` (nor the app's ``ui``/``pages``), and ``lavan`` offers
the library's commands plus the lab's."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported(path: Path) -> set[str]:
    """Top-level package names that ``path`` imports (absolute imports only; relative ones stay in the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_attack_never_imports_lab_or_the_app():
    bad = {str(p.relative_to(ROOT)): sorted(_imported(p) & {"lab", "ui", "pages", "streamlit"})
           for p in sorted((ROOT / "attack").rglob("*.py"))}
    assert not {k: v for k, v in bad.items() if v}


def test_importing_attack_loads_no_lab_module():
    code = "import sys, attack, attack.cli; assert not [m for m in sys.modules if m.split('.')[0] == 'lab'], 'lab'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_lavan_offers_the_library_commands_and_the_lab_commands():
    from attack.cli import build_parser as attack_parser
    from lab.cli import build_parser as lab_parser

    def commands(ap):
        return set(next(a for a in ap._actions if a.dest == "command").choices)

    assert not {"reproduce", "docs"} & commands(attack_parser())
    assert commands(lab_parser()) == commands(attack_parser()) | {"reproduce", "docs"}


def test_the_lavan_command_works_from_another_folder(tmp_path):
    """`make setup` installs the project (pip install -e . --no-deps), so .venv/bin/lavan exists and runs anywhere."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"] == {"lavan": "lab.cli:main"}
    lavan = Path(sys.executable).parent / "lavan"
    assert lavan.is_file(), "no lavan command: run `make setup` (it installs the project with pip install -e .)"
    out = subprocess.run([str(lavan), "--help"], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.startswith("usage: lavan") and "reproduce" in out and "attack" in out


def test_the_librarys_cli_points_at_lavan_for_the_lab_commands(capsys):
    from attack.cli import main

    assert main(["reproduce", "single", "--quick"]) == 2
    assert "lavan" in capsys.readouterr().err
