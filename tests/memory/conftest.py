"""The memory-planner tests reuse the pass-test builders (tests/passes/passes_kit.py) by import: this
folder is not a package, so the builders' folder and this one go on sys.path (as pytest's default
"prepend" import mode does for each test file's own folder)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE.parent / "passes", HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

FIXTURES = HERE.parents[1] / "fixtures"


@pytest.fixture
def tiny_cnn(tmp_path: Path) -> Path:
    """fixtures/tiny_cnn.onnx copied alone into a fresh folder (x: [N, 3, 16, 16], outputs land beside)."""
    folder = tmp_path / "work"
    folder.mkdir()
    return Path(shutil.copy(FIXTURES / "tiny_cnn.onnx", folder / "tiny_cnn.onnx"))
