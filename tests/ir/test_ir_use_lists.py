"""Use lists are the exact inverse of node inputs after every mutator (Value, Node, Graph, mutate)."""

from __future__ import annotations

from collections import Counter

import pytest

from graphopt.errors import IRError
from graphopt.ir import Graph, Node, Value, replace_all_uses_with


def _expected_uses(graph: Graph) -> dict[Value, Counter]:
    """Recompute every value's uses from node inputs, over the graph and all its subgraphs."""
    expected: dict[Value, Counter] = {}
    for node in graph.all_nodes():
        for index, value in enumerate(node.inputs):
            if value is not None:
                expected.setdefault(value, Counter())[(node, index)] += 1
    return expected


def _all_values(graph: Graph) -> set[Value]:
    values: set[Value] = set()
    for g in graph.all_graphs():
        values.update(g.inputs, g.consts, g.outputs)
        for node in g:
            values.update(node.outputs)
            values.update(v for v in node.inputs if v is not None)
    return values


def assert_uses_inverse(graph: Graph, *extra: Value) -> None:
    """Every value's use list is exactly the multiset of (node, slot) pairs that read it, nothing else."""
    expected = _expected_uses(graph)
    for value in _all_values(graph) | set(extra):
        assert Counter(value.uses()) == expected.get(value, Counter()), value
        assert value.num_uses == sum(expected.get(value, Counter()).values()), value


def _chain() -> tuple[Graph, Value, Value, Node, Node, Node]:
    """x, y -> a=Add(x, y) -> b=Mul(a, x) -> c=Relu(b) -> output c."""
    g = Graph("main")
    x, y = g.add_input(Value("x")), g.add_input(Value("y"))
    a = Node("Add", [x, y])
    b = Node("Mul", [a.outputs[0], x])
    c = Node("Relu", [b.outputs[0]])
    g.append(a, b, c)
    g.outputs.append(c.outputs[0])
    return g, x, y, a, b, c


def test_new_node_registers_one_use_per_input_slot() -> None:
    """A node reading the same value twice records two uses, one per slot, in slot order."""
    x = Value("x")
    node = Node("Add", [x, x])
    assert x.uses() == [(node, 0), (node, 1)]
    assert x.consumers() == [node]
    assert x.num_uses == 2


def test_omitted_input_records_no_use() -> None:
    """``None`` marks an omitted optional input and is nobody's use."""
    x = Value("x")
    node = Node("Clip", [x, None, None])
    assert node.inputs == (x, None, None)
    assert x.uses() == [(node, 0)]


def test_replace_input_keeps_use_lists_inverse() -> None:
    """replace_input moves exactly one use from the old value to the new one."""
    g, x, y, a, b, c = _chain()
    b.replace_input(1, y)
    assert b.inputs == (a.outputs[0], y)
    assert x.uses() == [(a, 0)]
    assert y.uses() == [(a, 1), (b, 1)]
    assert_uses_inverse(g)


def test_replace_input_with_same_value_is_a_no_op() -> None:
    """Re-pointing a slot at the value it already reads leaves the use list untouched."""
    g, x, _, a, b, _ = _chain()
    b.replace_input(1, x)
    assert x.uses() == [(a, 0), (b, 1)]
    assert_uses_inverse(g)


def test_replace_input_with_none_drops_the_use() -> None:
    """Omitting a slot removes its use and leaves the slot as None."""
    g, x, _, a, b, _ = _chain()
    b.replace_input(1, None)
    assert b.inputs == (a.outputs[0], None)
    assert x.uses() == [(a, 0)]
    assert_uses_inverse(g)


def test_set_inputs_keeps_use_lists_inverse_when_the_arity_changes() -> None:
    """set_inputs drops every old use and records the new slots, even with a different length."""
    g, x, y, a, b, _ = _chain()
    b.set_inputs([y, y, x])
    assert b.inputs == (y, y, x)
    assert a.outputs[0].uses() == []
    assert y.uses() == [(a, 1), (b, 0), (b, 1)]
    assert x.uses() == [(a, 0), (b, 2)]
    b.set_inputs([x])
    assert y.uses() == [(a, 1)]
    assert x.uses() == [(a, 0), (b, 0)]
    assert_uses_inverse(g, a.outputs[0])


def test_inputs_tuple_is_read_only() -> None:
    """Node.inputs cannot be assigned or mutated in place: only the mutators change it."""
    _, _, y, a, _, _ = _chain()
    with pytest.raises(AttributeError):
        a.inputs = (y, y)  # type: ignore[misc]
    with pytest.raises(TypeError):
        a.inputs[0] = y  # type: ignore[index]


def test_graph_remove_drops_the_uses_of_removed_nodes() -> None:
    """Removing nodes deletes their uses from every value they read."""
    g, x, y, a, b, c = _chain()
    c.replace_input(0, a.outputs[0])
    g.remove(b)
    assert x.uses() == [(a, 0)]
    assert a.outputs[0].uses() == [(c, 0)]
    assert b.inputs == ()
    assert [n.op_type for n in g] == ["Add", "Relu"]
    assert_uses_inverse(g, b.outputs[0])


def test_unsafe_remove_also_drops_the_uses_of_removed_nodes() -> None:
    """remove(safe=False) skips the user check but still leaves no use by a removed node."""
    g, x, y, a, b, c = _chain()
    g.remove(a, safe=False)
    assert x.uses() == [(b, 1)]
    assert y.uses() == []
    assert_uses_inverse(g, x, y)


def test_replace_all_uses_with_keeps_use_lists_inverse() -> None:
    """RAUW moves every use, in the outer graph and inside subgraphs, to the new value."""
    g, x, y, a, b, c = _chain()
    body = Graph("then")
    inner = Node("Neg", [x])
    body.append(inner)
    body.outputs.append(inner.outputs[0])
    if_node = Node("If", [y], {"then_branch": body, "else_branch": Graph("else")})
    body.parent = if_node
    g.append(if_node)
    touched = replace_all_uses_with(x, y, outputs=True)
    assert touched == [(a, 0), (b, 1), (inner, 0)]
    assert x.uses() == []
    assert Counter(y.uses()) == Counter({(a, 1): 1, (if_node, 0): 1, (a, 0): 1, (b, 1): 1,
                                         (inner, 0): 1})
    assert a.inputs == (y, y) and b.inputs[1] is y and inner.inputs == (y,)
    assert_uses_inverse(g, x)


def test_uses_is_a_snapshot_so_rewiring_while_iterating_is_safe() -> None:
    """Iterating uses() while rewiring every consumer visits each use once and moves all of them."""
    g, x, y, a, b, _ = _chain()
    seen = []
    for node, index in x.uses():
        node.replace_input(index, y)
        seen.append((node, index))
    assert seen == [(a, 0), (b, 1)]
    assert x.uses() == []
    assert_uses_inverse(g, x)


def test_node_refuses_an_output_value_that_already_has_a_producer() -> None:
    """A value has one producer: reusing it as another node's output raises IRError."""
    a = Node("Relu", [Value("x")])
    with pytest.raises(IRError, match="already has a producer"):
        Node("Relu", [Value("y")], outputs=[a.outputs[0]])
