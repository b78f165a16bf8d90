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
    # 16 - 4 by DCE - 4 shape-computation nodes once fold-constants made the Reshape target [0, -1]
    # - 1 BatchNormalization fused - 1 for MatMul + Add into Gemm
    assert len(written.graph.node) == 6
    assert [n.op_type for n in written.graph.node] == ["Conv", "Relu", "Conv", "GlobalAveragePool", "Reshape",
                                                       "Gemm"]
