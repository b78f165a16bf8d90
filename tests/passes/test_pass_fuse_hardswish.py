"""fuse-normalization, the ReLU6 forms: x * clip(x + 3, 0, 6) / 6 becomes HardSwish (from opset 14;
before, x * HardSigmoid(x)), clip(x + 3, 0, 6) / 6 becomes HardSigmoid. Exact structure, outputs
against onnxruntime on the original, and the constants and readers that keep the nodes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper as h
from passes_kit import array, info, make, op_types, ort, randn, run_pass

PASS = "fuse-normalization"


def _relu6(form: str, *, opset: int = 17, three: float = 3.0, hi: float = 6.0, six: float | None = None,
           side_read: bool = False, swap: bool = False) -> onnx.ModelProto:
    """``form``: "outer" (x * r) / 6, "inner" x * (r / 6), "sigmoid" r / 6, each "-mul" variant with
    * (1/6); r = clip(x + 3, 0, 6), bounds as inputs (opset >= 11) or attributes."""
    scale_op = "Mul" if form.endswith("-mul") else "Div"
    six = (1 / 6 if scale_op == "Mul" else 6.0) if six is None else six
    add = h.make_node("Add", ["three", "x"] if swap else ["x", "three"], ["a"])
    clip = h.make_node("Clip", ["a", "lo", "hi"], ["r"]) if opset >= 11 else \
        h.make_node("Clip", ["a"], ["r"], min=0.0, max=hi)
    kind = form.split("-")[0]
    if kind == "outer":
        body = [h.make_node("Mul", ["r", "x"] if swap else ["x", "r"], ["m"]),
                h.make_node(scale_op, ["m", "six"], ["y"])]
    elif kind == "inner":
        body = [h.make_node(scale_op, ["r", "six"], ["s"]), h.make_node("Mul", ["x", "s"], ["y"])]
    else:
        body = [h.make_node(scale_op, ["r", "six"], ["y"])]
    outputs = [info("y", None)] + ([info("r", None)] if side_read else [])
    inits = [array("three", np.array(three, np.float32)), array("six", np.array(six, np.float32))]
    if opset >= 11:
        inits += [array("lo", np.array(0.0, np.float32)), array("hi", np.array(hi, np.float32))]
    return make([add, clip, *body], [info("x", [2, 3, 4])], outputs, inits, opset=opset)


def _close(proto: onnx.ModelProto, model) -> None:  # type: ignore[no-untyped-def]
    feeds = {"x": randn(2, 3, 4) * 4}  # across both kinks (-3 and 3)
    expected, actual = ort(proto, feeds), ort(model, feeds)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("form", ["outer", "outer-mul", "inner", "inner-mul"])
@pytest.mark.parametrize("swap", [False, True])
def test_relu6_hardswish_forms_become_one_hardswish(form: str, swap: bool) -> None:
    proto = _relu6(form, swap=swap)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["HardSwish"]
    assert sum(v for k, v in result.stats.items() if k.startswith("fused_hardswish")) == 1
    _close(proto, model)


@pytest.mark.parametrize("opset", [10, 13])
def test_before_opset_14_hardswish_is_x_times_hardsigmoid(opset: int) -> None:
    """No HardSwish before 14: Mul(x, HardSigmoid(x, 1/6, 1/2)); Clip bounds as attributes at 10."""
    proto = _relu6("outer", opset=opset)
    model, _ = run_pass(proto, PASS)
    assert sorted(op_types(model)) == ["HardSigmoid", "Mul"]
    sigmoid = next(n for n in model.graph if n.op_type == "HardSigmoid")
    assert sigmoid.attr("alpha") == pytest.approx(1 / 6) and sigmoid.attr("beta") == 0.5
    _close(proto, model)


@pytest.mark.parametrize("form", ["sigmoid", "sigmoid-mul"])
def test_relu6_over_six_becomes_hardsigmoid(form: str) -> None:
    proto = _relu6(form)
    model, _ = run_pass(proto, PASS)
    assert op_types(model) == ["HardSigmoid"]
    _close(proto, model)


@pytest.mark.parametrize("change", [dict(three=2.0), dict(hi=5.0), dict(six=5.0), dict(side_read=True)],
                         ids=["add-2", "clip-to-5", "divide-by-5", "clip-read-elsewhere"])
def test_other_constants_or_a_read_intermediate_keep_the_nodes(change: dict) -> None:
    proto = _relu6("outer", **change)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Add", "Clip", "Mul", "Div"] and not result.changed


@settings(max_examples=60, deadline=None)
@given(form=st.sampled_from(["outer", "outer-mul", "inner", "inner-mul", "sigmoid", "sigmoid-mul"]),
       opset=st.sampled_from([10, 13, 14, 17]), swap=st.booleans(),
       three=st.sampled_from([3.0, 2.5]), hi=st.sampled_from([6.0, 4.0]))
def test_relu6_variants_keep_their_outputs_and_fuse_exactly_when_the_constants_are_3_and_6(
        form: str, opset: int, swap: bool, three: float, hi: float) -> None:
    proto = _relu6(form, opset=opset, swap=swap, three=three, hi=hi)
    model, _ = run_pass(proto, PASS)
    fused = bool({"HardSwish", "HardSigmoid"} & set(op_types(model)))
    assert fused == (three == 3.0 and hi == 6.0)
    _close(proto, model)
