"""fuse-horizontal: ops with constant weights that read the same input become one op and a Split
(attention's Q/K/V projections: three MatMul + Add into one MatMul + Add + Split; parallel 1x1
Convs into one Conv), and what a Split hands on unchanged is pulled back through it: one elementwise
op applied alike to every piece runs once before it, and a Concat of every piece in order is the
Split's input again."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import (
    NUMPY_FLOATS,
    UNARY_ELEMENTWISE,
    Graph,
    Model,
    Node,
    PassResult,
    Tensor,
    Value,
    register_pass,
)
from graphopt import replace_all_uses_with as rauw


def _sole_user(value: Value) -> Node | None:
    users = value.consumers()
    return users[0] if len(users) == 1 and value.num_uses == 1 and not value.is_graph_output else None


def _private_const(value: Value | None) -> bool:
    """A constant only this one node reads (merging it costs no copy)."""
    return value is not None and value.const is not None and value.num_uses == 1 and not value.is_graph_output


def _attrs(node: Node) -> tuple:
    return tuple(sorted((k, repr(a.value)) for k, a in node.attrs.items()))


def _bias_add(out: Value, columns: int) -> tuple[Node, Value] | None:
    """The Add of a per-column constant bias that is the only reader of a MatMul output."""
    add = _sole_user(out)
    if add is None or add.op_type != "Add" or len(add.inputs) != 2:
        return None
    bias = add.inputs[1] if add.inputs[0] is out else add.inputs[0]
    if not _private_const(bias) or bias.const.shape not in ((columns,), (1, columns)):  # type: ignore[union-attr]
        return None
    return add, bias  # type: ignore[return-value]


def _matmul_groups(graph: Graph) -> list[list[Node]]:
    """MatMuls reading one input with private constant 2-D weights of one dtype and row count."""
    groups: dict[tuple, list[Node]] = {}
    for node in graph:
        if node.op_type != "MatMul" or len(node.inputs) != 2 or node.inputs[0] is None:
            continue
        x, w = node.inputs
        if not _private_const(w) or len(w.const.shape) != 2 or w.const.dtype not in NUMPY_FLOATS:  # type: ignore[union-attr]
            continue
        groups.setdefault((id(x), w.const.dtype, w.const.shape[0]), []).append(node)  # type: ignore[union-attr]
    return [g for g in groups.values() if len(g) > 1]


def _split(graph: Graph, source: Value, sizes: list[int], axis: int, after: Node, opset: int) -> Node:
    """Split ``source`` into ``sizes`` on ``axis``, right after ``after`` (sizes as an input from 13)."""
    if opset >= 13:
        split = Node("Split", [source, graph.add_const(Tensor.from_array(np.array(sizes, np.int64)))],
                     {"axis": axis}, num_outputs=len(sizes))
    else:
        split = Node("Split", [source], {"axis": axis, "split": sizes}, num_outputs=len(sizes))
    graph.insert_after(after, split)
    return split


def _place(graph: Graph, node: Node, source: Value) -> None:
    """Insert ``node`` right after ``source`` is defined in ``graph`` (first, when it comes from outside):
    before every node it replaces, so their readers still come after it."""
    producer = graph.local_producer(source)
    if producer is not None:
        graph.insert_after(producer, node)
    elif len(graph):
        graph.insert_before(next(iter(graph)), node)
    else:
        graph.append(node)


def _fuse_matmuls(graph: Graph, group: list[Node], stats: Counter, opset: int) -> bool:
    columns = [int(n.inputs[1].const.shape[1]) for n in group]  # type: ignore[union-attr]
    adds = [_bias_add(n.outputs[0], c) for n, c in zip(group, columns)]
    with_bias = all(a is not None for a in adds)
    if len(group) + (len(group) if with_bias else 0) <= 2 + (1 if with_bias else 0):
        return False  # two MatMuls without biases: one MatMul and a Split are no fewer nodes
    x, dtype = group[0].inputs[0], group[0].inputs[1].const.dtype  # type: ignore[union-attr]
    weight = np.concatenate([n.inputs[1].const.numpy() for n in group], axis=1)  # type: ignore[union-attr]
    merged = Node("MatMul", [x, graph.add_const(Tensor.from_array(weight, dtype))])
    _place(graph, merged, x)  # type: ignore[arg-type]
    source = merged.outputs[0]
    olds = [n.outputs[0] for n in group]
    if with_bias:
        bias = np.concatenate([a[1].const.numpy().reshape(-1) for a in adds])  # type: ignore[index,union-attr]
        add = Node("Add", [source, graph.add_const(Tensor.from_array(bias, dtype))])
        graph.insert_after(merged, add)
        source = add.outputs[0]
        olds = [a[0].outputs[0] for a in adds]  # type: ignore[index]
    split = _split(graph, source, columns, -1, source.producer, opset)  # type: ignore[arg-type]
    for old, new in zip(olds, split.outputs):
        new.dtype = old.dtype
        rauw(old, new, outputs=True)
    graph.remove_with_constants(group + [a[0] for a in adds if a is not None and with_bias])
    stats["fused_matmuls"] += len(group)
    return True


def _conv_groups(graph: Graph) -> list[list[Node]]:
    """Convs reading one input with private constant weights and identical attributes."""
    groups: dict[tuple, list[Node]] = {}
    for node in graph:
        if node.op_type != "Conv" or node.inputs[0] is None or len(node.inputs) < 2:
            continue
        w = node.inputs[1]
        b = node.inputs[2] if len(node.inputs) > 2 else None
        if not _private_const(w) or (b is not None and not _private_const(b)) \
                or int(node.attr("group", 1)) != 1:
            continue
        key = (id(node.inputs[0]), w.const.dtype, w.const.shape[1:], _attrs(node), b is None)  # type: ignore[union-attr]
        groups.setdefault(key, []).append(node)
    return [g for g in groups.values() if len(g) > 2]  # two Convs become a Conv and a Split: no fewer


def _fuse_convs(graph: Graph, group: list[Node], stats: Counter, opset: int) -> bool:
    first = group[0]
    dtype = first.inputs[1].const.dtype  # type: ignore[union-attr]
    weights = [n.inputs[1].const.numpy() for n in group]  # type: ignore[union-attr]
    inputs = [first.inputs[0], graph.add_const(Tensor.from_array(np.concatenate(weights), dtype))]
    if len(first.inputs) > 2 and first.inputs[2] is not None:
        biases = [n.inputs[2].const.numpy().reshape(-1) for n in group]  # type: ignore[union-attr]
        inputs.append(graph.add_const(Tensor.from_array(np.concatenate(biases), dtype)))
    merged = Node("Conv", inputs, {k: a.value for k, a in first.attrs.items()})
    _place(graph, merged, first.inputs[0])  # type: ignore[arg-type]
    split = _split(graph, merged.outputs[0], [int(w.shape[0]) for w in weights], 1, merged, opset)
    for node, new in zip(group, split.outputs):
        new.dtype = node.outputs[0].dtype
        rauw(node.outputs[0], new, outputs=True)
    graph.remove_with_constants(group)
    stats["fused_convs"] += len(group)
    return True


def _split_axis(split: Node) -> int:
    return int(split.attr("axis", 0))


def _hoist_unary(graph: Graph, split: Node, stats: Counter) -> bool:
    """The same elementwise op on every piece of a Split (each piece read by it alone) runs once before."""
    users = [_sole_user(out) for out in split.outputs]
    if not users or any(u is None for u in users):
        return False
    first = users[0]
    assert first is not None
    if first.op_type not in UNARY_ELEMENTWISE or any(
            u.op_type != first.op_type or u.domain != first.domain or _attrs(u) != _attrs(first)  # type: ignore[union-attr]
            or list(u.inputs[1:]) != list(first.inputs[1:]) or u.inputs[0] is not out  # type: ignore[union-attr]
            or len(u.outputs) != 1 for u, out in zip(users, split.outputs)):
        return False
    moved = Node(first.op_type, [split.inputs[0], *first.inputs[1:]],
                 {k: a.value for k, a in first.attrs.items()}, domain=first.domain)
    moved.outputs[0].dtype = first.outputs[0].dtype
    graph.insert_before(split, moved)
    split.replace_input(0, moved.outputs[0])
    for user, out in zip(users, split.outputs):
        out.dtype = user.outputs[0].dtype  # type: ignore[union-attr]
        rauw(user.outputs[0], out, outputs=True)  # type: ignore[union-attr]
    graph.remove([u for u in users if u is not None])
    stats[f"hoisted_{first.op_type}"] += 1
    return True


def _cancel_concat(graph: Graph, split: Node, stats: Counter) -> bool:
    """Concat(every piece of a Split, in order, on its axis) is the Split's input."""
    concat = _sole_user(split.outputs[0])
    if concat is None or concat.op_type != "Concat" or list(concat.inputs) != list(split.outputs):
        return False
    source = split.inputs[0]
    rank = source.rank if source is not None else None
    axes = [_split_axis(split), int(concat.attr("axis", 0))]
    if rank is None and axes[0] != axes[1]:
        return False
    if rank is not None and axes[0] % rank != axes[1] % rank:
        return False
    if any(out.num_uses != 1 or out.is_graph_output for out in split.outputs):
        return False
    rauw(concat.outputs[0], source, outputs=True)  # type: ignore[arg-type]
    graph.remove_with_constants([concat, split])
    stats["cancelled_split_concat"] += 1
    return True


@register_pass
@dataclass
class FuseHorizontal:
    """Merge ops with constant weights that read the same input into one op and a Split.

    Three or more MatMuls of one input with constant 2-D weights (with their per-column bias Adds
    when every one has one; two when they do) become one MatMul (and one Add) on the concatenated
    weights and a Split of the last axis; three or more Convs of one input with identical attributes
    (not grouped) become one Conv and a Split of the channels. Weights read by anything else are left
    alone (merging would copy them). Then the same elementwise op on every piece of a Split runs once
    before it, and a Concat of every piece in order on the Split's axis is the Split's input again.
    """

    name: ClassVar[str] = "fuse-horizontal"

    def run(self, model: Model) -> PassResult:
        stats: Counter = Counter()
        for graph in list(model.graph.all_graphs()):
            for group in _matmul_groups(graph):
                _fuse_matmuls(graph, group, stats, model.opset)
            for group in _conv_groups(graph):
                _fuse_convs(graph, group, stats, model.opset)
            changed = True
            while changed:
                changed = False
                for split in [n for n in graph if n.op_type == "Split"]:
                    if split.graph is graph and (_hoist_unary(graph, split, stats)
                                                 or _cancel_concat(graph, split, stats)):
                        changed = True
        return PassResult(bool(stats), dict(sorted(stats.items())))
