"""eliminate-dead-code: unreachable nodes, unused constants, and provably no-op nodes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from graphopt import (
    ML_DOMAIN,
    STANDARD_DOMAINS,
    Graph,
    Model,
    Node,
    PassResult,
    register_pass,
    replace_all_uses_with,
)
from graphopt.analyses.shapes import refresh_types

from ._default_inputs import drop_default_inputs
from ._noop_rules import noop_source

PURE_DOMAINS = (*STANDARD_DOMAINS, ML_DOMAIN)
TYPED_RULES = frozenset({"Cast", "CastLike", "Reshape", "Expand", "Slice", "Transpose"})
NEUTRAL_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow"})  # typed rules too, but only with a constant


@register_pass
@dataclass
class EliminateDeadCode:
    """Remove what cannot affect the outputs, in every (sub)graph.

    No-op nodes (Identity, Dropout at inference, Cast to the same type, identity Transpose/Reshape/
    Pad/Expand/Slice, single-input Concat/Sum/..., neutral elements x+0, x-0, x*1, x/1, x**1 whose
    constant cannot broadcast x larger) are bypassed. Optional inputs that equal their default (a zero
    initial state of LSTM/GRU/RNN, a zero Pad value, an infinite Clip bound) are omitted. When a
    no-op's output is a graph
    output that its input cannot take over (a graph input, another output, an outer-scope value),
    it becomes an Identity instead, so the interface keeps its names. Nodes of custom domains are
    never removed: graphopt cannot know they are free of side effects.
    """

    name: ClassVar[str] = "eliminate-dead-code"
    noops: bool = True

    def run(self, model: Model) -> PassResult:
        stats: Counter = Counter()
        if self.noops and _needs_types(model):
            refresh_types(model)
        for graph in list(model.graph.all_graphs()):
            if self.noops:
                _bypass_noops(graph, model.opset, stats)
                drop_default_inputs(graph, model.opset, stats)
        for graph in reversed(list(model.graph.all_graphs())):  # bodies first: their dead reads of
            _remove_dead(graph, stats)                            # outer values go before the outer pass
        return PassResult(sum(stats.values()) > 0, dict(sorted(stats.items())))


def _needs_types(model: Model) -> bool:
    """Whether a no-op candidate lacks the known input type its rule needs (then infer once)."""
    for node in model.graph.all_nodes():
        if node.op_type in TYPED_RULES and node.inputs and node.inputs[0] is not None:
            src = node.inputs[0]
            if src.dtype is None or src.shape is None:
                return True
        if node.op_type in NEUTRAL_OPS and any(v is not None and v.const is not None for v in node.inputs):
            if any(v is not None and v.const is None and (v.dtype is None or v.shape is None)
                   for v in node.inputs):
                return True
    return False


def _bypass_noops(graph: Graph, opset: int, stats: Counter) -> None:
    for node in graph:
        src_index = noop_source(node, opset)
        if src_index is None:
            continue
        src, out = node.inputs[src_index], node.outputs[0]
        assert src is not None
        if out.is_graph_output and not _can_take_over(src, graph):
            if node.op_type != "Identity":
                _become_identity(node, src_index)
                stats[f"noop_{node.op_type}_to_identity"] += 1
            continue
        op = node.op_type
        replace_all_uses_with(out, src, outputs=True)
        graph.remove(node, safe=False)
        stats[f"noop_{op}"] += 1


def _can_take_over(src, graph: Graph) -> bool:
    """Whether ``src`` can become a graph output of ``graph`` in place of another value."""
    return src.producer is not None and src.graph is graph and not src.is_graph_output


def _become_identity(node: Node, src_index: int) -> None:
    """Turn a no-op whose output must stay named into an Identity of its pass-through input."""
    src = node.inputs[src_index]
    replacement = Node("Identity", [src])
    graph = node.graph
    assert graph is not None
    graph.insert_before(node, replacement)
    replace_all_uses_with(node.outputs[0], replacement.outputs[0], outputs=True)
    graph.remove(node, safe=False)


def _remove_dead(graph: Graph, stats: Counter) -> None:
    for node in graph.reversed():
        if node.domain not in PURE_DOMAINS:
            continue
        if any(out.num_uses or out.is_graph_output for out in node.outputs):
            continue
        graph.remove(node)
        stats["dead_nodes"] += 1
    for value in graph.consts:
        if not value.num_uses and not value.is_graph_output:
            graph.remove_const(value)
            stats["unused_constants"] += 1
    for value in list(graph.sparse_consts):
        if not value.num_uses and not value.is_graph_output:
            del graph.sparse_consts[value]
            stats["unused_constants"] += 1
