"""optimize-transposes: Transpose pairs cancel or merge, Transposes move through layout-agnostic ops
(remapping axes and permuting constants at compile time) only when that removes Transposes, duplicates
become one, and a Transpose that only moves size-1 dims is dropped before a Flatten/Reshape.

Every case pins the exact graph (see ``structure_of`` in optimize_transposes_kit.py), the exact stats,
onnxruntime equality with the original, idempotence, and that the number of Transposes never grows."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from optimize_transposes_kit import (
    NCHW,
    NHWC,
    PASS,
    X,
    assert_close,
    check,
    const_at,
    op_node,
    transpose,
    transposes,
)
from passes_kit import BOOL, array, info, ints, make, ort, randn, run_pass

from graphopt import export_model

# ---- Transpose(Transpose(x)) ----

def test_inverse_pair_cancels_and_the_reader_takes_the_source() -> None:
    proto = make([op_node("Relu", ["x"], ["a"]), transpose("a", "t", NHWC), transpose("t", "u", NCHW),
                  op_node("Sigmoid", ["u"], ["y"])], [info("x", X)], [info("y", X)])
    structure, stats, _ = check(proto)
    assert structure == ["Relu(x)", "Sigmoid(%0)"]
    assert stats == {"cancelled": 1}


def test_inverse_pair_whose_result_is_a_graph_output_hands_the_name_to_the_source() -> None:
    """y = T^-1(T(Relu(x))): the Relu now writes y itself (the output keeps its name)."""
    proto = make([op_node("Relu", ["x"], ["a"]), transpose("a", "t", NHWC), transpose("t", "y", NCHW)],
                 [info("x", X)], [info("y", X)])
    structure, stats, model = check(proto)
    assert structure == ["Relu(x)"] and stats == {"cancelled": 1}
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert [o.name for o in export_model(model).graph.output] == ["y"]


def test_inverse_pair_from_a_graph_input_to_a_graph_output_is_kept() -> None:
    """y would be the input x under another name: that needs a node, so the pair stays."""
    proto = make([transpose("x", "t", NHWC), transpose("t", "y", NCHW)], [info("x", X)], [info("y", X)])
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 2, 3, 1]}(x)", "Transpose{perm=[0, 3, 1, 2]}(%0)"]
    assert stats == {}


def test_inverse_pair_whose_middle_value_has_another_reader_keeps_the_first_transpose() -> None:
    """Tanh still reads T(a); Sigmoid reads a directly: 2 Transposes -> 1."""
    proto = make([op_node("Relu", ["x"], ["a"]), transpose("a", "t", NHWC), transpose("t", "u", NCHW),
                  op_node("Sigmoid", ["u"], ["y"]), op_node("Tanh", ["t"], ["z"])],
                 [info("x", X)], [info("y", X), info("z", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Relu(x)", "Transpose{perm=[0, 2, 3, 1]}(%0)", "Sigmoid(%0)", "Tanh(%1)"]
    assert stats == {"cancelled": 1}


def test_two_transposes_merge_into_their_composition() -> None:
    """T[1,0,2,3](T[0,2,3,1](a)) == T[2,0,3,1](a)."""
    proto = make([op_node("Relu", ["x"], ["a"]), transpose("a", "t", NHWC),
                  transpose("t", "y", [1, 0, 2, 3])],
                 [info("x", X)], [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Relu(x)", "Transpose{perm=[2, 0, 3, 1]}(%0)"]
    assert stats == {"merged": 1}


def test_merge_keeps_the_first_transpose_when_its_result_has_another_reader() -> None:
    proto = make([transpose("x", "t", NHWC), transpose("t", "y", [0, 2, 1, 3]),
                  op_node("Relu", ["t"], ["z"])],
                 [info("x", X)], [info("y", None), info("z", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 2, 3, 1]}(x)", "Transpose{perm=[0, 3, 2, 1]}(x)", "Relu(%0)"]
    assert stats == {"merged": 1}


# ---- pushing through layout-agnostic ops ----

@pytest.mark.parametrize("op,attrs", [("Relu", {}), ("Sigmoid", {}), ("LeakyRelu", {"alpha": 0.2}),
                                      ("Neg", {}), ("Cast", {"to": T.DOUBLE})])
def test_push_through_a_unary_op_then_cancel(op: str, attrs: dict[str, Any]) -> None:
    proto = make([transpose("x", "t", NHWC), op_node(op, ["t"], ["r"], **attrs), transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None, attrs.get("to", T.FLOAT))])
    structure, stats, _ = check(proto)
    assert structure == [f"{op}(x)"]
    assert stats == {"cancelled": 1, f"pushed_through_{op}": 1}


def test_push_through_clip_leaves_its_min_and_max_alone() -> None:
    """Clip's bounds are parameters, not data: the scalars are not permuted."""
    proto = make([transpose("x", "t", NHWC), op_node("Clip", ["t", "lo", "hi"], ["r"]),
                  transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)],
                 [array("lo", np.float32(-0.5)), array("hi", np.float32(0.5))])
    structure, stats, _ = check(proto)
    assert structure == ["Clip(x,c[],c[])"]
    assert stats == {"cancelled": 1, "pushed_through_Clip": 1}


@pytest.mark.parametrize("const_first", [False, True], ids=["x-op-c", "c-op-x"])
def test_push_through_a_binary_op_permutes_a_lower_rank_constant(const_first: bool) -> None:
    """Add(T(x), c[C]) == T(Add(x, c[1, C, 1, 1])): the constant is permuted at compile time."""
    c = randn(2, seed=3)
    inputs = ["c", "t"] if const_first else ["t", "c"]
    proto = make([transpose("x", "t", NHWC), op_node("Sub", inputs, ["r"]), transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [array("c", c)])
    structure, stats, model = check(proto)
    assert structure == (["Sub(c[1, 2, 1, 1],x)"] if const_first else ["Sub(x,c[1, 2, 1, 1])"])
    assert stats == {"cancelled": 1, "pushed_through_Sub": 1}
    np.testing.assert_array_equal(const_at(model, 0, 0 if const_first else 1), c.reshape(1, 2, 1, 1))
    assert len(model.graph.consts) == 1  # the original constant went with its last reader


def test_push_through_a_binary_op_with_a_full_rank_constant() -> None:
    c = randn(1, 3, 4, 2, seed=3)
    proto = make([transpose("x", "t", NHWC), op_node("Mul", ["t", "c"], ["r"]), transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [array("c", c)])
    structure, stats, model = check(proto)
    assert structure == ["Mul(x,c[1, 2, 3, 4])"]
    assert stats == {"cancelled": 1, "pushed_through_Mul": 1}
    np.testing.assert_array_equal(const_at(model, 0, 1), c.transpose(NCHW))


def test_push_through_a_binary_op_keeps_a_scalar_constant() -> None:
    proto = make([transpose("x", "t", NHWC), op_node("Add", ["t", "c"], ["r"]), transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [array("c", np.float32(2.0))])
    structure, stats, _ = check(proto)
    assert structure == ["Add(x,c[])"]
    assert stats == {"cancelled": 1, "pushed_through_Add": 1}


def test_push_through_a_binary_op_with_two_transposed_inputs_removes_both() -> None:
    proto = make([transpose("x", "t", NHWC), transpose("z", "u", NHWC), op_node("Mul", ["t", "u"], ["r"]),
                  transpose("r", "y", NCHW)], [info("x", X), info("z", X)], [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Mul(x,z)"]
    assert stats == {"cancelled": 1, "pushed_through_Mul": 1}


def test_two_transposed_inputs_into_a_graph_output_leave_one_transpose_after() -> None:
    """Two removed, one added: the Transpose moves to the output (2 -> 1)."""
    proto = make([transpose("x", "t", NHWC), transpose("z", "u", NHWC), op_node("Mul", ["t", "u"], ["y"])],
                 [info("x", X), info("z", X)], [info("y", None)])
    structure, stats, model = check(proto)
    assert structure == ["Mul(x,z)", "Transpose{perm=[0, 2, 3, 1]}(%0)"]
    assert stats == {"pushed_through_Mul": 1}
    assert [v.name for v in model.graph.outputs] == ["y"]


def test_the_same_transpose_read_twice_counts_once() -> None:
    proto = make([transpose("x", "t", NHWC), op_node("Mul", ["t", "t"], ["r"]), transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Mul(x,x)"]
    assert stats == {"cancelled": 1, "pushed_through_Mul": 1}


def test_a_non_constant_lower_rank_operand_blocks_the_push() -> None:
    """z[C] broadcasts against the last axis; a runtime value cannot be permuted at compile time."""
    proto = make([transpose("x", "t", NHWC), op_node("Add", ["t", "z"], ["r"]), transpose("r", "y", NCHW)],
                 [info("x", X), info("z", [2])], [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 2, 3, 1]}(x)", "Add(%0,z)", "Transpose{perm=[0, 3, 1, 2]}(%1)"]
    assert stats == {}


def test_a_non_constant_full_rank_operand_would_need_a_transpose_of_its_own() -> None:
    """Removing 1 and adding 2 (an inverse Transpose on z and one after): not made."""
    proto = make([transpose("x", "t", NHWC), op_node("Add", ["t", "z"], ["y"])],
                 [info("x", X), info("z", [1, 3, 4, 2])], [info("y", None)])
    _, stats, _ = check(proto)
    assert stats == {}


def test_a_non_constant_operand_gets_an_inverse_transpose_when_that_still_pays() -> None:
    """Sum(T(x), T(w), z): removing 2 and adding 2 (an inverse Transpose on z, one after the Sum) gains
    nothing alone, but the one after cancels against the graph's: 3 Transposes -> 1."""
    proto = make([transpose("x", "t", NHWC), transpose("w", "u", NHWC),
                  op_node("Sum", ["t", "u", "z"], ["r"]), transpose("r", "y", NCHW)],
                 [info("x", X), info("w", X), info("z", [1, 3, 4, 2])], [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 3, 1, 2]}(z)", "Sum(x,w,%0)"]
    assert stats == {"cancelled": 1, "pushed_through_Sum": 1}


def test_push_through_where_with_a_constant_condition_of_lower_rank() -> None:
    cond = np.array([True, False])
    proto = make([transpose("x", "t", NHWC), transpose("z", "u", NHWC),
                  op_node("Where", ["c", "t", "u"], ["r"]),
                  transpose("r", "y", NCHW)], [info("x", X), info("z", X)], [info("y", None)],
                 [array("c", cond)])
    structure, stats, model = check(proto)
    assert structure == ["Where(c[1, 2, 1, 1],x,z)"]
    assert stats == {"cancelled": 1, "pushed_through_Where": 1}
    np.testing.assert_array_equal(const_at(model, 0, 0), cond.reshape(1, 2, 1, 1))


def test_push_through_where_with_a_transposed_condition_and_constant_branches() -> None:
    proto = make([transpose("b", "t", NHWC), op_node("Where", ["t", "c1", "c2"], ["r"]),
                  transpose("r", "y", NCHW)],
                 [info("b", X, BOOL)], [info("y", None)],
                 [array("c1", randn(2, seed=1)), array("c2", randn(4, 1, seed=2))])
    structure, stats, _ = check(proto)
    assert structure == ["Where(b,c[1, 2, 1, 1],c[1, 1, 1, 4])"]
    assert stats == {"cancelled": 1, "pushed_through_Where": 1}


def test_push_through_prelu_permutes_the_slope() -> None:
    slope = randn(2, seed=4)
    proto = make([transpose("x", "t", NHWC), op_node("PRelu", ["t", "s"], ["r"]), transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [array("s", slope)])
    structure, stats, model = check(proto)
    assert structure == ["PRelu(x,c[1, 2, 1, 1])"]
    assert stats == {"cancelled": 1, "pushed_through_PRelu": 1}
    np.testing.assert_array_equal(const_at(model, 0, 1), slope.reshape(1, 2, 1, 1))


def test_push_through_concat_remaps_its_axis() -> None:
    """Concat axis 3 of NHWC tensors is axis 1 (channels) of the NCHW ones."""
    proto = make([transpose("x", "t", NHWC), transpose("z", "u", NHWC),
                  op_node("Concat", ["t", "u"], ["r"], axis=3),
                  transpose("r", "y", NCHW)], [info("x", X), info("z", X)], [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Concat{axis=1}(x,z)"]
    assert stats == {"cancelled": 1, "pushed_through_Concat": 1}


def test_push_through_concat_with_a_negative_axis_and_a_constant_part() -> None:
    c = randn(1, 3, 4, 5, seed=6)
    proto = make([transpose("x", "t", NHWC), op_node("Concat", ["t", "c"], ["r"], axis=-1),
                  transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [array("c", c)])
    structure, stats, model = check(proto)
    assert structure == ["Concat{axis=1}(x,c[1, 5, 3, 4])"]
    assert stats == {"cancelled": 1, "pushed_through_Concat": 1}
    np.testing.assert_array_equal(const_at(model, 0, 1), c.transpose(NCHW))


def test_push_through_concat_permutes_an_empty_constant_part_too() -> None:
    """A [1, 3, 4, 0] part has no element but a shape that must follow the others (size 0 is not 1)."""
    proto = make([transpose("x", "t", NHWC), op_node("Concat", ["t", "c"], ["r"], axis=3),
                  transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [array("c", np.zeros((1, 3, 4, 0), np.float32))])
    structure, stats, _ = check(proto)
    assert structure == ["Concat{axis=1}(x,c[1, 0, 3, 4])"]
    assert stats == {"cancelled": 1, "pushed_through_Concat": 1}


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_push_through_softmax_at_opset_13_remaps_its_axis(op: str) -> None:
    proto = make([transpose("x", "t", NHWC), op_node(op, ["t"], ["r"], axis=3), transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], opset=13)
    structure, stats, _ = check(proto, rtol=1e-6)
    assert structure == [f"{op}{{axis=1}}(x)"]
    assert stats == {"cancelled": 1, f"pushed_through_{op}": 1}


def test_softmax_before_opset_13_is_not_a_per_axis_op() -> None:
    """Softmax-11 flattens from its axis on: a Transpose does not commute with it."""
    proto = make([transpose("x", "t", NHWC), op_node("Softmax", ["t"], ["r"], axis=3),
                  transpose("r", "y", NCHW)],
                 [info("x", X)], [info("y", None)], opset=11)
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 2, 3, 1]}(x)", "Softmax{axis=3}(%0)",
                         "Transpose{perm=[0, 3, 1, 2]}(%1)"]
    assert stats == {}


def _reduce(axes: list[int], keepdims: int, opset: int, after: list[int]) -> onnx.ModelProto:
    """x -> T(NHWC) -> ReduceMean(axes, keepdims) -> T(after) -> y; axes as an input from opset 18."""
    attrs: dict[str, Any] = {} if keepdims == 1 else {"keepdims": keepdims}
    inits = []
    if opset >= 18:
        inits.append(ints("axes", axes))
        reduce = op_node("ReduceMean", ["t", "axes"], ["r"], **attrs)
    else:
        reduce = op_node("ReduceMean", ["t"], ["r"], axes=axes, **attrs)
    return make([transpose("x", "t", NHWC), reduce, transpose("r", "y", after)], [info("x", X)],
                [info("y", None)], inits, opset=opset)


@pytest.mark.parametrize("opset", [17, 18], ids=["axes-attribute", "axes-input"])
def test_push_through_reduce_mean_keepdims_remaps_its_axes(opset: int) -> None:
    """Mean over NHWC's H, W (axes 1, 2) is a mean over NCHW's axes 2, 3."""
    structure, stats, model = check(_reduce([1, 2], 1, opset, NCHW), rtol=1e-6)
    assert stats == {"cancelled": 1, "pushed_through_ReduceMean": 1}
    if opset >= 18:
        assert structure == ["ReduceMean(x,c[2])"]
        np.testing.assert_array_equal(const_at(model, 0, 1), [2, 3])
        assert len(model.graph.consts) == 1  # the old axes constant is gone
    else:
        assert structure == ["ReduceMean{axes=[2, 3]}(x)"]


@pytest.mark.parametrize("opset", [17, 18], ids=["axes-attribute", "axes-input"])
def test_push_through_reduce_mean_without_keepdims_composes_the_output_perm(opset: int) -> None:
    """Reducing NHWC's H (axis 1) without keepdims leaves [N, W, C]; the moved Transpose is [0, 2, 1]
    on the [N, C, W] result, which cancels against the graph's [0, 2, 1]."""
    structure, stats, model = check(_reduce([-3], 0, opset, [0, 2, 1]), rtol=1e-6)
    assert stats == {"cancelled": 1, "pushed_through_ReduceMean": 1}
    if opset >= 18:
        assert structure == ["ReduceMean{keepdims=0}(x,c[1])"]
        np.testing.assert_array_equal(const_at(model, 0, 1), [2])
    else:
        assert structure == ["ReduceMean{axes=[2],keepdims=0}(x)"]


def test_reduce_over_channels_without_keepdims_merges_what_remains() -> None:
    """Reducing NHWC's C leaves [N, H, W] in the same order: the moved Transpose is the identity, and
    merged with the graph's [0, 2, 1] it leaves that one."""
    structure, stats, _ = check(_reduce([3], 0, 17, [0, 2, 1]), rtol=1e-6)
    assert structure == ["ReduceMean{axes=[1],keepdims=0}(x)", "Transpose{perm=[0, 2, 1]}(%0)"]
    assert stats == {"merged": 1, "pushed_through_ReduceMean": 1}


def test_reduce_with_runtime_axes_is_not_pushed() -> None:
    proto = make([transpose("x", "t", NHWC), op_node("ReduceMean", ["t", "axes"], ["r"]),
                  transpose("r", "y", NCHW)],
                 [info("x", X), info("axes", [2], T.INT64)], [info("y", None)], opset=18)
    model, result = run_pass(proto, PASS)
    assert result.stats == {} and transposes(model) == 2
    feeds = {"x": randn(*X), "axes": np.array([1, 2], np.int64)}
    assert_close(ort(proto, feeds), ort(model, feeds), 0.0)


def _qdq(axis: int | None, scale: np.ndarray, zero: np.ndarray) -> onnx.ModelProto:
    attrs = {} if axis is None else {"axis": axis}
    return make([transpose("x", "t", NHWC), op_node("QuantizeLinear", ["t", "s", "zp"], ["q"], **attrs),
                 op_node("DequantizeLinear", ["q", "s", "zp"], ["d"], **attrs), transpose("d", "y", NCHW)],
                [info("x", X)], [info("y", None)], [array("s", scale), array("zp", zero)])


def test_push_through_per_tensor_quantize_and_dequantize() -> None:
    structure, stats, _ = check(_qdq(None, np.float32(0.05), np.uint8(128)))
    assert structure == ["QuantizeLinear(x,c[],c[])", "DequantizeLinear(%0,c[],c[])"]
    assert stats == {"cancelled": 1, "pushed_through_DequantizeLinear": 1, "pushed_through_QuantizeLinear": 1}


@pytest.mark.parametrize("axis", [3, -1])
def test_push_through_per_axis_quantize_and_dequantize_remaps_axis(axis: int) -> None:
    """Per-channel scales on NHWC's axis 3 are per-channel on NCHW's axis 1; the scales stay as they are."""
    proto = _qdq(axis, np.array([0.05, 0.02], np.float32), np.array([128, 100], np.uint8))
    structure, stats, _ = check(proto)
    assert structure == ["QuantizeLinear{axis=1}(x,c[2],c[2])", "DequantizeLinear{axis=1}(%0,c[2],c[2])"]
    assert stats == {"cancelled": 1, "pushed_through_DequantizeLinear": 1, "pushed_through_QuantizeLinear": 1}


def test_blocked_dequantize_is_not_pushed() -> None:
    """Opset-21 blocked quantization: the scale has the data's rank and layout; it would need permuting."""
    q = np.random.default_rng(0).integers(-100, 100, (1, 4, 2, 2)).astype(np.int8)
    proto = make([transpose("q", "t", NHWC),
                  op_node("DequantizeLinear", ["t", "s"], ["d"], axis=3, block_size=2),
                  transpose("d", "y", NCHW)], [info("q", [1, 4, 2, 2], T.INT8)], [info("y", None)],
                 [array("s", np.random.default_rng(1).uniform(0.01, 0.1, (1, 2, 2, 2)).astype(np.float32))],
                 opset=21)
    proto.ir_version = 10
    model, result = run_pass(proto, PASS)
    assert result.stats == {} and transposes(model) == 2
    assert_close(ort(proto, {"q": q}), ort(model, {"q": q}), 0.0)


def test_pairs_inside_if_branches_cancel_reading_the_outer_value() -> None:
    """Each subgraph is optimized too: T(x) -> op -> T^-1 in both branches becomes op(x)."""
    def branch(name: str, op: str) -> onnx.GraphProto:
        return h.make_graph([transpose("x", "t", NHWC), op_node(op, ["t"], ["r"]),
                             transpose("r", f"{name}_out", NCHW)],
                            name, [], [info(f"{name}_out", None)])

    proto = make([op_node("If", ["cond"], ["y"], then_branch=branch("then", "Relu"),
                          else_branch=branch("else", "Neg"))],
                 [info("cond", [], BOOL), info("x", X)], [info("y", None)])
    model, result = run_pass(proto, PASS)
    assert result.stats == {"cancelled": 2, "pushed_through_Neg": 1, "pushed_through_Relu": 1}
    (node,) = list(model.graph)
    assert sorted([n.op_type for n in g] for g in node.subgraphs()) == [["Neg"], ["Relu"]]
    assert transposes(model) == 0
    for cond in (True, False):
        feeds = {"cond": np.array(cond), "x": randn(*X)}
        assert_close(ort(proto, feeds), ort(model, feeds), 0.0)
