"""Models and deliberately odd passes for the pass-infrastructure tests (not registered globally)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt import Model, PassResult, export_model
from graphopt.onnx_io import serialize
from graphopt.pass_infra.registry import PassRegistry


def add_model() -> onnx.ModelProto:
    """y = a + b over two float [2, 3] inputs."""
    graph = h.make_graph([h.make_node("Add", ["a", "b"], ["y"])], "add",
                         [h.make_tensor_value_info(n, T.FLOAT, [2, 3]) for n in ("a", "b")],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def messy_model() -> onnx.ModelProto:
    """y = Relu(x) * (c1 + c2) with a dead Neg: DCE and fold-constants both have work."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Neg", ["x"], ["dead"]),
             h.make_node("Add", ["c1", "c2"], ["s"]), h.make_node("Mul", ["r", "s"], ["y"])]
    inits = [nh.from_array(np.array([1, 2, 3], np.float32), "c1"),
             nh.from_array(np.array([4, 5, 6], np.float32), "c2")]
    graph = h.make_graph(nodes, "messy", [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 3])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def snapshot(model: Model) -> bytes:
    """Deterministic bytes of the exported model, to prove it is intact."""
    return serialize(export_model(model))


def op_types(model: Model) -> list[str]:
    """Op types of the main graph, in order."""
    return [n.op_type for n in model.graph]


@dataclass
class AlwaysChanges:
    """Claims a change on every run, so a fixed point never converges."""

    name: ClassVar[str] = "always-changes"

    def run(self, model: Model) -> PassResult:
        return PassResult(True, {"runs": 1})


@dataclass
class DamagesThenRaises:
    """Turns every Add into a Sub, then raises: a rollback must undo the damage."""

    name: ClassVar[str] = "damages-then-raises"

    def run(self, model: Model) -> PassResult:
        for node in model.graph:
            node.op_type = "Sub" if node.op_type == "Add" else node.op_type
        raise RuntimeError("boom")


@dataclass
class LeavesDanglingUse:
    """Removes the first node although its output is still read."""

    name: ClassVar[str] = "leaves-dangling-use"
    claim_change: bool = True

    def run(self, model: Model) -> PassResult:
        model.graph.remove(model.graph.nodes[0], safe=False)
        return PassResult(self.claim_change, {"removed": 1})


@dataclass
class ReturnsNone:
    """Forgets to return a PassResult (a programming error, never swallowed)."""

    name: ClassVar[str] = "returns-none"

    def run(self, model: Model) -> PassResult:
        return None  # type: ignore[return-value]


@dataclass
class WithOptions:
    """Has one option of each convertible type."""

    name: ClassVar[str] = "with-options"
    limit: int = 8
    flag: bool = False
    ratio: float = 0.5
    label: str = "x"

    def run(self, model: Model) -> PassResult:
        return PassResult(False, {})


class Plain:
    """A pass that is not a dataclass, so it takes no options."""

    name: ClassVar[str] = "plain"

    def run(self, model: Model) -> PassResult:
        return PassResult(False, {})


def registry(*classes: type) -> PassRegistry:
    """A private registry holding the built-ins (entry points) and ``classes``."""
    reg = PassRegistry()
    reg.load_entry_points()
    for cls in classes:
        reg.register(cls)
    return reg
