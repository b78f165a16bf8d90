"""verify(): the one structural check catches scoping, stale uses and double definitions."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.errors import VerificationError
from graphopt.ir import Graph, Model, Node, Tensor, Value
from graphopt.ir.verify import verify


def _good() -> tuple[Graph, Value, Node, Node, Node]:
    """x, w -> a=Add(x, w) -> If(cond) whose branches read a and x from the outer scope."""
    g = Graph("main")
    x, cond = g.add_input(Value("x")), g.add_input(Value("cond"))
    w = g.add_const(Tensor.from_array(np.ones(2, np.float32)), "w")
    a = Node("Add", [x, w], name="a")
    then_g, else_g = Graph("then"), Graph("else")
    t = Node("Mul", [a.outputs[0], x], name="t")
    then_g.append(t)
    then_g.outputs.append(t.outputs[0])
    e = Node("Neg", [w], name="e")
    else_g.append(e)
    else_g.outputs.append(e.outputs[0])
    if_node = Node("If", [cond], {"then_branch": then_g, "else_branch": else_g}, name="if")
    then_g.parent = else_g.parent = if_node
    g.append(a, if_node)
    g.outputs.append(if_node.outputs[0])
    return g, x, a, if_node, t


def test_verify_passes_on_a_sound_graph_with_a_subgraph_capturing_outer_values() -> None:
    """Outer values read inside If branches are in scope: verify returns None."""
    g, *_ = _good()
    assert verify(g) is None
    assert verify(Model(graph=g)) is None


def test_verify_catches_a_use_of_a_value_defined_after_its_reader() -> None:
    """Nodes out of topological order are reported with the reader and the slot."""
    g, x, a, if_node, _ = _good()
    g.reorder([if_node, a])
    with pytest.raises(VerificationError, match=r"Node\(Mul 't'\) input 0 reads .*not defined before it"):
        verify(g)


def test_verify_catches_a_read_of_a_value_from_another_graph() -> None:
    """A value that is nowhere in scope (e.g. from another model) is not defined before its reader."""
    g, x, a, *_ = _good()
    stranger = Value("stranger")
    a.replace_input(0, stranger)
    with pytest.raises(VerificationError, match=r"Node\(Add 'a'\) input 0 reads Value\('stranger'"):
        verify(g)


def test_verify_catches_a_stale_use_entry_the_node_no_longer_has() -> None:
    """A use recorded for a slot that reads something else is reported."""
    g, x, a, *_ = _good()
    x._add_use(a, 1)  # corrupt: a's slot 1 reads w, not x
    with pytest.raises(VerificationError, match=r"records a use \(Node\(Add 'a'\), 1\)"):
        verify(g)


def test_verify_catches_a_use_by_a_removed_node() -> None:
    """A use held by a node no longer in any graph is reported."""
    g, x, *_ = _good()
    ghost = Node("Neg", [x], name="ghost")  # never added to a graph
    with pytest.raises(VerificationError, match=r"used by removed node Node\(Neg 'ghost'\)"):
        verify(g)
    ghost.set_inputs(())
    verify(g)


def test_verify_catches_a_missing_use_entry() -> None:
    """A node reading a value whose use list lacks that slot is reported."""
    g, x, a, *_ = _good()
    x._remove_use(a, 0)
    with pytest.raises(VerificationError, match=r"lacks the use \(Node\(Add 'a'\), 0\)"):
        verify(g)


def test_verify_catches_a_value_defined_twice() -> None:
    """A node output that is also listed as a graph input is a double definition."""
    g, x, a, *_ = _good()
    g.add_input(a.outputs[0])
    with pytest.raises(VerificationError, match="is defined twice"):
        verify(g)


@pytest.mark.parametrize("where", ["input-twice", "const-as-input", "outer-as-input"])
def test_verify_catches_a_graph_level_value_defined_twice(where: str) -> None:
    """Listing one value twice among inputs/constants, or re-declaring an outer value, is reported."""
    g, x, a, if_node, t = _good()
    if where == "input-twice":
        g.inputs.append(x)
    elif where == "const-as-input":
        g.inputs.append(g.consts[0])
    else:
        t.graph.inputs.append(x)  # type: ignore[union-attr]
    with pytest.raises(VerificationError, match="is defined twice"):
        verify(g)


def test_verify_catches_an_undefined_graph_output() -> None:
    """A graph output nobody defines in scope is reported."""
    g, *_ = _good()
    g.outputs.append(Value("nowhere"))
    with pytest.raises(VerificationError, match=r"outputs Value\('nowhere'.*not defined in scope"):
        verify(g)


def test_verify_catches_a_subgraph_with_the_wrong_parent() -> None:
    """Each subgraph must point back at the node holding it."""
    g, x, a, if_node, t = _good()
    t.graph.parent = a  # type: ignore[union-attr]
    with pytest.raises(VerificationError, match="has the wrong parent"):
        verify(g)


def test_verify_lists_every_problem_in_one_message() -> None:
    """Several problems are reported together, not only the first one."""
    g, x, a, *_ = _good()
    x._remove_use(a, 0)
    g.outputs.append(Value("nowhere"))
    with pytest.raises(VerificationError) as info:
        verify(g)
    assert "lacks the use" in str(info.value) and "not defined in scope" in str(info.value)
