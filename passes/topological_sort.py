"""topological-sort: a stable topological order (nodes already in order never move)."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import ClassVar

from graphopt import Graph, Model, Node, PassResult, register_pass
from graphopt.errors import GraphCycleError


@register_pass
@dataclass
class TopologicalSort:
    """Reorder nodes so every value is defined before use, keeping the current order where valid.

    Ties are broken by current position, so a sorted graph is left exactly as it is. A node holding
    subgraphs depends on every outer value its subgraphs read.
    """

    name: ClassVar[str] = "topological-sort"

    def run(self, model: Model) -> PassResult:
        moved = sum(sort_graph(g) for g in list(model.graph.all_graphs()))
        return PassResult(moved > 0, {"nodes_moved": moved})


def sort_graph(graph: Graph) -> int:
    """Sort one graph in place; returns how many nodes changed position."""
    nodes = graph.nodes
    index = {node: i for i, node in enumerate(nodes)}
    deps: dict[Node, set[Node]] = {n: set() for n in nodes}
    users: dict[Node, list[Node]] = {n: [] for n in nodes}
    for node in nodes:
        for value in node.reads():
            producer = graph.local_producer(value)
            if producer is not None and producer is not node and producer not in deps[node]:
                deps[node].add(producer)
                users[producer].append(node)
    pending = {n: len(d) for n, d in deps.items()}
    ready = [index[n] for n in nodes if not pending[n]]
    heapq.heapify(ready)
    order: list[Node] = []
    while ready:
        node = nodes[heapq.heappop(ready)]
        order.append(node)
        for user in users[node]:
            pending[user] -= 1
            if not pending[user]:
                heapq.heappush(ready, index[user])
    if len(order) != len(nodes):
        stuck = [n for n in nodes if pending[n]][:3]
        raise GraphCycleError(f"graph {graph.name!r} has a cycle through {stuck}: no topological order "
                              "exists (the model is invalid; re-export it)")
    moved = sum(1 for a, b in zip(order, nodes) if a is not b)
    if moved:
        graph.reorder(order)
    return moved

