"""``graphopt.simplify``: onnxsim/onnxslim-style API returning a ModelProto with the same values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import graphopt
from graphopt.api import OptimizeResult


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_simplify_a_proto_returns_a_smaller_proto_with_the_same_values(tiny_cnn: Path) -> None:
    original = onnx.load(str(tiny_cnn))
    before = original.SerializeToString()
    simplified = graphopt.simplify(original)
    assert isinstance(simplified, onnx.ModelProto)
    assert original.SerializeToString() == before  # the input is never modified
    assert [n.op_type for n in simplified.graph.node] == [
        "Conv",
        "Relu",
        "Conv",
        "GlobalAveragePool",
        "Reshape",
        "Gemm",
    ]
    onnx.checker.check_model(simplified, full_check=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(simplified, x), _run(original, x), rtol=1e-5, atol=1e-6)


def test_simplify_a_path_with_options_and_the_report(tiny_cnn: Path) -> None:
    simplified, result = graphopt.simplify(
        str(tiny_cnn), return_result=True, check="final", disable=("fuse-matmul-add",)
    )
    assert isinstance(result, OptimizeResult)
    assert result.final_check is not None and result.final_check["failure"] is None
    assert "fuse-matmul-add" in [r.name for r in result.report.records if r.status == "disabled"]
    assert [n.op_type for n in simplified.graph.node][-2:] == ["MatMul", "Add"]


def test_simplify_fixes_dims_in_the_returned_model(tiny_cnn: Path) -> None:
    original = onnx.load(str(tiny_cnn))
    first = original.graph.input[0].type.tensor_type.shape.dim[0]
    assert first.dim_param  # the fixture's batch is dynamic
    simplified = graphopt.simplify(original, fix_dims={first.dim_param: 2})
    dims = [d.dim_value for d in simplified.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [2, 3, 16, 16]
