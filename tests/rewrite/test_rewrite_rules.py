"""graphopt.rewrite: tree patterns with captures, commutative matching, escape refusal, statistics."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt import Model, import_model
from graphopt.ir.verify import verify
from graphopt.rewrite import Const, Op, Opt, Rule, Var, apply_rules, match


def _model(nodes, inits=(), outputs=("y",)) -> Model:  # type: ignore[no-untyped-def]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [2])],
                         [h.make_tensor_value_info(o, T.FLOAT, [2]) for o in outputs], list(inits))
    return import_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))


ONE = nh.from_array(np.ones(2, np.float32), "one")


def test_match_captures_values_and_nodes_root_first() -> None:
    """Relu(Add(x, const)) captures x, the constant and both nodes, root first."""
    model = _model([h.make_node("Add", ["x", "one"], ["a"]), h.make_node("Relu", ["a"], ["y"])], [ONE])
    relu = model.graph.nodes[-1]
    found = match(Op("Relu", Op("Add", Var("x"), Const("c"), capture="add"), capture="relu"), relu)
    assert found is not None
    assert found["x"].name == "x" and found["c"].name == "one"
    assert [n.op_type for n in found.matched] == ["Relu", "Add"]


def test_commutative_ops_match_with_inputs_swapped() -> None:
    """Add(const, x) matches Add(Var, Const); Sub(const, x) does not."""
    for op, expected in (("Add", True), ("Sub", False)):
        model = _model([h.make_node(op, ["one", "x"], ["y"])], [ONE])
        found = match(Op(op, Var("x"), Const("c")), model.graph.nodes[0])
        assert (found is not None) is expected


def test_same_capture_name_must_be_the_same_value() -> None:
    """Mul(v, v) matches x*x but not x*one."""
    square = _model([h.make_node("Mul", ["x", "x"], ["y"])])
    other = _model([h.make_node("Mul", ["x", "one"], ["y"])], [ONE])
    pattern = Op("Mul", Var("v"), Var("v"))
    assert match(pattern, square.graph.nodes[0]) is not None
    assert match(pattern, other.graph.nodes[0]) is None


def test_same_node_capture_twice_must_be_the_same_node() -> None:
    """Mul(Relu(x) as r, Relu(x) as r) matches when both operands are one Relu, not two equal ones;
    the shared node is listed once among the matched nodes."""
    pattern = Op("Mul", Op("Relu", Var("x"), capture="r"), Op("Relu", Var("x"), capture="r"))
    shared = _model([h.make_node("Relu", ["x"], ["r"]), h.make_node("Mul", ["r", "r"], ["y"])])
    found = match(pattern, shared.graph.nodes[-1])
    assert found is not None and [n.op_type for n in found.matched] == ["Mul", "Relu"]
    twins = _model([h.make_node("Relu", ["x"], ["r1"]), h.make_node("Relu", ["x"], ["r2"]),
                    h.make_node("Mul", ["r1", "r2"], ["y"])])
    assert match(pattern, twins.graph.nodes[-1]) is None


def test_optional_input_matches_absent_and_present() -> None:
    """Opt(Const) accepts a missing trailing input and a constant one."""
    pattern = Op("Clip", Var("x"), Opt(Const("lo")), Opt(Const("hi")))
    lo = nh.from_array(np.array(0, np.float32), "lo")
    absent = _model([h.make_node("Clip", ["x"], ["y"])])
    present = _model([h.make_node("Clip", ["x", "lo"], ["y"])], [lo])
    assert match(pattern, absent.graph.nodes[0]).get("lo") is None  # type: ignore[union-attr]
    assert match(pattern, present.graph.nodes[0])["lo"].name == "lo"  # type: ignore[index]


DOUBLE_RELU = Rule("dedup-relu", Op("Relu", Op("Relu", Var("x"), capture="inner")),
                   lambda found, ctx: [found["inner"].outputs[0]])


def test_apply_rules_rewrites_and_counts() -> None:
    """Relu(Relu(Relu(x))) collapses to one Relu over the fixed point; stats count attempts."""
    model = _model([h.make_node("Relu", ["x"], ["a"]), h.make_node("Relu", ["a"], ["b"]),
                    h.make_node("Relu", ["b"], ["y"])])
    stats = apply_rules(model, [DOUBLE_RELU])
    verify(model)
    assert [n.op_type for n in model.graph] == ["Relu"]
    assert model.graph.outputs[0].name == "y"
    assert stats["dedup-relu"].matches == 2 and stats["dedup-relu"].attempts >= 3


def test_match_whose_intermediate_escapes_is_refused_with_a_reason() -> None:
    """The inner Relu's output is also a graph output: the rule must not delete it."""
    model = _model([h.make_node("Relu", ["x"], ["a"]), h.make_node("Relu", ["a"], ["y"])],
                   outputs=("y", "a"))
    rule = Rule("fold-two", Op("Relu", Op("Relu", Var("x"))), lambda found, ctx: [found["x"]])
    stats = apply_rules(model, [rule])
    assert [n.op_type for n in model.graph] == ["Relu", "Relu"]
    assert stats["fold-two"].rejections == {"intermediate value is a graph output": 1}


def test_declined_rewrite_leaves_no_trace() -> None:
    """A rewrite that builds constants and then declines removes what it made."""
    model = _model([h.make_node("Relu", ["x"], ["y"])])

    def declines(found, ctx):  # type: ignore[no-untyped-def]
        ctx.const(np.zeros(3, np.float32))
        ctx.node("Neg", [found["x"]])
        return None

    stats = apply_rules(model, [Rule("nope", Op("Relu", Var("x")), declines)])
    verify(model)
    assert not model.graph.consts and [n.op_type for n in model.graph] == ["Relu"]
    assert model.graph.inputs[0].num_uses == 1
    assert stats["nope"].rejections == {"rewrite declined": 1}


def test_check_rejection_reason_is_counted() -> None:
    """A rule's check returns a reason; the framework counts it and changes nothing."""
    model = _model([h.make_node("Relu", ["x"], ["y"])])
    rule = Rule("never", Op("Relu", Var("x")), lambda f, c: [f["x"]], lambda f, m: "not today")
    assert apply_rules(model, [rule])["never"].rejections == {"not today": 1}
