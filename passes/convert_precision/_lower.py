"""Apply a plan: converting nodes get lower-type outputs and read lower-type inputs; constants they read
are converted once (the float32 copy dies unless a float32 node still reads it); one Cast per value sits
at each boundary between float32 and the lower type, right after the value's producer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from onnx import TensorProto

from graphopt import Model, Node, Tensor, Value, clone_model, numpy_dtype

from ._plan import SHAPE_OPS as SHAPE_READERS
from ._plan import Plan


@dataclass
class Lowered:
    """What applying a plan did."""

    casts: int = 0
    constants: int = 0
    interface: int = 0  # graph inputs and outputs given the lower type (without keep_io_types)


def lower(model: Model, plan: Plan, low: int, keep_io_types: bool) -> Lowered:
    """Rewrite the main graph as ``plan`` says."""
    graph = model.graph
    done = Lowered()
    low_values: set[Value] = set()
    for node, slots in plan.low.items():
        for i in slots.outputs:
            node.outputs[i].dtype = low
            low_values.add(node.outputs[i])
        _lower_attribute(node, low)
    if not keep_io_types:
        for value in graph.inputs:
            if value.dtype == TensorProto.FLOAT and any(node in plan.low and i in plan.low[node].inputs
                                                        for node, i in value.uses()):
                value.dtype = low
                _redeclare(value, low)
                low_values.add(value)
                done.interface += 1
    casts: dict[Value, Value] = {}
    constants: dict[Value, Value] = {}
    for node, slots in plan.low.items():
        for i in sorted(slots.inputs):
            value = node.inputs[i]
            if value is None or value in low_values or value.dtype != TensorProto.FLOAT:
                continue
            if value.const is not None:
                if value not in constants:
                    array = np.asarray(value.const.numpy()).astype(numpy_dtype(low))
                    constants[value] = graph.add_const(Tensor.from_array(array, low))
                    done.constants += 1
                node.replace_input(i, constants[value])
            else:
                node.replace_input(i, _cast(model, value, low, casts))
    for value in list(low_values):
        for node, i in value.uses():
            if node.op_type in SHAPE_READERS and node.graph is model.graph:
                continue  # Shape and Size read only the dims
            if node not in plan.low or i not in plan.low[node].inputs:
                node.replace_input(i, _cast(model, value, TensorProto.FLOAT, casts))
        if value.is_graph_output:
            if keep_io_types:
                _cast_output_back(model, value, casts)
            else:
                _redeclare(value, low)
                done.interface += 1
    done.casts = len(casts)
    for value in constants:
        if not value.uses() and not value.is_graph_output:
            graph.remove_const(value)
    return done


def lowered_copy(model: Model, plan: Plan, low: int, keep_io_types: bool
                 ) -> tuple[Model, dict[Value, Value], Lowered]:
    """A lowered copy of ``model`` (the original stays as it is), the map from the original's node
    outputs to the copy's, and what lowering did."""
    candidate = clone_model(model)
    nodes = dict(zip(model.graph, candidate.graph))
    mapping = {v: nodes[n].outputs[i] for n in model.graph for i, v in enumerate(n.outputs)}
    copy = Plan({nodes[n]: s for n, s in plan.low.items()}, {nodes[n]: r for n, r in plan.kept.items()},
                plan.flushed)
    return candidate, mapping, lower(candidate, copy, low, keep_io_types)


def _cast(model: Model, value: Value, to: int, casts: dict[Value, Value]) -> Value:
    """The one Cast of ``value`` to ``to``, placed right after its producer (or first in the graph)."""
    if value not in casts:
        node = Node("Cast", [value], {"to": to})
        out = node.outputs[0]
        out.dtype, out.shape = to, value.shape
        graph = model.graph
        if value.producer is not None and value.producer.graph is graph:
            graph.insert_after(value.producer, node)
        elif len(graph):
            graph.insert_before(next(iter(graph)), node)
        else:
            graph.append(node)
        casts[value] = out
    return casts[value]


def _cast_output_back(model: Model, value: Value, casts: dict[Value, Value]) -> None:
    """A graph output computed in the lower type: a Cast to float32 takes over its slot and name."""
    back = _cast(model, value, TensorProto.FLOAT, casts)
    back.name, value.name = value.name, None
    back.declared = value.declared
    model.graph.outputs = [back if v is value else v for v in model.graph.outputs]


def _lower_attribute(node: Node, low: int) -> None:
    """Cast's ``to`` and ConstantOfShape's ``value`` follow the node's output type."""
    if node.op_type == "Cast":
        node.set_attr("to", low)
    elif node.op_type == "ConstantOfShape":
        value = node.attr("value")
        node.set_attr("value", Tensor.from_array(np.asarray(value.numpy()).astype(numpy_dtype(low)), low))


def _redeclare(value: Value, low: int) -> None:
    if value.declared is not None:
        value.declared = (low, value.declared[1])
