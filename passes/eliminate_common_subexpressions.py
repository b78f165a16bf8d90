"""eliminate-common-subexpressions: merge equal constants and nodes that compute the same thing."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, ClassVar, Hashable

from graphopt import (
    COMMUTATIVE_OPS,
    Attr,
    Graph,
    Model,
    Node,
    PassResult,
    Tensor,
    Value,
    is_standard_domain,
    register_pass,
    replace_all_uses_with,
)

# Ops whose two applications to the same inputs may differ (or that have effects): never merged.
NONDETERMINISTIC = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "Dropout",  # Dropout in training mode draws a fresh mask
})
COMMUTATIVE = COMMUTATIVE_OPS
_GRAPH_ATTRS = (5, 10)  # onnx.AttributeProto.GRAPH / GRAPHS


@register_pass
@dataclass
class EliminateCommonSubexpressions:
    """Make equal things one thing.

    Constants of one graph with the same dtype, shape and bytes become one constant (up to
    ``max_const_bytes`` each, so huge weights are not hashed); then a node whose op, domain,
    attributes and inputs equal those of an earlier node in the same graph is dropped and its readers
    read the earlier node's outputs (commutative ops match in any input order). Non-deterministic
    ops, ops of custom domains and ops holding subgraphs are never merged.
    """

    name: ClassVar[str] = "eliminate-common-subexpressions"
    max_const_bytes: int = 64 * 2**20

    def run(self, model: Model) -> PassResult:
        stats: Counter = Counter()
        for graph in list(model.graph.all_graphs()):
            stats["merged_constants"] += self._merge_constants(graph)
            stats["merged_nodes"] += _merge_nodes(graph)
        changed = bool(stats["merged_constants"] or stats["merged_nodes"])
        return PassResult(changed, {k: v for k, v in stats.items() if v})

    def _merge_constants(self, graph: Graph) -> int:
        groups: dict[tuple, list[Value]] = defaultdict(list)
        for value in graph.consts:
            tensor = value.const
            assert tensor is not None
            if not value.is_graph_output and tensor.nbytes <= self.max_const_bytes:
                groups[(tensor.dtype, tensor.shape)].append(value)
        merged = 0
        for candidates in _split_by_sample(groups):
            first: dict[bytes, Value] = {}
            for value in candidates:
                digest = _digest(value.const)  # type: ignore[arg-type]
                keep = first.setdefault(digest, value)
                if keep is not value:
                    replace_all_uses_with(value, keep, outputs=False)
                    graph.remove_const(value)
                    merged += 1
        return merged


def _split_by_sample(groups: dict[tuple, list[Value]]) -> list[list[Value]]:
    """Candidate sets of possibly equal constants: same dtype and shape, then the same last stored
    bytes, so that large distinct weights (BERT's many 768x768 matrices) are never decoded or hashed."""
    result = []
    for candidates in groups.values():
        if len(candidates) < 2:
            continue
        by_sample: dict[bytes, list[Value]] = {}
        for value in candidates:
            by_sample.setdefault(_sample(value.const), []).append(value)  # type: ignore[arg-type]
        result.extend(group for group in by_sample.values() if len(group) > 1)
    return result


def _sample(tensor: Tensor) -> bytes:
    if tensor.dtype == 8 or tensor.nbytes <= 512:
        return b""  # small or string tensors: hash them whole
    return tensor.tail_sample(256)


def _digest(tensor: Tensor) -> bytes:
    if tensor.dtype == 8:  # strings: hash the decoded values
        return hashlib.sha256(repr(tensor.numpy().tolist()).encode()).digest()
    return hashlib.sha256(bytes(tensor.raw_bytes())).digest()


def _merge_nodes(graph: Graph) -> int:
    seen: dict[Hashable, Node] = {}
    merged = 0
    for node in graph:
        key = _node_key(node)
        if key is None:
            continue
        earlier = seen.setdefault(key, node)
        if earlier is node:
            continue
        if any(o.is_graph_output for o in node.outputs) and any(o.is_graph_output for o in earlier.outputs):
            continue  # both name interface outputs: merging would need an Identity
        for old, new in zip(node.outputs, earlier.outputs):
            replace_all_uses_with(old, new, outputs=True)
        graph.remove(node)
        merged += 1
    return merged


def _node_key(node: Node) -> Hashable | None:
    if not is_standard_domain(node.domain) or node.op_type in NONDETERMINISTIC or not node.outputs:
        return None
    if any(a.type in _GRAPH_ATTRS for a in node.attrs.values()):
        return None
    inputs: tuple = tuple(id(v) if v is not None else None for v in node.inputs)
    if node.op_type in COMMUTATIVE:
        inputs = tuple(sorted(inputs, key=lambda i: -1 if i is None else i))
    attrs = tuple(sorted((name, _attr_key(a)) for name, a in node.attrs.items()))
    return (node.op_type, node.overload, len(node.outputs), inputs, attrs)


def _attr_key(attr: Attr) -> Any:
    value = attr.value
    if isinstance(value, Tensor):
        return (attr.type, value.dtype, value.shape, _digest(value))
    if isinstance(value, (list, tuple)):
        return (attr.type, tuple(_plain(v) for v in value))
    return (attr.type, _plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Tensor):
        return (value.dtype, value.shape, _digest(value))
    if isinstance(value, float):
        return repr(value)  # NaN == NaN for the purpose of equal attributes
    if isinstance(value, (int, str, bytes, bool)) or value is None:
        return value
    return repr(value)
