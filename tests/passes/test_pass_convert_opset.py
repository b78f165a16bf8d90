"""convert-opset: the default ONNX domain moves to opset ``target``, up or down. Each adapter is pinned in
both directions by the exact node it leaves (op type, attributes vs inputs, constant values), the model's
opset, and onnxruntime outputs equal before and after; what has no equivalent is refused, naming the op
and the node."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from convert_opset_kit import const_at, convert, one_op, refused
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, info, ints, make, only_node, op_types, ort, randn

from graphopt.cli import main

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_cnn.onnx"


# ---- axes: Squeeze/Unsqueeze/ReduceSum at 13, ReduceMean at 18 ----

_AXES_CASES = {"Squeeze": ([1, 3, 1, 4], {}), "Unsqueeze": ([3, 4], {}),
               "ReduceSum": ([2, 3, 4], {"keepdims": 0})}


@pytest.mark.parametrize("op", list(_AXES_CASES))
def test_axes_attribute_becomes_an_input_at_13(op: str) -> None:
    shape, extra = _AXES_CASES[op]
    proto = one_op(op, ["x"], {"axes": [0, 2], **extra}, shape, 12)
    model, stats = convert(proto, 13, {"x": randn(*shape)})
    node = only_node(model)
    assert node.op_type == op and node.attr("axes") is None
    assert const_at(node, 1) == [0, 2] and stats[f"adapted_{op}@13"] == 1


@pytest.mark.parametrize("op", list(_AXES_CASES))
def test_axes_input_becomes_an_attribute_below_13(op: str) -> None:
    shape, extra = _AXES_CASES[op]
    proto = one_op(op, ["x", "axes"], extra, shape, 13, [ints("axes", [0, 2])])
    model, _ = convert(proto, 12, {"x": randn(*shape)})
    node = only_node(model)
    assert node.attr("axes") == [0, 2] and [v.name for v in node.inputs] == ["x"]


def test_axes_computed_at_run_time_are_refused_going_down() -> None:
    proto = make([h.make_node("Squeeze", ["x", "axes"], ["y"], name="sq")],
                 [info("x", [1, 3]), info("axes", [1], T.INT64)], [info("y", None)], opset=13)
    refused(proto, 12, "Squeeze", "'sq'", "run time")


def test_reduce_mean_axes_attribute_and_input_at_18() -> None:
    feeds = {"x": randn(2, 3, 4)}
    up, _ = convert(one_op("ReduceMean", ["x"], {"axes": [1, -1]}, [2, 3, 4], 17), 18, feeds, atol=1e-7)
    assert only_node(up).attr("axes") is None and const_at(only_node(up), 1) == [1, -1]
    down, _ = convert(one_op("ReduceMean", ["x", "axes"], {"keepdims": 0}, [2, 3, 4], 18,
                             [ints("axes", [1])]), 17, feeds)
    node = only_node(down)
    assert node.attr("axes") == [1] and node.attr("keepdims") == 0 and len(node.inputs) == 1


@pytest.mark.parametrize("op,source", [("ReduceSum", 13), ("ReduceMean", 18)])
def test_noop_with_empty_axes_without_axes_is_refused_going_down(op: str, source: int) -> None:
    proto = one_op(op, ["x"], {"noop_with_empty_axes": 1}, [2, 3], source)
    refused(proto, source - 1, op, "'n0'", "noop_with_empty_axes")


@pytest.mark.parametrize("op,source", [("ReduceSum", 13), ("ReduceMean", 18)])
def test_noop_with_empty_axes_and_an_empty_axes_constant_is_refused_going_down(op: str, source: int) -> None:
    """Regression: an empty axes constant means "do nothing" here, but axes=[] below reduces everything."""
    proto = one_op(op, ["x", "axes"], {"noop_with_empty_axes": 1}, [2, 3], source,
                   [ints("axes", np.zeros((0,), np.int64))])
    refused(proto, source - 1, op, "'n0'", "noop_with_empty_axes")


@pytest.mark.parametrize("op,source", [("ReduceSum", 13), ("ReduceMean", 18)])
def test_noop_with_empty_axes_with_axes_converts_down(op: str, source: int) -> None:
    proto = one_op(op, ["x", "axes"], {"noop_with_empty_axes": 1}, [2, 3], source, [ints("axes", [0])])
    model, _ = convert(proto, source - 1, {"x": randn(2, 3)})
    node = only_node(model)
    assert node.attr("noop_with_empty_axes") is None and node.attr("axes") == [0]


# ---- Split: sizes at 13, num_outputs at 18 ----

def test_split_sizes_attribute_and_input_at_13() -> None:
    feeds = {"x": randn(2, 6)}
    up_proto = one_op("Split", ["x"], {"axis": 1, "split": [2, 4]}, [2, 6], 12, outputs=("a", "b"))
    up, _ = convert(up_proto, 13, feeds)
    assert only_node(up).attr("split") is None and const_at(only_node(up), 1) == [2, 4]
    down_proto = one_op("Split", ["x", "s"], {"axis": 1}, [2, 6], 13, [ints("s", [2, 4])], outputs=("a", "b"))
    down, _ = convert(down_proto, 12, feeds)
    node = only_node(down)
    assert node.attr("split") == [2, 4] and len(node.inputs) == 1 and node.attr("axis") == 1


def test_split_num_outputs_dividing_the_dim_converts_down() -> None:
    proto = one_op("Split", ["x"], {"axis": 1, "num_outputs": 3}, [2, 6], 18, outputs=("a", "b", "c"))
    model, _ = convert(proto, 17, {"x": randn(2, 6)})
    node = only_node(model)
    assert node.attr("num_outputs") is None and len(node.inputs) == 1 and len(node.outputs) == 3


def test_split_num_outputs_not_dividing_the_dim_is_refused() -> None:
    proto = one_op("Split", ["x"], {"axis": 1, "num_outputs": 4}, [2, 6], 18, outputs=("a", "b", "c", "d"))
    refused(proto, 17, "Split", "'n0'", "num_outputs=4")


def test_split_num_outputs_over_an_uneven_dim_gets_sizes_with_a_smaller_last_part() -> None:
    proto = one_op("Split", ["x"], {"axis": 1, "num_outputs": 3}, [2, 7], 18, outputs=("a", "b", "c"))
    model, _ = convert(proto, 17, {"x": randn(2, 7)})
    assert const_at(only_node(model), 1) == [3, 3, 1]
    model, _ = convert(proto, 11, {"x": randn(2, 7)})
    assert only_node(model).attr("split") == [3, 3, 1]


def test_split_into_equal_parts_gets_num_outputs_going_up_to_18() -> None:
    proto = one_op("Split", ["x"], {"axis": 1}, [2, 6], 17, outputs=("a", "b", "c"))
    model, _ = convert(proto, 18, {"x": randn(2, 6)})
    assert only_node(model).attr("num_outputs") == 3 and len(only_node(model).inputs) == 1


# ---- Clip (11), Pad (11, 18), Slice (10) ----

def test_clip_min_max_attributes_become_inputs_at_11() -> None:
    proto = one_op("Clip", ["x"], {"min": -0.5, "max": 0.75}, [3, 4], 10)
    model, _ = convert(proto, 11, {"x": randn(3, 4)})
    node = only_node(model)
    assert node.attr("min") is None and node.attr("max") is None
    assert (const_at(node, 1), const_at(node, 2)) == (-0.5, 0.75)
    assert node.inputs[1].const.numpy().dtype == np.float32


def test_clip_min_only_input_becomes_attribute_below_11() -> None:
    proto = one_op("Clip", ["x", "lo"], {}, [3, 4], 11, [array("lo", np.array(-0.25, np.float32))])
    model, _ = convert(proto, 10, {"x": randn(3, 4)})
    node = only_node(model)
    assert node.attr("min") == -0.25 and node.attr("max") is None and len(node.inputs) == 1


def test_pad_attributes_become_inputs_at_11_and_back() -> None:
    feeds = {"x": randn(1, 2, 3)}
    proto = one_op("Pad", ["x"], {"pads": [0, 1, 2, 0, 0, 1], "value": 1.5}, [1, 2, 3], 10)
    up, _ = convert(proto, 11, feeds)
    node = only_node(up)
    assert node.attr("pads") is None and node.attr("value") is None
    assert const_at(node, 1) == [0, 1, 2, 0, 0, 1] and const_at(node, 2) == 1.5
    back = one_op("Pad", ["x", "p", "v"], {}, [1, 2, 3], 11,
                  [ints("p", [0, 1, 2, 0, 0, 1]), array("v", np.array(1.5, np.float32))])
    down, _ = convert(back, 10, feeds)
    node = only_node(down)
    assert node.attr("pads") == [0, 1, 2, 0, 0, 1] and node.attr("value") == 1.5 and len(node.inputs) == 1


def test_pad_axes_input_becomes_pads_over_every_axis_below_18() -> None:
    proto = one_op("Pad", ["x", "p", "", "axes"], {}, [2, 3], 18, [ints("p", [1, 2]), ints("axes", [-1])])
    model, _ = convert(proto, 17, {"x": randn(2, 3)})
    node = only_node(model)
    assert len(node.inputs) == 2 and const_at(node, 1) == [0, 1, 0, 2]
    model, _ = convert(proto, 10, {"x": randn(2, 3)})
    assert only_node(model).attr("pads") == [0, 1, 0, 2]


def test_pad_axes_computed_at_run_time_are_refused_below_18() -> None:
    node = h.make_node("Pad", ["x", "p", "", "axes"], ["y"], name="n0")
    proto = make([node], [info("x", [2, 3]), info("axes", [1], T.INT64)], [info("y", None)],
                 [ints("p", [1, 1])], opset=18)
    refused(proto, 17, "Pad", "'n0'", "constant axes")


def test_pad_without_axes_crosses_18_unchanged() -> None:
    proto = one_op("Pad", ["x", "p"], {"mode": "edge"}, [2, 3], 18, [ints("p", [1, 0, 0, 2])])
    model, _ = convert(proto, 17, {"x": randn(2, 3)})
    node = only_node(model)
    assert const_at(node, 1) == [1, 0, 0, 2] and node.attr("mode") == "edge"


def test_slice_attributes_and_inputs_at_10() -> None:
    feeds = {"x": randn(4, 6)}
    up, _ = convert(one_op("Slice", ["x"], {"starts": [1], "ends": [5], "axes": [1]}, [4, 6], 9), 10, feeds)
    node = only_node(up)
    assert node.attr("starts") is None and [const_at(node, i) for i in (1, 2, 3)] == [[1], [5], [1]]
    back = one_op("Slice", ["x", "s", "e", "a", "st"], {}, [4, 6], 10,
                  [ints("s", [1, 0]), ints("e", [3, 5]), ints("a", [0, 1]), ints("st", [1, 1])])
    down, _ = convert(back, 9, feeds)
    node = only_node(down)
    assert (node.attr("starts"), node.attr("ends"), node.attr("axes")) == ([1, 0], [3, 5], [0, 1])
    assert len(node.inputs) == 1


def test_slice_steps_other_than_1_are_refused_below_10() -> None:
    proto = one_op("Slice", ["x", "s", "e", "a", "st"], {}, [4, 6], 10,
                   [ints("s", [0]), ints("e", [6]), ints("a", [1]), ints("st", [2])])
    refused(proto, 9, "Slice", "'n0'", "steps")


# ---- Softmax family at 13 ----

@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("attrs", [{"axis": -1}, {}], ids=["axis=-1", "default"])
def test_softmax_on_the_last_axis_going_down_is_one_node(op: str, attrs: dict) -> None:
    model, _ = convert(one_op(op, ["x"], attrs, [2, 3, 4], 13), 12, {"x": randn(2, 3, 4)})
    node = only_node(model)
    assert node.op_type == op and node.attr("axis") == -1


def test_softmax_on_the_last_axis_of_unknown_rank_goes_down_as_is() -> None:
    proto = one_op("Softmax", ["x"], {}, None, 13)
    model, _ = convert(proto, 11, {"x": randn(2, 3, 4)})
    assert only_node(model).attr("axis") == -1


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_on_another_axis_going_down_is_transposed(op: str) -> None:
    model, _ = convert(one_op(op, ["x"], {"axis": 1}, [2, 3, 4], 13), 12, {"x": randn(2, 3, 4)})
    assert op_types(model) == ["Transpose", op, "Transpose"]
    first, inner, back = list(model.graph)
    assert first.attr("perm") == [0, 2, 1] and back.attr("perm") == [0, 2, 1] and inner.attr("axis") == 2


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_on_the_last_axis_going_up_is_one_node(op: str) -> None:
    model, _ = convert(one_op(op, ["x"], {"axis": 2}, [2, 3, 4], 12), 13, {"x": randn(2, 3, 4)})
    node = only_node(model)
    assert node.op_type == op and node.attr("axis") == 2


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("attrs", [{"axis": 1}, {}], ids=["axis=1", "old-default"])
def test_softmax_on_another_axis_going_up_is_flattened(op: str, attrs: dict) -> None:
    """The old default axis is 1: everything from axis 1 on is one softmax."""
    model, _ = convert(one_op(op, ["x"], attrs, [2, 3, 4], 12), 13, {"x": randn(2, 3, 4)}, atol=1e-6)
    assert op_types(model) == ["Shape", "Flatten", op, "Reshape"]
    _, flat, inner, _ = list(model.graph)
    assert flat.attr("axis") == 1 and inner.attr("axis") == 1


# ---- Reshape allowzero (14) ----

def test_reshape_allowzero_with_a_constant_target_without_zeros_converts_down() -> None:
    proto = one_op("Reshape", ["x", "s"], {"allowzero": 1}, [2, 6], 14, [ints("s", [3, -1])])
    model, _ = convert(proto, 13, {"x": randn(2, 6)})
    node = only_node(model)
    assert node.attr("allowzero") is None and const_at(node, 1) == [3, -1]


def test_reshape_allowzero_with_a_zero_in_the_target_is_refused() -> None:
    proto = one_op("Reshape", ["x", "s"], {"allowzero": 1}, [2, 0], 14, [ints("s", [0, 2])])
    refused(proto, 13, "Reshape", "'n0'", "allowzero")


def test_reshape_allowzero_with_a_run_time_target_is_refused() -> None:
    proto = make([h.make_node("Reshape", ["x", "s"], ["y"], name="r", allowzero=1)],
                 [info("x", [2, 6]), info("s", [2], T.INT64)], [info("y", None)], opset=14)
    refused(proto, 13, "Reshape", "'r'", "allowzero")


# ---- decompositions ----

@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
def test_layer_normalization_is_decomposed_at_16(with_bias: bool) -> None:
    inputs = ["x", "scale"] + (["bias"] if with_bias else [])
    inits = [array("scale", randn(4, seed=1)), array("bias", randn(4, seed=2))][:len(inputs) - 1]
    proto = one_op("LayerNormalization", inputs, {"epsilon": 1e-3}, [2, 3, 4], 17, inits)
    model, stats = convert(proto, 16, {"x": randn(2, 3, 4)}, atol=1e-5)
    expected = ["ReduceMean", "Sub", "Mul", "ReduceMean", "Add", "Sqrt", "Div", "Mul"]
    assert op_types(model) == expected + (["Add"] if with_bias else [])
    nodes = list(model.graph)
    assert nodes[0].attr("axes") == [2] and len(nodes[0].inputs) == 1
    assert const_at(nodes[4], 1) == pytest.approx(1e-3)
    assert stats["decomposed_LayerNormalization"] == 1


def test_layer_normalization_mean_and_inv_std_outputs_are_kept_when_decomposed() -> None:
    proto = one_op("LayerNormalization", ["x", "scale"], {"axis": 1}, [2, 3, 4], 17,
                   [array("scale", randn(3, 4, seed=1))], outputs=("y", "mean", "inv_std"))
    model, _ = convert(proto, 16, {"x": randn(2, 3, 4)}, atol=1e-5)
    assert op_types(model) == ["ReduceMean", "Sub", "Mul", "ReduceMean", "Add", "Sqrt", "Div",
                               "Reciprocal", "Mul"]
    assert list(model.graph)[0].attr("axes") == [1, 2]


def test_layer_normalization_statistics_of_float16_input_are_refused_when_read() -> None:
    proto = one_op("LayerNormalization", ["x", "scale"], {}, [2, 4], 17,
                   [array("scale", randn(4, seed=1).astype(np.float16))], outputs=("y", "mean"),
                   elem=T.FLOAT16)
    refused(proto, 16, "LayerNormalization", "'n0'", "mean/inv-std outputs are read")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_is_decomposed_at_19(approximate: str) -> None:
    proto = one_op("Gelu", ["x"], {"approximate": approximate}, [3, 5], 20)
    model, _ = convert(proto, 19, {"x": randn(3, 5)}, atol=1e-6)
    ops = op_types(model)
    assert ("Erf" in ops) == (approximate == "none") and ("Tanh" in ops) == (approximate == "tanh")
    assert "Gelu" not in ops


def test_hard_swish_is_decomposed_at_13() -> None:
    model, _ = convert(one_op("HardSwish", ["x"], {}, [3, 5], 14), 13, {"x": randn(3, 5) * 4}, atol=1e-6)
    assert op_types(model) == ["HardSigmoid", "Mul"]
    sigmoid = list(model.graph)[0]
    assert sigmoid.attr("alpha") == pytest.approx(1 / 6) and sigmoid.attr("beta") == 0.5


def test_mish_is_decomposed_at_17() -> None:
    model, _ = convert(one_op("Mish", ["x"], {}, [3, 5], 18), 17, {"x": randn(3, 5) * 3}, atol=1e-6)
    assert op_types(model) == ["Softplus", "Tanh", "Mul"]


@pytest.mark.parametrize("op,strict", [("GreaterOrEqual", "Greater"), ("LessOrEqual", "Less")])
def test_or_equal_is_decomposed_at_11_and_nan_gives_false(op: str, strict: str) -> None:
    proto = make([h.make_node(op, ["a", "b"], ["y"], name="n0")], [info("a", [5]), info("b", [5])],
                 [info("y", None, T.BOOL)], opset=12)
    feeds = {"a": np.array([1, 2, np.nan, 3, np.nan], np.float32),
             "b": np.array([2, 2, 1, np.nan, np.nan], np.float32)}
    model, _ = convert(proto, 11, feeds)
    assert op_types(model) == [strict, "Equal", "Or"]
    assert not ort(model, feeds)["y"][2:].any()


# ---- version bumps, dtypes, missing ops, subgraphs ----

@pytest.mark.parametrize("source,target", [(13, 14), (14, 13)])
def test_relu_is_a_pure_version_bump(source: int, target: int) -> None:
    model, stats = convert(one_op("Relu", ["x"], {}, [3, 4], source), target, {"x": randn(3, 4)})
    node = only_node(model)
    assert node.op_type == "Relu" and not node.attrs and [v.name for v in node.inputs] == ["x"]
    assert stats["version_bumps"] == 1


@pytest.mark.parametrize("elem,target,dtype", [(T.BFLOAT16, 12, "bfloat16"), (T.INT8, 13, "int8")])
def test_dtype_illegal_at_the_target_is_refused(elem: int, target: int, dtype: str) -> None:
    """Relu takes bfloat16 from 13 and int8 from 14."""
    refused(one_op("Relu", ["x"], {}, [3], 14, elem=elem), target, "Relu", "'n0'", f"tensor({dtype})")


def test_op_missing_at_the_target_without_decomposition_is_refused() -> None:
    proto = one_op("Einsum", ["x"], {"equation": "ii->i"}, [3, 3], 12)
    refused(proto, 11, "Einsum", "'n0'", "does not exist in opset 11")


def test_a_node_inside_an_if_subgraph_is_converted() -> None:
    then = h.make_graph([h.make_node("Squeeze", ["x", "axes"], ["t"], name="inner")], "then", [],
                        [info("t", None)])
    other = h.make_graph([h.make_node("Identity", ["x"], ["e"])], "else", [], [info("e", None)])
    nodes = [h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)]
    proto = make(nodes, [info("x", [1, 3]), info("c", [], T.BOOL)], [info("y", None)],
                 [ints("axes", [0])], opset=13)
    feeds = {"x": randn(1, 3), "c": np.array(True)}
    model, _ = convert(proto, 12, feeds)
    (inner,) = [n for g in model.graph.all_graphs() for n in g if n.op_type == "Squeeze"]
    assert inner.attr("axes") == [0] and [v.name for v in inner.inputs] == ["x"]


# ---- CLI ----

def test_cli_converts_tiny_cnn_to_opset_11(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = Path(shutil.copy(FIXTURE, tmp_path / "tiny_cnn.onnx"))
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(source), "--opset", "11", "-o", str(out)]) == 0
    report = capsys.readouterr().out
    assert "convert-opset" in report and "failed" not in report
    assert {o.domain: o.version for o in onnx.load(str(out)).opset_import}[""] == 11


def test_cli_refused_conversion_exits_2_and_writes_nothing(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "einsum.onnx"
    onnx.save(one_op("Einsum", ["x"], {"equation": "ii->i"}, [3, 3], 12), str(source))
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(source), "--opset", "11", "-o", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graphopt: error:") and "Einsum" in lines[0]
    assert not out.exists()


def test_cli_opset_below_the_oldest_is_a_usage_error(tmp_path: Path) -> None:
    source = Path(shutil.copy(FIXTURE, tmp_path / "tiny_cnn.onnx"))
    out = tmp_path / "out.onnx"
    assert main(["optimize", str(source), "--opset", "3", "-o", str(out)]) == 2
    assert not out.exists()


def test_deprecated_scatter_becomes_scatter_elements_going_up() -> None:
    """Scatter (9) is deprecated at 11 with the same semantics as ScatterElements: renamed."""
    nodes = [h.make_node("Scatter", ["x", "i", "u"], ["y"], name="n0", axis=1)]
    proto = make(nodes, [info("x", [2, 3])], [info("y", None)],
                 [ints("i", [[1, 0, 2], [0, 2, 1]]), array("u", np.ones((2, 3), np.float32))], opset=10)
    feeds = {"x": np.zeros((2, 3), np.float32)}
    model, stats = convert(proto, 13, feeds)
    assert only_node(model).op_type == "ScatterElements" and only_node(model).attr("axis") == 1
    assert stats["renamed_Scatter"] == 1


def test_an_unknown_dtype_takes_the_dtype_bound_to_the_same_type_parameter() -> None:
    """Identity 21 -> 13 allows fewer types; its output (dtype not inferred when the graph output is
    declared untyped) shares the type parameter V with the known float input, so it converts."""
    proto = one_op("Identity", ["x"], {}, [3], 21)
    model, _ = convert(proto, 13, {"x": np.ones(3, np.float32)})
    assert only_node(model).op_type == "Identity"


def test_a_converted_model_that_fails_onnx_checker_is_an_error() -> None:
    """optimize --opset runs onnx.checker on the result: an attribute the op does not have is caught."""
    from graphopt import import_model
    from graphopt.api import _check_standard
    from graphopt.errors import PassFailedError

    def relu(attrs: dict) -> onnx.ModelProto:
        return make([h.make_node("Relu", ["x"], ["y"], name="n0", **attrs)], [info("x", [2])],
                    [info("y", [2])], opset=13)
    with pytest.raises(PassFailedError, match="fails onnx.checker: .*bogus"):
        _check_standard(import_model(relu({"bogus": 1})), 13)
    _check_standard(import_model(relu({})), 13)  # a valid model passes
