"""replace_all_uses_with, bypass and replace_node: how graph outputs are handed over."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.errors import IRError
from graphopt.ir import Graph, Node, Tensor, Value, bypass, replace_all_uses_with, replace_node
from graphopt.ir.verify import verify


def _graph() -> tuple[Graph, Value, Node, Node]:
    """x -> a=Relu -> b=Neg -> output "y" (b), with a second reader Abs(b) named r."""
    g = Graph("main")
    x = g.add_input(Value("x", dtype=1, shape=(2,)))
    a = Node("Relu", [x], name="a")
    b = Node("Neg", [a.outputs[0]], name="b", outputs=[Value("y", dtype=1, shape=(2,))])
    r = Node("Abs", [b.outputs[0]], name="r")
    g.append(a, b, r)
    g.outputs.extend([b.outputs[0], r.outputs[0]])
    return g, x, a, b


def test_rauw_returns_the_touched_uses_in_use_order() -> None:
    """The returned list holds the (node, slot) pairs that were rewired, as they were before."""
    g, x, a, b = _graph()
    y = b.outputs[0]
    r = y.consumers()[0]
    new = Node("Sigmoid", [x])
    g.insert_after(a, new)
    touched = replace_all_uses_with(y, new.outputs[0], outputs=True)
    assert touched == [(r, 0)]
    assert r.inputs == (new.outputs[0],)
    assert y.uses() == []


def test_rauw_hands_a_graph_output_slot_and_name_to_a_free_node_output() -> None:
    """A node output of the same graph that is not yet an output takes the slot and the name."""
    g, x, a, b = _graph()
    old, new = b.outputs[0], a.outputs[0]
    new.name = "relu_out"
    replace_all_uses_with(old, new, outputs=True)
    assert g.outputs[0] is new
    assert new.name == "y"
    assert old.name is None
    assert not old.is_graph_output and new.is_graph_output
    assert [n.op_type for n in g] == ["Relu", "Neg", "Abs"]  # no Identity needed
    g.remove(b)
    verify(g)


def test_rauw_hands_a_graph_output_to_a_free_constant_of_the_graph() -> None:
    """A constant owned by the same graph is free too: it takes the slot and the name."""
    g, x, a, b = _graph()
    const = g.add_const(Tensor.from_array(np.zeros(2, np.float32)), "zeros")
    replace_all_uses_with(b.outputs[0], const, outputs=True)
    assert g.outputs[0] is const and const.name == "y"
    assert [n.op_type for n in g] == ["Relu", "Neg", "Abs"]


def test_rauw_inserts_identity_when_the_new_value_is_a_graph_input() -> None:
    """A graph input keeps its own name; an Identity at the top carries the output name and type."""
    g, x, a, b = _graph()
    old = b.outputs[0]
    replace_all_uses_with(old, x, outputs=True)
    out = g.outputs[0]
    assert out is not x and out.producer is not None
    assert out.producer.op_type == "Identity" and out.producer.inputs == (x,)
    assert (out.name, out.dtype, out.shape) == ("y", 1, (2,))
    assert x.name == "x" and old.name is None
    assert g.nodes[0] is out.producer
    assert g.outputs[1].producer.inputs == (x,)  # the Abs reader was rewired too
    g.remove(b)
    verify(g)


def test_rauw_inserts_identity_when_the_new_value_is_already_an_output() -> None:
    """Two output slots cannot share one value: an Identity right after the producer is added."""
    g, x, a, b = _graph()
    r_out = g.outputs[1]
    r_out.name = "r_out"
    replace_all_uses_with(b.outputs[0], r_out, outputs=True)
    ident = g.outputs[0].producer
    assert ident is not None and ident.op_type == "Identity" and ident.inputs == (r_out,)
    assert g.outputs[0].name == "y" and r_out.name == "r_out"
    assert g.outputs[1] is r_out
    assert [n.name for n in g].index("r") + 1 == g.nodes.index(ident)


def test_rauw_inserts_identity_when_the_new_value_comes_from_an_outer_scope() -> None:
    """A subgraph output replaced by an outer value gets a local Identity at the top of the body."""
    g, x, a, b = _graph()
    body = Graph("then")
    first = Node("Sqrt", [x], name="first")
    inner = Node("Neg", [first.outputs[0]], name="inner", outputs=[Value("then_out")])
    body.append(first, inner)
    body.outputs.append(inner.outputs[0])
    if_node = Node("If", [x], {"then_branch": body, "else_branch": Graph("else")})
    body.parent = if_node
    g.append(if_node)
    outer = a.outputs[0]
    replace_all_uses_with(inner.outputs[0], outer, outputs=True)
    out = body.outputs[0]
    assert out.producer is not None and out.producer.op_type == "Identity"
    assert out.producer.graph is body and out.producer.inputs == (outer,)
    assert out.name == "then_out" and outer.name is None
    assert body.nodes[0] is out.producer
    assert (out.producer, 0) in outer.uses()


def test_rauw_by_default_leaves_graph_outputs_alone_and_removal_is_refused() -> None:
    """The default rewires readers only (onnx_ir's rule): the interface never moves silently, so a
    pass that forgets to hand an output over fails loudly when it removes the producer."""
    g, x, a, b = _graph()
    old = b.outputs[0]
    replace_all_uses_with(old, a.outputs[0])
    assert g.outputs[0] is old and old.name == "y" and a.outputs[0].name != "y"
    assert not old.consumers()
    with pytest.raises(IRError):
        g.remove(b)


def test_rauw_with_outputs_false_leaves_graph_outputs_alone() -> None:
    """outputs=False rewires readers only; the graph output slot keeps the old value."""
    g, x, a, b = _graph()
    old = b.outputs[0]
    touched = replace_all_uses_with(old, a.outputs[0], outputs=False)
    assert len(touched) == 1
    assert g.outputs[0] is old and old.name == "y"
    assert len(g) == 3


def test_bypass_removes_a_pass_through_node_and_rewires_its_readers() -> None:
    """bypass: readers of the node's output read its input, and the node leaves the graph."""
    g = Graph("main")
    x = g.add_input(Value("x"))
    ident = Node("Identity", [x])
    neg = Node("Neg", [ident.outputs[0]])
    g.append(ident, neg)
    g.outputs.append(neg.outputs[0])
    bypass(ident)
    assert [n.op_type for n in g] == ["Neg"]
    assert neg.inputs == (x,) and x.uses() == [(neg, 0)]
    verify(g)


def test_bypass_refuses_an_omitted_input() -> None:
    """A node cannot be bypassed through an input slot that is None."""
    g = Graph("main")
    node = Node("Identity", [None])
    g.append(node)
    with pytest.raises(IRError, match="omitted"):
        bypass(node)


def test_replace_node_inserts_new_nodes_and_copies_missing_types() -> None:
    """replace_node puts the new nodes where the old one was and keeps the output interface."""
    g, x, a, b = _graph()
    neg = Node("Mul", [a.outputs[0], a.outputs[0]], name="new")
    replace_node(b, [neg], [neg.outputs[0]])
    assert [n.name for n in g] == ["a", "new", "r"]
    out = neg.outputs[0]
    assert g.outputs[0] is out and out.name == "y" and (out.dtype, out.shape) == (1, (2,))
    assert g.outputs[1].producer.inputs == (out,)
    verify(g)


def test_replace_node_refuses_a_wrong_number_of_outputs() -> None:
    """The replacement must stand for every output of the old node."""
    g, x, a, b = _graph()
    with pytest.raises(IRError, match="1 outputs, got 2"):
        replace_node(b, [], [x, x])


def test_value_links_are_read_only() -> None:
    """producer, output_index and graph are kept by Node and Graph; assigning them is refused."""
    g, x, a, b = _graph()
    value = a.outputs[0]
    for field, new in (("producer", b), ("output_index", 3), ("graph", None)):
        with pytest.raises(AttributeError):
            setattr(value, field, new)
    assert (value.producer, value.output_index, value.graph) == (a, 0, g)


def test_graph_output_membership_follows_every_list_mutator() -> None:
    """is_graph_output is a constant-time lookup; it agrees with the list after each kind of edit."""
    g, x, a, b = _graph()
    y, r = g.outputs[0], g.outputs[1]
    relu = a.outputs[0]

    def members() -> list[bool]:
        assert all(v.is_graph_output == any(o is v for o in g.outputs) for v in (y, r, relu))
        return [v.is_graph_output for v in (y, r, relu)]

    assert members() == [True, True, False]
    g.outputs.append(relu)
    assert members() == [True, True, True]
    g.outputs.append(relu)
    g.outputs.pop()
    assert members() == [True, True, True]  # one slot left
    g.outputs.remove(relu)
    assert members() == [True, True, False]
    g.outputs[0] = relu
    assert members() == [False, True, True]
    del g.outputs[0]
    assert members() == [False, True, False]
    g.outputs.insert(0, y)
    g.outputs += [relu]
    assert members() == [True, True, True]
    g.outputs = [r]
    assert members() == [False, True, False]
    g.outputs.clear()
    assert members() == [False, False, False]


def test_graph_replace_input_moves_ownership_and_refuses_a_read_input() -> None:
    g, x, a, b = _graph()
    new = Value("x2", dtype=1, shape=(2,))
    with pytest.raises(IRError, match="still read"):
        g.replace_input(0, new)
    replace_all_uses_with(x, g.add_input(Value("tmp", dtype=1, shape=(2,))))
    assert g.replace_input(0, new) is x
    assert new.graph is g and new.is_graph_input and x.graph is None and not x.is_graph_input
