"""Constant sub-graphs whose result is larger than what they read (anchor grids, shifted-window attention
masks, position tables): node by node each fold would grow the model, so they are judged as a whole.
A region (connected nodes computable from constants alone) folds when the bytes it adds are worth the
nodes it removes (the pass manager's trade, ``BYTES_PER_NODE`` each), every tensor it leaves is at most
``TENSOR_BYTES``, and the model's weights grow by at most ``MODEL_SHARE`` (plus ``MODEL_FLOOR``)."""

from __future__ import annotations

from collections import Counter
from typing import Callable

import numpy as np

from graphopt import Graph, Node, Tensor, Value, replace_all_uses_with

from ._size_limits import predicted_elements

TENSOR_BYTES = 4 * 2**20  # largest tensor a region may leave
EVAL_BYTES = 64 * 2**20  # intermediates held while evaluating one region
MODEL_SHARE, MODEL_FLOOR = 0.05, 2**20  # growth of the model's weights one run may spend

Evaluate = Callable[[Node, dict[Value, np.ndarray]], "list[np.ndarray] | None"]


def computable(graph: Graph, eligible: Callable[[Node], bool]) -> list[Node]:
    """Eligible nodes, in graph order, whose inputs are constants or outputs of earlier such nodes."""
    known: set[int] = set()
    found = []
    for node in graph:
        if eligible(node) and node.inputs and all(
                v is None or v.const is not None or id(v) in known for v in node.inputs):
            found.append(node)
            known.update(id(v) for v in node.outputs)
    return found


def regions(members: list[Node]) -> list[list[Node]]:
    """``members`` split into groups connected by the values they pass each other (graph order kept)."""
    index = {node: i for i, node in enumerate(members)}
    parent = list(range(len(members)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for node in members:
        for value in node.inputs:
            producer = value.producer if value is not None else None
            if producer in index:
                parent[root(index[node])] = root(index[producer])
    groups: dict[int, list[Node]] = {}
    for i, node in enumerate(members):
        groups.setdefault(root(i), []).append(node)
    return list(groups.values())


def fold_regions(graph: Graph, members: list[Node], evaluate: Evaluate, bytes_per_node: int,
                 allowance: int, stats: Counter) -> int:
    """Fold every region of ``members`` that pays for itself; returns the bytes the weights grew by."""
    spent = 0
    for region in regions(members):
        if len(region) < 2:
            continue  # a single node was already judged on its own by the node-by-node sweep
        values = _evaluate_region(region, evaluate)
        if values is None:
            stats["region_not_evaluable"] += 1
            continue
        inside = set(region)
        frontier = [v for node in region for v in node.outputs
                    if v.is_graph_output or any(user not in inside for user, _ in v.iter_uses())]
        dying = {id(v): v for node in region for v in node.inputs if v is not None and v.const is not None
                 and not v.is_graph_output and all(user in inside for user, _ in v.iter_uses())}
        added = sum(values[v].nbytes for v in frontier)
        cost = added - sum(v.const.nbytes for v in dying.values())  # type: ignore[union-attr]
        if any(values[v].nbytes > TENSOR_BYTES for v in frontier) or cost > bytes_per_node * len(region) \
                or spent + max(cost, 0) > allowance:
            stats["region_too_large"] += 1
            continue
        for value in frontier:
            tensor = Tensor.from_array(values[value], value.dtype if values[value].dtype == object else None)
            replace_all_uses_with(value, graph.add_const(tensor), outputs=True)
        graph.remove(region, safe=False)
        for value in dying.values():
            if not value.num_uses and value.graph is not None:
                value.graph.remove_const(value)
        spent += max(cost, 0)
        stats["folded"] += len(region)
        stats["folded_regions"] += 1
        stats["folded_region_nodes"] += len(region)
    return spent


def model_allowance(weight_bytes: int) -> int:
    """Bytes the regions of one run may add to a model holding ``weight_bytes`` of weights."""
    return MODEL_FLOOR + int(MODEL_SHARE * weight_bytes)


def _evaluate_region(region: list[Node], evaluate: Evaluate) -> dict[Value, np.ndarray] | None:
    """Every output of the region's nodes, evaluated in order; None when one cannot be (or is huge)."""
    given: dict[Value, np.ndarray] = {}
    held = 0
    for node in region:
        inputs = [None if v is None else given.get(v, v.const.numpy() if v.const is not None else None)
                  for v in node.inputs]
        elements = predicted_elements(node, inputs)
        if elements is not None and elements * 8 > EVAL_BYTES:
            return None
        arrays = evaluate(node, given)
        if arrays is None:
            return None
        held += sum(a.nbytes for a in arrays)
        if held > EVAL_BYTES:
            return None
        given.update(zip(node.outputs, arrays))
    return given
