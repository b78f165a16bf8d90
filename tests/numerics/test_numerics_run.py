"""Running models with onnxruntime: outputs by name, one-line errors."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from graphopt import import_model
from graphopt.errors import RuntimeCheckError
from graphopt.numerics.run import run_model, run_proto


def _add_model() -> onnx.ModelProto:
    graph = h.make_graph([h.make_node("Add", ["a", "b"], ["y"])], "add",
                         [h.make_tensor_value_info(n, T.FLOAT, [2, 3]) for n in ("a", "b")],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


def test_run_model_returns_outputs_by_name() -> None:
    """The IR is exported and run on the CPU provider."""
    a, b = np.ones((2, 3), np.float32), np.full((2, 3), 2.0, np.float32)
    out = run_model(import_model(_add_model()), {"a": a, "b": b})
    assert list(out) == ["y"]
    np.testing.assert_array_equal(out["y"], np.full((2, 3), 3.0, np.float32))


def test_run_ignores_feeds_the_model_does_not_take() -> None:
    """Extra feeds (e.g. from an .npz) are dropped."""
    a = np.ones((2, 3), np.float32)
    out = run_proto(_add_model(), {"a": a, "b": a, "unused": a})
    np.testing.assert_array_equal(out["y"], a + a)


def test_model_onnxruntime_cannot_load_is_a_runtime_check_error() -> None:
    """The message says which model and gives onnxruntime's first line."""
    proto = _add_model()
    proto.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(RuntimeCheckError, match="^onnxruntime cannot load the candidate: ") as info:
        run_proto(proto, {}, what="candidate")
    assert "\n" not in str(info.value)


def test_model_onnxruntime_cannot_run_is_a_runtime_check_error() -> None:
    """A wrong feed shape fails at run time, reported on one line."""
    with pytest.raises(RuntimeCheckError, match="^onnxruntime failed to run the model: "):
        run_proto(_add_model(), {"a": np.ones((5,), np.float32), "b": np.ones((5,), np.float32)})
