"""Models and helpers shared by the memory-planner tests (import as a module, like passes_kit).

Every model is small enough that its plan can be checked by hand: the docstrings give each tensor's
bytes so the expected offsets in the tests can be recomputed on paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, info, ints, make, randn, run_pass

from graphopt import Model, Node, import_model
from graphopt.analyses.shapes import refresh_types
from graphopt.memory import METADATA_KEY, MemoryPlan, Placement

TINY_CNN = str(Path(__file__).resolve().parents[2] / "fixtures" / "tiny_cnn.onnx")
Row = tuple[int, int, int, "int | None", "str | None", bool]


def typed(proto: onnx.ModelProto) -> Model:
    """``proto`` imported with every node output typed (what plan-memory sees after refresh_types)."""
    model = import_model(proto)
    refresh_types(model)
    return model


def plan_of(model: Model) -> MemoryPlan:
    """The plan plan-memory stored in ``model``'s metadata."""
    return MemoryPlan.from_json(model.metadata_props[METADATA_KEY])


def planned(source: onnx.ModelProto | Model, **options: Any) -> tuple[Model, MemoryPlan, dict[str, int]]:
    """Run plan-memory with ``options`` (the IR is verified); the model, its plan and the stats."""
    model, result = run_pass(source, "plan-memory", **options)
    return model, plan_of(model), result.stats


def table(plan: MemoryPlan) -> dict[str, Row]:
    """Each tensor as (size, start, end, offset, alias_of, in_place), by name."""
    return {t.name: (t.size, t.start, t.end, t.offset, t.alias_of, t.in_place) for t in plan.tensors}


def names(order: Sequence[Node]) -> list[str]:
    """Each node of ``order`` named by its first output."""
    return [node.outputs[0].name for node in order]


def with_tensor(plan: MemoryPlan, name: str, **changes: Any) -> MemoryPlan:
    """A copy of ``plan`` whose tensor ``name`` has ``changes`` (a hand-corrupted plan)."""
    copy = MemoryPlan.from_json(plan.to_json())
    copy.tensors = [Placement(**{**t.__dict__, **changes}) if t.name == name else t for t in copy.tensors]
    return copy


def chain() -> onnx.ModelProto:
    """x[1,3,4,4] -> Conv(2 filters, pads 1) -> c[1,2,4,4] (128 B) -> Relu -> r (128 B) -> Reshape ->
    f[1,32] (128 B) -> MatMul -> y[1,5] (20 B, the graph output)."""
    return make([h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
                 h.make_node("Relu", ["c"], ["r"], name="relu"),
                 h.make_node("Reshape", ["r", "shape"], ["f"], name="reshape"),
                 h.make_node("MatMul", ["f", "m"], ["y"], name="matmul")],
                [info("x", [1, 3, 4, 4])], [info("y", [1, 5])],
                [array("w", randn(2, 3, 3, 3) * 0.3), ints("shape", [1, 32]),
                 array("m", randn(32, 5, seed=1))])


def two_branches() -> onnx.ModelProto:
    """Two independent branches, stored with both big producers first: b1, b2 = Tile(x) [64,4]
    (1024 B each), then s1 = ReduceSum(b1), s2 = ReduceMax(b2) (4 B scalars), y = s1 + s2. Running
    each reduction right after its Tile keeps one big tensor live instead of two."""
    return make([h.make_node("Tile", ["x", "reps"], ["b1"]), h.make_node("Tile", ["x", "reps"], ["b2"]),
                 h.make_node("ReduceSum", ["b1"], ["s1"], keepdims=0),
                 h.make_node("ReduceMax", ["b2"], ["s2"], keepdims=0),
                 h.make_node("Add", ["s1", "s2"], ["y"])],
                [info("x", [1, 4])], [info("y", [])], [ints("reps", [64, 1])])


def mlp() -> onnx.ModelProto:
    """x[4,16] -> MatMul -> Add -> Relu -> MatMul -> Add -> Softmax -> y[4,8]."""
    return make([h.make_node("MatMul", ["x", "w1"], ["m1"]), h.make_node("Add", ["m1", "b1"], ["a1"]),
                 h.make_node("Relu", ["a1"], ["r1"]), h.make_node("MatMul", ["r1", "w2"], ["m2"]),
                 h.make_node("Add", ["m2", "b2"], ["a2"]), h.make_node("Softmax", ["a2"], ["y"], axis=-1)],
                [info("x", [4, 16])], [info("y", [4, 8])],
                [array("w1", randn(16, 32, seed=1) * 0.25), array("b1", randn(32, seed=2)),
                 array("w2", randn(32, 8, seed=3) * 0.2), array("b2", randn(8, seed=4))])


def residual_cnn() -> onnx.ModelProto:
    """x[1,4,8,8] -> Conv -> c1 -> Relu -> r1 -> Conv -> c2; Add(c2, r1) -> s -> Relu -> r2 ->
    GlobalAveragePool -> g[1,4,1,1] -> Flatten -> f[1,4] -> Gemm -> y[1,3]. Activations are 1 KB."""
    return make([h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
                 h.make_node("Relu", ["c1"], ["r1"]),
                 h.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
                 h.make_node("Add", ["c2", "r1"], ["s"]), h.make_node("Relu", ["s"], ["r2"]),
                 h.make_node("GlobalAveragePool", ["r2"], ["g"]), h.make_node("Flatten", ["g"], ["f"]),
                 h.make_node("Gemm", ["f", "wf", "bf"], ["y"])],
                [info("x", [1, 4, 8, 8])], [info("y", [1, 3])],
                [array("w1", randn(4, 4, 3, 3, seed=1) * 0.2), array("w2", randn(4, 4, 3, 3, seed=2) * 0.2),
                 array("wf", randn(4, 3, seed=3)), array("bf", randn(3, seed=4))])


def _reduce_branch(name: str, op: str, source: str) -> onnx.GraphProto:
    return h.make_graph([h.make_node(op, [source], [name + "_out"], keepdims=0)], name, [],
                        [info(name + "_out", [])])


def if_capture() -> onnx.ModelProto:
    """a = Tile(x) [64,4] (1024 B); o = If(cond) whose then-branch holds an inner If that reads ``a``
    (a capture two levels down, not an input of the outer If); m = ReduceMean(a); y = o + m."""
    inner = h.make_node("If", ["cond"], ["io"], then_branch=_reduce_branch("ithen", "ReduceSum", "a"),
                        else_branch=_reduce_branch("ielse", "ReduceMin", "x"))
    outer = h.make_node("If", ["cond"], ["o"],
                        then_branch=h.make_graph([inner], "then", [], [info("io", [])]),
                        else_branch=_reduce_branch("else", "ReduceMax", "x"))
    return make([h.make_node("Tile", ["x", "reps"], ["a"]), outer,
                 h.make_node("ReduceMean", ["a"], ["m"], keepdims=0), h.make_node("Add", ["o", "m"], ["y"])],
                [info("x", [1, 4]), info("cond", [], T.BOOL)], [info("y", [])], [ints("reps", [64, 1])])


def if_feeds(cond: bool) -> dict[str, np.ndarray]:
    """Inputs of :func:`if_capture`."""
    return {"x": np.arange(4, dtype=np.float32).reshape(1, 4), "cond": np.array(cond)}
