"""eliminate-dead-channels: output channels of a Conv whose weights are all zero (what magnitude or
structured pruning leaves) hold a constant; drop them from the Conv, from the channel-wise ops after
it, and from the input channels of the Convs that read them, folding the constant into their bias
when it is not zero."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from graphopt import (
    NUMPY_FLOATS,
    Graph,
    Model,
    Node,
    PassResult,
    Tensor,
    Value,
    is_standard_domain,
    register_pass,
)
from graphopt.analyses.shapes import refresh_types

# What each channel-wise op does to a channel that holds one value v everywhere (float64, per channel).
UNARY: dict[str, Callable[[Node, np.ndarray], np.ndarray]] = {
    "Relu": lambda n, v: np.maximum(v, 0.0),
    "LeakyRelu": lambda n, v: np.where(v < 0, n.attr("alpha", 0.01) * v, v),
    "Sigmoid": lambda n, v: 1.0 / (1.0 + np.exp(-v)),
    "Tanh": lambda n, v: np.tanh(v),
    "HardSigmoid": lambda n, v: np.clip(n.attr("alpha", 0.2) * v + n.attr("beta", 0.5), 0.0, 1.0),
    "HardSwish": lambda n, v: v * np.clip(v / 6.0 + 0.5, 0.0, 1.0),
    "Elu": lambda n, v: np.where(v < 0, n.attr("alpha", 1.0) * np.expm1(v), v),
    "Identity": lambda n, v: v,
    "Neg": lambda n, v: -v,
    "Abs": lambda n, v: np.abs(v),
}
BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Max": np.maximum, "Min": np.minimum,
}


@dataclass
class _Site:
    """A Conv with dead output channels, the channel-wise region after it and the Convs it feeds."""

    producer: Node
    dead: np.ndarray  # output channel indices whose weights are all zero
    values: dict[Value, np.ndarray]  # region value -> the constant each dead channel holds
    region: list[Node]
    readers: list[Node]  # Convs reading a region value as their input
    needs_zero: set[Value]  # values read with zero padding: a dead channel there must be 0


def _weight(node: Node, index: int) -> np.ndarray | None:
    value = node.inputs[index] if index < len(node.inputs) else None
    if value is None or value.const is None or value.num_uses != 1 or value.is_graph_output \
            or value.const.dtype not in NUMPY_FLOATS:
        return None
    return value.const.numpy()


def _padded(node: Node) -> bool:
    auto_pad = node.attr("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    return auto_pad in ("SAME_UPPER", "SAME_LOWER") or any(node.attr("pads", []) or [])


def _conv_kind(node: Node, channels: int) -> str | None:
    """"full" for a one-group Conv reading ``channels``, "depthwise" for a one-per-channel one."""
    if node.op_type != "Conv" or not is_standard_domain(node.domain) or _weight(node, 1) is None:
        return None
    if len(node.inputs) > 2 and node.inputs[2] is not None and _weight(node, 2) is None:
        return None
    weight, group = node.inputs[1].const, node.attr("group", 1)  # type: ignore[union-attr]
    if group == 1 and weight.shape[1] == channels:
        return "full"
    if group == channels and weight.shape[0] == channels and weight.shape[1] == 1:
        return "depthwise"
    return None


def _per_channel(value: Value, rank: int, channels: int, dead: np.ndarray) -> np.ndarray | None:
    """A constant operand's value on each dead channel, when it is one value per channel (or one)."""
    if value.const is None or value.const.dtype not in NUMPY_FLOATS or len(value.const.shape) > rank:
        return None
    array = value.const.numpy().astype(np.float64)
    shape = (1,) * (rank - array.ndim) + array.shape
    if any(d != 1 for i, d in enumerate(shape) if i != 1) or shape[1] not in (1, channels):
        return None
    flat = array.reshape(-1)
    return np.full(dead.size, flat[0]) if flat.size == 1 else flat[dead]


def _step(node: Node, site: _Site, channels: int) -> np.ndarray | None:
    """The dead channels' constants after region node ``node``, or None when it is not channel-wise."""
    ins = [site.values.get(v) if v is not None else None for v in node.inputs]
    if node.op_type in UNARY and len(node.inputs) == 1 and ins[0] is not None:
        return UNARY[node.op_type](node, ins[0])
    if node.op_type == "Clip" and ins[0] is not None:
        bounds = _clip_bounds(node)
        return None if bounds is None else np.clip(ins[0], *bounds)
    if node.op_type in ("Div", *BINARY) and len(node.inputs) == 2:
        rank = node.outputs[0].rank
        if rank is None:
            return None
        operands = [v if v is not None else _per_channel(x, rank, channels, site.dead)  # type: ignore[arg-type]
                    for v, x in zip(ins, node.inputs)]
        if any(o is None for o in operands) or (node.op_type == "Div" and ins[1] is not None):
            return None  # a region value as the divisor could be 0
        if node.op_type == "Div":
            return None if np.any(operands[1] == 0) else operands[0] / operands[1]  # type: ignore[operator]
        return BINARY[node.op_type](*operands)
    if _conv_kind(node, channels) == "depthwise" and ins[0] is not None and len(node.inputs) >= 2:
        if _padded(node):
            site.needs_zero.add(node.inputs[0])  # type: ignore[arg-type]
        weight = node.inputs[1].const.numpy().astype(np.float64)  # type: ignore[union-attr]
        bias = _weight(node, 2) if len(node.inputs) > 2 and node.inputs[2] is not None else None
        out = ins[0] * weight[site.dead].reshape(site.dead.size, -1).sum(axis=1)
        return out + (0.0 if bias is None else bias.astype(np.float64)[site.dead])
    return None


def _clip_bounds(node: Node) -> tuple[float, float] | None:
    """Clip's (min, max): attributes before opset 11, optional scalar constant inputs after."""
    if len(node.inputs) == 1:
        return float(node.attr("min", -np.inf)), float(node.attr("max", np.inf))
    bounds = []
    for index, default in ((1, -np.inf), (2, np.inf)):
        value = node.inputs[index] if index < len(node.inputs) else None
        if value is None:
            bounds.append(default)
        elif value.const is not None and value.const.size == 1:
            bounds.append(float(value.const.numpy().reshape(-1)[0]))
        else:
            return None
    return bounds[0], bounds[1]


def _closed(site: _Site) -> bool:
    """Every reader of every region value is in the region or one of the reading Convs' input."""
    inside = set(site.region)
    return all(user in inside or (user in site.readers and index == 0)
               for value in site.values for user, index in value.iter_uses())


def _find(producer: Node) -> _Site | None:
    weight = _weight(producer, 1)
    if producer.op_type != "Conv" or producer.attr("group", 1) != 1 or weight is None:
        return None
    has_bias = len(producer.inputs) > 2 and producer.inputs[2] is not None
    bias = _weight(producer, 2) if has_bias else None
    if has_bias and bias is None:
        return None
    dead = np.flatnonzero(~weight.reshape(weight.shape[0], -1).any(axis=1))
    if dead.size == 0 or dead.size == weight.shape[0]:
        return None
    channels = weight.shape[0]
    start = np.zeros(dead.size) if bias is None else bias.astype(np.float64)[dead]
    site = _Site(producer, dead, {producer.outputs[0]: start}, [], [], set())
    graph = producer.graph
    pending = [producer.outputs[0]]
    while pending:
        value = pending.pop()
        if value.is_graph_output or value.rank is None or value.rank < 3:
            return None
        for user, index in value.iter_uses():
            if user in site.region or user in site.readers:
                continue
            if user.graph is not graph:
                return None
            if index == 0 and _conv_kind(user, channels) == "full":
                if _padded(user):
                    site.needs_zero.add(value)
                site.readers.append(user)
                continue
            if any(v is not None and v.const is None and v not in site.values for v in user.inputs):
                if all(v is None or v.const is not None or v in site.values or _ahead(v, site, graph)
                       for v in user.inputs):
                    continue  # another operand is still being reached: visit the node from it
                return None
            result = _step(user, site, channels)
            if result is None or len(user.outputs) != 1:
                return None
            site.region.append(user)
            site.values[user.outputs[0]] = result
            pending.append(user.outputs[0])
    return site if site.readers and _closed(site) else None


def _ahead(value: Value, site: _Site, graph: Graph | None) -> bool:
    """Whether ``value`` comes from the producer's output through channel-wise nodes not visited yet."""
    seen: set[Value] = set()
    stack = [value]
    while stack:
        v = stack.pop()
        if v in site.values:
            return True
        node = v.producer
        if v in seen or node is None or node.graph is not graph or len(seen) > 64:
            continue
        seen.add(v)
        stack += [i for i in node.inputs if i is not None and i.const is None]
    return False


def _removable(site: _Site) -> np.ndarray:
    """Dead channels that can go: those that are 0 wherever zero padding reads them (elsewhere a
    constant channel folds into the reading Conv's bias)."""
    keep = np.ones(site.dead.size, dtype=bool)
    for value in site.needs_zero:
        keep &= site.values[value] == 0
    return site.dead[keep]


def _shrink(graph: Graph, node: Node, index: int, array: np.ndarray) -> None:
    old = node.inputs[index]
    node.replace_input(index, graph.add_const(Tensor.from_array(np.ascontiguousarray(array))))
    if old is not None and not old.num_uses and not old.is_graph_output:
        graph.remove_const(old)


def _apply(site: _Site, graph: Graph, removed: np.ndarray) -> None:
    producer = site.producer
    channels = producer.inputs[1].const.shape[0]  # type: ignore[union-attr]
    alive = np.setdiff1d(np.arange(channels), removed)
    for node in [producer, *(n for n in site.region if n.op_type == "Conv")]:
        _shrink(graph, node, 1, node.inputs[1].const.numpy()[alive])  # type: ignore[union-attr]
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            _shrink(graph, node, 2, node.inputs[2].const.numpy()[alive])  # type: ignore[union-attr]
        if node is not producer:
            node.set_attr("group", int(alive.size))
    for node in site.region:
        if node.op_type == "Conv":
            continue
        for index, value in enumerate(node.inputs):
            if value is not None and value.const is not None and len(value.const.shape) >= 1:
                array = value.const.numpy()
                axis = array.ndim - (node.outputs[0].rank - 1)  # type: ignore[operator]
                if 0 <= axis < array.ndim and array.shape[axis] == channels:
                    _shrink(graph, node, index, np.take(array, alive, axis=axis))
    dead_position = {int(c): i for i, c in enumerate(site.dead)}
    for reader in site.readers:
        value = reader.inputs[0]
        weight = reader.inputs[1].const.numpy()  # type: ignore[union-attr]
        held = np.array([site.values[value][dead_position[int(c)]] for c in removed])  # type: ignore[index]
        shift = (weight[:, removed].reshape(weight.shape[0], removed.size, -1).sum(axis=2) * held).sum(axis=1)
        _shrink(graph, reader, 1, weight[:, alive])
        if np.any(shift != 0):
            dtype = weight.dtype
            if len(reader.inputs) > 2 and reader.inputs[2] is not None:
                bias = reader.inputs[2].const.numpy().astype(np.float64)  # type: ignore[union-attr]
                _shrink(graph, reader, 2, (bias + shift).astype(dtype))
            else:
                bias_value = graph.add_const(Tensor.from_array(shift.astype(dtype)))
                reader.set_inputs([*reader.inputs[:2], bias_value])
    for value in site.values:  # their channel count changed: new names, new shapes
        value.name = None
        if value.shape is not None and len(value.shape) > 1:
            value.shape = (value.shape[0], int(alive.size), *value.shape[2:])


@register_pass
@dataclass
class EliminateDeadChannels:
    """Drop Conv output channels whose weights are all zero, and the input channels reading them.

    Such a channel holds its bias everywhere; channel-wise ops after it (activations, Mul/Add/Div by
    per-channel constants, depthwise Convs) keep it constant, and the Convs that read it then add a
    constant per output channel, which goes into their bias. A channel read through zero padding must
    be 0 there, or the border would differ; such channels stay.
    """

    name: ClassVar[str] = "eliminate-dead-channels"

    def run(self, model: Model) -> PassResult:
        stats: Counter = Counter()
        candidates = [n for n in model.graph.all_nodes() if n.op_type == "Conv" and _has_dead(n)]
        if not candidates:
            return PassResult(False, {})
        refresh_types(model)
        for node in candidates:
            if node.graph is None:
                continue
            site = _find(node)
            if site is None:
                stats["skipped_not_channel_wise"] += 1
                continue
            removed = _removable(site)
            if removed.size == 0:
                stats["skipped_padding_reads_a_constant"] += 1
                continue
            _apply(site, node.graph, removed)
            stats["convs"] += 1
            stats["channels"] += int(removed.size)
        return PassResult(stats["channels"] > 0, {k: v for k, v in sorted(stats.items()) if v})


def _has_dead(node: Node) -> bool:
    weight = _weight(node, 1)
    if weight is None or weight.ndim < 3:
        return False
    return bool((~weight.reshape(weight.shape[0], -1).any(axis=1)).any())
