"""The rewrite primitives every pass uses: rewire uses, bypass and replace nodes."""

from __future__ import annotations

from typing import Sequence

from graphopt.errors import IRError
from graphopt.ir.node import Node
from graphopt.ir.value import Value


def replace_all_uses_with(old: Value, new: Value, *, outputs: bool = False) -> list[tuple[Node, int]]:
    """Make every reader of ``old`` read ``new``; returns the touched ``(node, index)`` uses.

    A graph output stays ``old`` unless asked (as in onnx_ir: the interface never moves silently, and
    removing its producer is then refused). With ``outputs=True``, a graph output ``old`` is handed
    over to ``new``: ``new`` takes the output slot and its interface name when it is free to (produced
    by a node, or a constant, of that same graph and not already an output); otherwise an ``Identity``
    keeps the interface name. ``replace_node`` and ``bypass`` always hand over.
    """
    touched = old.uses()
    for node, index in touched:
        node.replace_input(index, new)
    _copy_type(old, new)  # the two values are equal, so what is known of one is true of the other
    if outputs and old.is_graph_output:
        _hand_over_output(old, new)
    return touched


def _hand_over_output(old: Value, new: Value) -> None:
    graph = old.graph
    assert graph is not None
    free = ((new.producer is not None or new.const is not None) and new.graph is graph
            and not new.is_graph_output)
    if free:
        if old.declared is not None:
            new.declared = old.declared  # the interface's declared type moves with its name
        new.name, old.name = old.name, None
        graph.outputs = [new if v is old else v for v in graph.outputs]
        return
    ident = Node("Identity", [new])
    out = ident.outputs[0]
    out.name, old.name = old.name, None
    out.dtype, out.shape, out.declared = old.dtype, old.shape, old.declared
    anchor = new.producer if new.producer is not None and new.graph is graph else None
    if anchor is not None:
        graph.insert_after(anchor, ident)
    elif graph._head is not None:
        graph.insert_before(next(iter(graph)), ident)
    else:
        graph.append(ident)
    graph.outputs = [out if v is old else v for v in graph.outputs]


def replace_node(old: Node, new_nodes: Sequence[Node], new_outputs: Sequence[Value]) -> None:
    """Replace ``old`` by ``new_nodes`` (inserted before it) whose ``new_outputs`` stand for its outputs."""
    graph = old.graph
    if graph is None:
        raise IRError(f"{old!r} is not in a graph")
    if len(new_outputs) != len(old.outputs):
        raise IRError(f"{old!r} has {len(old.outputs)} outputs, got {len(new_outputs)} replacements")
    graph.insert_before(old, list(new_nodes))
    for before, after in zip(old.outputs, new_outputs):
        _copy_type(before, after)
        replace_all_uses_with(before, after, outputs=True)
    graph.remove(old)


def bypass(node: Node, input_index: int = 0, output_index: int = 0) -> None:
    """Remove a pass-through node: readers of its output read its input instead."""
    src = node.inputs[input_index]
    if src is None:
        raise IRError(f"cannot bypass {node!r}: input {input_index} is omitted")
    replace_all_uses_with(node.outputs[output_index], src, outputs=True)
    graph = node.graph
    assert graph is not None
    graph.remove(node)


def _copy_type(src: Value, dst: Value) -> None:
    """Give ``dst`` the known dtype/shape of ``src`` where it has none."""
    if dst.dtype is None:
        dst.dtype = src.dtype
    if dst.shape is None:
        dst.shape = src.shape
