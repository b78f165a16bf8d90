"""eliminate-dead-code: dead chains, unused constants, interface-preserving no-ops, custom domains, If."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import (
    BOOL,
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

from graphopt import export_model

X = info("x", [2, 3])
Y = info("y", [2, 3])


def _dead_chain_model() -> onnx.ModelProto:
    nodes = [
        h.make_node("Relu", ["x"], ["y"]),
        h.make_node("Neg", ["x"], ["d1"]),
        h.make_node("Mul", ["d1", "w"], ["d2"]),
        h.make_node("Abs", ["d2"], ["d3"]),
    ]
    return make(nodes, [X], [Y], [array("w", randn(2, 3)), array("unused", randn(4))])


def test_remove_dead_chain_and_the_constants_only_it_used() -> None:
    """A chain whose end nobody reads goes, and so do its weight and a never-used initializer."""
    proto = _dead_chain_model()
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.changed is True
    assert result.stats == {"dead_nodes": 3, "unused_constants": 2}
    assert op_types(model) == ["Relu"]
    assert model.graph.consts == []
    assert_same_outputs(proto, model, {"x": randn(2, 3)})


def test_second_run_on_a_clean_graph_changes_nothing() -> None:
    """Idempotence: DCE after DCE reports changed=False and empty stats."""
    model, _ = run_pass(_dead_chain_model(), "eliminate-dead-code")
    _, again = run_pass(model, "eliminate-dead-code")
    assert (again.changed, again.stats) == (False, {})


def test_keep_a_graph_without_dead_code_untouched() -> None:
    """Negative fixture: every node and constant feeds the output."""
    proto = make([h.make_node("Mul", ["x", "w"], ["m"]), h.make_node("Relu", ["m"], ["y"])], [X], [Y],
                 [array("w", randn(2, 3))])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert op_types(model) == ["Mul", "Relu"]
    assert len(model.graph.consts) == 1


def test_keep_unused_graph_inputs() -> None:
    """Graph inputs are interface: an input nobody reads stays."""
    proto = make([h.make_node("Relu", ["x"], ["y"])], [X, info("spare", [4])], [Y])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert [v.name for v in model.graph.inputs] == ["x", "spare"]


def test_keep_identity_when_input_is_graph_input_and_output_is_graph_output() -> None:
    """Bypassing it would merge two interface names, so the Identity stays."""
    proto = make([h.make_node("Identity", ["x"], ["y"])], [X], [Y])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert op_types(model) == ["Identity"]
    graph = export_model(model).graph
    assert ([i.name for i in graph.input], [o.name for o in graph.output]) == (["x"], ["y"])


def test_keep_identity_when_its_input_is_another_graph_output() -> None:
    """Two outputs reading one value need the Identity to keep both names."""
    proto = make([h.make_node("Relu", ["x"], ["a"]), h.make_node("Identity", ["a"], ["b"])], [X],
                 [info("a", [2, 3]), info("b", [2, 3])])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert op_types(model) == ["Relu", "Identity"]


def test_remove_identity_before_graph_output_and_keep_the_output_name() -> None:
    """The producer takes over the output and its interface name."""
    proto = make([h.make_node("Relu", ["x"], ["r"]), h.make_node("Identity", ["r"], ["y"])], [X], [Y])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"noop_Identity": 1}
    assert op_types(model) == ["Relu"]
    graph = export_model(model).graph
    assert [o.name for o in graph.output] == ["y"]
    assert list(graph.node[0].output) == ["y"]
    assert_same_outputs(proto, model, {"x": randn(2, 3)})


def test_turn_noop_cast_between_graph_input_and_output_into_identity() -> None:
    """A no-op that cannot be bypassed becomes an Identity, then stays one on the next run."""
    proto = make([h.make_node("Cast", ["x"], ["y"], to=T.FLOAT)], [X], [Y])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"noop_Cast_to_identity": 1}
    assert op_types(model) == ["Identity"]
    assert_same_outputs(proto, model, {"x": randn(2, 3)})
    _, again = run_pass(model, "eliminate-dead-code")
    assert (again.changed, again.stats) == (False, {})


def test_never_remove_custom_domain_nodes_even_when_dead() -> None:
    """graphopt cannot know a custom op is free of side effects; what feeds it stays too."""
    nodes = [
        h.make_node("Relu", ["x"], ["y"]),
        h.make_node("Neg", ["x"], ["n"]),
        h.make_node("Log", ["n"], ["unused"], domain="com.example"),
        h.make_node("Abs", ["x"], ["dead"]),
    ]
    proto = make(nodes, [X], [Y], extra_opsets={"com.example": 1})
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"dead_nodes": 1}
    assert [n.qualified_type for n in model.graph] == ["Relu", "Neg", "com.example::Log"]


def test_never_bypass_an_identity_of_a_custom_domain() -> None:
    """A custom-domain op named Identity is not the ONNX Identity."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Identity", ["r"], ["y"], domain="com.example")]
    proto = make(nodes, [X], [Y], extra_opsets={"com.example": 1})
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert [n.qualified_type for n in model.graph] == ["Relu", "com.example::Identity"]


def test_remove_dead_nodes_of_the_ai_onnx_ml_domain() -> None:
    """ai.onnx.ml ops are pure like the default domain's."""
    nodes = [h.make_node("Relu", ["x"], ["y"]),
             h.make_node("Binarizer", ["x"], ["b"], domain="ai.onnx.ml", threshold=0.0)]
    proto = make(nodes, [X], [Y], extra_opsets={"ai.onnx.ml": 3})
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"dead_nodes": 1}
    assert op_types(model) == ["Relu"]


def _if_model() -> onnx.ModelProto:
    then_branch = h.make_graph(
        [h.make_node("Neg", ["x"], ["tn"]), h.make_node("Abs", ["tn"], ["t_dead"]),
         h.make_node("Identity", ["tn"], ["then_out"])],
        "then", [], [info("then_out", [2, 3])])
    else_branch = h.make_graph(
        [h.make_node("Constant", [], ["e_unused"], value=onnx.numpy_helper.from_array(randn(3))),
         h.make_node("Relu", ["x"], ["e1"]), h.make_node("Identity", ["e1"], ["else_out"])],
        "else", [], [info("else_out", [2, 3])])
    node = h.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch)
    return make([node], [info("cond", [], BOOL), X], [Y])


def test_eliminate_dead_code_inside_if_branches() -> None:
    """Both branches lose their dead node, unused constant and bypassable Identity."""
    proto = _if_model()
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"dead_nodes": 1, "noop_Identity": 2, "unused_constants": 1}
    if_node = model.graph.nodes[0]
    then_branch, else_branch = if_node.attr("then_branch"), if_node.attr("else_branch")
    assert [n.op_type for n in then_branch] == ["Neg"]
    assert [n.op_type for n in else_branch] == ["Relu"]
    assert else_branch.consts == []
    for cond in (True, False):
        assert_same_outputs(proto, model, {"cond": np.array(cond), "x": randn(2, 3)})
    _, again = run_pass(model, "eliminate-dead-code")
    assert (again.changed, again.stats) == (False, {})


def test_keep_identity_returning_an_outer_value_from_a_branch() -> None:
    """A branch output that is an outer value cannot be renamed: its Identity stays."""
    branch = h.make_graph([h.make_node("Identity", ["x"], ["b_out"])], "b", [], [info("b_out", [2, 3])])
    other = h.make_graph([h.make_node("Neg", ["x"], ["o_out"])], "o", [], [info("o_out", [2, 3])])
    proto = make([h.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other)],
                 [info("cond", [], BOOL), X], [Y])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert [n.op_type for n in model.graph.nodes[0].attr("then_branch")] == ["Identity"]


def test_dead_node_reading_only_an_initializer_goes_with_it() -> None:
    """Removing a dead node frees the constant it read in the same run."""
    proto = make([h.make_node("Relu", ["x"], ["y"]), h.make_node("Shape", ["c"], ["dead"])], [X], [Y],
                 [ints("c", [1, 2, 3])])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"dead_nodes": 1, "unused_constants": 1}
    assert (op_types(model), model.graph.consts) == (["Relu"], [])


def test_noops_option_off_keeps_noops_and_still_removes_dead_code() -> None:
    """eliminate-dead-code{noops=false} only removes what nothing reads."""
    nodes = [h.make_node("Identity", ["x"], ["i"]), h.make_node("Relu", ["i"], ["y"]),
             h.make_node("Neg", ["x"], ["dead"])]
    model, result = run_pass(make(nodes, [X], [Y]), "eliminate-dead-code", noops=False)
    assert result.stats == {"dead_nodes": 1}
    assert op_types(model) == ["Identity", "Relu"]


@pytest.mark.parametrize("node, inits", [
    (h.make_node("Split", ["x"], ["n"], axis=1), []),  # one piece: the whole tensor
    (h.make_node("Split", ["x", "sizes"], ["n"], axis=0), [ints("sizes", [2])]),
    (h.make_node("Tile", ["x", "reps"], ["n"]), [ints("reps", [1, 1])]),
    (h.make_node("Squeeze", ["x"], ["n"]), []),  # no axes, and no dim of [2, 3] is 1
], ids=["split-one-piece", "split-sizes-one-piece", "tile-ones", "squeeze-nothing"])
def test_more_noops_are_removed(node: onnx.NodeProto, inits: list) -> None:
    """Split into one piece, Tile by ones and a Squeeze with nothing to squeeze equal their input
    (Mask/Keypoint R-CNN exports carry 15 one-piece Splits)."""
    proto = make([node, h.make_node("Relu", ["n"], ["y"])], [X], [Y], inits)
    model, result = run_pass(proto, "eliminate-dead-code")
    assert op_types(model) == ["Relu"] and model.graph.consts == []
    assert result.stats == {f"noop_{node.op_type}": 1, **({"unused_constants": 1} if inits else {})}
    assert_same_outputs(proto, model, {"x": randn(2, 3)})


def test_keep_a_squeeze_that_may_squeeze_a_dynamic_dim() -> None:
    proto = make([h.make_node("Squeeze", ["x"], ["y"])], [info("x", ["n", 3])], [untyped("y")])
    model, _ = run_pass(proto, "eliminate-dead-code")
    assert op_types(model) == ["Squeeze"]


# ----- property: random chains of no-ops, real ops and dead side branches ------------------------
NOOPS = {
    "Identity": lambda i, o: h.make_node("Identity", [i], [o]),
    "Cast": lambda i, o: h.make_node("Cast", [i], [o], to=T.FLOAT),
    "Transpose": lambda i, o: h.make_node("Transpose", [i], [o], perm=[0, 1]),
    "Dropout": lambda i, o: h.make_node("Dropout", [i], [o]),
}
REAL = {
    "Neg": lambda i, o: h.make_node("Neg", [i], [o]),
    "Abs": lambda i, o: h.make_node("Abs", [i], [o]),
    "Sigmoid": lambda i, o: h.make_node("Sigmoid", [i], [o]),
}


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.sampled_from(sorted(NOOPS) + sorted(REAL)), st.booleans()),
                min_size=1, max_size=7))
def test_property_dce_removes_every_noop_and_dead_branch_and_keeps_outputs(
        steps: list[tuple[str, bool]]) -> None:
    """On random typed chains, exactly the real ops survive and outputs stay bit-identical."""
    nodes, cur = [], "x"
    for i, (op, dead_branch) in enumerate(steps):
        nodes.append({**NOOPS, **REAL}[op](cur, f"v{i}"))
        if dead_branch:
            nodes.append(h.make_node("Exp", [cur], [f"dead{i}"]))
        cur = f"v{i}"
    nodes.append(h.make_node("Relu", [cur], ["y"]))
    typed = [info(f"v{i}", [2, 3]) for i in range(len(steps))]  # Cast is a no-op only on known types
    proto = make(nodes, [X], [untyped("y")], value_info=typed)
    model, result = run_pass(proto, "eliminate-dead-code")
    expected_ops = [op for op, _ in steps if op in REAL] + ["Relu"]
    assert op_types(model) == expected_ops
    noop_stats = {k: v for k, v in result.stats.items() if k.startswith("noop_")}
    assert sum(noop_stats.values()) == sum(op in NOOPS for op, _ in steps)
    assert result.stats.get("dead_nodes", 0) == sum(dead for _, dead in steps)
    assert_same_outputs(proto, model, {"x": randn(2, 3, seed=len(steps))})
    _, again = run_pass(model, "eliminate-dead-code")
    assert again.changed is False
