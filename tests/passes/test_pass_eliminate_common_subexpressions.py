"""eliminate-common-subexpressions: equal constants and nodes computing the same thing become one,
never changing a value (checked bit-exactly with onnxruntime) and never merging what may differ:
random ops, custom-domain ops, ops holding subgraphs, constants of other dtype or shape."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from passes_kit import (
    BOOL,
    FLOAT,
    INT64,
    array,
    assert_same_outputs,
    info,
    ints,
    make,
    op_types,
    randn,
    run_pass,
    untyped,
)

from graphopt import Model

PASS = "eliminate-common-subexpressions"


def _check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray],
           **options: Any) -> tuple[list[str], dict, Model]:
    """Run the pass; outputs are bit-exact with onnxruntime; a second run changes nothing."""
    model, result = run_pass(proto, PASS, **options)
    assert_same_outputs(proto, model, feeds)
    _, again = run_pass(model, PASS, **options)
    assert (again.changed, again.stats) == (False, {})
    return op_types(model), result.stats, model


def _names(node: Any) -> list[str | None]:
    return [None if v is None else v.name for v in node.inputs]


# ---- nodes ----

def test_merge_two_equal_nodes_and_point_readers_at_the_first() -> None:
    """Relu(x) twice: the second goes, Add reads the first twice."""
    nodes = [h.make_node("Relu", ["x"], ["a"]), h.make_node("Relu", ["x"], ["b"]),
             h.make_node("Add", ["a", "b"], ["y"])]
    ops, stats, model = _check(make(nodes, [info("x", [2, 3])], [untyped("y")]), {"x": randn(2, 3)})
    assert ops == ["Relu", "Add"] and stats == {"merged_nodes": 1}
    assert _names(model.graph.nodes[1]) == ["a", "a"]


def test_merges_cascade_through_readers_in_one_run() -> None:
    """Once the Relus are one, the two Negs read the same value and merge too."""
    nodes = [h.make_node("Relu", ["x"], ["a"]), h.make_node("Relu", ["x"], ["b"]),
             h.make_node("Neg", ["a"], ["na"]), h.make_node("Neg", ["b"], ["nb"]),
             h.make_node("Sub", ["na", "nb"], ["y"])]
    ops, stats, model = _check(make(nodes, [info("x", [4])], [untyped("y")]), {"x": randn(4)})
    assert ops == ["Relu", "Neg", "Sub"] and stats == {"merged_nodes": 2}
    assert _names(model.graph.nodes[2]) == ["na", "na"]


@pytest.mark.parametrize("op,elem,inputs", [
    ("Add", FLOAT, 2), ("Mul", FLOAT, 2), ("Max", FLOAT, 2), ("Min", FLOAT, 2), ("Sum", FLOAT, 3),
    ("Mean", FLOAT, 3), ("Equal", INT64, 2), ("And", BOOL, 2), ("Or", BOOL, 2), ("Xor", BOOL, 2),
    ("BitwiseAnd", INT64, 2), ("BitwiseOr", INT64, 2), ("BitwiseXor", INT64, 2)])
def test_merge_commutative_ops_whatever_the_input_order(op: str, elem: int, inputs: int) -> None:
    """op(a, b[, c]) and op(c, b, a) are the same value for commutative ops."""
    names = ["a", "b", "c"][:inputs]
    nodes = [h.make_node(op, names, ["u"]), h.make_node(op, names[::-1], ["v"]),
             h.make_node("Identity", ["v"], ["w"])]
    proto = make(nodes, [info(n, [5], elem) for n in names], [untyped("u"), untyped("w")], opset=18)
    rng = np.random.default_rng(0)
    dtype = {FLOAT: np.float32, INT64: np.int64, BOOL: np.bool_}[elem]
    feeds = {n: rng.integers(0, 3, 5).astype(dtype) for n in names}
    ops, stats, model = _check(proto, feeds)
    assert ops == [op, "Identity"] and stats == {"merged_nodes": 1}
    assert _names(model.graph.nodes[1]) == ["u"]


@pytest.mark.parametrize("op", ["Sub", "Div", "Pow", "MatMul", "Concat"])
def test_keep_non_commutative_ops_with_swapped_inputs(op: str) -> None:
    """op(a, b) and op(b, a) differ for these ops."""
    attrs = {"axis": 0} if op == "Concat" else {}
    nodes = [h.make_node(op, ["a", "b"], ["u"], **attrs), h.make_node(op, ["b", "a"], ["v"], **attrs)]
    proto = make(nodes, [info("a", [3, 3]), info("b", [3, 3])], [untyped("u"), untyped("v")])
    ops, stats, _ = _check(proto, {"a": np.abs(randn(3, 3)) + 0.5, "b": randn(3, 3, seed=1)})
    assert ops == [op, op] and stats == {}


@pytest.mark.parametrize("attrs1,attrs2", [
    ({"perm": [1, 0, 2]}, {"perm": [0, 2, 1]}),
    ({"perm": [2, 1, 0]}, {}),  # the default perm reverses too, but a given and an absent attribute differ
], ids=["different", "given-vs-default"])
def test_keep_nodes_whose_attributes_differ(attrs1: dict, attrs2: dict) -> None:
    nodes = [h.make_node("Transpose", ["x"], ["u"], **attrs1),
             h.make_node("Transpose", ["x"], ["v"], **attrs2)]
    proto = make(nodes, [info("x", [2, 3, 4])], [untyped("u"), untyped("v")])
    ops, stats, _ = _check(proto, {"x": randn(2, 3, 4)})
    assert ops == ["Transpose", "Transpose"] and stats == {}


@pytest.mark.parametrize("alpha2,merged", [(0.1, True), (0.2, False)])
def test_float_attributes_compare_by_value(alpha2: float, merged: bool) -> None:
    nodes = [h.make_node("LeakyRelu", ["x"], ["u"], alpha=0.1),
             h.make_node("LeakyRelu", ["x"], ["v"], alpha=alpha2), h.make_node("Add", ["u", "v"], ["y"])]
    ops, stats, _ = _check(make(nodes, [info("x", [6])], [untyped("y")]), {"x": randn(6)})
    assert ops == (["LeakyRelu", "Add"] if merged else ["LeakyRelu", "LeakyRelu", "Add"])
    assert stats == ({"merged_nodes": 1} if merged else {})


@pytest.mark.parametrize("value2,merged", [(np.array([1.5], np.float32), True),
                                           (np.array([1069547520], np.int32), False),  # 1.5's bytes
                                           (np.array([2.5], np.float32), False)],
                         ids=["equal", "dtype", "value"])
def test_tensor_attributes_compare_by_dtype_shape_and_bytes(value2: np.ndarray, merged: bool) -> None:
    """ConstantOfShape(s, value=...): equal value tensors merge, others do not."""
    nodes = [h.make_node("ConstantOfShape", ["s"], ["u"], value=nh.from_array(np.array([1.5], np.float32))),
             h.make_node("ConstantOfShape", ["s"], ["v"], value=nh.from_array(value2))]
    proto = make(nodes, [info("s", [2], INT64)], [untyped("u"), untyped("w")])
    proto.graph.node.append(h.make_node("Identity", ["v"], ["w"]))
    ops, stats, _ = _check(proto, {"s": np.array([2, 3], np.int64)})
    assert ops == (["ConstantOfShape", "Identity"] if merged else ["ConstantOfShape"] * 2 + ["Identity"])
    assert stats == ({"merged_nodes": 1} if merged else {})


def test_merge_multi_output_nodes_output_by_output() -> None:
    """Two equal Splits: both outputs of the second are redirected to the first's."""
    nodes = [h.make_node("Split", ["x", "sizes"], ["a0", "a1"], axis=0),
             h.make_node("Split", ["x", "sizes"], ["b0", "b1"], axis=0),
             h.make_node("Sub", ["a0", "b1"], ["y0"]), h.make_node("Sub", ["b0", "a1"], ["y1"])]
    proto = make(nodes, [info("x", [4])], [untyped("y0"), untyped("y1")], [ints("sizes", [2, 2])])
    ops, stats, model = _check(proto, {"x": randn(4)})
    assert ops == ["Split", "Sub", "Sub"] and stats == {"merged_nodes": 1}
    assert [_names(n) for n in model.graph.nodes[1:]] == [["a0", "a1"], ["a0", "a1"]]


@pytest.mark.parametrize("node", [
    h.make_node("RandomUniformLike", ["x"], ["{}"], seed=1.0),
    h.make_node("RandomNormalLike", ["x"], ["{}"], seed=1.0),
    h.make_node("Bernoulli", ["p"], ["{}"], seed=1.0),
    h.make_node("Multinomial", ["x"], ["{}"], sample_size=2, seed=1.0),
    h.make_node("Dropout", ["x", "ratio", "train"], ["{}"], seed=1),
    h.make_node("RandomNormal", [], ["{}"], shape=[2, 3], seed=1.0),
    h.make_node("RandomUniform", [], ["{}"], shape=[2, 3], seed=1.0),
], ids=lambda n: n.op_type)
def test_never_merge_random_ops(node: onnx.NodeProto) -> None:
    """Two draws are two values even with equal inputs and attributes (and seeds)."""
    first, second = onnx.NodeProto(), onnx.NodeProto()
    first.CopyFrom(node)
    second.CopyFrom(node)
    first.output[0], second.output[0] = "u", "v"
    nodes = [first, second, h.make_node("Add", ["u", "v"], ["y"])]
    inits = [array("ratio", np.float32(0.5)), array("train", np.bool_(True))]
    proto = make(nodes, [info("x", [2, 3]), info("p", [2, 3])], [untyped("y")], inits)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == [node.op_type, node.op_type, "Add"] and result.stats == {}


def test_never_merge_custom_domain_ops() -> None:
    """A custom op may have effects or state: two calls stay two."""
    nodes = [h.make_node("Foo", ["x"], ["u"], domain="com.example"),
             h.make_node("Foo", ["x"], ["v"], domain="com.example"), h.make_node("Add", ["u", "v"], ["y"])]
    proto = make(nodes, [info("x", [3])], [untyped("y")], extra_opsets={"com.example": 1})
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Foo", "Foo", "Add"] and result.stats == {}


def _branch(name: str, op: str, count: int = 1, prefix: str = "") -> onnx.GraphProto:
    """A subgraph computing op(x) ``count`` times (summed), reading the outer x."""
    nodes = [h.make_node(op, ["x"], [f"{prefix}{name}{i}"]) for i in range(count)]
    if count > 1:
        nodes.append(h.make_node("Sum", [n.output[0] for n in nodes], [f"{prefix}{name}_out"]))
    out = f"{prefix}{name}_out" if count > 1 else f"{prefix}{name}0"
    return h.make_graph(nodes, name, [], [info(out, [3])])


@pytest.mark.parametrize("else_op", ["Neg", "Abs"])
def test_never_merge_nodes_holding_subgraphs(else_op: str) -> None:
    """Two If nodes with equally named, equally long branches are left alone, equal bodies or not
    (subgraphs are not compared)."""
    nodes = [h.make_node("If", ["c"], ["u"], then_branch=_branch("t", "Relu"),
                         else_branch=_branch("e", "Neg")),
             h.make_node("If", ["c"], ["v"], then_branch=_branch("t", "Relu", prefix="b"),
                         else_branch=_branch("e", else_op, prefix="b")),
             h.make_node("Sub", ["u", "v"], ["y"])]
    proto = make(nodes, [info("c", [], BOOL), info("x", [3])], [untyped("y")])
    ops, stats, _ = _check(proto, {"c": np.array(False), "x": randn(3)})
    assert ops == ["If", "If", "Sub"] and stats == {}


def test_merge_equal_nodes_inside_a_subgraph() -> None:
    """Subgraphs are visited too: Relu(x) twice in the then-branch becomes one."""
    nodes = [h.make_node("If", ["c"], ["y"], then_branch=_branch("t", "Relu", 2),
                         else_branch=_branch("e", "Neg"))]
    proto = make(nodes, [info("c", [], BOOL), info("x", [3])], [untyped("y")])
    for cond in (True, False):
        ops, stats, model = _check(proto, {"c": np.array(cond), "x": randn(3)})
        assert ops == ["If"] and stats == {"merged_nodes": 1}
    then = next(g for g in model.graph.nodes[0].subgraphs() if g.name == "t")
    assert [n.op_type for n in then] == ["Relu", "Sum"] and _names(then.nodes[1]) == ["t0", "t0"]


def test_keep_duplicates_when_both_outputs_are_graph_outputs() -> None:
    """Both values name an interface output; merging would need an Identity (no gain)."""
    nodes = [h.make_node("Relu", ["x"], ["u"]), h.make_node("Relu", ["x"], ["v"])]
    ops, stats, _ = _check(make(nodes, [info("x", [3])], [untyped("u"), untyped("v")]), {"x": randn(3)})
    assert ops == ["Relu", "Relu"] and stats == {}


def test_merge_a_duplicate_that_is_a_graph_output_and_keep_its_name() -> None:
    """The later Relu's output 'v' is a graph output: the earlier Relu now produces 'v'."""
    nodes = [h.make_node("Relu", ["x"], ["u"]), h.make_node("Neg", ["u"], ["w"]),
             h.make_node("Relu", ["x"], ["v"])]
    ops, stats, model = _check(make(nodes, [info("x", [3])], [untyped("w"), untyped("v")]),
                               {"x": randn(3)})
    assert ops == ["Relu", "Neg"] and stats == {"merged_nodes": 1}
    assert [o.name for o in model.graph.outputs] == ["w", "v"]
    assert model.graph.outputs[1].producer is model.graph.nodes[0]
    assert _names(model.graph.nodes[1]) == ["v"]


# ---- constants ----

def test_merge_equal_constants_then_the_nodes_reading_them() -> None:
    """'a' and 'b' hold the same floats: one constant, and then one Add."""
    nodes = [h.make_node("Add", ["x", "a"], ["u"]), h.make_node("Add", ["b", "x"], ["v"]),
             h.make_node("Mul", ["u", "v"], ["y"])]
    inits = [array("a", np.arange(3, dtype=np.float32)), array("b", np.arange(3, dtype=np.float32))]
    ops, stats, model = _check(make(nodes, [info("x", [2, 3])], [untyped("y")], inits), {"x": randn(2, 3)})
    assert ops == ["Add", "Mul"] and stats == {"merged_constants": 1, "merged_nodes": 1}
    assert [v.name for v in model.graph.consts] == ["a"]


@pytest.mark.parametrize("second,merged", [("q", True), ("r", False)])
def test_string_constants_compare_by_value(second: str, merged: bool) -> None:
    """Strings are compared by their values (opset 19 Equal reads strings)."""
    nodes = [h.make_node("Equal", ["s", "a"], ["u"]), h.make_node("Equal", ["s", "b"], ["v"]),
             h.make_node("Xor", ["u", "v"], ["y"])]
    inits = [nh.from_array(np.array(["p", "q"], dtype=object), "a"),
             nh.from_array(np.array(["p", second], dtype=object), "b")]
    proto = make(nodes, [info("s", [2], T.STRING)], [untyped("y")], inits, opset=19)
    ops, stats, _ = _check(proto, {"s": np.array(["p", "r"], dtype=object)})
    assert ops == (["Equal", "Xor"] if merged else ["Equal", "Equal", "Xor"])
    assert stats == ({"merged_constants": 1, "merged_nodes": 1} if merged else {})


@pytest.mark.parametrize("differ_at,merged", [(None, True), (0, False), (255, False)],
                         ids=["equal", "differ-before-the-tail", "differ-in-the-tail"])
def test_large_constants_are_compared_in_full(differ_at: int | None, merged: bool) -> None:
    """1 KiB constants are pre-filtered by their last bytes, then compared whole: equal ones merge,
    ones that differ in a single element (even outside the sampled tail) do not."""
    a = np.arange(256, dtype=np.float32)
    b = a.copy()
    if differ_at is not None:
        b[differ_at] += 0.5
    nodes = [h.make_node("Add", ["x", "a"], ["u"]), h.make_node("Add", ["x", "b"], ["v"]),
             h.make_node("Sub", ["u", "v"], ["y"])]
    proto = make(nodes, [info("x", [256])], [untyped("y")], [array("a", a), array("b", b)])
    ops, stats, _ = _check(proto, {"x": randn(256)})
    assert ops == (["Add", "Sub"] if merged else ["Add", "Add", "Sub"])
    assert stats == ({"merged_constants": 1, "merged_nodes": 1} if merged else {})


def test_keep_constants_with_the_same_bytes_but_another_dtype() -> None:
    """float32 1.0 and int32 1065353216 share their 4 bytes; they are different constants."""
    f, i = np.ones(2, np.float32), np.full(2, 1065353216, np.int32)
    assert f.tobytes() == i.tobytes()
    nodes = [h.make_node("Add", ["x", "f"], ["u"]), h.make_node("Add", ["n", "i"], ["v"])]
    proto = make(nodes, [info("x", [2]), info("n", [2], T.INT32)], [untyped("u"), untyped("v")],
                 [array("f", f), array("i", i)])
    ops, stats, model = _check(proto, {"x": randn(2), "n": np.arange(2, dtype=np.int32)})
    assert stats == {} and sorted(v.name for v in model.graph.consts) == ["f", "i"]


def test_keep_constants_with_the_same_bytes_but_another_shape() -> None:
    """[6] and [2, 3] of the same numbers broadcast differently."""
    nodes = [h.make_node("Add", ["x", "a"], ["u"]), h.make_node("Add", ["x", "b"], ["v"])]
    inits = [array("a", np.arange(6, dtype=np.float32)),
             array("b", np.arange(6, dtype=np.float32).reshape(2, 3))]
    proto = make(nodes, [info("x", [2, 1, 1])], [untyped("u"), untyped("v")], inits)
    ops, stats, model = _check(proto, {"x": randn(2, 1, 1)})
    assert ops == ["Add", "Add"] and stats == {} and len(model.graph.consts) == 2


def test_keep_positive_and_negative_zero_apart() -> None:
    """0.0 and -0.0 compare equal but are different constants (1 / c tells them apart)."""
    nodes = [h.make_node("Div", ["x", "a"], ["u"]), h.make_node("Div", ["x", "b"], ["v"])]
    inits = [array("a", np.zeros(2, np.float32)), array("b", np.full(2, -0.0, np.float32))]
    proto = make(nodes, [info("x", [2])], [untyped("u"), untyped("v")], inits)
    ops, stats, _ = _check(proto, {"x": np.ones(2, np.float32)})
    assert ops == ["Div", "Div"] and stats == {}


def test_keep_a_constant_that_is_a_graph_output() -> None:
    """A constant naming an interface output keeps its identity."""
    nodes = [h.make_node("Add", ["x", "b"], ["y"])]
    inits = [array("a", np.ones(3, np.float32)), array("b", np.ones(3, np.float32))]
    proto = make(nodes, [info("x", [3])], [untyped("a"), untyped("y")], inits)
    ops, stats, model = _check(proto, {"x": randn(3)})
    assert ops == ["Add"] and stats == {} and sorted(v.name for v in model.graph.consts) == ["a", "b"]


def test_keep_an_initializer_that_is_also_a_graph_input() -> None:
    """An initializer listed as a graph input is a default the caller may override: not a constant."""
    nodes = [h.make_node("Add", ["x", "a"], ["u"]), h.make_node("Add", ["x", "b"], ["v"])]
    inits = [array("a", np.ones(3, np.float32)), array("b", np.ones(3, np.float32))]
    proto = make(nodes, [info("x", [3]), info("a", [3])], [untyped("u"), untyped("v")], inits)
    ops, stats, _ = _check(proto, {"x": randn(3), "a": randn(3, seed=1)})
    assert ops == ["Add", "Add"] and stats == {}


@pytest.mark.parametrize("limit,merged", [(12, 1), (11, 0)])
def test_constants_above_max_const_bytes_are_not_hashed(limit: int, merged: int) -> None:
    """Two equal 12-byte constants merge only when the limit allows 12 bytes."""
    nodes = [h.make_node("Add", ["x", "a"], ["u"]), h.make_node("Sub", ["x", "b"], ["v"])]
    inits = [array("a", np.ones(3, np.float32)), array("b", np.ones(3, np.float32))]
    proto = make(nodes, [info("x", [3])], [untyped("u"), untyped("v")], inits)
    ops, stats, model = _check(proto, {"x": randn(3)}, max_const_bytes=limit)
    assert stats == ({"merged_constants": 1} if merged else {})
    assert len(model.graph.consts) == 2 - merged


# ---- property ----

_UNARY = ["Relu", "Neg", "Abs", "LeakyRelu"]
_BINARY = ["Add", "Mul", "Sub", "Max", "Min", "Div"]
_COMMUTATIVE = {"Add", "Mul", "Max", "Min"}
_CONST_VALUES = [np.array([1.0, 2.0, 3.0], np.float32), np.array([1.0, 2.0, 3.0], np.float32),
                 np.array([0.5, 0.5, 0.5], np.float32), np.array([[1.0, 2.0, 3.0]], np.float32)]


@st.composite
def _programs(draw: st.DrawFn) -> tuple[list[int], list[tuple]]:
    consts = draw(st.lists(st.integers(0, len(_CONST_VALUES) - 1), min_size=1, max_size=4))
    leaves = 2 + len(consts)  # x, z, then the constants
    steps = []
    for i in range(draw(st.integers(2, 10))):
        if steps and draw(st.booleans()):  # repeat an earlier step, operands maybe swapped
            op, alpha, args = draw(st.sampled_from(steps))
            steps.append((op, alpha, args[::-1] if draw(st.booleans()) else args))
            continue
        pick = st.integers(0, leaves + i - 1)
        op = draw(st.sampled_from(_UNARY + _BINARY))
        alpha = draw(st.sampled_from([0.1, 0.2])) if op == "LeakyRelu" else None
        args = [draw(pick)] if op in _UNARY else [draw(pick), draw(pick)]
        steps.append((op, alpha, args))
    return consts, steps


@settings(max_examples=50, deadline=None, derandomize=True)
@given(_programs())
def test_random_programs_keep_exactly_one_node_per_distinct_expression(program: tuple) -> None:
    """Property: over random elementwise programs with repeated sub-expressions and repeated constants,
    the pass leaves exactly one node per distinct expression (commutative ops up to input order,
    constants up to dtype, shape and bytes), reports the exact counts, and outputs stay bit-exact."""
    consts, steps = program
    names = ["x", "z"] + [f"c{i}" for i in range(len(consts))]
    keys: list[Any] = ["x", "z"] + [("const", _CONST_VALUES[c].shape, _CONST_VALUES[c].tobytes())
                                    for c in consts]
    nodes, distinct = [], set()
    for i, (op, alpha, args) in enumerate(steps):
        attrs = {} if alpha is None else {"alpha": alpha}
        nodes.append(h.make_node(op, [names[a] for a in args], [f"n{i}"], **attrs))
        arg_keys = [repr(keys[a]) for a in args]
        key = (op, alpha, tuple(sorted(arg_keys) if op in _COMMUTATIVE else arg_keys))
        names.append(f"n{i}")
        keys.append(key)
        distinct.add(key)
    nodes.append(h.make_node("Sum", [f"n{i}" for i in range(len(steps))], ["y"]))
    inits = [array(f"c{i}", _CONST_VALUES[c]) for i, c in enumerate(consts)]
    proto = make(nodes, [info("x", [2, 3]), info("z", [2, 3])], [untyped("y")], inits)
    ops, stats, model = _check(proto, {"x": randn(2, 3), "z": randn(2, 3, seed=1)})
    merged_consts = len(consts) - len({keys[2 + i] for i in range(len(consts))})
    expected = {"merged_constants": merged_consts, "merged_nodes": len(steps) - len(distinct)}
    event(f"merged_nodes={expected['merged_nodes'] > 0}")
    assert stats == {k: v for k, v in expected.items() if v}
    assert len(ops) == len(distinct) + 1 and len(model.graph.consts) == len(consts) - merged_consts
