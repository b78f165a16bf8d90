"""Helpers shared by the convert-opset tests: run a conversion or a refusal, build a one-node model, read
its node (tests/passes is not a package: import as a module, like passes_kit)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import assert_same_outputs, info, make, ort, run_pass

from graphopt import Model, Node
from graphopt.errors import UsageError

PASS = "convert-opset"


def convert(proto: onnx.ModelProto, target: int, feeds: dict[str, np.ndarray], *,
            atol: float | None = None) -> tuple[Model, dict[str, int]]:
    """Run the pass to ``target``: the opset is the target, outputs agree with onnxruntime (bit-exact
    unless ``atol`` is given)."""
    model, result = run_pass(proto, PASS, target=target)
    assert result.changed
    assert model.opset_imports[""] == target
    if atol is None:
        assert_same_outputs(proto, model, feeds)
    else:
        before, after = ort(proto, feeds), ort(model, feeds)
        assert list(after) == list(before)
        for name, expected in before.items():
            assert after[name].dtype == expected.dtype and after[name].shape == expected.shape
            np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=atol, err_msg=name)
    return model, result.stats


def refused(proto: onnx.ModelProto, target: int, *fragments: str) -> str:
    """The pass raises a usage error (exit code 2) whose message holds every fragment."""
    with pytest.raises(UsageError) as caught:
        run_pass(proto, PASS, target=target)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def const_at(node: Node, index: int) -> list:
    """The constant at input ``index`` of ``node``, as (nested) Python lists; fails if it is not one."""
    value = node.inputs[index]
    assert value is not None and value.const is not None
    return np.asarray(value.const.numpy()).tolist()


def one_op(op: str, inputs: list[str], attrs: dict[str, Any], x_shape: list[int], opset: int,
                   inits: list[onnx.TensorProto] = (), outputs: tuple[str, ...] = ("y",),
                   elem: int = T.FLOAT) -> onnx.ModelProto:
    """A model of one node ``n0`` reading input ``x`` (``x_shape``, ``elem``) and ``inits``, at ``opset``."""
    node = h.make_node(op, inputs, list(outputs), name="n0", **attrs)
    return make([node], [info("x", x_shape, elem)], [info(o, None, elem) for o in outputs], list(inits),
                opset=opset)
