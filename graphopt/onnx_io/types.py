"""Conversion between ONNX TypeProto / ValueInfoProto and a Value's dtype and shape."""

from __future__ import annotations

import onnx

from graphopt.errors import ModelLoadError
from graphopt.ir.tensor import VALID_DTYPES
from graphopt.ir.value import Dim, Value


def read_type(value: Value, type_proto: onnx.TypeProto, *, declared: bool = False) -> None:
    """Copy dtype and shape from a TypeProto onto ``value`` (non-tensor types are kept as protos).

    With ``declared`` the type only goes to ``value.declared`` (kept for export, never trusted).
    """
    if type_proto.WhichOneof("value") != "tensor_type":
        if type_proto.WhichOneof("value") is not None:
            value.type_proto = type_proto
        return
    tensor_type = type_proto.tensor_type
    dtype = tensor_type.elem_type or None
    if dtype is not None and dtype not in VALID_DTYPES:
        raise ModelLoadError(f"{value.name or 'a value'!r} is declared with unknown element type {dtype}")
    shape = tuple(_read_dim(d) for d in tensor_type.shape.dim) if tensor_type.HasField("shape") \
        else None
    if declared:
        value.declared = (dtype, shape)
    else:
        value.dtype, value.shape = dtype, shape


def _read_dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    kind = dim.WhichOneof("value")
    if kind == "dim_value":
        return int(dim.dim_value)
    if kind == "dim_param":
        return dim.dim_param
    return None


def make_value_info(name: str, value: Value, *, interface: bool = False) -> onnx.ValueInfoProto | None:
    """A ValueInfoProto for ``value``, or None when nothing is known about its type.

    Known types win over declared ones, except on a graph output (``interface``), whose declared
    type is part of the model's contract (e.g. a symbolic batch dimension).
    """
    info = onnx.ValueInfoProto(name=name)
    if value.doc_string:
        info.doc_string = value.doc_string
    if value.type_proto is not None:
        info.type.CopyFrom(value.type_proto)
        return info
    declared_dtype, declared_shape = value.declared or (None, None)
    dtype = value.dtype or declared_dtype
    if interface and declared_shape is not None:
        shape_dims = declared_shape
    else:
        shape_dims = value.shape if value.shape is not None else declared_shape
    if not dtype:
        return None  # a tensor type without an element type is not valid ONNX
    tensor_type = info.type.tensor_type
    tensor_type.elem_type = dtype
    if shape_dims is not None:
        shape = tensor_type.shape
        shape.SetInParent()
        for d in shape_dims:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            elif isinstance(d, str):
                dim.dim_param = d
    return info
