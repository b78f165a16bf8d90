"""Normalizations that do not exist below their introduction, as primitive ops: LayerNormalization (17),
GroupNormalization (18, per-group affine; 21, per-channel affine) and RMSNormalization (23)."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from graphopt import Graph, Node, Tensor, Value
from graphopt.errors import OpsetConversionError

from ._adapters import UP
from ._build import const_like, finish, int64s, rank_of, reduce_mean


def _unread_extra_outputs(node: Node) -> None:
    if any(o.num_uses or o.is_graph_output for o in node.outputs[1:]):
        raise OpsetConversionError(f"{node.op_type} node {node.name!r}: its mean/inv-std outputs are read")


def _read(value: Value) -> bool:
    return bool(value.num_uses or value.is_graph_output)


def layer_norm(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """LayerNormalization (17) as ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div/Mul/Add; its optional Mean
    and InvStdDev outputs, when read, are the first ReduceMean and a Reciprocal of the Sqrt (float32
    input only: otherwise they are float32 statistics of a wider or narrower computation)."""
    extras = [o for o in node.outputs[1:] if _read(o)]
    if extras and (node.inputs[0] is None or node.inputs[0].dtype != TensorProto.FLOAT):
        _unread_extra_outputs(node)
    rank = rank_of(node)
    axes = list(range(int(node.attr("axis", -1)) % rank, rank))
    x, scale = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    mean = reduce_mean(x, axes, graph, opset)  # type: ignore[arg-type]
    centered = Node("Sub", [x, mean.outputs[0]])
    square = Node("Mul", [centered.outputs[0], centered.outputs[0]])
    var = reduce_mean(square.outputs[0], axes, graph, opset)
    shifted = Node("Add", [var.outputs[0], const_like(graph, float(node.attr("epsilon", 1e-5)), node)])
    std = Node("Sqrt", [shifted.outputs[0]])
    normed = Node("Div", [centered.outputs[0], std.outputs[0]])
    scaled = Node("Mul", [normed.outputs[0], scale])
    nodes = [mean, centered, square, var, shifted, std, normed, scaled]
    if bias is not None:
        nodes.append(Node("Add", [scaled.outputs[0], bias]))
    statistics: dict[int, Value] = {}
    if len(node.outputs) > 1 and _read(node.outputs[1]):
        statistics[1] = mean.outputs[0]
    if len(node.outputs) > 2 and _read(node.outputs[2]):
        inverse = Node("Reciprocal", [std.outputs[0]])
        nodes.insert(-1, inverse)
        statistics[2] = inverse.outputs[0]
    for index, value in statistics.items():
        value.dtype, value.shape = TensorProto.FLOAT, node.outputs[index].shape
    return finish(node, nodes, statistics)


def group_norm(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """GroupNormalization as InstanceNormalization over [N, groups, -1], then the affine.

    Version 18 scales and shifts per group, which is exactly InstanceNormalization's own scale and bias
    on the grouped tensor; version 21 does it per channel, after reshaping back.
    """
    x, scale, bias = node.inputs[0], node.inputs[1], node.inputs[2]
    groups = int(node.attr("num_groups"))
    per_group = source < 21
    epsilon = float(node.attr("epsilon", 1e-5))
    shape = Node("Shape", [x])
    grouped = Node("Reshape", [x, int64s(graph, [0, groups, -1])])
    if per_group:
        unit_scale, zero_bias = scale, bias
    else:
        unit_scale = const_like(graph, [1.0] * groups, node)
        zero_bias = const_like(graph, [0.0] * groups, node)
    normed = Node("InstanceNormalization", [grouped.outputs[0], unit_scale, zero_bias], {"epsilon": epsilon})
    back = Node("Reshape", [normed.outputs[0], shape.outputs[0]])
    nodes = [shape, grouped, normed, back]
    if not per_group:
        trailing = [1] * (rank_of(node) - 2)
        channel_scale = Node("Reshape", [scale, int64s(graph, [-1, *trailing])])
        channel_bias = Node("Reshape", [bias, int64s(graph, [-1, *trailing])])
        scaled = Node("Mul", [back.outputs[0], channel_scale.outputs[0]])
        shifted = Node("Add", [scaled.outputs[0], channel_bias.outputs[0]])
        nodes += [channel_scale, channel_bias, scaled, shifted]
    return finish(node, nodes)


def _group_norm_up_21(node: Node, graph: Graph) -> None:
    """18 -> 21: per-group scale/bias become per-channel by repeating each group's value over its
    channels (constants and a known channel count), else the node is decomposed."""
    x, groups = node.inputs[0], int(node.attr("num_groups"))
    channels = x.shape[1] if x is not None and x.shape is not None and len(x.shape) > 1 else None
    scale, bias = node.inputs[1], node.inputs[2]
    if isinstance(channels, int) and channels % groups == 0 and scale is not None and bias is not None \
            and scale.const is not None and bias.const is not None:
        repeat = channels // groups
        node.set_inputs([x, *(graph.add_const(Tensor.from_array(np.repeat(v.const.numpy(), repeat)))
                              for v in (scale, bias))])
        return
    group_norm(node, graph, 21, 18)


UP[("GroupNormalization", 21)] = _group_norm_up_21


def rms_norm(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """RMSNormalization (23): x / sqrt(mean(x^2 over axis..last) + epsilon) * scale."""
    rank = rank_of(node)
    axes = list(range(int(node.attr("axis", -1)) % rank, rank))
    x, scale = node.inputs[0], node.inputs[1]
    square = Node("Mul", [x, x])
    mean = reduce_mean(square.outputs[0], axes, graph, opset)
    shifted = Node("Add", [mean.outputs[0], const_like(graph, float(node.attr("epsilon", 1e-5)), node)])
    root = Node("Sqrt", [shifted.outputs[0]])
    normed = Node("Div", [x, root.outputs[0]])
    return finish(node, [square, mean, shifted, root, normed, Node("Mul", [normed.outputs[0], scale])])
