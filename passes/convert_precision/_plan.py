"""Which nodes run in the lower type, and why the others keep float32.

A node converts when its schema lets it (see _slots), it computes on data (a float tensor that depends
on a graph input other than through Shape/Size: shape arithmetic and constant sub-graphs keep float32,
so Resize scales and Range bounds never round), no constant it reads in a converting slot and no tensor
it reads or writes in one run of the original leaves the lower type's range, and the user did not name
it or its op type. Values are never clamped: out of range means float32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from onnx import TensorProto

from graphopt import Model, Node, Value, make_feeds, observe

from ._slots import Slots, low_slots

LIMITS = {TensorProto.FLOAT16: (65504.0, 2.0**-24), TensorProto.BFLOAT16: (3.3895e38, 9.2e-41)}
SHAPE_OPS = frozenset({"Shape", "Size"})


@dataclass
class Plan:
    """The converting nodes with their slots, and a reason for every data node that keeps float32."""

    low: dict[Node, Slots] = field(default_factory=dict)
    kept: dict[Node, str] = field(default_factory=dict)
    flushed: int = 0  # non-zero constant values that become 0 in the lower type (counted, not refused)


def make_plan(model: Model, low: int, keep: frozenset[str], observed: dict[Value, float] | None,
              keep_nodes: frozenset[Node] = frozenset()) -> Plan:
    """Decide per node of the main graph (bodies of If/Loop/Scan keep their types); ``keep_nodes`` are
    what --auto found too sensitive."""
    opset = model.opset_imports.get("", model.opset_imports.get("ai.onnx", 1))
    data = data_values(model)
    plan = Plan()
    high, tiny = LIMITS[low]
    for node in model.graph:
        if node.op_type in SHAPE_OPS:
            continue  # reads only the shape: any element type will do (see _lower)
        if not any(v in data and v.dtype == TensorProto.FLOAT for v in [*node.reads(), *node.outputs]):
            continue  # shape arithmetic, constant sub-graphs, integer-only ops
        slots = low_slots(node, opset, low)
        reason = _refusal(node, slots, keep, high, observed)
        if reason is None and node in keep_nodes:
            reason = "too sensitive: --auto keeps it float32 to stay within the drift budget"
        if reason is not None:
            plan.kept[node] = reason
            continue
        assert slots is not None
        plan.low[node] = slots
        for i in slots.inputs:
            value = node.inputs[i]
            if value is not None and value.const is not None:
                plan.flushed += _flushed(value, tiny)
    return plan


def data_values(model: Model) -> set[Value]:
    """Values computed from a graph input other than through Shape/Size (main graph)."""
    data: set[Value] = set(model.graph.inputs)
    for node in model.graph:
        if node.op_type in SHAPE_OPS:
            continue
        if any(v in data for v in node.reads()):
            data.update(node.outputs)
    return data


def observe_ranges(model: Model, seed: int) -> dict[Value, float]:
    """The largest finite magnitude of every float32 tensor of the main graph in one seeded run."""
    values = [v for node in model.graph for v in node.outputs if v.dtype == TensorProto.FLOAT]
    values += [v for v in model.graph.inputs if v.dtype == TensorProto.FLOAT]
    seen = observe(model, values, make_feeds(model, seed=seed), "model before precision conversion")
    ranges = {}
    for value, array in seen.items():
        arr = np.asarray(array, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        ranges[value] = float(np.max(np.abs(finite))) if finite.size else 0.0
    return ranges


def _refusal(node: Node, slots: Slots | None, keep: frozenset[str], high: float,
             observed: dict[Value, float] | None) -> str | None:
    if node.name in keep or node.op_type in keep:
        return "kept float32 on request (--keep-fp32)"
    if slots is None:
        return _why_not(node)
    for i in slots.inputs:
        value = node.inputs[i]
        if value is not None and value.const is not None:
            peak = _peak(value)
            if peak > high:
                return f"constant {value.name!r} holds {peak:.4g}, beyond the lower type's {high:g}"
    if observed is not None:
        touched = [node.inputs[i] for i in slots.inputs] + [node.outputs[i] for i in slots.outputs]
        for value in touched:
            if value is not None and observed.get(value, 0.0) > high:
                return (f"tensor {value.name!r} reaches {observed[value]:.4g} in a run of the original, "
                        f"beyond the lower type's {high:g}")
    return None


def _why_not(node: Node) -> str:
    if node.domain not in ("", "ai.onnx"):
        return f"custom domain {node.domain!r}"
    if node.subgraphs():
        return "has a subgraph (its body keeps its types)"
    from ._slots import BLOCKED

    if node.op_type in BLOCKED:
        return f"{node.op_type} stays float32 (rounding changes its selection, indices or sums)"
    return "its schema has no float32 type that admits the lower type here"


def _peak(value: Value) -> float:
    arr = np.asarray(value.const.numpy(), dtype=np.float64)  # type: ignore[union-attr]
    finite = arr[np.isfinite(arr)]
    return float(np.max(np.abs(finite))) if finite.size else 0.0


def _flushed(value: Value, tiny: float) -> int:
    arr = np.abs(np.asarray(value.const.numpy(), dtype=np.float64))  # type: ignore[union-attr]
    return int(np.count_nonzero((arr > 0) & (arr < tiny / 2)))
