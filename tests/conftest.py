"""Fixtures shared by every test folder: the fixture model copied alone, and a registry that does not
leak plugin passes from one test into the next."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Iterator

import pytest

from graphopt.pass_infra.registry import DEFAULT_REGISTRY, PassRegistry

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_cnn.onnx"


@pytest.fixture
def tiny_cnn(tmp_path: Path) -> Path:
    """fixtures/tiny_cnn.onnx copied alone into a fresh folder (outputs land beside it)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return Path(shutil.copy(FIXTURE, folder / "tiny_cnn.onnx"))


SWAP_PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

from graphopt import PassResult, register_pass


@register_pass
@dataclass
class SwapAddForSub:
    """Deliberately wrong: turns every Add into a Sub."""

    name: ClassVar[str] = "swap-add-for-sub"

    def run(self, model):
        swapped = 0
        for node in model.graph.all_nodes():
            if node.op_type == "Add":
                node.op_type, swapped = "Sub", swapped + 1
        return PassResult(swapped > 0, {"swapped": swapped})
'''


@pytest.fixture
def swap_plugin(tmp_path: Path) -> Path:
    """A plugin file whose pass ``swap-add-for-sub`` is wrong on purpose (every Add becomes a Sub)."""
    path = tmp_path / "swap_plugin.py"
    path.write_text(SWAP_PLUGIN)
    return path


@pytest.fixture
def builtin_registry() -> Iterator[PassRegistry]:
    """The global registry holding only the built-in passes during the test, restored afterwards."""
    modules = set(sys.modules)
    with DEFAULT_REGISTRY.scope(only=PassRegistry().all()) as registry:
        yield registry
    for name in set(sys.modules) - modules:
        if name.startswith("graphopt_plugin_"):
            del sys.modules[name]
