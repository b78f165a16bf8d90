"""convert-opset: ops missing at the target are decomposed into primitives that exist there
(GroupNormalization 18/21, RMSNormalization, Celu, Shrink, ThresholdedRelu, Swish, CastLike, Trilu). Each
decomposition pins the exact op sequence and constants left and onnxruntime outputs within a small tolerance;
what has no exact form at the target is refused, naming the op, the node and the reason. LayerNormalization,
Gelu-at-19, HardSwish and Mish are pinned in test_pass_convert_opset.py; the shared helpers are in
convert_opset_kit.py."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from convert_opset_kit import const_at, convert, one_op, refused
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, info, ints, make, only_node, op_types, randn

from graphopt import Model, Node

ATOL = 1e-5


def _nodes(model: Model) -> list[Node]:
    return list(model.graph)


def _attrs(node: Node) -> dict:
    return {name: node.attr(name) for name in node.attrs}


# ---- GroupNormalization: per-group affine (18), per-channel affine (21) ----

X_GN = [2, 6, 4, 5]


def _group_norm(opset: int, affine: int, groups: int = 3) -> onnx.ModelProto:
    inits = [array("s", randn(affine, seed=1) + 1), array("b", randn(affine, seed=2))]
    return one_op("GroupNormalization", ["x", "s", "b"], {"num_groups": groups, "epsilon": 1e-3}, X_GN, opset,
                  inits)


@pytest.mark.parametrize("target", [20, 18, 17, 9])
def test_group_norm_21_is_instance_norm_over_groups_then_a_per_channel_affine(target: int) -> None:
    """GroupNormalization-18 is deprecated from 21 on, so a -21 node is decomposed at 18..20 too."""
    model, stats = convert(_group_norm(21, 6), target, {"x": randn(*X_GN, seed=5) * 3 + 1}, atol=ATOL)
    assert op_types(model) == ["Shape", "Reshape", "InstanceNormalization", "Reshape", "Reshape", "Reshape",
                               "Mul", "Add"]
    shape, grouped, normed, back, scale, bias, mul, add = _nodes(model)
    assert grouped.inputs[0].name == "x" and const_at(grouped, 1) == [0, 3, -1]
    assert _attrs(normed) == {"epsilon": pytest.approx(1e-3)}
    assert (const_at(normed, 1), const_at(normed, 2)) == ([1.0] * 3, [0.0] * 3)
    assert back.inputs == (normed.outputs[0], shape.outputs[0])
    assert (scale.inputs[0].name, bias.inputs[0].name) == ("s", "b")
    assert const_at(scale, 1) == const_at(bias, 1) == [-1, 1, 1]
    assert mul.inputs == (back.outputs[0], scale.outputs[0])
    assert add.inputs == (mul.outputs[0], bias.outputs[0])
    assert stats["decomposed_GroupNormalization"] == 1


@pytest.mark.parametrize("target", [17, 9])
def test_group_norm_18_takes_its_per_group_affine_into_instance_norm(target: int) -> None:
    model, _ = convert(_group_norm(18, 3), target, {"x": randn(*X_GN, seed=5) * 3 + 1}, atol=ATOL)
    assert op_types(model) == ["Shape", "Reshape", "InstanceNormalization", "Reshape"]
    normed = _nodes(model)[2]
    assert [v.name for v in normed.inputs[1:]] == ["s", "b"] and const_at(_nodes(model)[1], 1) == [0, 3, -1]


def test_group_norm_18_keeps_its_outputs_going_up_to_21() -> None:
    convert(_group_norm(18, 3), 21, {"x": randn(*X_GN, seed=5)}, atol=ATOL)


# ---- RMSNormalization (23) ----

def _rms_norm(axis: int) -> onnx.ModelProto:
    scale = randn(*([4] if axis == -1 else [3, 4]), seed=1)
    return one_op("RMSNormalization", ["x", "s"], {"axis": axis, "epsilon": 1e-3}, [2, 3, 4], 23,
                  [array("s", scale)])


@pytest.mark.parametrize("axis,axes", [(-1, [2]), (-2, [1, 2])])
@pytest.mark.parametrize("target", [22, 17])
def test_rms_norm_is_decomposed_below_23(axis: int, axes: list[int], target: int) -> None:
    model, stats = convert(_rms_norm(axis), target, {"x": randn(2, 3, 4)}, atol=ATOL)
    assert op_types(model) == ["Mul", "ReduceMean", "Add", "Sqrt", "Div", "Mul"]
    square, mean, shifted, _, normed, scaled = _nodes(model)
    assert square.inputs[0].name == square.inputs[1].name == "x"
    if target >= 18:
        assert not mean.attrs and const_at(mean, 1) == axes
    else:
        assert _attrs(mean) == {"axes": axes} and len(mean.inputs) == 1
    assert const_at(shifted, 1) == pytest.approx(1e-3) and normed.inputs[0].name == "x"
    assert scaled.inputs[1].name == "s" and stats["decomposed_RMSNormalization"] == 1


# ---- activations: Celu (12), Shrink (9), ThresholdedRelu (10), Swish (24) ----

def test_celu_with_alpha_1_is_a_single_elu_below_12() -> None:
    proto = one_op("Celu", ["x"], {"alpha": 1.0}, [3, 5], 12)
    model, _ = convert(proto, 11, {"x": randn(3, 5) * 3}, atol=ATOL)
    assert op_types(model) == ["Elu"] and _attrs(only_node(model)) == {"alpha": 1.0}


def test_celu_with_another_alpha_scales_around_an_elu_below_12() -> None:
    proto = one_op("Celu", ["x"], {"alpha": 2.0}, [3, 5], 12)
    model, _ = convert(proto, 11, {"x": randn(3, 5) * 3}, atol=ATOL)
    assert op_types(model) == ["Div", "Elu", "Mul"]
    div, elu, mul = _nodes(model)
    assert const_at(div, 1) == 2.0 and _attrs(elu) == {"alpha": 1.0} and const_at(mul, 1) == 2.0


def test_celu_on_bfloat16_with_alpha_2_is_refused() -> None:
    """The decomposition needs bfloat16 constants, which graphopt cannot build."""
    proto = make([h.make_node("Celu", ["x"], ["y"], name="n0", alpha=2.0)], [info("x", [2, 3], T.BFLOAT16)],
                 [info("y", None, T.BFLOAT16)], opset=12)
    refused(proto, 11, "Celu", "'n0'", "constants of the input's dtype")


@pytest.mark.parametrize("lambd", [0.5, 1.5])
def test_shrink_with_bias_equal_to_lambd_is_x_minus_clip_at_8(lambd: float) -> None:
    proto = one_op("Shrink", ["x"], {"lambd": lambd, "bias": lambd}, [3, 5], 9)
    model, stats = convert(proto, 8, {"x": randn(3, 5) * 2}, atol=ATOL)
    assert op_types(model) == ["Clip", "Sub"]
    clip, sub = _nodes(model)
    assert _attrs(clip) == {"min": -lambd, "max": lambd} and sub.inputs == (clip.inputs[0], clip.outputs[0])
    assert stats["decomposed_Shrink"] == 1


@pytest.mark.parametrize("bias", [0.0, 0.2])
def test_shrink_with_another_bias_is_refused_at_8(bias: float) -> None:
    proto = one_op("Shrink", ["x"], {"lambd": 0.5, "bias": bias}, [3, 5], 9)
    refused(proto, 8, "Shrink", "'n0'", "bias == lambd")


def test_thresholded_relu_is_greater_and_where_at_9() -> None:
    proto = one_op("ThresholdedRelu", ["x"], {"alpha": 0.3}, [3, 5], 10)
    model, _ = convert(proto, 9, {"x": randn(3, 5)}, atol=ATOL)
    assert op_types(model) == ["Greater", "Where"]
    greater, where = _nodes(model)
    assert const_at(greater, 1) == pytest.approx(0.3) and where.inputs[0] is greater.outputs[0]
    assert where.inputs[1].name == "x" and const_at(where, 2) == 0.0


def test_thresholded_relu_is_refused_at_8_where_there_is_no_where() -> None:
    proto = one_op("ThresholdedRelu", ["x"], {"alpha": 0.3}, [3, 5], 10)
    refused(proto, 8, "ThresholdedRelu", "'n0'", "needs Where", "opset 8")


@pytest.mark.parametrize("alpha,expected", [(1.0, ["Sigmoid", "Mul"]), (0.7, ["Mul", "Sigmoid", "Mul"])])
def test_swish_is_a_sigmoid_gate_at_21(alpha: float, expected: list[str]) -> None:
    proto = one_op("Swish", ["x"], {"alpha": alpha}, [3, 5], 24)
    model, stats = convert(proto, 21, {"x": randn(3, 5) * 3}, atol=ATOL)
    assert op_types(model) == expected
    nodes = _nodes(model)
    if alpha != 1.0:
        assert const_at(nodes[0], 1) == pytest.approx(alpha) and nodes[1].inputs[0] is nodes[0].outputs[0]
    assert nodes[-1].inputs == (nodes[0].inputs[0], nodes[-2].outputs[0]) and stats["decomposed_Swish"] == 1


def test_gelu_is_refused_at_8_where_there_is_no_erf() -> None:
    refused(one_op("Gelu", ["x"], {}, [3, 5], 20), 8, "Gelu", "'n0'", "needs Erf", "opset 8")


# ---- CastLike (15), Trilu (14) ----

def test_cast_like_is_a_cast_to_the_dtype_of_a_graph_input_at_13() -> None:
    proto = make([h.make_node("CastLike", ["x", "t"], ["y"], name="n0")],
                 [info("x", [3, 5]), info("t", [1], T.INT32)], [info("y", None, T.INT32)], opset=15)
    model, _ = convert(proto, 13, {"x": randn(3, 5) * 4, "t": np.zeros(1, np.int32)})
    node = only_node(model)
    assert node.op_type == "Cast" and _attrs(node) == {"to": T.INT32}
    assert [v.name for v in node.inputs] == ["x"]


def test_cast_like_is_a_cast_to_the_dtype_of_an_initializer_at_13() -> None:
    proto = make([h.make_node("CastLike", ["x", "t"], ["y"], name="n0")], [info("x", [3, 5])],
                 [info("y", None, T.DOUBLE)], [array("t", np.zeros(1))], opset=15)
    model, _ = convert(proto, 13, {"x": randn(3, 5)})
    assert op_types(model) == ["Cast"] and _attrs(only_node(model)) == {"to": T.DOUBLE}


def test_cast_like_to_an_unknown_dtype_is_refused() -> None:
    proto = make([h.make_node("CastLike", ["x", "t"], ["y"], name="n0")],
                 [info("x", [3, 5]), info("t", None, T.UNDEFINED)], [info("y", None, T.UNDEFINED)], opset=15)
    refused(proto, 13, "CastLike", "'n0'", "dtype of target_type is unknown")


@pytest.mark.parametrize("k", [None, 1, -2], ids=["k-default", "k=1", "k=-2"])
@pytest.mark.parametrize("upper", [1, 0], ids=["upper", "lower"])
def test_trilu_with_static_dims_and_a_constant_k_is_a_where_at_13(upper: int, k: int | None) -> None:
    inputs, inits = (["x"], []) if k is None else (["x", "k"], [ints("k", k)])
    proto = one_op("Trilu", inputs, {"upper": upper}, [2, 4, 5], 14, inits)
    model, stats = convert(proto, 13, {"x": randn(2, 4, 5)})
    where = only_node(model)
    assert where.op_type == "Where" and where.inputs[1].name == "x" and const_at(where, 2) == 0.0
    triangle = np.triu if upper else np.tril
    assert const_at(where, 0) == triangle(np.ones((4, 5), bool), k or 0).tolist()
    assert stats["decomposed_Trilu"] == 1


def test_trilu_with_a_dynamic_dim_is_refused_at_13() -> None:
    refused(one_op("Trilu", ["x"], {}, [2, "rows", 5], 14), 13, "Trilu", "'n0'", "static last two dims")


def test_trilu_with_a_run_time_k_is_refused_at_13() -> None:
    proto = make([h.make_node("Trilu", ["x", "k"], ["y"], name="n0")],
                 [info("x", [2, 4, 5]), info("k", [], T.INT64)], [info("y", None)], opset=14)
    refused(proto, 13, "Trilu", "'n0'", "constant k")


# ---- property: Celu/Swish/RMSNormalization decompositions agree with onnxruntime ----

_PROPERTY_OPS = {"Celu": (12, 11), "Swish": (24, 21), "RMSNormalization": (23, 17)}


@st.composite
def _decomposable(draw: st.DrawFn, op: str) -> tuple[onnx.ModelProto, int, dict[str, np.ndarray]]:
    source, target = _PROPERTY_OPS[op]
    shape = draw(st.lists(st.integers(1, 5), min_size=2, max_size=4))
    seed = draw(st.integers(0, 2**16))
    inits: list[onnx.TensorProto] = []
    inputs = ["x"]
    if op == "RMSNormalization":
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        attrs = {"axis": axis, "epsilon": draw(st.floats(1e-6, 1e-2))}
        inits.append(array("s", randn(*shape[axis % len(shape):], seed=seed + 1)))
        inputs.append("s")
        target = draw(st.sampled_from([17, 22]))  # ReduceMean with axes as an attribute, then as an input
    else:
        exact_one = draw(st.integers(0, 3)) == 0  # alpha 1 has its own, shorter form
        alpha = 1.0 if exact_one else draw(st.floats(0.2, 3.0).filter(lambda a: a != 1.0))
        event(f"alpha {'=' if exact_one else '!='} 1")
        attrs = {"alpha": alpha}
    proto = one_op(op, inputs, attrs, shape, source, inits)
    return proto, target, {"x": randn(*shape, seed=seed) * 3}


@pytest.mark.parametrize("op", list(_PROPERTY_OPS))
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_decompositions_agree_with_onnxruntime(op: str, data: st.DataObject) -> None:
    proto, target, feeds = data.draw(_decomposable(op))
    model, stats = convert(proto, target, feeds, atol=ATOL)
    assert stats[f"decomposed_{op}"] == 1 and op not in op_types(model)
