"""A memory-aware execution order: list scheduling that runs, among the ready nodes, the one that adds
the fewest live bytes (outputs allocated minus inputs freed), ties broken by the stored position."""

from __future__ import annotations

import heapq
from typing import Callable, Sequence

from graphopt import Graph, Node, Value


def outer_reads(node: Node, graph: Graph) -> list[Value]:
    """Values of ``graph`` that ``node`` reads: its inputs and, for If/Loop/Scan, the outer values its
    bodies capture (``Node.reads`` lists the bodies' own values too)."""
    found = [v for v in node.inputs if v is not None]
    for body in node.subgraphs():
        inner = set(body.all_nodes())
        for sub in inner:
            for value in sub.inputs:
                producer = value.producer if value is not None else None
                if producer is not None and producer not in inner and graph.local_holder(producer):
                    found.append(value)
    return found


def memory_greedy_order(graph: Graph, size_of: Callable[[Value], int]) -> list[Node]:
    """Kahn's algorithm with a lazily re-scored heap; deterministic for a given graph."""
    nodes = list(graph)
    position = {node: i for i, node in enumerate(nodes)}
    node_reads = {node: outer_reads(node, graph) for node in nodes}
    producers: dict[Node, set[Node]] = {}
    remaining_reads: dict[Value, int] = {}
    for node in nodes:
        deps = set()
        for value in node_reads[node]:
            producer = value.producer
            holder = graph.local_holder(producer) if producer is not None else None
            if holder is not None and holder is not node:
                deps.add(holder)
                remaining_reads[value] = remaining_reads.get(value, 0) + 1
        producers[node] = deps
    consumers: dict[Node, list[Node]] = {node: [] for node in nodes}
    for node, deps in producers.items():
        for dep in deps:
            consumers[dep].append(node)
    waiting = {node: len(deps) for node, deps in producers.items()}
    outputs = set(graph.outputs)

    def score(node: Node) -> int:
        allocated = sum(size_of(out) for out in node.outputs)
        freed = 0
        for value in set(node_reads[node]):
            if value in remaining_reads and value not in outputs:
                if remaining_reads[value] == sum(1 for v in node_reads[node] if v is value):
                    freed += size_of(value)
        return allocated - freed

    heap = [(score(n), position[n], n) for n in nodes if waiting[n] == 0]
    heapq.heapify(heap)
    order: list[Node] = []
    done: set[Node] = set()
    while heap:
        value_score, pos, node = heapq.heappop(heap)
        if node in done:
            continue
        fresh = score(node)
        if fresh != value_score and heap and (fresh, pos) > heap[0][:2]:
            heapq.heappush(heap, (fresh, pos, node))
            continue
        order.append(node)
        done.add(node)
        for value in node_reads[node]:
            if value in remaining_reads:
                remaining_reads[value] -= 1
        for consumer in consumers[node]:
            waiting[consumer] -= 1
            if waiting[consumer] == 0:
                heapq.heappush(heap, (score(consumer), position[consumer], consumer))
    if len(order) != len(nodes):
        return nodes  # a cycle: keep the stored order, the verifier reports the graph
    return order


def is_valid_order(order: Sequence[Node], graph: Graph) -> bool:
    """Every value read is produced earlier in ``order`` (or comes from outside the graph)."""
    seen: set[Node] = set()
    for node in order:
        for value in outer_reads(node, graph):
            producer = value.producer
            holder = graph.local_holder(producer) if producer is not None else None
            if holder is not None and holder is not node and holder not in seen:
                return False
        seen.add(node)
    return True
