"""Shape and dtype inference: onnx's inference with data propagation, run on a weightless skeleton.

Declared value_info of intermediates and declared output types are left out of the skeleton, so an
inferred shape never comes from a declaration that might be stale or wrong.
"""

from __future__ import annotations

import logging
import math

import onnx

from graphopt.ir.model import Model
from graphopt.ir.ops import is_standard_domain
from graphopt.ir.value import Dim, Value
from graphopt.onnx_io.exporter import export_with_names
from graphopt.onnx_io.types import read_type

log = logging.getLogger(__name__)

TypeInfo = tuple[int | None, tuple[Dim, ...] | None]


def infer_types(model: Model, input_shapes: dict[str, list[int]] | None = None) -> dict[Value, TypeInfo]:
    """Inferred ``(dtype, shape)`` for every node output that inference could type; ``input_shapes``
    fixes the shapes of the inputs it names (the model itself keeps its declared shapes).

    Returns an empty mapping when onnx's inference fails on the model (unknown opset, bad model...)
    or the user turned it off (``model.shape_inference``): callers then simply have less to work with.
    """
    if not model.shape_inference:
        return {}
    proto, names = export_with_names(model, skeleton=True)
    for value_info in proto.graph.input:
        if input_shapes and value_info.name in input_shapes:
            dims = value_info.type.tensor_type.shape
            dims.ClearField("dim")
            for d in input_shapes[value_info.name]:
                dims.dim.add().dim_value = int(d)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=False, strict_mode=False,
                                                     data_prop=_data_propagation_is_safe(model))
    except Exception as exc:  # onnx raises several unrelated types here; any means "no info"
        log.info("shape inference failed: %s", exc)
        return {}
    by_name: dict[str, onnx.TypeProto] = {}
    _collect(inferred.graph, by_name)
    result: dict[Value, TypeInfo] = {}
    for value, name in names.items():
        if value.producer is None or not name or name not in by_name:
            continue
        probe = Value()
        read_type(probe, by_name[name])
        if probe.dtype is not None or probe.shape is not None:
            result[value] = (probe.dtype, probe.shape)
    return result


PROPAGATED_ELEMENTS_LIMIT = 1 << 20


def _data_propagation_is_safe(model: Model) -> bool:
    """onnx's data propagation materialises a Range of constant bounds in full: a hostile model with
    Range(0, 10**12, 1) would make inference allocate terabytes, so such models are inferred without it."""
    for node in model.graph.all_nodes():
        if node.op_type != "Range" or len(node.inputs) != 3:
            continue
        if all(v is not None and v.const is not None and v.const.size == 1 for v in node.inputs):
            start, limit, delta = (float(v.const.numpy().reshape(-1)[0]) for v in node.inputs)  # type: ignore[union-attr]
            if delta == 0 or not all(map(math.isfinite, (start, limit, delta))) or \
                    (limit - start) / delta > PROPAGATED_ELEMENTS_LIMIT:
                return False
    return True


def _collect(graph: onnx.GraphProto, out: dict[str, onnx.TypeProto]) -> None:
    for vi in [*graph.value_info, *graph.output]:
        if vi.type.WhichOneof("value") == "tensor_type":
            out[vi.name] = vi.type
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _collect(attr.g, out)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _collect(g, out)


def untyped_outputs(model: Model) -> int:
    """How many node outputs (of standard-domain nodes) lack a known dtype or a complete shape.

    A dimension inference could not name (None, or one of onnx's made-up ``unk__N`` symbols) counts
    as missing: a later inference, after folding, may well know it.
    """
    return sum(1 for node in model.graph.all_nodes() if is_standard_domain(node.domain)
               for out in node.outputs
               if out.type_proto is None and (out.dtype is None or out.shape is None
                                              or any(_unknown(d) for d in out.shape)))


def _unknown(dim: Dim) -> bool:
    return dim is None or (isinstance(dim, str) and dim.startswith("unk__"))


def refresh_types(model: Model) -> int:
    """Run inference only when some value still lacks a type; returns how many values gained one.

    A value's type is a fact about it (values are SSA), so types known from an earlier inference stay
    true after passes that remove or add nodes; only what is missing needs inferring again. When the
    last inference left exactly as many gaps in a model of exactly as many nodes, it is not rerun
    (a heuristic stamp: at worst a type is found one pass later).
    """
    type_body_inputs(model)
    missing = untyped_outputs(model)
    if not missing:
        return 0
    stamp = (model.node_count(), missing)
    if model.analysis_stamps.get("types") == stamp:
        return 0  # inference ran on a model with this many nodes and gaps and could not fill them
    gained = apply_types(model, infer_types(model))
    if type_body_inputs(model):  # the outer operands got their dtypes just now: infer the bodies again
        gained += apply_types(model, infer_types(model))
    model.analysis_stamps["types"] = (model.node_count(), untyped_outputs(model))
    return gained


def apply_types(model: Model, types: dict[Value, TypeInfo]) -> int:
    """Record inferred types on values (a graph output's declared type still wins on export).

    Returns how many values gained information.
    """
    gained = 0
    for value, (dtype, shape) in types.items():
        if dtype is not None and value.dtype != dtype:
            value.dtype = dtype
            gained += 1
        if shape is not None and value.shape != shape:
            value.shape = shape
            gained += 1
    return gained


def type_body_inputs(model: Model) -> int:
    """Give Loop/Scan body inputs declared without a dtype the dtype of the outer operand they receive
    (Loop: iteration count int64, condition bool, then the carried values; Scan: states, then scanned
    slices, each of its operand's dtype). Returns how many gained one."""
    gained = 0
    for graph in list(model.graph.all_graphs()):
        for node in graph:
            if node.op_type not in ("Loop", "Scan") or not is_standard_domain(node.domain):
                continue
            for body in node.subgraphs():
                if node.op_type == "Loop":
                    sources = [onnx.TensorProto.INT64, onnx.TensorProto.BOOL,
                               *(v.dtype if v is not None else None for v in node.inputs[2:])]
                else:
                    sources = [v.dtype if v is not None else None for v in node.inputs]
                for formal, dtype in zip(body.inputs, sources):
                    if formal.dtype is None and dtype is not None and formal.type_proto is None:
                        formal.dtype = dtype
                        gained += 1
    return gained
