"""Node attributes as plain Python values plus their ONNX attribute type (kept for lossless export)."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import AttributeProto

A = AttributeProto


class Attr:
    """One attribute: name, ONNX type, Python value; ``ref_attr_name`` for function bodies."""

    __slots__ = ("name", "type", "value", "ref_attr_name", "doc_string")

    def __init__(self, name: str, type: int, value: Any, ref_attr_name: str = "",
                 doc_string: str = "") -> None:
        self.name = name
        self.type = type
        self.value = value
        self.ref_attr_name = ref_attr_name
        self.doc_string = doc_string

    def __repr__(self) -> str:
        return f"Attr({self.name}={self.value!r})"


def infer_attr(name: str, value: Any) -> Attr:
    """Build an Attr from a Python value, choosing the ONNX type the way onnx.helper does."""
    from graphopt.ir.graph import Graph
    from graphopt.ir.tensor import Tensor

    if isinstance(value, Attr):
        return value
    if isinstance(value, (bool, int, np.integer)):
        return Attr(name, A.INT, int(value))
    if isinstance(value, (float, np.floating)):
        return Attr(name, A.FLOAT, float(value))
    if isinstance(value, (str, bytes)):
        return Attr(name, A.STRING, value.decode("utf-8", "surrogateescape")
                    if isinstance(value, bytes) else value)
    if isinstance(value, Tensor):
        return Attr(name, A.TENSOR, value)
    if isinstance(value, np.ndarray):
        return Attr(name, A.TENSOR, Tensor.from_array(value))
    if isinstance(value, Graph):
        return Attr(name, A.GRAPH, value)
    items = list(value)
    if all(isinstance(v, (bool, int, np.integer)) for v in items):
        return Attr(name, A.INTS, [int(v) for v in items])
    if all(isinstance(v, (bool, int, float, np.integer, np.floating)) for v in items):
        return Attr(name, A.FLOATS, [float(v) for v in items])
    if all(isinstance(v, (str, bytes)) for v in items):
        return Attr(name, A.STRINGS, [v.decode("utf-8", "surrogateescape")
                                      if isinstance(v, bytes) else v for v in items])
    if all(isinstance(v, Graph) for v in items):
        return Attr(name, A.GRAPHS, items)
    if all(isinstance(v, Tensor) for v in items):
        return Attr(name, A.TENSORS, items)
    raise TypeError(f"cannot infer an ONNX attribute type for {name}={value!r}")
