"""Inline an If whose condition is a constant (or is known otherwise): the taken branch replaces it."""

from __future__ import annotations

import numpy as np

from graphopt.ir.graph import Graph
from graphopt.ir.mutate import replace_all_uses_with
from graphopt.ir.node import Node


def constant_condition(node: Node) -> bool | None:
    """The If's condition when it is a one-element constant, else None."""
    cond = node.inputs[0] if node.inputs else None
    if cond is None or cond.const is None or cond.const.size != 1:
        return None
    return bool(np.asarray(cond.const.numpy()).reshape(-1)[0])


def inline_if(node: Node, graph: Graph) -> list[Node] | None:
    """Splice the taken branch of a constant-condition If into ``graph``.

    Returns the nodes moved into ``graph`` (so the caller can keep folding them), None when the node
    is not an If that can be inlined.
    """
    taken = constant_condition(node)
    return None if taken is None else inline_branch(node, graph, taken)


def inline_branch(node: Node, graph: Graph, taken: bool) -> list[Node] | None:
    """Splice the ``taken`` branch of If ``node`` into ``graph`` whatever its condition.

    Returns the moved nodes, or None when the branch cannot be spliced (it has inputs, sparse
    constants or a different number of outputs).
    """
    branch = node.attr("then_branch" if taken else "else_branch")
    if not isinstance(branch, Graph) or branch.inputs or branch.sparse_consts or branch.input_defaults:
        return None
    if len(branch.outputs) != len(node.outputs):
        return None
    for value in branch.consts:
        branch.move_const(value, graph)
    moved = branch.nodes
    branch.move_to(moved, graph, before=node)
    for out, result in zip(node.outputs, branch.outputs):
        if result.dtype is None:
            result.dtype = out.dtype
        replace_all_uses_with(out, result, outputs=True)
    graph.remove(node)
    return moved
