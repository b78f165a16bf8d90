"""Opset changes that need new nodes: Softmax-family axis semantics at 13, and decompositions of ops that
do not exist below their introduction (activations here, normalizations in ``opset_norms``)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from graphopt import Graph, Node, Tensor, replace_node
from graphopt.errors import OpsetConversionError

from ._adapters import text_attr
from ._build import const_like, finish, rank_of
from ._norms import group_norm, layer_norm, rms_norm

Decomposition = Callable[[Node, Graph, int, int], list[Node]]
"""(node, graph, target opset, source opset) -> the nodes that replaced it."""
SOFTMAX_FAMILY = ("Softmax", "LogSoftmax", "Hardmax")


def softmax_down(node: Node, graph: Graph) -> None:
    """13 -> 12: new Softmax works on one axis, old on everything from ``axis`` on (flattened)."""
    if int(node.attr("axis", -1)) == -1:
        node.set_attr("axis", -1)  # the last axis alone: both definitions agree, whatever the rank
        return
    rank = rank_of(node)
    axis = int(node.attr("axis", -1)) % rank
    if axis == rank - 1:
        node.set_attr("axis", rank - 1)
        return
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    first = Node("Transpose", [node.inputs[0]], {"perm": perm})
    inner = Node(node.op_type, [first.outputs[0]], {"axis": rank - 1})
    back = Node("Transpose", [inner.outputs[0]], {"perm": perm})
    back.outputs[0].dtype, back.outputs[0].shape = node.outputs[0].dtype, node.outputs[0].shape
    replace_node(node, [first, inner, back], [back.outputs[0]])


def softmax_up(node: Node, graph: Graph) -> None:
    """12 -> 13: old Softmax flattens from ``axis`` (default 1) to 2-D; the new one is per-axis."""
    src = node.inputs[0]
    axis = int(node.attr("axis", 1))
    rank = src.rank if src is not None else None
    if rank is None and axis < 0:
        rank = rank_of(node)  # raises: a negative axis needs the rank
    if rank is not None:
        axis %= max(rank, 1)
        if axis == rank - 1:
            node.set_attr("axis", rank - 1)
            return
    shape = Node("Shape", [node.inputs[0]])
    flat = Node("Flatten", [node.inputs[0]], {"axis": axis})
    inner = Node(node.op_type, [flat.outputs[0]], {"axis": 1})
    back = Node("Reshape", [inner.outputs[0], shape.outputs[0]])
    back.outputs[0].dtype, back.outputs[0].shape = node.outputs[0].dtype, node.outputs[0].shape
    replace_node(node, [shape, flat, inner, back], [back.outputs[0]])


def gelu(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """Gelu (20): 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation."""
    x = node.inputs[0]
    approximate = text_attr(node, "approximate", "none")
    if approximate == "tanh":
        cube = Node("Mul", [x, x])
        cube2 = Node("Mul", [cube.outputs[0], x])
        inner = Node("Mul", [cube2.outputs[0], const_like(graph, 0.044715, node)])
        summed = Node("Add", [x, inner.outputs[0]])
        scaled = Node("Mul", [summed.outputs[0], const_like(graph, math.sqrt(2 / math.pi), node)])
        core = Node("Tanh", [scaled.outputs[0]])
        head = [cube, cube2, inner, summed, scaled, core]
    else:
        divided = Node("Div", [x, const_like(graph, math.sqrt(2.0), node)])
        core = Node("Erf", [divided.outputs[0]])
        head = [divided, core]
    one = Node("Add", [core.outputs[0], const_like(graph, 1.0, node)])
    times_x = Node("Mul", [x, one.outputs[0]])
    half = Node("Mul", [times_x.outputs[0], const_like(graph, 0.5, node)])
    return finish(node, [*head, one, times_x, half])


def hard_swish(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """HardSwish (14): x * HardSigmoid(x, alpha=1/6, beta=0.5)."""
    sigmoid = Node("HardSigmoid", [node.inputs[0]], {"alpha": 1 / 6, "beta": 0.5})
    return finish(node, [sigmoid, Node("Mul", [node.inputs[0], sigmoid.outputs[0]])])


def mish(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """Mish (18): x * tanh(softplus(x))."""
    soft = Node("Softplus", [node.inputs[0]])
    tanh = Node("Tanh", [soft.outputs[0]])
    return finish(node, [soft, tanh, Node("Mul", [node.inputs[0], tanh.outputs[0]])])


def _or_equal(strict: str) -> Decomposition:
    def decompose(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
        """GreaterOrEqual/LessOrEqual (12) as Or(Greater/Less, Equal): False for NaN, as the spec says."""
        a, b = node.inputs[0], node.inputs[1]
        first, equal = Node(strict, [a, b]), Node("Equal", [a, b])
        return finish(node, [first, equal, Node("Or", [first.outputs[0], equal.outputs[0]])])
    return decompose


def celu(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """Celu (12) = alpha * Elu(x / alpha); with alpha 1 it is Elu itself."""
    alpha = float(node.attr("alpha", 1.0))
    if alpha == 1.0:
        return finish(node, [Node("Elu", [node.inputs[0]], {"alpha": 1.0})])
    shrunk = Node("Div", [node.inputs[0], const_like(graph, alpha, node)])
    elu = Node("Elu", [shrunk.outputs[0]], {"alpha": 1.0})
    return finish(node, [shrunk, elu, Node("Mul", [elu.outputs[0], const_like(graph, alpha, node)])])


def shrink(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """Shrink (9) with bias == lambd (soft shrink) = x - Clip(x, -lambd, lambd); other biases are refused
    (their exact forms need Where, which is new in 9 too)."""
    lambd, bias = float(node.attr("lambd", 0.5)), float(node.attr("bias", 0.0))
    if lambd != bias or lambd < 0:
        raise OpsetConversionError(f"Shrink node {node.name!r}: only bias == lambd >= 0 (soft shrink) has an "
                                   f"exact form before opset 9, this node has lambd={lambd}, bias={bias}")
    clip = Node("Clip", [node.inputs[0]], {"min": -lambd, "max": lambd})
    return finish(node, [clip, Node("Sub", [node.inputs[0], clip.outputs[0]])])


def thresholded_relu(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """ThresholdedRelu (10) = Where(x > alpha, x, 0)."""
    x = node.inputs[0]
    above = Node("Greater", [x, const_like(graph, float(node.attr("alpha", 1.0)), node)])
    return finish(node, [above, Node("Where", [above.outputs[0], x, const_like(graph, 0.0, node)])])


def swish(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """Swish (24) = x * Sigmoid(alpha * x)."""
    x = node.inputs[0]
    alpha = float(node.attr("alpha", 1.0))
    nodes = [] if alpha == 1.0 else [Node("Mul", [x, const_like(graph, alpha, node)])]
    gate = Node("Sigmoid", [nodes[-1].outputs[0] if nodes else x])
    return finish(node, [*nodes, gate, Node("Mul", [x, gate.outputs[0]])])


def cast_like(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """CastLike (15) = Cast to the second input's dtype, which must be known."""
    dtype = node.inputs[1].dtype if node.inputs[1] is not None else None
    if dtype is None:
        raise OpsetConversionError(f"CastLike node {node.name!r}: the dtype of target_type is unknown")
    return finish(node, [Node("Cast", [node.inputs[0]], {"to": int(dtype)})])


def trilu(node: Node, graph: Graph, opset: int, source: int) -> list[Node]:
    """Trilu (14) = Where(constant triangle mask, x, 0); the last two dims and k must be constants."""
    x = node.inputs[0]
    dims = list(x.shape or [])[-2:] if x is not None and x.shape is not None else []
    k_value = node.inputs[1] if len(node.inputs) > 1 else None
    if len(dims) != 2 or not all(isinstance(d, int) for d in dims) or \
            (k_value is not None and k_value.const is None):
        raise OpsetConversionError(f"Trilu node {node.name!r}: needs static last two dims and a constant k "
                                   "before opset 14")
    k = int(np.asarray(k_value.const.numpy()).reshape(-1)[0]) if k_value is not None else 0  # type: ignore[union-attr]
    ones = np.ones(dims, dtype=bool)
    mask = np.triu(ones, k) if int(node.attr("upper", 1)) else np.tril(ones, k)
    keep = graph.add_const(Tensor.from_array(mask))
    return finish(node, [Node("Where", [keep, x, const_like(graph, 0, node)])])


DECOMPOSITIONS: dict[str, Decomposition] = {
    "LayerNormalization": layer_norm, "Gelu": gelu, "HardSwish": hard_swish, "Mish": mish,
    "GreaterOrEqual": _or_equal("Greater"), "LessOrEqual": _or_equal("Less"),
    "GroupNormalization": group_norm, "RMSNormalization": rms_norm, "Celu": celu, "Shrink": shrink,
    "ThresholdedRelu": thresholded_relu, "Swish": swish, "CastLike": cast_like, "Trilu": trilu,
}
