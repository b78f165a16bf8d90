"""`python -m graphopt` runs the same command line in a fresh process (the console entry)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx


def test_python_dash_m_graphopt_optimizes_a_model(tiny_cnn: Path) -> None:
    """Exit 0, the op table on stdout, nothing on stderr, the default output file written."""
    proc = subprocess.run([sys.executable, "-m", "graphopt", "optimize", str(tiny_cnn)],
                          capture_output=True, text=True, timeout=120, cwd=tiny_cnn.parent)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines()[0] == "op type              before    after"
    assert proc.stdout.splitlines()[-1] == f"wrote {tiny_cnn.with_name('tiny_cnn.opt.onnx')}"
    written = onnx.load(str(tiny_cnn.with_name("tiny_cnn.opt.onnx")))
    assert len(written.graph.node) == 11  # 16 - 4 by DCE - 1 BatchNormalization fused
