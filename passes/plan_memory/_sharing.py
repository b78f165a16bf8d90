"""Buffer sharing that operator semantics allow, for one execution order.

Views (Reshape, Squeeze, Unsqueeze, Flatten, Identity) give their output the bytes of their input.
Unary elementwise ops, and optionally binary ones, write their output over an input of the same byte
size when every tensor sharing that input's bytes is read for the last time at this step. A view of a
graph input or constant aliases memory outside the arena. Graph outputs always get their own bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from graphopt import Node, Value, is_standard_domain

from ._lifetimes import Lifetime

VIEW_OPS = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
UNARY_IN_PLACE = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "Tanh", "Clip", "Elu", "Selu", "Celu",
    "HardSwish", "Gelu", "Mish", "Softplus", "Softsign", "ThresholdedRelu", "Abs", "Neg", "Exp", "Log",
    "Sqrt", "Reciprocal", "Erf", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Not",
})
BINARY_IN_PLACE = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "And", "Or", "Xor"})


@dataclass
class Buffer:
    """Bytes shared by ``members`` (the first is the one that allocated them), live start..end."""

    size: int
    start: int
    end: int
    members: list[Value] = field(default_factory=list)


@dataclass
class Sharing:
    """The buffers of an order, which buffer holds each tensor, and how each tensor got there."""

    buffers: list[Buffer]
    buffer_of: dict[Value, Buffer]
    alias_of: dict[Value, Value]  # a view's output -> its input (planned or external)
    in_place: set[Value]  # outputs written over one of their inputs
    external: dict[Value, Value]  # views of graph inputs/constants -> the external value


def _standard(node: Node) -> bool:
    return is_standard_domain(node.domain)


def share_buffers(order: Sequence[Node], spans: Sequence[Lifetime], mode: str = "unary") -> Sharing:
    """Group tensors into buffers following the aliasing rules; ``mode`` is none, unary or binary."""
    span_of = {span.value: span for span in spans}
    step_of = {node: i for i, node in enumerate(order)}
    buffers: list[Buffer] = []
    buffer_of: dict[Value, Buffer] = {}
    alias_of: dict[Value, Value] = {}
    in_place: set[Value] = set()
    external: dict[Value, Value] = {}
    in_place_ops = frozenset() if mode == "none" else (
        UNARY_IN_PLACE | BINARY_IN_PLACE if mode == "binary" else UNARY_IN_PLACE)
    for span in spans:
        out = span.value
        node = out.producer
        assert node is not None
        step = step_of[node]
        host = _host(node, out, span, span_of, buffer_of, external, step, in_place_ops)
        if host is not None and (host not in span_of or host in external):
            external[out] = external.get(host, host)
            alias_of[out] = host
            continue
        if host is None:
            buffer = Buffer(span.size, span.start, span.end, [out])
            buffers.append(buffer)
        else:
            buffer = buffer_of[host]
            buffer.members.append(out)
            buffer.end = max(buffer.end, span.end)
            if node.op_type in VIEW_OPS:
                alias_of[out] = host
            else:
                in_place.add(out)
                alias_of[out] = host
        buffer_of[out] = buffer
    return Sharing(buffers, buffer_of, alias_of, in_place, external)


def _host(node: Node, out: Value, span: Lifetime, span_of: dict[Value, Lifetime],
          buffer_of: dict[Value, Buffer], external: dict[Value, Value], step: int,
          in_place_ops: frozenset[str]) -> Value | None:
    """The tensor whose bytes ``out`` may take (None: it needs its own)."""
    if out.is_graph_output or not _standard(node) or out is not node.outputs[0] or not node.inputs:
        return None
    source = node.inputs[0]
    if node.op_type in VIEW_OPS and source is not None:
        if source in external:
            return source
        if source in span_of:
            return source if span_of[source].size == span.size else None
        if source.is_graph_input or source.const is not None:
            return source if not source.is_graph_output else None
        return None
    if node.op_type not in in_place_ops or node.subgraphs():
        return None
    candidates = node.inputs[:1] if node.op_type in UNARY_IN_PLACE else node.inputs
    for source in candidates:
        if source is None or source not in buffer_of or span_of[source].size != span.size:
            continue
        if source.dtype != out.dtype:
            continue
        buffer = buffer_of[source]
        if buffer.end == step and all(not m.is_graph_output for m in buffer.members):
            return source
    return None
