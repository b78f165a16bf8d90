"""What every converted node must satisfy at the target opset: its dtypes are allowed by the op's type
constraints there, and it carries no attribute the target's version does not know (an attribute at its
default value is dropped, any other value is refused)."""

from __future__ import annotations

import onnx
from onnx import defs

from graphopt import Node
from graphopt.errors import OpsetConversionError


def check_types(node: Node, opset: int, source: int) -> None:
    """Every tensor input/output dtype must be allowed by the op's type constraints at ``opset``.

    A value whose dtype is unknown takes the dtype of another value bound to the same type parameter;
    if none is known either, it passes only when the target allows every type the source allowed.
    Unused optional outputs and sequence/optional-typed values are not constrained here.
    """
    schema = defs.get_schema(node.op_type, opset, "")
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    try:
        before_schema = defs.get_schema(node.op_type, source, "")
    except defs.SchemaError:  # renamed at the boundary: the new op's first version stands for the old
        before_schema = schema
    before = {c.type_param_str: set(c.allowed_type_strs) for c in before_schema.type_constraints}
    bound: list[tuple[str, str, object]] = []
    sides = ((schema.inputs, node.inputs, False), (schema.outputs, node.outputs, True))
    for formals, values, outputs in sides:
        for i, value in enumerate(values):
            if value is None or not formals or value.type_proto is not None:
                continue
            if outputs and not value.num_uses and not value.is_graph_output:
                continue
            formal = formals[min(i, len(formals) - 1)]
            bound.append((formal.type_str, formal.name, value.dtype))
    known = {param: dtype for param, _, dtype in bound if dtype is not None}
    for param, formal_name, dtype in bound:
        types = allowed.get(param)
        if types is None:
            continue
        dtype = dtype if dtype is not None else known.get(param)
        if dtype is None:
            if not before.get(param, set()) <= types:
                raise OpsetConversionError(
                    f"{node.op_type} node {node.name!r}: the dtype of {formal_name} is unknown and "
                    f"opset {opset} allows fewer types")
            continue
        name = f"tensor({onnx.helper.tensor_dtype_to_string(dtype).split('.')[-1].lower()})"  # type: ignore[arg-type]
        if name not in types:
            raise OpsetConversionError(f"{node.op_type} node {node.name!r}: {name} is not allowed for "
                                       f"{formal_name} at opset {opset}")


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def check_attrs(node: Node, opset: int, source: int) -> None:
    """Attributes unknown to the op at ``opset`` are dropped when they hold the default of the version
    that has them (the behaviour is then the same), and refused otherwise."""
    known = defs.get_schema(node.op_type, opset, "").attributes
    for name in [n for n in node.attrs if n not in known]:
        if node.attrs[name].ref_attr_name:
            continue  # a function-body reference: resolved by the caller's attribute
        default = None
        between = range(opset, source) if opset < source else range(source, opset)
        for version in (source, *between):
            try:
                schema = defs.get_schema(node.op_type, version, "")
            except defs.SchemaError:
                continue
            formal = schema.attributes.get(name)
            if formal is not None and formal.default_value.type:
                default = _plain(onnx.helper.get_attribute_value(formal.default_value))
                break
        value = _plain(node.attr(name))
        if default is not None and value == default:
            del node.attrs[name]
            continue
        raise OpsetConversionError(f"{node.op_type} node {node.name!r}: attribute {name}={value!r} has no "
                                   f"equivalent in opset {opset}")
