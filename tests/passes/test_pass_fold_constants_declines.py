"""fold-constants tells a designed decline (counted per reason) from an evaluator bug (surfaced with the
node's name, and refused by --strict) from inputs the op rejects at run time (not folded)."""

from __future__ import annotations

import numpy as np
import pytest
from graphopt.passes.fold_constants import _evaluators
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt


def _constant_add(a: np.ndarray, b: np.ndarray) -> graphopt.Model:
    graph = h.make_graph([h.make_node("Add", ["c1", "c2"], ["s"], name="the_add"),
                          h.make_node("Mul", ["x", "s"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [3])],
                         [h.make_tensor_value_info("y", T.FLOAT, [3])],
                         [nh.from_array(a, "c1"), nh.from_array(b, "c2")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return graphopt.import_model(model)


def _broken(node: object, inputs: object, opset: int) -> list[np.ndarray]:
    raise KeyError("a bug in an evaluator")


def test_an_evaluator_that_raises_where_the_reference_succeeds_is_a_reported_bug(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the exception was swallowed uncounted. Now the fold still happens (reference result),
    the pass reports a warning naming the node, and --strict refuses the run."""
    monkeypatch.setitem(_evaluators.EVALUATORS, "Add", _broken)
    model = _constant_add(np.ones(3, np.float32), np.full(3, 2, np.float32))
    result = graphopt.optimize(model, pipeline="fold-constants")
    record = result.report.records[0]
    assert record.status == "changed" and record.stats["evaluator_errors"] == 1
    assert len(record.warnings) == 1 and "raised KeyError" in record.warnings[0]
    assert "node 'the_add'" in record.warnings[0]
    assert result.report.warnings == [f"pass 'fold-constants': {record.warnings[0]}"]
    assert any("the_add" in p for p in result.strict_problems())
    assert [n.op_type for n in result.model.graph] == ["Mul"]
    np.testing.assert_array_equal(result.model.graph.nodes[0].inputs[1].const.numpy(), np.full(3, 3.0))


def test_inputs_the_op_rejects_are_not_folded_and_not_called_a_bug() -> None:
    """Add of [3] and [4] fails at run time: numpy raises, the reference fails too: no fold, no warning."""
    model = _constant_add(np.ones(3, np.float32), np.ones(4, np.float32))
    result = graphopt.optimize(model, pipeline="fold-constants", check="off")
    record = result.report.records[0]
    assert record.status == "unchanged" and record.warnings == [] and "evaluator_errors" not in record.stats


def test_a_designed_decline_is_counted_by_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """FoldDeclined leaves the node to onnx.reference and is counted under its reason."""
    def declines(node: object, inputs: object, opset: int) -> list[np.ndarray]:
        raise graphopt.errors.FoldDeclined("not this case")

    monkeypatch.setitem(_evaluators.EVALUATORS, "Add", declines)
    result = graphopt.optimize(_constant_add(np.ones(3, np.float32), np.ones(3, np.float32)),
                               pipeline="fold-constants")
    record = result.report.records[0]
    assert record.stats["declined: not this case"] == 1 and record.warnings == []
    assert record.status == "changed"
