"""A readable text form of the IR, one line per node (like MLIR's print-after-all), so that the dumps
of two passes can be compared with ``diff``."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.value import Value

_INLINE_ELEMENTS = 8  # constants up to this many elements are printed with their values


def format_model(model: Model) -> str:
    """The whole model: opsets, then the main graph with its subgraphs indented."""
    opsets = ", ".join(f"{d or 'ai.onnx'}={v}" for d, v in sorted(model.opset_imports.items()))
    return f"model opsets [{opsets}]\n" + format_graph(model.graph)


def format_graph(graph: Graph, indent: str = "") -> str:
    """Inputs, constants (shape and dtype; values when small), one line per node, outputs."""
    names = _Names()
    lines = [f"{indent}graph {graph.name or '?'}({', '.join(names.typed(v) for v in graph.inputs)})"]
    for const in graph.consts:
        lines.append(f"{indent}  const {names.typed(const)}{_const_text(const)}")
    lines += _node_lines(graph, indent + "  ", names)
    lines.append(f"{indent}  return {', '.join(names.of(v) for v in graph.outputs)}")
    return "\n".join(lines) + "\n"


def _node_lines(graph: Graph, indent: str, names: _Names) -> list[str]:
    lines = []
    for node in graph:
        outs = ", ".join(names.typed(v) for v in node.outputs)
        ins = ", ".join("_" if v is None else names.of(v) for v in node.inputs)
        attrs = [f"{a.name}={_attr_text(a.value)}" for a in sorted(node.attrs.values(), key=lambda a: a.name)
                 if not isinstance(a.value, Graph)]
        label = f" '{node.name}'" if node.name else ""
        lines.append(f"{indent}{outs} = {node.qualified_type}{label}({ins})"
                     + (f" {{{', '.join(attrs)}}}" if attrs else ""))
        for attr in sorted(node.attrs.values(), key=lambda a: a.name):
            for sub in attr.value if isinstance(attr.value, list) else [attr.value]:
                if isinstance(sub, Graph):
                    lines.append(f"{indent}  {attr.name}({', '.join(names.typed(v) for v in sub.inputs)}):")
                    body = [f"{indent}    const {names.typed(c)}{_const_text(c)}" for c in sub.consts]
                    body += _node_lines(sub, indent + "    ", names)
                    lines += body + [f"{indent}    return {', '.join(names.of(v) for v in sub.outputs)}"]
    return lines


class _Names:
    """Value names as written, ``%tN`` for unnamed values (numbered in order of appearance)."""

    def __init__(self) -> None:
        self.anonymous: dict[Value, str] = {}

    def of(self, value: Value) -> str:
        if value.name:
            return f"%{value.name}"
        return self.anonymous.setdefault(value, f"%t{len(self.anonymous)}")

    def typed(self, value: Value) -> str:
        dims = value.shape
        shape = "?" if dims is None else "x".join("?" if d is None else str(d) for d in dims)
        return f"{self.of(value)}: {_dtype_name(value.dtype)}[{shape}]"


def _dtype_name(dtype: int | None) -> str:
    if dtype is None:
        return "?"
    return onnx.TensorProto.DataType.Name(dtype).lower()


def _const_text(value: Value) -> str:
    tensor = value.const
    if tensor is None or tensor.size > _INLINE_ELEMENTS:
        return ""
    return " = " + np.array2string(np.asarray(tensor.numpy()).reshape(-1), separator=",")


def _attr_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    return repr(value) if not hasattr(value, "numpy") else f"tensor{list(value.shape)}"
