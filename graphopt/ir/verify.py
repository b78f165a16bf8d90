"""The one structural verifier: scoping, topological order, and use lists as exact inverses."""

from __future__ import annotations

from graphopt.errors import VerificationError
from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.value import Value


def verify(model: Model | Graph) -> None:
    """Raise VerificationError listing every broken invariant; return None when the IR is sound."""
    graph = model.graph if isinstance(model, Model) else model
    problems: list[str] = []
    _verify_graph(graph, set(), problems)
    if problems:
        shown = "; ".join(problems[:20])
        more = f" (+{len(problems) - 20} more)" if len(problems) > 20 else ""
        raise VerificationError(f"IR verification failed: {shown}{more}")


def _verify_graph(graph: Graph, outer: set[Value], problems: list[str]) -> None:
    available = set(outer)
    for value in [*graph.inputs, *graph.consts, *graph.sparse_consts]:
        if value.graph is not graph:
            problems.append(f"{value!r} is listed in graph {graph.name!r} but owned by another graph")
        if value in available:
            problems.append(f"{value!r} is defined twice")
        available.add(value)
        _check_uses(value, problems)
    for node in graph:
        if node.graph is not graph:
            problems.append(f"{node!r} is iterated in {graph.name!r} but owned elsewhere")
        for index, value in enumerate(node.inputs):
            if value is None:
                continue
            if value not in available:
                problems.append(f"{node!r} input {index} reads {value!r}, not defined before it in scope")
            if (node, index) not in value._uses:
                problems.append(f"{value!r} lacks the use ({node!r}, {index})")
        for sub in node.subgraphs():
            if sub.parent is not node:
                problems.append(f"subgraph {sub.name!r} of {node!r} has the wrong parent")
            _verify_graph(sub, available, problems)
        for index, out in enumerate(node.outputs):
            if out.producer is not node or out.output_index != index:
                problems.append(f"{out!r} does not point back to its producer {node!r}:{index}")
            if out.graph is not graph:
                problems.append(f"{out!r} produced in {graph.name!r} is owned by another graph")
            if out in available:
                problems.append(f"{out!r} is defined twice")
            available.add(out)
            _check_uses(out, problems)
    for value in graph.outputs:
        if value not in available:
            problems.append(f"graph {graph.name!r} outputs {value!r}, which is not defined in scope")


def _check_uses(value: Value, problems: list[str]) -> None:
    for node, index in value.iter_uses():
        if node.graph is None:
            problems.append(f"{value!r} is used by removed node {node!r}")
        elif index >= len(node.inputs) or node.inputs[index] is not value:
            problems.append(f"{value!r} records a use ({node!r}, {index}) that the node does not have")
