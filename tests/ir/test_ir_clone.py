"""clone_model: an independent structure that shares the immutable tensors."""

from __future__ import annotations

import numpy as np

from graphopt.ir import Graph, Model, Node, Tensor, Value, clone_model, replace_all_uses_with
from graphopt.ir.verify import verify


def _model() -> Model:
    """x, w -> a=Add(x, w) -> If(cond){then: Mul(a, x); else: Neg(w)} -> output y."""
    g = Graph("main")
    g.doc_string = "main graph"
    x = g.add_input(Value("x", dtype=1, shape=("N", 2)))
    cond = g.add_input(Value("cond", dtype=9, shape=()))
    w = g.add_const(Tensor.from_array(np.arange(2, dtype=np.float32)), "w")
    g.input_defaults[cond] = Tensor.from_array(np.array(True))
    a = Node("Add", [x, w], {"note": "keep"}, name="a")
    then_g, else_g = Graph("then"), Graph("else")
    t = Node("Mul", [a.outputs[0], x], name="t")
    then_g.append(t)
    then_g.outputs.append(t.outputs[0])
    e = Node("Neg", [w], name="e")
    else_g.append(e)
    else_g.outputs.append(e.outputs[0])
    if_node = Node("If", [cond], {"then_branch": then_g, "else_branch": else_g}, name="if",
                   outputs=[Value("y", dtype=1)])
    then_g.parent = else_g.parent = if_node
    g.append(a, if_node)
    g.outputs.append(if_node.outputs[0])
    return Model(graph=g, opset_imports={"": 21, "com.x": 1}, producer_name="p",
                 metadata_props={"k": "v"})


def _shape(model: Model) -> list[tuple[str, str, list[str]]]:
    """(graph, node, input names) for every node of every graph."""
    return [(g.name, n.name, [v.name if v is not None else "" for v in n.inputs])
            for g in model.graph.all_graphs() for n in g]


def test_clone_reproduces_structure_names_types_and_metadata() -> None:
    """The clone has the same nodes, wiring, names, types, defaults and model fields."""
    model = _model()
    copy = clone_model(model)
    verify(copy)
    assert _shape(copy) == _shape(model)
    assert [(v.name, v.dtype, v.shape) for v in copy.graph.inputs] == \
        [("x", 1, ("N", 2)), ("cond", 9, ())]
    assert [v.name for v in copy.graph.outputs] == ["y"]
    assert copy.graph.doc_string == "main graph"
    assert copy.opset_imports == {"": 21, "com.x": 1} and copy.metadata_props == {"k": "v"}
    assert copy.producer_name == "p"
    (default_value, default), = copy.graph.input_defaults.items()
    assert default_value is copy.graph.inputs[1]
    assert default is model.graph.input_defaults[model.graph.inputs[1]]


def test_clone_shares_no_ir_object_with_the_original() -> None:
    """Values, nodes, graphs and the mutable dicts of the clone are new objects."""
    model = _model()
    copy = clone_model(model)
    orig_nodes = list(model.graph.all_nodes())
    copy_nodes = list(copy.graph.all_nodes())
    assert not {id(n) for n in orig_nodes} & {id(n) for n in copy_nodes}
    orig_values = {id(v) for n in orig_nodes for v in (*n.inputs, *n.outputs)}
    copy_values = {id(v) for n in copy_nodes for v in (*n.inputs, *n.outputs)}
    assert not orig_values & copy_values
    assert copy.metadata_props is not model.metadata_props
    assert copy.opset_imports is not model.opset_imports
    copy_if = copy.graph.nodes[1]
    for sub in copy_if.subgraphs():
        assert sub.parent is copy_if
    assert copy_if.attr("then_branch") is not model.graph.nodes[1].attr("then_branch")


def test_clone_subgraph_captures_the_cloned_outer_values() -> None:
    """Outer values read in a cloned body are the clone's values, with uses recorded there."""
    model = _model()
    copy = clone_model(model)
    a_copy = copy.graph.nodes[0]
    t_copy = copy.graph.nodes[1].attr("then_branch").nodes[0]
    assert t_copy.inputs == (a_copy.outputs[0], copy.graph.inputs[0])
    assert (t_copy, 0) in a_copy.outputs[0].uses()
    orig_a = model.graph.nodes[0]
    assert len(orig_a.outputs[0].uses()) == 1  # cloning added no use to the original


def test_clone_shares_tensor_objects() -> None:
    """Constants and input defaults point at the very same (immutable) Tensor objects."""
    model = _model()
    copy = clone_model(model)
    assert copy.graph.consts[0] is not model.graph.consts[0]
    assert copy.graph.consts[0].const is model.graph.consts[0].const


def test_mutating_the_clone_leaves_the_original_intact() -> None:
    """Rewiring, removing, renaming and re-attributing the clone changes nothing in the original."""
    model = _model()
    before = _shape(model)
    copy = clone_model(model)
    a_copy, if_copy = copy.graph.nodes
    x_copy = copy.graph.inputs[0]
    replace_all_uses_with(a_copy.outputs[0], x_copy, outputs=True)
    copy.graph.remove(a_copy)
    x_copy.name = "renamed"
    if_copy.set_attr("extra", 3)
    if_copy.attr("else_branch").nodes[0].name = "changed"
    copy.graph.outputs.clear()
    copy.metadata_props["new"] = "1"
    copy.opset_imports[""] = 13

    assert _shape(model) == before
    verify(model)
    assert [n.name for n in model.graph] == ["a", "if"]
    assert model.graph.inputs[0].name == "x"
    assert "extra" not in model.graph.nodes[1].attrs
    assert [v.name for v in model.graph.outputs] == ["y"]
    assert model.metadata_props == {"k": "v"} and model.opset == 21
    x = model.graph.inputs[0]
    assert len(x.uses()) == 2  # a and the then-branch Mul
