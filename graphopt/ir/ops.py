"""Facts about ONNX domains, ops and element types that passes share, stated once."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from onnx import TensorProto

if TYPE_CHECKING:
    from graphopt.ir.node import Node

STANDARD_DOMAINS = ("", "ai.onnx")  # the two spellings of the default ONNX domain
ML_DOMAIN = "ai.onnx.ml"

# Ops whose result does not depend on the order of their (two or more) inputs.
COMMUTATIVE_OPS = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal",
                             "BitwiseAnd", "BitwiseOr", "BitwiseXor"})

# Float element types with a native numpy dtype (weight arithmetic is done in these).
NUMPY_FLOATS: dict[int, type[np.floating]] = {
    TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}
# Every float element type the arithmetic ops take from opset 13 on (bfloat16 included).
FLOAT_TYPES = frozenset({TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16})
# Integer element types a shape, an index or an axis list can have.
INDEX_TYPES = frozenset({TensorProto.INT32, TensorProto.INT64})
# elementwise ops of one tensor input (Clip's bounds, when given, are the same for every element)
UNARY_ELEMENTWISE = frozenset({
    "Relu", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "Celu", "Softplus", "Softsign", "HardSigmoid",
    "HardSwish", "Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Floor", "Ceil", "Round", "Sign", "Erf",
    "Not", "Cast", "Identity", "IsNaN", "IsInf", "Sin", "Cos", "Gelu", "Mish", "ThresholdedRelu", "Clip",
})


def is_standard_domain(domain: str) -> bool:
    """True for the default ONNX domain, however it is spelled."""
    return domain in STANDARD_DOMAINS


def const_ints(node: Node, index: int) -> list[int] | None:
    """Input ``index`` of ``node`` as a flat list of ints when it is a constant, else None."""
    value = node.inputs[index] if index < len(node.inputs) else None
    if value is None or value.const is None:
        return None
    return [int(v) for v in np.asarray(value.const.numpy()).reshape(-1)]


def shape_slice(dims: np.ndarray, start: int, end: int | None) -> np.ndarray:
    """Shape's start/end attributes (opset 15), clamped like the spec says."""
    rank = len(dims)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = rank if end is None else min(max(end + rank if end < 0 else end, 0), rank)
    return dims[start:end]


def onnx_slice(dim: int, start: int, end: int, step: int) -> slice:
    """The Python slice equivalent to ONNX Slice on one axis of size ``dim`` (clamping per spec)."""
    if dim == 0:
        return slice(0, 0)
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        return slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
    start = min(max(start, 0), dim - 1)
    end = min(max(end, -1), dim - 1)
    return slice(start, None if end < 0 else end, step)
