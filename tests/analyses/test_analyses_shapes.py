"""refresh_types: infers only what is missing, and does not rerun an inference that found nothing new."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import graphopt.analyses.shapes as shapes
from graphopt import Node, import_model


def _model() -> onnx.ModelProto:
    """x[N, 4] -> Relu -> r; NonZero(r) -> z (whose second dim inference can never know)."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("NonZero", ["r"], ["z"])]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, ["N", 4])],
                         [h.make_tensor_value_info("z", T.INT64, None)])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def _count_inferences(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = shapes.infer_types
    monkeypatch.setattr(shapes, "infer_types", lambda m: calls.append(1) or real(m))
    return calls


def test_inference_runs_once_while_the_model_and_its_gaps_stay_the_same(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """NonZero's output keeps an unknown dim: the first refresh infers (Relu gets [N, 4]), the second
    sees the same node count and the same gaps and does not run inference again."""
    calls = _count_inferences(monkeypatch)
    model = import_model(_model())
    assert shapes.refresh_types(model) > 0
    relu = next(n for n in model.graph if n.op_type == "Relu")
    assert relu.outputs[0].shape == ("N", 4)
    assert shapes.refresh_types(model) == 0
    assert len(calls) == 1


def test_inference_runs_again_after_the_model_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new untyped node (another Relu) changes the stamp: inference runs and types it."""
    calls = _count_inferences(monkeypatch)
    model = import_model(_model())
    shapes.refresh_types(model)
    relu = next(n for n in model.graph if n.op_type == "Relu")
    extra = Node("Relu", [relu.outputs[0]])
    model.graph.insert_after(relu, extra)
    model.graph.outputs.append(extra.outputs[0])
    extra.outputs[0].name = "extra"
    assert shapes.refresh_types(model) > 0
    assert extra.outputs[0].shape == ("N", 4) and len(calls) == 2
