"""The onnx.reference fallback: evaluates one node exactly, answers None when it cannot."""

from __future__ import annotations

import numpy as np
from graphopt.passes.fold_constants._reference_fallback import evaluate_with_reference
from onnx import helper as h
from passes_kit import array, make, untyped

from graphopt import Node, import_model


def _node(op: str, count: int, **attrs: object) -> Node:
    names = [f"c{i}" for i in range(count)]
    proto = make([h.make_node(op, names, ["y"], **attrs)], [], [untyped("y")],
                 [array(n, np.zeros(1, np.float32)) for n in names])
    return import_model(proto).graph.nodes[0]


def test_reference_evaluates_mod_with_the_sign_of_the_divisor() -> None:
    """Mod(-7, 3) = 2 and Mod(7, -3) = -2 (Python semantics, fmod=0)."""
    out = evaluate_with_reference(_node("Mod", 2), [np.array([-7, 7]), np.array([3, -3])], 17)
    assert out is not None and len(out) == 1
    np.testing.assert_array_equal(out[0], np.array([2, -2]))


def test_reference_answers_none_for_an_unknown_op() -> None:
    """An op the reference does not know is not an error, just not foldable."""
    assert evaluate_with_reference(_node("NoSuchOp", 1), [np.zeros(1, np.float32)], 17) is None


def test_reference_answers_none_when_the_op_itself_fails() -> None:
    """An out-of-range Gather index makes the reference raise; the fallback turns that into None."""
    node = _node("Gather", 2)
    assert evaluate_with_reference(node, [np.arange(3), np.array([7])], 17) is None
