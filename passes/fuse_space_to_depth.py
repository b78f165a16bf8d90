"""fuse-space-to-depth: a YOLOv5-style "Focus" stem, b*b strided Slices of one NCHW tensor re-joined
on the channels by a Concat, becomes one SpaceToDepth; the channel order the Concat chose is folded
into the Convs that read it (a Gather on the channels only when some other op reads it)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import (
    NUMPY_FLOATS,
    Graph,
    Model,
    Node,
    PassResult,
    Tensor,
    Value,
    const_ints,
    is_standard_domain,
    register_pass,
    replace_all_uses_with,
)
from graphopt.analyses.shapes import refresh_types

TO_THE_END = 2**31 - 1  # an end at or past this reads to the end of any axis


def _slice_steps(node: Node, opset: int) -> dict[int, tuple[int, int, int]] | None:
    """{axis: (start, end, step)} of a Slice with constant parameters on a rank-4 input."""
    if node.op_type != "Slice" or not is_standard_domain(node.domain) or opset < 10 or len(node.inputs) < 3:
        return None
    params = [const_ints(node, i) for i in range(1, 5)]
    starts, ends, axes, steps = params
    given = [i < len(node.inputs) and node.inputs[i] is not None for i in range(1, 5)]
    if starts is None or ends is None or (given[2] and axes is None) or (given[3] and steps is None):
        return None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    return {a % 4: (s, e, k) for s, e, a, k in zip(starts, ends, axes, steps)}


def _block_offset(piece: Value, graph: Graph | None,
                  opset: int) -> tuple[Value, int, int, int, list[Node]] | None:
    """(source, block, row offset, column offset, the Slices) when ``piece`` is
    ``source[:, :, i::b, j::b]`` made by one or two Slices (identity entries on other axes allowed)."""
    axes: dict[int, tuple[int, int, int]] = {}
    slices: list[Node] = []
    value = piece
    while set(axes) != {2, 3}:
        node = value.producer
        found = None if node is None or node.graph is not graph else _slice_steps(node, opset)
        if found is None:
            return None
        found = {a: p for a, p in found.items() if p[0] != 0 or p[1] < TO_THE_END or p[2] != 1}
        if not found or any(a in axes or a not in (2, 3) for a in found):
            return None
        axes.update(found)
        slices.append(node)  # type: ignore[arg-type]
        value = node.inputs[0]  # type: ignore[union-attr,assignment]
        if value is None:
            return None
    (i, h_end, b), (j, w_end, b2) = axes[2], axes[3]
    if value.rank != 4 or b != b2 or b < 2 or not (0 <= i < b and 0 <= j < b):
        return None
    if min(h_end, w_end) < TO_THE_END:
        return None
    return value, b, i, j, slices


def _focus(concat: Node, opset: int) -> tuple[Value, int, list[int], list[Node]] | None:
    """(source, block, channel order of the pieces as block indices i*b+j, the Slices) of a Focus
    Concat whose Slices feed nothing but one another and the Concat."""
    if concat.op_type != "Concat" or not is_standard_domain(concat.domain):
        return None
    if concat.attr("axis") not in (1, -3):
        return None
    sources: set[Value] = set()
    blocks: set[int] = set()
    order: list[int] = []
    slices: dict[Node, None] = {}
    for piece in concat.inputs:
        found = None if piece is None else _block_offset(piece, concat.graph, opset)
        if found is None:
            return None
        sources.add(found[0])
        blocks.add(found[1])
        order.append(found[2] * found[1] + found[3])
        slices.update(dict.fromkeys(found[4]))
    if len(sources) != 1 or len(blocks) != 1:
        return None
    block = blocks.pop()
    if sorted(order) != list(range(block * block)):
        return None
    for node in slices:
        out = node.outputs[0]
        outside = any(user is not concat and user not in slices for user, _ in out.iter_uses())
        if out.is_graph_output or outside:
            return None
    return sources.pop(), block, order, list(slices)


def _readers_are_convs(value: Value, channels: int) -> bool:
    """Every reader is a Conv (one group) reading ``value`` as its input with a constant weight that
    only it reads: the channel order can then go into the weights."""
    if value.is_graph_output or not value.num_uses:
        return False
    for node, index in value.iter_uses():
        weight = node.inputs[1] if len(node.inputs) > 1 else None
        if node.op_type != "Conv" or index != 0 or node.attr("group", 1) != 1 or weight is None \
                or weight.const is None or weight.num_uses != 1 or weight.is_graph_output \
                or weight.const.dtype not in NUMPY_FLOATS or weight.const.shape[1] != channels:
            return False
    return True


def _fuse(concat: Node, graph: Graph, opset: int, stats: Counter) -> None:
    found = _focus(concat, opset)
    if found is None:
        return
    source, block, order, slices = found
    channels = source.shape[1] if source.shape is not None else None
    if not isinstance(channels, int):
        stats["skipped_unknown_channels"] += 1
        return
    # Concat channel p*C + c holds SpaceToDepth channel order[p]*C + c.
    gather = np.array([order[p] * channels + c for p in range(len(order)) for c in range(channels)], np.int64)
    out = concat.outputs[0]
    s2d = Node("SpaceToDepth", [source], {"blocksize": block})
    s2d.outputs[0].dtype = out.dtype
    graph.insert_before(concat, s2d)
    result = s2d.outputs[0]
    if np.array_equal(gather, np.arange(gather.size)):
        stats["in_order"] += 1
    elif _readers_are_convs(out, gather.size):
        for node, _ in list(out.iter_uses()):
            weight = node.inputs[1]
            permuted = np.zeros_like(weight.const.numpy())  # type: ignore[union-attr]
            permuted[:, gather] = weight.const.numpy()  # type: ignore[union-attr]
            node.replace_input(1, graph.add_const(Tensor.from_array(permuted)))
            graph.remove_const(weight)  # type: ignore[arg-type]
        stats["order_into_conv_weights"] += 1
    else:
        permute = Node("Gather", [result, graph.add_const(Tensor.from_array(gather))], {"axis": 1})
        permute.outputs[0].dtype = out.dtype
        graph.insert_before(concat, permute)
        result = permute.outputs[0]
        stats["order_by_gather"] += 1
    replace_all_uses_with(out, result, outputs=True)
    graph.remove_with_constants([concat, *slices])
    stats["fused"] += 1


@register_pass
@dataclass
class FuseSpaceToDepth:
    """Turn b*b strided Slices of one NCHW tensor re-joined by a channel Concat into SpaceToDepth.

    Piece ``x[:, :, i::b, j::b]`` is SpaceToDepth's channel block ``i*b + j``; every block must appear
    once (a run where the pieces differ in size fails at the Concat, so H and W divide by b in every
    run that succeeds). The pieces' order goes into the weights of the Convs reading the result, or
    into one Gather on the channels.
    """

    name: ClassVar[str] = "fuse-space-to-depth"

    def run(self, model: Model) -> PassResult:
        stats: Counter = Counter()
        if not any(n.op_type == "Concat" for n in model.graph.all_nodes()):
            return PassResult(False, {})
        refresh_types(model)
        for graph in list(model.graph.all_graphs()):
            for node in graph:
                if node.op_type == "Concat" and node.graph is graph:
                    _fuse(node, graph, model.opset, stats)
        return PassResult(stats["fused"] > 0, {k: v for k, v in sorted(stats.items()) if v})
