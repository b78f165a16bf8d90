"""Graph node order: iteration under removal, insertion, reorder, reversed, and all-or-nothing remove."""

from __future__ import annotations

import pytest

from graphopt.errors import IRError
from graphopt.ir import Graph, Node, Value


def _line(n: int) -> tuple[Graph, list[Node]]:
    """A graph of ``n`` independent Relu nodes named n0..n{n-1}, each reading input x."""
    g = Graph("main")
    x = g.add_input(Value("x"))
    nodes = [Node("Relu", [x], name=f"n{i}") for i in range(n)]
    g.append(*nodes)
    return g, nodes


def _names(nodes: object) -> list[str]:
    return [n.name for n in nodes]  # type: ignore[attr-defined]


def test_iteration_continues_after_removing_the_current_node() -> None:
    """Removing the node just yielded does not stop or skip the iteration."""
    g, nodes = _line(4)
    seen = []
    for node in g:
        seen.append(node.name)
        g.remove(node)
    assert seen == ["n0", "n1", "n2", "n3"]
    assert len(g) == 0 and g.nodes == []


def test_iteration_skips_the_next_node_when_it_is_removed() -> None:
    """A node removed before the iterator reaches it is never yielded."""
    g, nodes = _line(5)
    seen = []
    for node in g:
        seen.append(node.name)
        if node.name == "n1":
            g.remove(nodes[2])
    assert seen == ["n0", "n1", "n3", "n4"]
    assert _names(g) == ["n0", "n1", "n3", "n4"]


def test_iteration_tolerates_removing_the_current_and_the_next_node() -> None:
    """Removing the current node and its successor resumes at the node after both."""
    g, nodes = _line(5)
    seen = []
    for node in g:
        seen.append(node.name)
        if node.name == "n1":
            g.remove(node)
            g.remove(nodes[2])
    assert seen == ["n0", "n1", "n3", "n4"]
    assert _names(g) == ["n0", "n3", "n4"]
    assert len(g) == 3


def test_iteration_tolerates_removing_next_then_current_in_one_call() -> None:
    """remove([current, next]) during iteration resumes after both."""
    g, nodes = _line(4)
    seen = []
    for node in g:
        seen.append(node.name)
        if node.name == "n0":
            g.remove([nodes[1], node])
    assert seen == ["n0", "n2", "n3"]
    assert _names(g) == ["n2", "n3"]


def test_iteration_yields_nodes_appended_during_iteration() -> None:
    """Nodes appended at the tail while iterating are visited (a worklist can grow)."""
    g, nodes = _line(2)
    seen = []
    for node in g:
        seen.append(node.name)
        if node.name == "n1":
            g.append(Node("Relu", [g.inputs[0]], name="late"))
    assert seen == ["n0", "n1", "late"]


def test_reversed_yields_last_to_first() -> None:
    """reversed() walks the node list from the tail."""
    g, _ = _line(4)
    assert _names(g.reversed()) == ["n3", "n2", "n1", "n0"]


def test_reversed_tolerates_removing_the_current_and_the_previous_node() -> None:
    """A reverse walk (as DCE does) survives removing the current node and its predecessor."""
    g, nodes = _line(5)
    seen = []
    for node in g.reversed():
        seen.append(node.name)
        if node.name == "n3":
            g.remove(node)
            g.remove(nodes[2])
    assert seen == ["n4", "n3", "n1", "n0"]
    assert _names(g) == ["n0", "n1", "n4"]


def test_insert_before_places_nodes_in_order_right_before_ref() -> None:
    """insert_before(ref, [a, b]) gives ... a, b, ref ..."""
    g, nodes = _line(2)
    a, b = Node("Neg", name="a"), Node("Neg", name="b")
    g.insert_before(nodes[1], [a, b])
    assert _names(g) == ["n0", "a", "b", "n1"]
    c = Node("Neg", name="c")
    g.insert_before(nodes[0], c)
    assert _names(g) == ["c", "n0", "a", "b", "n1"]
    assert len(g) == 5 and a.graph is g and a.outputs[0].graph is g


def test_insert_after_places_nodes_in_order_right_after_ref() -> None:
    """insert_after(ref, [a, b]) gives ... ref, a, b ...; after the tail it appends."""
    g, nodes = _line(2)
    a, b = Node("Neg", name="a"), Node("Neg", name="b")
    g.insert_after(nodes[0], [a, b])
    assert _names(g) == ["n0", "a", "b", "n1"]
    c = Node("Neg", name="c")
    g.insert_after(nodes[1], c)
    assert _names(g) == ["n0", "a", "b", "n1", "c"]
    assert _names(g.reversed()) == ["c", "n1", "b", "a", "n0"]


def test_insert_refuses_a_ref_from_another_graph_and_a_node_already_placed() -> None:
    """The reference node must belong to the graph; a node belongs to one graph at a time."""
    g, nodes = _line(2)
    other, others = _line(1)
    with pytest.raises(IRError, match="does not belong"):
        g.insert_after(others[0], Node("Neg"))
    with pytest.raises(IRError, match="already belongs"):
        g.insert_after(nodes[0], others[0])
    assert _names(g) == ["n0", "n1"] and _names(other) == ["n0"]


def test_reorder_applies_a_permutation_in_both_directions() -> None:
    """reorder sets forward and backward order to exactly the given permutation."""
    g, nodes = _line(4)
    g.reorder([nodes[2], nodes[0], nodes[3], nodes[1]])
    assert _names(g) == ["n2", "n0", "n3", "n1"]
    assert _names(g.reversed()) == ["n1", "n3", "n0", "n2"]
    g.append(Node("Neg", name="tail"))
    assert _names(g)[-2:] == ["n1", "tail"]


@pytest.mark.parametrize("bad", ["missing", "duplicate", "foreign"])
def test_reorder_refuses_anything_but_a_permutation(bad: str) -> None:
    """A missing, duplicated or foreign node makes reorder raise and leaves the order unchanged."""
    g, nodes = _line(3)
    order = {"missing": nodes[:2], "duplicate": [nodes[0], nodes[0], nodes[1]],
             "foreign": [nodes[0], nodes[1], Node("Neg")]}[bad]
    with pytest.raises(IRError, match="permutation"):
        g.reorder(order)
    assert _names(g) == ["n0", "n1", "n2"]


def _producer_consumer() -> tuple[Graph, Node, Node, Node]:
    """x -> a=Relu -> b=Neg -> c=Abs(b) -> output c; a also feeds c (c=Add(b, a))."""
    g = Graph("main")
    x = g.add_input(Value("x"))
    a = Node("Relu", [x], name="a")
    b = Node("Neg", [a.outputs[0]], name="b")
    c = Node("Add", [b.outputs[0], a.outputs[0]], name="c")
    g.append(a, b, c)
    g.outputs.append(c.outputs[0])
    return g, a, b, c


def test_safe_remove_refuses_while_an_output_is_used_by_a_node_that_stays() -> None:
    """remove refuses a node whose output a remaining node reads, and says how to fix it."""
    g, a, b, c = _producer_consumer()
    with pytest.raises(IRError, match=r"still used by Node\(Add 'c'\).*replace_all_uses_with"):
        g.remove(b)
    assert _names(g) == ["a", "b", "c"]


def test_safe_remove_is_all_or_nothing() -> None:
    """When one node of the batch cannot go, none is removed and no use list changes."""
    g, a, b, c = _producer_consumer()
    x = g.inputs[0]
    dead = Node("Neg", [x], name="dead")  # removable on its own
    g.append(dead)
    with pytest.raises(IRError, match="still used"):
        g.remove([dead, b])  # b is still read by c
    assert _names(g) == ["a", "b", "c", "dead"]
    assert len(g) == 4
    assert x.uses() == [(a, 0), (dead, 0)]
    assert a.outputs[0].uses() == [(b, 0), (c, 1)]
    assert dead.inputs == (x,) and dead.graph is g and b.inputs == (a.outputs[0],)


def test_safe_remove_accepts_users_removed_in_the_same_batch() -> None:
    """A producer may go together with all of its users."""
    g, a, b, c = _producer_consumer()
    g.outputs.clear()
    g.remove([a, b, c])
    assert len(g) == 0
    assert g.inputs[0].uses() == []


def test_safe_remove_refuses_a_node_producing_a_graph_output() -> None:
    """A node producing a graph output cannot be removed safely, even without readers."""
    g, a, b, c = _producer_consumer()
    with pytest.raises(IRError, match="is a graph output"):
        g.remove(c)
    assert _names(g) == ["a", "b", "c"]
    assert b.outputs[0].uses() == [(c, 0)]


def test_safe_remove_refuses_a_node_whose_output_is_read_inside_a_subgraph() -> None:
    """A read from inside a kept node's subgraph counts as a use that blocks removal."""
    g, a, b, c = _producer_consumer()
    body = Graph("body")
    inner = Node("Neg", [b.outputs[0]])
    body.append(inner)
    body.outputs.append(inner.outputs[0])
    if_node = Node("If", [g.inputs[0]], {"then_branch": body, "else_branch": Graph("e")})
    body.parent = if_node
    g.append(if_node)
    g.remove(c, safe=False)
    with pytest.raises(IRError, match="still used"):
        g.remove(b)


def test_remove_refuses_a_node_of_another_graph() -> None:
    """Removing a node the graph does not hold raises instead of corrupting the list."""
    g, *_ = _producer_consumer()
    with pytest.raises(IRError, match="does not belong"):
        g.remove(Node("Neg"))
    assert len(g) == 3


def test_removing_a_node_with_an_if_subgraph_drops_body_uses_of_outer_values() -> None:
    """Uses that an If body (and bodies nested in it) made of outer values disappear with the If."""
    g = Graph("main")
    x, cond = g.add_input(Value("x")), g.add_input(Value("cond"))
    outer = Node("Relu", [x], name="outer")
    g.append(outer)
    v = outer.outputs[0]
    then_g, else_g, nested = Graph("then"), Graph("else"), Graph("nested")
    deep = Node("Abs", [v], name="deep")
    nested.append(deep)
    nested.outputs.append(deep.outputs[0])
    t = Node("Neg", [v], name="t")
    inner_if = Node("If", [cond], {"then_branch": nested, "else_branch": Graph("ne")}, name="inner_if")
    nested.parent = inner_if
    then_g.append(t, inner_if)
    then_g.outputs.append(t.outputs[0])
    e = Node("Sqrt", [x], name="e")
    else_g.append(e)
    else_g.outputs.append(e.outputs[0])
    if_node = Node("If", [cond], {"then_branch": then_g, "else_branch": else_g}, name="if")
    then_g.parent = else_g.parent = if_node
    g.append(if_node)
    assert set(v.uses()) == {(t, 0), (deep, 0)}
    assert x.uses() == [(outer, 0), (e, 0)]

    g.remove(if_node)

    assert v.uses() == []
    assert x.uses() == [(outer, 0)]
    assert cond.uses() == []
    assert _names(g) == ["outer"]


def test_remove_of_a_node_listed_twice_removes_it_once_and_keeps_the_count() -> None:
    """remove([n, n]) (e.g. producers of two dead outputs of one node) leaves len() and order exact."""
    g, nodes = _line(3)
    split = Node("Split", [g.inputs[0]], num_outputs=2, name="split")
    g.append(split)
    g.remove([v.producer for v in split.outputs])  # type: ignore[misc]
    assert _names(g) == ["n0", "n1", "n2"]
    assert len(g) == 3
    g.reorder([nodes[2], nodes[1], nodes[0]])
    assert _names(g) == ["n2", "n1", "n0"]


def test_reads_and_local_producer_see_through_subgraphs() -> None:
    """An If reading ``a`` only inside its branch reads it all the same, and a value made inside the
    branch is produced, seen from the main graph, by the If that holds it."""
    g = Graph("main")
    x = g.add_input(Value("x"))
    relu = Node("Relu", [x], name="relu")
    g.append(relu)
    a = relu.outputs[0]
    branch = Graph("then")
    inner = Node("Neg", [a], name="neg")
    branch.append(inner)
    branch.outputs = [inner.outputs[0]]
    cond = g.add_input(Value("cond"))
    holder = Node("If", [cond], name="if", outputs=[Value("y")])
    holder.set_attr("then_branch", branch)
    branch.parent = holder
    g.append(holder)
    assert holder.reads() == [cond, a]
    assert g.local_producer(a) is relu
    assert g.local_producer(inner.outputs[0]) is holder
    assert branch.local_producer(inner.outputs[0]) is inner
    assert branch.local_producer(a) is None and g.local_producer(x) is None
