"""What decides never imports what acts: spec/ and render/ stay free of Pulumi."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

PURE_PACKAGES = ("spec", "render")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(p for pkg in PURE_PACKAGES for p in (ROOT / pkg).rglob("*.py")), ids=str)
def test_pure_module_does_not_import_pulumi(path):
    bad = {m for m in imported_modules(path) if m.startswith("pulumi")}
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_importing_every_pure_module_loads_no_pulumi():
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for pkg in PURE_PACKAGES
        for p in (ROOT / pkg).rglob("*.py")
    )
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    code += "leaked = sorted(m for m in sys.modules if m.split('.')[0].startswith('pulumi'))\n"
    code += "assert not leaked, leaked\n"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_the_checker_sees_a_pulumi_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from pulumi_command import remote\n")
    assert "pulumi_command" in imported_modules(bad)
