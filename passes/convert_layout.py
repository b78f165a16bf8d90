"""convert-layout: give a model channels-last (NHWC) inputs and outputs in standard ONNX.

Standard ONNX convolutions and pools are channels-first, so the body stays NCHW: each converted input
gets one Transpose to channels-first, each converted output one Transpose to channels-last, and
optimize-transposes then pushes them through whatever layout-agnostic ops allow (cancelling pairs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from graphopt import FLOAT_TYPES, Graph, Model, Node, PassResult, Value, record_interface_perm, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.errors import UsageError

FLOATS = FLOAT_TYPES


def to_last(rank: int) -> list[int]:
    """NC[D]HW -> N[D]HWC."""
    return [0, *range(2, rank), 1]


def to_first(rank: int) -> list[int]:
    """N[D]HWC -> NC[D]HW."""
    return [0, rank - 1, *range(1, rank - 1)]


def _names(spec: str) -> set[str] | None:
    """'' -> None (automatic), 'none' -> nothing, 'a+b' (or 'a,b' from Python) -> {a, b}."""
    if spec == "":
        return None
    if spec == "none":
        return set()
    return {s.strip() for s in spec.replace("+", ",").split(",") if s.strip()}


def _eligible(value: Value, automatic: bool = False) -> bool:
    """Image-like: a float tensor of rank 3 to 5 (N, C, spatial...); chosen automatically only at
    rank 4 or 5, since a rank-3 tensor is as often a sequence [N, T, features] as an NCL signal."""
    dtype, shape = value.dtype, value.shape
    if value.declared is not None:
        dtype = dtype or value.declared[0]
        shape = shape if shape is not None else value.declared[1]
    low = 4 if automatic else 3
    return dtype in FLOATS and shape is not None and low <= len(shape) <= 5


def _permute(shape, perm):  # type: ignore[no-untyped-def]
    return None if shape is None else tuple(shape[p] for p in perm)


@register_pass
@dataclass
class ConvertLayout:
    """Make the model's image-like inputs and outputs channels-last (NHWC), in standard ONNX.

    ``inputs`` / ``outputs``: names joined by '+' (float, rank 3-5), '' for every float input/output
    of rank 4-5, or 'none'. The numeric check feeds and compares in the original layout (the changed
    interface is recorded in the model's metadata).
    """

    name: ClassVar[str] = "convert-layout"
    may_grow: ClassVar[bool] = True  # boundary Transposes are what the user asked for
    layout: str = "nhwc"
    inputs: str = ""
    outputs: str = ""

    def __post_init__(self) -> None:
        if self.layout.lower() != "nhwc":
            raise UsageError(f"convert-layout: unknown layout {self.layout!r} (supported: nhwc)")

    def run(self, model: Model) -> PassResult:
        refresh_types(model)
        graph = model.graph
        wanted_in, wanted_out = _names(self.inputs), _names(self.outputs)
        _check_names(graph, wanted_in, wanted_out)
        converted_in = converted_out = 0
        for index, value in enumerate(list(graph.inputs)):
            if value in graph.input_defaults:
                continue  # an initializer a user may override: not an image input
            if (value.name in wanted_in) if wanted_in is not None else _eligible(value, automatic=True):
                _convert_input(model, graph, index, value)
                converted_in += 1
        for index, value in enumerate(list(graph.outputs)):
            if value.is_graph_input:
                continue  # the input itself: it keeps the input's name, so it follows the input's layout
            if (value.name in wanted_out) if wanted_out is not None else _eligible(value, automatic=True):
                _convert_output(model, graph, index, value)
                converted_out += 1
        stats = {"inputs_converted": converted_in, "outputs_converted": converted_out}
        return PassResult(bool(converted_in or converted_out), {k: v for k, v in stats.items() if v})


def _check_names(graph: Graph, wanted_in: set[str] | None, wanted_out: set[str] | None) -> None:
    for kind, wanted, values in (("input", wanted_in, graph.inputs), ("output", wanted_out, graph.outputs)):
        known = {v.name for v in values}
        for name in sorted((wanted or set()) - known):
            raise UsageError(f"convert-layout: the model has no {kind} named {name!r} "
                             f"(its {kind}s: {', '.join(sorted(n for n in known if n))})")
        for value in values:
            if wanted and value.name in wanted and not _eligible(value):
                raise UsageError(f"convert-layout: {kind} {value.name!r} is not a float tensor of rank 3-5")


def _convert_input(model: Model, graph: Graph, index: int, old: Value) -> None:
    rank = len(old.shape if old.shape is not None else old.declared[1])  # type: ignore[index,arg-type]
    new = Value(old.name, dtype=old.dtype, shape=_permute(old.shape, to_last(rank)))
    if old.declared is not None:
        new.declared = (old.declared[0], _permute(old.declared[1], to_last(rank)))
    node = Node("Transpose", [new], {"perm": to_first(rank)})
    first = next(iter(graph), None)
    if first is None:
        graph.append(node)
    else:
        graph.insert_before(first, node)
    out = node.outputs[0]
    out.dtype, out.shape = old.dtype, old.shape
    for user, i in old.uses():
        user.replace_input(i, out)
    passed_through = old.is_graph_output  # the output is the same tensor, by name: it converts too
    if passed_through:
        graph.outputs = [new if v is old else v for v in graph.outputs]
    graph.replace_input(index, new)
    old.name = None
    record_interface_perm(model, "inputs", new.name or "", to_last(rank))
    if passed_through:
        record_interface_perm(model, "outputs", new.name or "", to_last(rank))


def _convert_output(model: Model, graph: Graph, index: int, old: Value) -> None:
    rank = len(old.shape if old.shape is not None else old.declared[1])  # type: ignore[index,arg-type]
    node = Node("Transpose", [old], {"perm": to_last(rank)})
    anchor = old.producer if old.producer is not None and old.producer.graph is graph else None
    if anchor is not None:
        graph.insert_after(anchor, node)
    elif next(iter(graph), None) is not None:
        graph.insert_before(next(iter(graph)), node)
    else:
        graph.append(node)
    out = node.outputs[0]
    out.name, old.name = old.name, None
    out.dtype, out.shape = old.dtype, _permute(old.shape, to_last(rank))
    if old.declared is not None:
        out.declared = (old.declared[0], _permute(old.declared[1], to_last(rank)))
        old.declared = None
    graph.outputs[index] = out
    record_interface_perm(model, "outputs", out.name or "", to_last(rank))
