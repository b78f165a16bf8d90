"""fuse-matmul-add: MatMul + per-column bias becomes Gemm exactly where Gemm computes the same thing,
with onnxruntime outputs equal within float tolerance."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt import import_model, optimize
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.run import run_model, run_proto

RNG = np.random.default_rng(0)
NP = {T.FLOAT: np.float32, T.FLOAT16: np.float16, T.DOUBLE: np.float64}


def _model(bias_shape: list[int] | None, *, x_shape: list[int] = (3, 4), elem: int = T.FLOAT,
           bias_first: bool = False, outputs: tuple[str, ...] = ("y",), bias_input: bool = False,
           w_shape: tuple[int, ...] = (4, 5)) -> onnx.ModelProto:  # type: ignore[assignment]
    dtype = NP.get(elem, np.int32)
    inits = [nh.from_array(RNG.normal(size=w_shape).astype(dtype), "w")]
    inputs = [h.make_tensor_value_info("x", elem, list(x_shape))]
    if bias_input:
        inputs.append(h.make_tensor_value_info("c", elem, bias_shape))
    else:
        inits.append(nh.from_array(RNG.normal(size=bias_shape).astype(dtype), "c"))
    add = ["c", "m"] if bias_first else ["m", "c"]
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Add", add, ["y"])]
    outs = [h.make_tensor_value_info(o, elem, None) for o in outputs]
    graph = h.make_graph(nodes, "g", inputs, outs, inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _feeds(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    feeds = {}
    for vi in proto.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = RNG.normal(size=shape).astype(NP.get(vi.type.tensor_type.elem_type, np.int32))
    return feeds


def _run(proto: onnx.ModelProto) -> tuple[list[str], dict]:
    feeds = _feeds(proto)
    result = optimize(proto, pipeline="fuse-matmul-add", check="off", on_failure="raise")
    assert not compare_outputs(run_proto(proto, feeds), run_model(result.model, feeds))
    return [n.op_type for n in result.model.graph], result.report.records[0].stats


@pytest.mark.parametrize("bias_shape", [[5], [1, 5]], ids=["row", "1xN"])
@pytest.mark.parametrize("bias_first", [False, True], ids=["bias-right", "bias-left"])
def test_fuse_matmul_and_per_column_bias_into_gemm(bias_shape: list[int], bias_first: bool) -> None:
    """MatMul(x, W) + c with c of shape [N] or [1, N], on either side of the Add, becomes Gemm."""
    ops, stats = _run(_model(bias_shape, bias_first=bias_first))
    assert ops == ["Gemm"] and stats == {"fused_matmul-add": 1}


@pytest.mark.parametrize("elem", [T.FLOAT16, T.DOUBLE], ids=["float16", "double"])
def test_fuse_other_float_dtypes(elem: int) -> None:
    """float16 and double MatMuls fuse too."""
    ops, stats = _run(_model([5], elem=elem))
    assert ops == ["Gemm"] and stats == {"fused_matmul-add": 1}


def test_fuse_a_bias_that_is_a_graph_input_of_known_shape() -> None:
    """Gemm's C need not be constant: a [N] graph input broadcasts the same way."""
    ops, stats = _run(_model([5], bias_input=True))
    assert ops == ["Gemm"] and stats == {"fused_matmul-add": 1}


def test_keep_a_full_matrix_bias() -> None:
    """A bias of shape [M, N] is not per column: left alone (the brief's contract)."""
    ops, stats = _run(_model([3, 5]))
    assert ops == ["MatMul", "Add"]
    assert stats == {"rejected_matmul-add:bias is not a per-column row [N] or [1, N]": 1}


def test_keep_a_per_row_bias() -> None:
    """A [M, 1] bias broadcasts along rows: Gemm would need it transposed, so nothing is fused."""
    ops, stats = _run(_model([3, 1]))
    assert ops == ["MatMul", "Add"]
    assert stats == {"rejected_matmul-add:bias is not a per-column row [N] or [1, N]": 1}


def test_keep_a_batched_matmul() -> None:
    """A 3-D A is a batched MatMul, which Gemm cannot express."""
    ops, stats = _run(_model([5], x_shape=[2, 3, 4]))
    assert ops == ["MatMul", "Add"] and stats == {"rejected_matmul-add:A is not known to be 2-D": 1}


def test_keep_integer_matmul() -> None:
    """Integer MatMul (int32) is not fused: float dtypes only."""
    proto = _model([5], elem=T.INT32)
    result = optimize(proto, pipeline="fuse-matmul-add", check="off")
    assert [n.op_type for n in result.model.graph] == ["MatMul", "Add"]
    assert result.report.records[0].stats == {"rejected_matmul-add:B is not floating point": 1}


def test_keep_when_the_matmul_output_is_a_graph_output() -> None:
    """The MatMul result escapes the match (it is a graph output): both outputs survive unchanged."""
    ops, stats = _run(_model([5], outputs=("y", "m")))
    assert ops == ["MatMul", "Add"]
    assert stats == {"rejected_matmul-add:intermediate value is a graph output": 1}


def test_keep_when_the_matmul_output_is_read_elsewhere() -> None:
    """A second reader of the MatMul output keeps the MatMul (fusing would compute it twice)."""
    proto = _model([5])
    proto.graph.node.append(h.make_node("Relu", ["m"], ["r"]))
    proto.graph.output.append(h.make_tensor_value_info("r", T.FLOAT, None))
    ops, stats = _run(proto)
    assert ops == ["MatMul", "Add", "Relu"]
    assert stats == {"rejected_matmul-add:intermediate value is used outside the match": 1}


def test_keep_a_matmul_added_to_itself() -> None:
    """Add(m, m) with a [1, N] m looks like a per-column bias, but the bias would be the removed MatMul."""
    proto = _model([5], x_shape=[1, 4])
    proto.graph.node[1].input[:] = ["m", "m"]
    proto.graph.initializer.pop(1)
    ops, stats = _run(proto)
    assert ops == ["MatMul", "Add"] and stats == {"rejected_matmul-add:bias is the MatMul output itself": 1}


def test_keep_a_matmul_whose_weight_is_not_constant() -> None:
    """B must be a constant (a 2-D weight): a graph-input B is not matched at all."""
    proto = _model([5])
    proto.graph.initializer.pop(0)
    proto.graph.input.append(h.make_tensor_value_info("w", T.FLOAT, [4, 5]))
    ops, stats = _run(proto)
    assert ops == ["MatMul", "Add"] and stats == {}


def test_fused_model_keeps_its_constants_and_a_second_run_changes_nothing() -> None:
    """W and c feed the Gemm; the output keeps its name; the pass is idempotent."""
    model = import_model(_model([5]))
    optimize(model, pipeline="fuse-matmul-add", check="off")
    assert [v.const.shape for v in model.graph.consts] == [(4, 5), (5,)]
    assert [o.name for o in model.graph.outputs] == ["y"]
    again = optimize(model, pipeline="fuse-matmul-add", check="off")
    assert again.report.records[0].status == "unchanged"
