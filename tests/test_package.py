"""The library is pure torch: importing every attack module pulls in no streamlit (nor the app)."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import attack

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("streamlit", "app", "ui", "pages")


def test_no_streamlit_in_sys_modules_after_importing_attack():
    code = (
        "import importlib, pkgutil, sys, attack\n"
        "names = [m.name for m in pkgutil.iter_modules(attack.__path__) if m.name != '__main__']\n"
        "for n in names: importlib.import_module('attack.' + n)\n"
        "import attack.cli; attack.cli.build_parser()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('streamlit', 'app', 'ui', 'pages'))\n"
        "print(len(names), bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    count, bad = proc.stdout.strip().split(" ", 1)
    assert int(count) >= 14
    assert bad == "[]", bad


def test_no_streamlit_import_statements():
    offenders = []
    for mod in pkgutil.iter_modules(attack.__path__):
        path = Path(attack.__path__[0]) / f"{mod.name}.py"
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert not offenders, offenders


def test_public_api():
    for name in ("load_model", "load_image", "apply_patch", "train_patch", "train_patches", "train_universal",
                 "evaluate_patch", "shift_map", "border_transfer", "attribution_map", "mass_in_patch", "save_patch",
                 "load_patch", "PatchCache", "cache_key", "target_minus_source", "success"):
        assert callable(getattr(attack, name)), name
    assert issubclass(attack.ImageError, ValueError) and issubclass(attack.PatchFileError, ValueError)
