"""Partially known shape vectors: what each element of a Shape-derived 1-D int tensor is.

An element is a known int, or a ``DimRef`` (dimension ``axis`` of value ``source``) when only its
origin is known. Values computed by Shape/Gather/Slice/Concat/Cast/Unsqueeze/Squeeze/Reshape/Identity
from shapes get such vectors; a vector of ints only is a constant that fold-constants can write, and
a Reshape whose target copies its input's own dims can copy them with 0 entries instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

from graphopt import Node, Value, is_standard_domain

from ._evaluators import onnx_slice, shape_slice

INT_TYPES = frozenset({6, 7})  # int32, int64: what shape tensors are cast between
MAX_LEN = 64  # longer int vectors are data, not shapes


@dataclass(frozen=True)
class DimRef:
    """Dimension ``axis`` (non-negative) of ``source``, whose value is unknown at compile time."""

    source: Value
    axis: int


Element = Union[int, DimRef]
Vector = tuple  # tuple[Element, ...]; a scalar is a 1-tuple flagged by the caller's knowledge of rank


class ShapeValues:
    """Memoised partial values of the 1-D (or scalar) int tensors of one pass run."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self._memo: dict[Value, Vector | None] = {}

    def of(self, value: Value | None) -> Vector | None:
        """The partial value of ``value``, or None when nothing is known."""
        if value is None:
            return None
        if value not in self._memo:
            self._memo[value] = None  # cycles (never in valid graphs) end here
            self._memo[value] = self._compute(value)
        return self._memo[value]

    def known(self, value: Value) -> np.ndarray | None:
        """The full int64 value when every element is a known int (shaped like ``value``)."""
        vector = self.of(value)
        if vector is None or value.rank is None or any(isinstance(e, DimRef) for e in vector):
            return None
        arr = np.array(vector, dtype=np.int64)
        return arr.reshape(()) if value.rank == 0 else arr

    def _compute(self, value: Value) -> Vector | None:
        if value.const is not None:
            tensor = value.const
            if tensor.dtype not in INT_TYPES or len(tensor.shape) > 1 or tensor.size > MAX_LEN:
                return None
            return tuple(int(v) for v in tensor.numpy().reshape(-1))
        node = value.producer
        if node is None or not is_standard_domain(node.domain) or value.output_index != 0:
            return None
        handler = _HANDLERS.get(node.op_type)
        if handler is None or node.graph is None or not node.inputs:
            return None
        return handler(self, node)


def _shape(sv: ShapeValues, node: Node) -> Vector | None:
    src = node.inputs[0]
    if src is None or src.shape is None:
        return None
    rank = len(src.shape)
    axes = shape_slice(np.arange(rank), node.attr("start", 0), node.attr("end"))
    return tuple(src.shape[a] if isinstance(src.shape[a], int) else DimRef(src, int(a)) for a in axes)


def _const_ints(sv: ShapeValues, value: Value | None) -> list[int] | None:
    known = None if value is None else sv.known(value)
    return None if known is None else [int(v) for v in known.reshape(-1)]


def _gather(sv: ShapeValues, node: Node) -> Vector | None:
    data = sv.of(node.inputs[0])
    index = node.inputs[1]
    if data is None or index is None or index.rank not in (0, 1) or node.attr("axis", 0) not in (0, -1):
        return None
    positions = _const_ints(sv, index)
    if positions is None or not all(-len(data) <= p < len(data) for p in positions):
        return None
    return tuple(data[p] for p in positions)


def _slice(sv: ShapeValues, node: Node) -> Vector | None:
    data = sv.of(node.inputs[0])
    if data is None or sv.opset < 10:
        return None
    starts, ends = _const_ints(sv, node.inputs[1]), _const_ints(sv, node.inputs[2])
    axes = _const_ints(sv, node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else [0]
    steps = _const_ints(sv, node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else [1]
    if starts is None or ends is None or axes is None or steps is None or len(starts) != 1:
        return None
    if axes[0] not in (0, -1) or steps[0] == 0:
        return None
    if steps[0] < 0 and ends[0] in (2**31 - 1, 2**63 - 1):
        return None  # onnxruntime reads this end as "to the first element", the spec as the last one
    # ONNX clamps differently from Python slicing when a negative step starts before the first
    # element (ONNX starts at element 0, Python selects nothing): use the spec's clamping.
    return tuple(data[onnx_slice(len(data), starts[0], ends[0], steps[0])])


def _concat(sv: ShapeValues, node: Node) -> Vector | None:
    parts = [sv.of(v) for v in node.inputs]
    if any(p is None for p in parts) or any(v is not None and v.rank != 1 for v in node.inputs):
        return None
    return tuple(e for p in parts for e in p)  # type: ignore[union-attr]


def _pass_through(sv: ShapeValues, node: Node) -> Vector | None:
    src, out = node.inputs[0], node.outputs[0]
    if src is None or (out.rank is not None and out.rank > 1):
        return None
    if node.op_type == "Cast":
        if src.dtype not in INT_TYPES or node.attr("to") not in INT_TYPES:
            return None
        vector = sv.of(src)
        if vector is None or any(isinstance(e, int) and not -2**31 <= e < 2**31 for e in vector):
            return None  # an int32 cast would wrap; dims (DimRef) always fit in int32 in practice
        return vector
    vector = sv.of(src)
    if vector is None or (out.rank is None and node.op_type != "Identity"):
        return None
    if out.rank == 0 and len(vector) != 1:
        return None
    return vector


_HANDLERS = {
    "Shape": _shape, "Gather": _gather, "Slice": _slice, "Concat": _concat,
    "Cast": _pass_through, "Identity": _pass_through, "Unsqueeze": _pass_through,
    "Squeeze": _pass_through, "Reshape": _pass_through,
}


def reshape_copy_target(sv: ShapeValues, node: Node) -> np.ndarray | None:
    """A constant target for a Reshape whose computed target is known except for dims it copies
    from its own input at the same position (written as 0, which Reshape copies when allowzero=0)."""
    if node.op_type != "Reshape" or sv.opset < 5 or node.attr("allowzero", 0) or len(node.inputs) < 2:
        return None
    x, target = node.inputs[0], node.inputs[1]
    if x is None or target is None or target.const is not None:
        return None
    vector = sv.of(target)
    if vector is None:
        return None
    out: list[int] = []
    for position, element in enumerate(vector):
        if isinstance(element, int):
            out.append(element)
        elif element.source is x and element.axis == position:
            out.append(0)
        else:
            return None
    return np.array(out, dtype=np.int64)
