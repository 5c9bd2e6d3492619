"""The package layout's one rule: imports flow one way, serving -> safety -> engine (vasa_core), and nothing in
the library imports a tool.

    app.py, serving/   may import safety, vasa_core
    safety/            may import vasa_core
    vasa_core/         imports neither safety, serving nor tools
    tools/             may import anything but app.py; nothing imports tools, except the command-line entry
                       points (`__main__.py` files and functions named `cli` / `main`), which dispatch to them

Checked on the source (every import statement, at any depth) and by importing every library module in a fresh
interpreter.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ("vasa_core", "safety", "serving")
# what each package may import (besides itself, the standard library and third-party packages)
ALLOWED = {"vasa_core": set(), "safety": {"vasa_core"}, "serving": {"safety", "vasa_core"},
           "tools": {"vasa_core", "safety", "serving"}}
PROJECT = {"vasa_core", "safety", "serving", "tools", "app"}
ENTRY_FUNCTIONS = {"cli", "main"}


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(top-level project package, line, inside an entry-point function) of every import in a file."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(ROOT).parts[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_entry: bool) -> None:
        for child in ast.iter_child_nodes(node):
            entry = in_entry or (isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
                                 and child.name in ENTRY_FUNCTIONS)
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                names = [package] if child.level else [child.module or ""]
            else:
                names = []
            for name in names:
                top = name.split(".")[0]
                if top in PROJECT:
                    out.append((top, child.lineno, entry))
            visit(child, entry)

    visit(tree, False)
    return out


def test_imports_flow_one_way():
    bad = []
    for package, allowed in ALLOWED.items():
        for path in _modules(package):
            is_main = path.name == "__main__.py"
            for top, line, in_entry in _imports(path):
                if top == package:
                    continue
                if top == "tools" and (is_main or in_entry) and package != "vasa_core" or top in allowed:
                    continue
                if package == "vasa_core" and is_main and top in {"safety", "serving", "tools"}:
                    continue   # the `vasa` command line sits on top of everything
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {top}")
    assert not bad, "imports against the layout:\n" + "\n".join(bad)


def test_the_rule_can_fail(tmp_path):
    """The checker sees an engine module importing the safety layer inside a function."""
    p = ROOT / "vasa_core" / "_layout_probe.py"
    p.write_text("def f():\n    from safety.publish import Marker\n    return Marker\n")
    try:
        assert ("safety", 2, False) in _imports(p)
    finally:
        p.unlink()


def test_library_modules_import_without_tools_in_a_fresh_interpreter():
    """Importing every library module (engine, safety, serving) loads no tool and no app; and each package
    imports alone (no cycle that only works in one order)."""
    names = []
    for package in LIBRARY:
        for path in _modules(package):
            if path.name == "__main__.py":
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    code = ("import importlib, sys\n"
            f"for n in {names!r}: importlib.import_module(n)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tools', 'app'))\n"
            "print(bad)\nsys.exit(1 if bad else 0)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
    for package in ("vasa_core.pipeline", "safety.gate", "serving.guard"):
        res = subprocess.run([sys.executable, "-c", f"import {package}"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
