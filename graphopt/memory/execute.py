"""Run a model node by node with every planned tensor stored in one numpy arena at its planned offset.

Each node runs alone in onnxruntime; its inputs are read back from the arena at the moment it runs and
its outputs are written there, so a plan that lets two live tensors overlap corrupts a value that is
still needed, and the final outputs differ from a normal run. Equal outputs prove the plan sound for
these inputs.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from graphopt.errors import PlanExecutionError
from graphopt.memory.plan import MemoryPlan
from graphopt.memory.verify import _names_read
from graphopt.numerics.run import run_proto


def _single_node_model(model: onnx.ModelProto, node: onnx.NodeProto, feeds: dict[str, np.ndarray],
                       output_types: dict[str, onnx.TypeProto]) -> onnx.ModelProto:
    # a node with bodies gets inputs of unknown shape: onnxruntime infers the untaken branch too, which
    # exact shapes can make fail (a branch written for another sample rate, say)
    bodies = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    has_bodies = any(a.type in bodies for a in node.attribute)
    inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype),
                                            None if has_bodies else list(value.shape))
              for name, value in feeds.items()]
    outputs = []
    for name in node.output:
        if not name:
            continue
        info = onnx.ValueInfoProto(name=name)
        if name in output_types:
            info.type.CopyFrom(output_types[name])
        outputs.append(info)
    graph = helper.make_graph([node], "step", inputs, outputs)
    single = helper.make_model(graph, opset_imports=list(model.opset_import))
    single.ir_version = model.ir_version
    single.functions.extend(model.functions)
    return single


def run_with_arena(model: onnx.ModelProto, plan: MemoryPlan,
                   feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The model's outputs computed with every planned tensor living in one arena."""
    arena = np.zeros(max(plan.arena_bytes, 1), dtype=np.uint8)
    placement = {t.name: t for t in plan.tensors}
    constants = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    outside: dict[str, np.ndarray] = {**constants, **feeds}  # graph inputs, weights, external views
    stored: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
    output_types = {v.name: v.type for v in [*model.graph.value_info, *model.graph.output]}

    def read(name: str) -> np.ndarray:
        if name in stored:
            dtype, shape = stored[name]
            t = placement[name]
            count = int(np.prod(shape, dtype=np.int64))
            return np.frombuffer(arena, dtype=dtype, count=count, offset=t.offset).reshape(shape).copy()
        return outside[name]

    for node in model.graph.node:
        names = sorted(n for n in _names_read(node) if n in stored or n in outside)
        step_feeds = {name: read(name) for name in names}
        single = _single_node_model(model, node, step_feeds, output_types)
        try:
            results = run_proto(single, step_feeds)
        except Exception as exc:
            raise PlanExecutionError(f"{node.op_type} node {node.name!r} failed alone: "
                                     f"{str(exc).splitlines()[0][:600]}") from None
        for name in (n for n in node.output if n):
            value = np.asarray(results[name], order="C")  # (ascontiguousarray makes 0-d into 1-d)
            t = placement.get(name)
            if t is None or t.offset is None:
                outside[name] = value
                continue
            if value.nbytes > t.size:
                raise PlanExecutionError(f"{name}: {value.nbytes} bytes at run time, {t.size} planned")
            arena[t.offset:t.offset + value.nbytes] = np.frombuffer(value.tobytes(), dtype=np.uint8)
            stored[name] = (value.dtype, value.shape)
    return {o.name: read(o.name) for o in model.graph.output}


def check_by_execution(model: onnx.ModelProto, plan: MemoryPlan, feeds: dict[str, np.ndarray]) -> list[str]:
    """Mismatches between the arena run and a normal onnxruntime run (empty: the plan is sound)."""
    from graphopt.numerics.compare import compare_outputs

    expected = run_proto(model, feeds)
    got = run_with_arena(model, plan, feeds)
    return [str(m) for m in compare_outputs(expected, got)]
