"""Conversion between ONNX TypeProto / ValueInfoProto and a Value's dtype and shape."""

from __future__ import annotations

import onnx

from graphopt.ir.value import Dim, Value


def read_type(value: Value, type_proto: onnx.TypeProto) -> None:
    """Copy dtype and shape from a TypeProto onto ``value`` (non-tensor types are kept as protos)."""
    if type_proto.WhichOneof("value") != "tensor_type":
        if type_proto.WhichOneof("value") is not None:
            value.type_proto = type_proto
        return
    tensor_type = type_proto.tensor_type
    value.dtype = tensor_type.elem_type or None
    if tensor_type.HasField("shape"):
        value.shape = tuple(_read_dim(d) for d in tensor_type.shape.dim)


def _read_dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    kind = dim.WhichOneof("value")
    if kind == "dim_value":
        return int(dim.dim_value)
    if kind == "dim_param":
        return dim.dim_param
    return None


def make_value_info(name: str, value: Value) -> onnx.ValueInfoProto | None:
    """A ValueInfoProto for ``value``, or None when nothing is known about its type."""
    info = onnx.ValueInfoProto(name=name)
    if value.doc_string:
        info.doc_string = value.doc_string
    if value.type_proto is not None:
        info.type.CopyFrom(value.type_proto)
        return info
    if not value.dtype:
        return None  # a tensor type without an element type is not valid ONNX
    tensor_type = info.type.tensor_type
    tensor_type.elem_type = value.dtype
    if value.shape is not None:
        shape = tensor_type.shape
        shape.SetInParent()
        for d in value.shape:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            elif isinstance(d, str):
                dim.dim_param = d
    return info
