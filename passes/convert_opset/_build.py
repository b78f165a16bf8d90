"""Small builders shared by the opset decompositions: typed constants, the input rank, and splicing the
replacement nodes in place of the decomposed one."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto as T

from graphopt import Graph, Node, Tensor, Value, replace_all_uses_with
from graphopt.errors import OpsetConversionError

_NUMPY_TYPES = {T.FLOAT: np.float32, T.FLOAT16: np.float16, T.DOUBLE: np.float64, T.INT8: np.int8,
                T.INT16: np.int16, T.INT32: np.int32, T.INT64: np.int64, T.UINT8: np.uint8,
                T.UINT16: np.uint16, T.UINT32: np.uint32, T.UINT64: np.uint64}


def const_like(graph: Graph, value: object, node: Node, dtype: int | None = None) -> Value:
    """A constant of ``node``'s first input dtype (or ``dtype``); refused when that dtype is unknown or
    has no numpy equivalent (bfloat16, float8), since a float32 constant would not type-check."""
    dtype = dtype if dtype is not None else (node.inputs[0].dtype if node.inputs[0] is not None else None)
    np_type = _NUMPY_TYPES.get(dtype)  # type: ignore[arg-type]
    if np_type is None:
        raise OpsetConversionError(f"{node.op_type} node {node.name!r}: its decomposition needs constants of "
                                   "the input's dtype, which is unknown or not supported here")
    return graph.add_const(Tensor.from_array(np.array(value, dtype=np_type)))


def int64s(graph: Graph, values: list[int]) -> Value:
    return graph.add_const(Tensor.from_array(np.array(values, np.int64)))


def rank_of(node: Node) -> int:
    src = node.inputs[0]
    if src is None or src.rank is None:
        raise OpsetConversionError(f"{node.op_type} node {node.name!r}: its input rank is unknown, and the "
                                   "conversion depends on it")
    return src.rank


def reduce_mean(x: Value, axes: list[int], graph: Graph, opset: int) -> Node:
    """ReduceMean over ``axes`` in the form of ``opset`` (axes became an input at 18)."""
    if opset >= 18:
        return Node("ReduceMean", [x, int64s(graph, axes)])
    return Node("ReduceMean", [x], {"axes": axes})


def finish(node: Node, nodes: list[Node], extras: dict[int, Value] | None = None) -> list[Node]:
    """Insert ``nodes`` before ``node``, let the last one's output replace ``node``'s first output (and
    ``extras`` its other outputs by index), and remove ``node``; refused when another output is read."""
    last = nodes[-1].outputs[0]
    last.dtype, last.shape = node.outputs[0].dtype, node.outputs[0].shape
    graph = node.graph
    assert graph is not None
    extras = extras or {}
    for index, extra in enumerate(node.outputs[1:], start=1):
        if index not in extras and (extra.num_uses or extra.is_graph_output):
            raise OpsetConversionError(f"{node.op_type} node {node.name!r}: its extra outputs are read")
    graph.insert_before(node, nodes)
    replace_all_uses_with(node.outputs[0], last, outputs=True)
    for index, value in extras.items():
        replace_all_uses_with(node.outputs[index], value, outputs=True)
    graph.remove(node)
    return nodes
