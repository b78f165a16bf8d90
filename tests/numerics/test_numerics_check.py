"""The per-pass NumericCheck instrument: skips unchanged models, names what differs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from graphopt import PassResult, import_model
from graphopt.numerics.check import NumericCheck, prepare_check
from graphopt.pass_infra.manager import PassRecord


def _add_model() -> onnx.ModelProto:
    graph = h.make_graph([h.make_node("Add", ["a", "b"], ["y"])], "add",
                         [h.make_tensor_value_info(n, T.FLOAT, [2, 3]) for n in ("a", "b")],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


def _checker(tolerance: tuple[float, float] | None = None) -> tuple[NumericCheck, dict[str, np.ndarray]]:
    checker = prepare_check(import_model(_add_model()), tolerance=tolerance)
    return checker, checker.reference.feeds[0]


def test_check_skips_passes_that_changed_nothing() -> None:
    """No session is spent on an unchanged model."""
    checker, _ = _checker()
    assert checker.after_pass(PassRecord("p"), import_model(_add_model()), PassResult(False)) is None
    assert checker.sessions == 0


def test_check_spends_no_session_when_no_node_computes_anything_new() -> None:
    """A pass that reports a change but leaves every node's computation as it was is 'unchanged'."""
    checker, _ = _checker()
    record = PassRecord("p")
    assert checker.after_pass(record, import_model(_add_model()), PassResult(True)) is None
    assert record.checks["numeric"]["strength"] == "unchanged"
    assert (checker.sessions, checker.failures) == (0, [])


def test_check_accepts_an_equivalent_model_and_records_zero_error() -> None:
    """An Add with swapped operands computes the same: ok, zero error, one session."""
    checker, _ = _checker()
    swapped = import_model(_add_model())
    node = swapped.graph.nodes[0]
    a, b = node.inputs
    node.set_inputs([b, a])
    record = PassRecord("p")
    assert checker.after_pass(record, swapped, PassResult(True)) is None
    numeric = record.checks["numeric"]
    summary = (numeric["ok"], numeric["strength"], numeric["max_abs"], numeric["max_rel"])
    assert summary == (True, "ok", 0.0, 0.0)
    assert (checker.sessions, checker.failures) == (1, [])


def test_check_rejects_a_wrong_model_naming_the_output() -> None:
    """A Sub instead of an Add fails; the failure is also kept on the checker."""
    checker, feeds = _checker()
    wrong = import_model(_add_model())
    wrong.graph.nodes[0].op_type = "Sub"
    record = PassRecord("swap")
    reason = checker.after_pass(record, wrong, PassResult(True))
    assert reason is not None and reason.startswith("numeric check failed: output 'y' (output of Sub '')")
    assert record.checks["numeric"]["ok"] is False
    assert record.checks["numeric"]["max_abs"] == pytest.approx(float(np.max(np.abs(2 * feeds["b"]))))
    assert [name for name, _ in checker.failures] == ["swap"]


def test_check_tolerance_override_can_accept_a_change() -> None:
    """A huge atol lets even a Sub pass: the override reaches the comparison."""
    checker, _ = _checker(tolerance=(0.0, 100.0))
    wrong = import_model(_add_model())
    wrong.graph.nodes[0].op_type = "Sub"
    assert checker.check(PassRecord("p"), wrong) is None


def test_check_reports_a_model_onnxruntime_cannot_load_as_a_failure() -> None:
    """A broken candidate is a failed check (so the pass is rolled back), not a crash."""
    checker, _ = _checker()
    broken = import_model(_add_model())
    broken.graph.nodes[0].op_type = "NoSuchOp"
    record = PassRecord("breaker")
    reason = checker.check(record, broken)
    assert reason is not None and reason.startswith("onnxruntime cannot load the model after pass 'breaker'")
    assert record.checks["numeric"]["ok"] is False
