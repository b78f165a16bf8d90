"""topological-sort: out-of-order IR ends sorted and stable; sorted graphs are left exactly as they are.

The verifier requires order and the importer sorts out-of-order files, so the shuffled graphs here are
built directly in the IR by appending nodes in a wrong order.
"""

from __future__ import annotations

import numpy as np
import pytest
from graphopt.passes.topological_sort import TopologicalSort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import info, make, op_types, ort, randn, run_pass, untyped

from graphopt import Graph, Model, Node, Value, verify
from graphopt.errors import GraphCycleError, VerificationError


def _model(graph: Graph) -> Model:
    return Model(graph=graph, opset_imports={"": 17}, ir_version=8)


def _input(graph: Graph, name: str = "x") -> Value:
    return graph.add_input(Value(name, dtype=T.FLOAT, shape=(2, 3)))


def _output(graph: Graph, node: Node, name: str = "y") -> None:
    out = node.outputs[0]
    out.name, out.dtype, out.shape = name, T.FLOAT, (2, 3)
    graph.outputs.append(out)


def _reversed_chain() -> tuple[Model, list[Node]]:
    """x -> Relu -> Neg -> Abs -> y, appended as Abs, Relu, Neg."""
    graph = Graph("g")
    x = _input(graph)
    relu = Node("Relu", [x])
    neg = Node("Neg", [relu.outputs[0]])
    abs_ = Node("Abs", [neg.outputs[0]])
    graph.append(abs_, relu, neg)
    _output(graph, abs_)
    return _model(graph), [relu, neg, abs_]


def test_sort_a_shuffled_chain() -> None:
    """Abs, Relu, Neg becomes Relu, Neg, Abs; all three moved; the verifier is satisfied."""
    model, expected = _reversed_chain()
    with pytest.raises(VerificationError, match="not defined before it"):
        verify(model)
    model, result = run_pass(model, "topological-sort")
    assert (result.changed, result.stats) == (True, {"nodes_moved": 3})
    assert model.graph.nodes == expected
    x = randn(2, 3)
    np.testing.assert_array_equal(ort(model, {"x": x})["y"], np.abs(-np.maximum(x, 0)))


def test_sorted_graph_is_left_unchanged() -> None:
    """Idempotence: a second run moves nothing."""
    model, expected = _reversed_chain()
    run_pass(model, "topological-sort")
    _, again = run_pass(model, "topological-sort")
    assert (again.changed, again.stats) == (False, {"nodes_moved": 0})
    assert model.graph.nodes == expected


def test_sort_is_stable_for_independent_nodes() -> None:
    """Ready nodes keep their current relative order: Sigmoid, Tanh stay first and in order."""
    graph = Graph("g")
    x = _input(graph)
    sig, tanh = Node("Sigmoid", [x]), Node("Tanh", [x])
    relu = Node("Relu", [x])
    neg = Node("Neg", [relu.outputs[0]])
    abs_ = Node("Abs", [neg.outputs[0]])
    graph.append(sig, abs_, tanh, relu, neg)
    for node, name in ((sig, "s"), (tanh, "t"), (abs_, "y")):
        _output(graph, node, name)
    model, result = run_pass(_model(graph), "topological-sort")
    assert result.stats == {"nodes_moved": 4}
    assert model.graph.nodes == [sig, tanh, relu, neg, abs_]


def test_already_sorted_onnx_file_has_nothing_to_move() -> None:
    """Negative fixture from a file: nodes_moved == 0 and the order is the file's."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Neg", ["x"], ["n"]),
             h.make_node("Add", ["r", "n"], ["y"])]
    model, result = run_pass(make(nodes, [info("x", [2, 3])], [untyped("y")]), "topological-sort")
    assert (result.changed, result.stats) == (False, {"nodes_moved": 0})
    assert op_types(model) == ["Relu", "Neg", "Add"]


def test_out_of_order_onnx_file_is_sorted_by_the_importer_so_the_pass_has_nothing_to_move() -> None:
    """The importer stably sorts files listing a node before its producer."""
    nodes = [h.make_node("Add", ["r", "n"], ["y"]), h.make_node("Relu", ["x"], ["r"]),
             h.make_node("Neg", ["x"], ["n"])]
    proto = make(nodes, [info("x", [2, 3])], [untyped("y")])
    model, result = run_pass(proto, "topological-sort")
    assert result.stats == {"nodes_moved": 0}
    assert op_types(model) == ["Relu", "Neg", "Add"]


def test_move_producer_of_a_value_read_inside_a_subgraph_before_the_if() -> None:
    """An If whose branch reads p depends on p's producer even though its own inputs do not."""
    graph = Graph("g")
    x = _input(graph)
    cond = graph.add_input(Value("cond", dtype=T.BOOL, shape=()))
    producer = Node("Relu", [x])
    p = producer.outputs[0]
    then_branch, else_branch = Graph("then"), Graph("else")
    inner_then, inner_else = Node("Neg", [p]), Node("Abs", [x])
    then_branch.append(inner_then)
    else_branch.append(inner_else)
    then_branch.outputs, else_branch.outputs = [inner_then.outputs[0]], [inner_else.outputs[0]]
    for node, name in ((inner_then, "t_out"), (inner_else, "e_out")):
        node.outputs[0].name, node.outputs[0].dtype, node.outputs[0].shape = name, T.FLOAT, (2, 3)
    if_node = Node("If", [cond], {"then_branch": then_branch, "else_branch": else_branch})
    then_branch.parent = else_branch.parent = if_node
    graph.append(if_node, producer)
    _output(graph, if_node)
    model, result = run_pass(_model(graph), "topological-sort")
    assert result.stats == {"nodes_moved": 2}
    assert op_types(model) == ["Relu", "If"]
    x_value = randn(2, 3)
    np.testing.assert_array_equal(ort(model, {"x": x_value, "cond": np.array(True)})["y"],
                                  -np.maximum(x_value, 0))


def test_refuse_a_cycle_naming_the_graph() -> None:
    """A cycle has no order: GraphCycleError naming the graph (the pass manager then rolls back)."""
    graph = Graph("loopy")
    x = _input(graph)
    a = Node("Relu", [x])
    b = Node("Neg", [a.outputs[0]])
    a.replace_input(0, b.outputs[0])
    graph.append(a, b)
    with pytest.raises(GraphCycleError, match="graph .loopy. has a cycle"):
        TopologicalSort().run(_model(graph))


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(st.data())
def test_property_any_permutation_of_a_dag_sorts_to_a_valid_order_with_same_outputs(
        data: st.DataObject) -> None:
    """Random Add/Mul DAGs appended in a random order sort to a verified order computing the same y."""
    count = data.draw(st.integers(1, 8), label="nodes")
    graph = Graph("g")
    x = _input(graph)
    values, nodes = [x], []
    for i in range(count):
        a = data.draw(st.integers(0, len(values) - 1), label=f"a{i}")
        b = data.draw(st.integers(0, len(values) - 1), label=f"b{i}")
        node = Node(data.draw(st.sampled_from(["Add", "Mul", "Sub"]), label=f"op{i}"), [values[a], values[b]])
        nodes.append(node)
        values.append(node.outputs[0])
    order = data.draw(st.permutations(nodes), label="append order")
    graph.append(*order)
    _output(graph, nodes[-1])
    model, result = run_pass(_model(graph), "topological-sort")
    moved = sum(1 for got, was in zip(model.graph.nodes, order) if got is not was)
    assert result.stats == {"nodes_moved": moved}
    if list(order) == nodes:
        assert moved == 0
    x_value = randn(2, 3)
    reference = {x: x_value}
    for node in nodes:
        a, b = (reference[v] for v in node.inputs)
        fn = {"Add": np.add, "Mul": np.multiply, "Sub": np.subtract}[node.op_type]
        reference[node.outputs[0]] = fn(a, b)
    np.testing.assert_allclose(ort(model, {"x": x_value})["y"], reference[nodes[-1].outputs[0]], rtol=1e-6)
