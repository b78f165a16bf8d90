"""Opset changes that need new nodes: Softmax-family axis semantics at 13, and decompositions of ops
that do not exist below their introduction (LayerNormalization 17, Gelu 20, HardSwish 14, Mish 18)."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from graphopt import Graph, Node, Tensor, Value, replace_node

from .opset_adapters import OpsetConversionError

Decomposition = Callable[[Node, Graph, int], None]
SOFTMAX_FAMILY = ("Softmax", "LogSoftmax", "Hardmax")


def _const(graph: Graph, value: object, dtype: int | None) -> Value:
    np_type = {1: np.float32, 10: np.float16, 11: np.float64}.get(dtype or 1, np.float32)
    return graph.add_const(Tensor.from_array(np.array(value, dtype=np_type)))


def _rank(node: Node) -> int:
    src = node.inputs[0]
    if src is None or src.rank is None:
        raise OpsetConversionError(f"{node.op_type} node {node.name!r}: its input rank is unknown, and the "
                                   "conversion depends on it")
    return src.rank


def softmax_down(node: Node, graph: Graph) -> None:
    """13 -> 12: new Softmax works on one axis, old on everything from ``axis`` on (flattened)."""
    rank = _rank(node)
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
        rank = _rank(node)  # raises: a negative axis needs the rank
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


def _reduce_mean(x: Value, axes: list[int], graph: Graph, opset: int) -> Node:
    if opset >= 18:
        return Node("ReduceMean", [x, graph.add_const(Tensor.from_array(np.array(axes, np.int64)))])
    return Node("ReduceMean", [x], {"axes": axes})


def layer_norm(node: Node, graph: Graph, opset: int) -> None:
    """LayerNormalization (17) as ReduceMean/Sub/Mul/ReduceMean/Add/Sqrt/Div/Mul/Add."""
    if any(o.num_uses or o.is_graph_output for o in node.outputs[1:]):
        raise OpsetConversionError(f"LayerNormalization node {node.name!r}: its mean/inv-std outputs "
                                   "are read")
    rank = _rank(node)
    axes = list(range(int(node.attr("axis", -1)) % rank, rank))
    x, scale = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    dtype = x.dtype  # type: ignore[union-attr]
    mean = _reduce_mean(x, axes, graph, opset)  # type: ignore[arg-type]
    centered = Node("Sub", [x, mean.outputs[0]])
    square = Node("Mul", [centered.outputs[0], centered.outputs[0]])
    var = _reduce_mean(square.outputs[0], axes, graph, opset)
    shifted = Node("Add", [var.outputs[0], _const(graph, float(node.attr("epsilon", 1e-5)), dtype)])
    std = Node("Sqrt", [shifted.outputs[0]])
    normed = Node("Div", [centered.outputs[0], std.outputs[0]])
    scaled = Node("Mul", [normed.outputs[0], scale])
    nodes = [mean, centered, square, var, shifted, std, normed, scaled]
    if bias is not None:
        nodes.append(Node("Add", [scaled.outputs[0], bias]))
    _finish(node, nodes)


def gelu(node: Node, graph: Graph, opset: int) -> None:
    """Gelu (20): 0.5 x (1 + erf(x / sqrt 2)), or the tanh approximation."""
    x = node.inputs[0]
    dtype = x.dtype  # type: ignore[union-attr]
    approximate = str(node.attr("approximate", "none")).strip("b'")
    if approximate == "tanh":
        cube = Node("Mul", [x, x])
        cube2 = Node("Mul", [cube.outputs[0], x])
        inner = Node("Mul", [cube2.outputs[0], _const(graph, 0.044715, dtype)])
        summed = Node("Add", [x, inner.outputs[0]])
        scaled = Node("Mul", [summed.outputs[0], _const(graph, math.sqrt(2 / math.pi), dtype)])
        core = Node("Tanh", [scaled.outputs[0]])
        head = [cube, cube2, inner, summed, scaled, core]
    else:
        divided = Node("Div", [x, _const(graph, math.sqrt(2.0), dtype)])
        core = Node("Erf", [divided.outputs[0]])
        head = [divided, core]
    one = Node("Add", [core.outputs[0], _const(graph, 1.0, dtype)])
    times_x = Node("Mul", [x, one.outputs[0]])
    half = Node("Mul", [times_x.outputs[0], _const(graph, 0.5, dtype)])
    _finish(node, [*head, one, times_x, half])


def hard_swish(node: Node, graph: Graph, opset: int) -> None:
    """HardSwish (14): x * HardSigmoid(x, alpha=1/6, beta=0.5)."""
    sigmoid = Node("HardSigmoid", [node.inputs[0]], {"alpha": 1 / 6, "beta": 0.5})
    _finish(node, [sigmoid, Node("Mul", [node.inputs[0], sigmoid.outputs[0]])])


def mish(node: Node, graph: Graph, opset: int) -> None:
    """Mish (18): x * tanh(softplus(x))."""
    soft = Node("Softplus", [node.inputs[0]])
    tanh = Node("Tanh", [soft.outputs[0]])
    _finish(node, [soft, tanh, Node("Mul", [node.inputs[0], tanh.outputs[0]])])


def _finish(node: Node, nodes: list[Node]) -> None:
    last = nodes[-1].outputs[0]
    last.dtype, last.shape = node.outputs[0].dtype, node.outputs[0].shape
    graph = node.graph
    assert graph is not None
    for extra in node.outputs[1:]:
        if extra.num_uses or extra.is_graph_output:
            raise OpsetConversionError(f"{node.op_type} node {node.name!r}: extra outputs are read")
    graph.insert_before(node, nodes)
    from graphopt import replace_all_uses_with
    replace_all_uses_with(node.outputs[0], last)
    graph.remove(node)


def _or_equal(strict: str) -> Decomposition:
    def decompose(node: Node, graph: Graph, opset: int) -> None:
        """GreaterOrEqual/LessOrEqual (12) as Or(Greater/Less, Equal): False for NaN, as the spec says."""
        a, b = node.inputs[0], node.inputs[1]
        first, equal = Node(strict, [a, b]), Node("Equal", [a, b])
        _finish(node, [first, equal, Node("Or", [first.outputs[0], equal.outputs[0]])])
    return decompose


DECOMPOSITIONS: dict[str, Decomposition] = {
    "LayerNormalization": layer_norm, "Gelu": gelu, "HardSwish": hard_swish, "Mish": mish,
    "GreaterOrEqual": _or_equal("Greater"), "LessOrEqual": _or_equal("Less"),
}
