"""graphopt.testing.layout.wrap_layout_sensitive: an NCHW model made NHWC-canonical (every layout-sensitive
op wrapped in Transposes) computes the same outputs, refuses what it cannot express, and is what
optimize-transposes is measured on."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt import import_model
from graphopt.numerics.run import run_model, run_proto
from graphopt.pass_infra.registry import DEFAULT_REGISTRY
from graphopt.testing.layout import NotWrappable, wrap_layout_sensitive

TO_LAST, TO_FIRST = [0, 2, 3, 1], [0, 3, 1, 2]


def _randn(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _model(nodes: list[onnx.NodeProto], inputs: list[tuple[str, list[int]]], outputs: list[str],
           inits: dict[str, np.ndarray] | None = None, opset: int = 17) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info(n, T.FLOAT, s) for n, s in inputs],
                         [h.make_tensor_value_info(n, T.FLOAT, None) for n in outputs],
                         [nh.from_array(v, k) for k, v in (inits or {}).items()])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _nodes(model: onnx.ModelProto) -> list[tuple[Any, ...]]:
    """(op, inputs, outputs[, perm]) per node."""
    rows = []
    for node in model.graph.node:
        perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
        rows.append((node.op_type, list(node.input), list(node.output), *perm))
    return rows


def _same_outputs(a: onnx.ModelProto, b: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    before, after = run_proto(a, feeds), run_proto(b, feeds)
    assert list(after) == list(before)
    for name, value in before.items():
        assert after[name].shape == value.shape, name
        np.testing.assert_allclose(after[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def _transposes(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "Transpose" for n in model.graph.node)


def _conv_relu_pool() -> onnx.ModelProto:
    return _model([h.make_node("Conv", ["x", "w"], ["c"]), h.make_node("Relu", ["c"], ["r"]),
                   h.make_node("MaxPool", ["r"], ["y"], kernel_shape=[2, 2])],
                  [("x", [1, 2, 4, 4])], ["y"], {"w": _randn(3, 2, 1, 1, seed=1)})


def test_every_sensitive_op_is_wrapped_and_agnostic_ops_read_nhwc() -> None:
    """The input goes to NHWC; each Conv/MaxPool reads an NCHW copy and writes NHWC under the original
    name; the Relu reads NHWC as is; the 4-D output goes back to NCHW under its name."""
    wrapped = wrap_layout_sensitive(_conv_relu_pool())
    assert _nodes(wrapped) == [
        ("Transpose", ["x"], ["x__wrap1"], TO_LAST),
        ("Transpose", ["x__wrap1"], ["x__wrap1__wrap2"], TO_FIRST),
        ("Conv", ["x__wrap1__wrap2", "w"], ["c__wrap3"]),
        ("Transpose", ["c__wrap3"], ["c"], TO_LAST),
        ("Relu", ["c"], ["r"]),
        ("Transpose", ["r"], ["r__wrap4"], TO_FIRST),
        ("MaxPool", ["r__wrap4"], ["y__wrap5"]),
        ("Transpose", ["y__wrap5"], ["y__wrap6"], TO_LAST),
        ("Transpose", ["y__wrap6"], ["y"], TO_FIRST),
    ]
    assert [i.name for i in wrapped.graph.input] == ["x"] and [o.name for o in wrapped.graph.output] == ["y"]
    assert len(wrapped.graph.value_info) == 0  # stale NCHW shapes would contradict the NHWC tensors
    _same_outputs(_conv_relu_pool(), wrapped, {"x": _randn(1, 2, 4, 4)})


def test_the_input_model_is_not_modified() -> None:
    original = _conv_relu_pool()
    before = original.SerializeToString()
    wrap_layout_sensitive(original)
    assert original.SerializeToString() == before


def test_optimize_transposes_brings_the_wrapped_model_back_to_no_transpose() -> None:
    wrapped = wrap_layout_sensitive(_conv_relu_pool())
    model = import_model(wrapped)
    result = DEFAULT_REGISTRY.create("optimize-transposes", {}).run(model)
    assert [n.op_type for n in model.graph] == ["Conv", "Relu", "MaxPool"]
    assert result.stats == {"cancelled": 3, "pushed_through_Relu": 1}
    feeds = {"x": _randn(1, 2, 4, 4)}
    before, after = run_proto(_conv_relu_pool(), feeds), run_model(model, feeds)
    np.testing.assert_array_equal(after["y"], before["y"])


def test_residual_add_scalar_ops_and_flatten_of_a_global_pool() -> None:
    """Add of two NHWC tensors, Mul by a scalar, Clip with scalar bounds, and a Flatten of the global
    pool's [N, 1, 1, C] (same element order as [N, C, 1, 1]) need no Transpose of their own."""
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Add", ["c", "x"], ["s"]),
             h.make_node("Mul", ["s", "k"], ["m"]), h.make_node("Clip", ["m", "lo", "hi"], ["r"]),
             h.make_node("BatchNormalization", ["r", "g", "b", "mu", "var"], ["n"]),
             h.make_node("GlobalAveragePool", ["n"], ["p"]), h.make_node("Flatten", ["p"], ["y"])]
    inits = {"w": _randn(3, 3, 3, 3, seed=1), "k": np.array(0.5, np.float32), "lo": np.array(-1, np.float32),
             "hi": np.array(1, np.float32), "g": _randn(3, seed=2), "b": _randn(3, seed=3),
             "mu": _randn(3, seed=4), "var": np.abs(_randn(3, seed=5)) + 0.5}
    model = _model(nodes, [("x", [2, 3, 5, 5])], ["y"], inits)
    wrapped = wrap_layout_sensitive(model)
    assert [n.op_type for n in wrapped.graph.node] == [
        "Transpose", "Transpose", "Conv", "Transpose", "Add", "Mul", "Clip", "Transpose",
        "BatchNormalization", "Transpose", "Transpose", "GlobalAveragePool", "Transpose", "Flatten"]
    _same_outputs(model, wrapped, {"x": _randn(2, 3, 5, 5, seed=6)})


def test_concat_of_nhwc_tensors_gets_its_axis_remapped() -> None:
    """NCHW channel axis 1 is NHWC axis 3 (negative axes too)."""
    for axis, expected in ((1, 3), (-3, 3), (2, 1)):
        nodes = [h.make_node("Conv", ["x", "w"], ["c"]), h.make_node("Concat", ["c", "x"], ["y"], axis=axis)]
        model = _model(nodes, [("x", [1, 2, 4, 4])], ["y"], {"w": _randn(2, 2, 1, 1, seed=1)})
        wrapped = wrap_layout_sensitive(model)
        (concat,) = [n for n in wrapped.graph.node if n.op_type == "Concat"]
        assert concat.attribute[0].i == expected
        _same_outputs(model, wrapped, {"x": _randn(1, 2, 4, 4)})


def test_per_tensor_qdq_reads_nhwc() -> None:
    nodes = [h.make_node("Conv", ["x", "w"], ["c"]), h.make_node("QuantizeLinear", ["c", "s", "z"], ["q"]),
             h.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    model = _model(nodes, [("x", [1, 2, 4, 4])], ["y"],
                   {"w": _randn(3, 2, 1, 1, seed=1), "s": np.array(0.05, np.float32),
                    "z": np.array(128, np.uint8)})
    wrapped = wrap_layout_sensitive(model)
    assert [n.op_type for n in wrapped.graph.node] == ["Transpose", "Transpose", "Conv", "Transpose",
                                                       "QuantizeLinear", "DequantizeLinear", "Transpose"]
    _same_outputs(model, wrapped, {"x": _randn(1, 2, 4, 4)})


def test_non_4d_inputs_and_initializers_listed_as_inputs_are_not_transposed() -> None:
    """A weight that is also a graph input (IR < 4 style) is not an activation."""
    nodes = [h.make_node("Conv", ["x", "w"], ["c"]), h.make_node("Relu", ["c"], ["r"]),
             h.make_node("MatMul", ["v", "v"], ["u"])]
    model = _model(nodes, [("x", [1, 2, 4, 4]), ("w", [3, 2, 1, 1]), ("v", [3, 3])], ["u", "r"],
                   {"w": _randn(3, 2, 1, 1, seed=1)})
    wrapped = wrap_layout_sensitive(model)
    transposed = [n.input[0] for n in wrapped.graph.node if n.op_type == "Transpose"]
    assert "w" not in transposed and "v" not in transposed
    _same_outputs(model, wrapped, {"x": _randn(1, 2, 4, 4), "v": _randn(3, 3, seed=2)})


@pytest.mark.parametrize("case", ["softmax", "reduce", "bias-add", "flatten", "mixed-concat"])
def test_ops_that_would_see_the_layout_are_refused(case: str) -> None:
    """Softmax/ReduceMean have axes; Add(conv, bias[C, 1, 1]) would broadcast the bias along W; a Flatten
    of a non-pooled NHWC tensor orders its elements differently; a Concat of NHWC and NCHW tensors."""
    conv = h.make_node("Conv", ["x", "w"], ["c"])
    inits: dict[str, np.ndarray] = {"w": _randn(4, 2, 1, 1, seed=1)}
    if case == "softmax":
        rest = [h.make_node("Softmax", ["c"], ["y"], axis=1)]
    elif case == "reduce":
        rest = [h.make_node("ReduceMean", ["c"], ["y"], axes=[1])]
    elif case == "bias-add":
        rest = [h.make_node("Add", ["c", "b"], ["y"])]
        inits["b"] = _randn(4, 1, 1, seed=2)
    elif case == "flatten":
        rest = [h.make_node("Flatten", ["c"], ["y"])]
    else:
        rest = [h.make_node("Concat", ["c", "k"], ["y"], axis=1)]
        inits["k"] = _randn(1, 1, 4, 4, seed=3)
    model = _model([conv, *rest], [("x", [1, 2, 4, 4])], ["y"], inits)
    with pytest.raises(NotWrappable, match=rf"{rest[0].op_type} node '' "):
        wrap_layout_sensitive(model)
