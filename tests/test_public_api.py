"""The import boundary: built-in passes use only the public API a user's pass would use, the core never
imports a built-in pass, and ``ls passes`` shows exactly the passes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from graphopt.pass_infra.registry import PassRegistry

ROOT = Path(__file__).resolve().parents[1]
PASSES = ROOT / "passes"
# What a pass may import from graphopt (documented in the README, "Writing a custom pass").
PUBLIC_MODULES = ("graphopt", "graphopt.rewrite", "graphopt.analyses.shapes",
                  "graphopt.analyses.symbolic_shapes",
                  "graphopt.analyses.certain_failures", "graphopt.errors", "graphopt.memory")


def import_problems(path: Path, package: str) -> list[str]:
    """Imports of ``path`` (a module of pass package ``package``, or a one-file pass) that reach past
    the public API: internal graphopt modules, private names, another pass's private helpers."""
    problems = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules = [(alias.name, [alias.name]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: only inside the pass's own package
                if not package:
                    problems.append(f"{path.name}: relative import outside a pass package")
                continue
            modules = [(node.module or "", [a.name for a in node.names])]
        else:
            continue
        for module, names in modules:
            if module == "passes" or module.startswith("passes."):
                problems.append(f"{path.name}: imports {module} (use graphopt.passes)")
            elif module.startswith("graphopt.passes."):
                if any(part.startswith("_") for part in module.split(".")) or \
                        any(name.startswith("_") for name in names):
                    problems.append(f"{path.name}: imports private {module}:{','.join(names)}")
            elif module.startswith("graphopt"):
                if module not in PUBLIC_MODULES:
                    problems.append(f"{path.name}: imports internal module {module}")
                elif any(name.startswith("_") for name in names):
                    problems.append(f"{path.name}: imports private names {','.join(names)} of {module}")
    return problems


def pass_modules() -> list[tuple[Path, str]]:
    """Every module of the built-in passes with the pass package it belongs to ('' for one-file passes)."""
    found = []
    for path in sorted(PASSES.rglob("*.py")):
        relative = path.relative_to(PASSES)
        found.append((path, relative.parts[0] if len(relative.parts) > 1 else ""))
    return found


@pytest.mark.parametrize("path,package", pass_modules(), ids=lambda p: str(p)[len(str(PASSES)) + 1:]
                         if isinstance(p, Path) else None)
def test_built_in_passes_import_only_the_public_api(path: Path, package: str) -> None:
    """No pass module reaches an internal graphopt module or another module's private names."""
    assert import_problems(path, package) == []


def test_the_boundary_check_fails_on_a_planted_private_import(tmp_path: Path) -> None:
    """The check is real: each kind of reach past the public API is reported."""
    planted = tmp_path / "planted.py"
    planted.write_text("from graphopt.ir.tensor import numpy_dtype\n"
                       "from graphopt.rewrite import _private\n"
                       "from graphopt.passes.fold_constants._evaluators import EVALUATORS\n"
                       "from .helpers import thing\n"
                       "import passes.fuse_pad\n")
    assert import_problems(planted, "") == [
        "planted.py: imports internal module graphopt.ir.tensor",
        "planted.py: imports private names _private of graphopt.rewrite",
        "planted.py: imports private graphopt.passes.fold_constants._evaluators:EVALUATORS",
        "planted.py: relative import outside a pass package",
        "planted.py: imports passes.fuse_pad (use graphopt.passes)",
    ]


def test_the_core_never_imports_a_built_in_pass() -> None:
    """graphopt/ reaches passes only through the registry's entry points."""
    offenders = []
    for path in sorted((ROOT / "graphopt").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(m and (m.startswith("graphopt.passes") or m.split(".")[0] == "passes")
                   for m in [module, *names]):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_ls_passes_shows_exactly_the_built_in_passes() -> None:
    """One module or package per registered built-in pass, named after it; helpers live inside."""
    entries = sorted(p.name.removesuffix(".py") for p in PASSES.iterdir()
                     if p.name != "__init__.py" and p.name != "__pycache__")
    registered = sorted(name.replace("-", "_") for name in PassRegistry().all())
    assert entries == registered


def test_passes_cannot_be_imported_as_a_top_level_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """From a source checkout, ``import passes`` would register every pass a second time: refused."""
    import importlib
    import sys

    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.delitem(sys.modules, "passes", raising=False)
    with pytest.raises(ImportError, match="import graphopt.passes"):
        importlib.import_module("passes")
