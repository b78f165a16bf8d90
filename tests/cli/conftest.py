"""Fixtures for the CLI tests: a private copy of the tiny CNN and a registry that does not leak."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from graphopt.pass_infra.registry import DEFAULT_REGISTRY, PassRegistry

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_cnn.onnx"


@pytest.fixture
def tiny_cnn(tmp_path: Path) -> Path:
    """fixtures/tiny_cnn.onnx copied alone into a fresh folder (outputs land beside it)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return Path(shutil.copy(FIXTURE, folder / "tiny_cnn.onnx"))


@pytest.fixture
def builtin_registry() -> Iterator[PassRegistry]:
    """The global registry holding only the built-in passes during the test, restored afterwards."""
    DEFAULT_REGISTRY.load_entry_points()
    saved = dict(DEFAULT_REGISTRY._passes)
    modules = set(sys.modules)
    builtins = set(PassRegistry().all())
    DEFAULT_REGISTRY._passes = {k: v for k, v in saved.items() if k in builtins}
    yield DEFAULT_REGISTRY
    DEFAULT_REGISTRY._passes = saved
    for name in set(sys.modules) - modules:
        if name.startswith("graphopt_plugin_"):
            del sys.modules[name]
