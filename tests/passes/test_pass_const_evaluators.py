"""The per-op constant evaluators give exactly what onnxruntime computes, dtype and shape included.

Each case is one node whose inputs are all initializers and whose output is the graph output: after
fold-constants the graph has no node left, and the constant must equal onnxruntime's output on the
original model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, make, op_types, ort, run_pass, untyped

I64 = np.int64
X24 = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
D15 = np.arange(15, dtype=np.float32).reshape(5, 3)


@dataclass
class Case:
    """An op applied to constant arrays (None for an omitted optional input)."""

    op: str
    inputs: list[Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    opset: int = 17
    by_reference: bool = False  # the numpy evaluator declines; onnx.reference folds it
    rtol: float = 0.0

    def proto(self) -> onnx.ModelProto:
        """The single-node model with all inputs as initializers."""
        names = [f"c{i}" if x is not None else "" for i, x in enumerate(self.inputs)]
        inits = [array(n, x) for n, x in zip(names, self.inputs) if x is not None]
        node = h.make_node(self.op, names, ["y"], **self.attrs)
        return make([node], [], [untyped("y")], inits, opset=self.opset)


def i64(*values: int) -> np.ndarray:
    """An int64 vector."""
    return np.array(values, I64)


CASES: dict[str, Case] = {
    "div_int64_truncates_toward_zero": Case("Div", [i64(-7, 7, -7, 7, -1, 0, -9),
                                                    i64(2, 2, -2, -2, 3, 5, 3)]),
    "div_int32_negative": Case("Div", [np.array([-7, 7, -8], np.int32), np.array([2, -2, -3], np.int32)]),
    "div_uint8": Case("Div", [np.array([200, 7], np.uint8), np.array([3, 2], np.uint8)]),
    "slice_negative_step_from_last": Case("Slice", [X24, i64(-1), i64(-100), i64(2), i64(-1)]),
    "slice_negative_step_clamps_start": Case("Slice", [X24, i64(10), i64(-10), i64(1), i64(-2)]),
    "slice_two_axes_negative_steps": Case("Slice", [X24, i64(-1, 3), i64(0, -100), i64(0, 2), i64(-1, -2)]),
    "slice_negative_step_empty": Case("Slice", [X24, i64(2), i64(1), i64(1), i64(1)]),
    "slice_clamps_both_ends": Case("Slice", [X24, i64(-100), i64(100), i64(-1), i64(3)]),
    "slice_negative_end": Case("Slice", [X24, i64(1), i64(-1), i64(2)]),
    "slice_opset9_attributes_clamp": Case("Slice", [X24], {"starts": [-1, -100], "ends": [100, 2],
                                                           "axes": [2, -2]}, opset=9),
    "range_int64_negative_delta": Case("Range", [np.array(10, I64), np.array(1, I64), np.array(-3, I64)]),
    "range_int32": Case("Range", [np.array(0, np.int32), np.array(10, np.int32), np.array(3, np.int32)]),
    "range_empty": Case("Range", [np.array(5, I64), np.array(5, I64), np.array(1, I64)]),
    "range_float_fraction_count": Case("Range", [np.array(0.0, np.float32), np.array(1.0, np.float32),
                                                 np.array(0.3, np.float32)], rtol=1e-6),
    "range_float_negative_delta": Case("Range", [np.array(1.0, np.float32), np.array(-2.0, np.float32),
                                                 np.array(-0.7, np.float32)], rtol=1e-6),
    "cast_float_to_int32_truncates": Case("Cast", [np.array([-1.7, -0.5, 0.0, 0.5, 1.5, 2.5], np.float32)],
                                          {"to": T.INT32}),
    "cast_float_to_bool": Case("Cast", [np.array([-1.7, 0.0, 0.5, -0.0], np.float32)], {"to": T.BOOL}),
    "cast_float_to_float16_rounds": Case("Cast", [np.array([0.1, 65519.0, 1e-8, 2.5], np.float32)],
                                         {"to": T.FLOAT16}),
    "cast_bool_to_float": Case("Cast", [np.array([True, False])], {"to": T.FLOAT}),
    "cast_int64_to_int16_wraps": Case("Cast", [i64(-1, 255, 256, 70000)], {"to": T.INT16}),
    "cast_int64_to_uint8_wraps": Case("Cast", [i64(-1, 255, 256, 70000)], {"to": T.UINT8}),
    "gather_negative_indices_axis0": Case("Gather", [D15, np.array([[-1, 0], [-5, 2]], I64)], {"axis": 0}),
    "gather_negative_indices_axis1": Case("Gather", [D15, i64(-1, -3)], {"axis": 1}),
    "gather_scalar_int32_index_negative_axis": Case("Gather", [D15, np.array(-2, np.int32)], {"axis": -1}),
    "squeeze_opset11_negative_axes_attribute": Case("Squeeze", [np.zeros((1, 2, 1, 3), np.float32)],
                                                    {"axes": [0, -2]}, opset=11),
    "squeeze_opset11_all_ones": Case("Squeeze", [np.zeros((1, 2, 1, 3), np.float32)], opset=11),
    "squeeze_opset13_axes_input": Case("Squeeze", [np.zeros((1, 2, 1, 3), np.float32), i64(0, -2)], opset=13),
    "squeeze_opset13_no_axes": Case("Squeeze", [np.zeros((1, 2, 1, 3), np.float32)], opset=13),
    "unsqueeze_opset11_axes_attribute": Case("Unsqueeze", [D15], {"axes": [0, -1]}, opset=11),
    "unsqueeze_opset11_interleaved": Case("Unsqueeze", [X24], {"axes": [-4, 3]}, opset=11),
    "unsqueeze_opset13_unsorted_negative": Case("Unsqueeze", [D15, i64(-1, 0, 3)], opset=13),
    "unsqueeze_opset13_scalar": Case("Unsqueeze", [np.array(3.0, np.float32), i64(0)], opset=13),
    "reshape_allowzero_makes_empty_dim": Case("Reshape", [np.zeros((0, 3), np.float32), i64(3, 0)],
                                              {"allowzero": 1}, opset=14),
    "reshape_allowzero_keeps_zero": Case("Reshape", [np.zeros((0, 3), np.float32), i64(0, 3)],
                                         {"allowzero": 1}, opset=14),
    "reshape_zero_copies_without_allowzero": Case("Reshape", [X24, i64(0, -1)], opset=14),
    "reshape_minus_one_first": Case("Reshape", [X24, i64(-1, 0, 2)], opset=14),
    "shape_start_negative": Case("Shape", [X24], {"start": -2}, opset=15),
    "shape_start_end_clamped": Case("Shape", [X24], {"start": -10, "end": 10}, opset=15),
    "constant_of_shape_int32_value": Case("ConstantOfShape", [i64(2, 3)],
                                          {"value": onnx.numpy_helper.from_array(np.array([7], np.int32))}),
    "constant_of_shape_scalar_default": Case("ConstantOfShape", [np.array([], I64)]),
    "flatten_negative_axis": Case("Flatten", [X24], {"axis": -1}),
    "flatten_axis_zero": Case("Flatten", [X24], {"axis": 0}),
    "expand_bidirectional": Case("Expand", [np.array([[1], [2]], np.float32), i64(3, 1, 4)]),
    "where_broadcast_keeps_int32": Case("Where", [np.array([True, False]),
                                                  np.array([[1, 2], [3, 4]], np.int32),
                                                  np.array(9, np.int32)]),
    "max_broadcast": Case("Max", [np.array([1, 5], np.float32), np.array([[3], [4]], np.float32)]),
    "concat_negative_axis_with_empty": Case("Concat", [np.zeros((0, 3), np.float32),
                                                       np.ones((2, 3), np.float32)], {"axis": -2}),
    "sub_int8_wraps": Case("Sub", [np.array([-128], np.int8), np.array([1], np.int8)]),
    "equal_nan_is_false": Case("Equal", [np.array([1.0, np.nan], np.float32),
                                         np.array([1.0, np.nan], np.float32)]),
    "mod_int_sign_of_divisor": Case("Mod", [i64(-7, 7), i64(3, -3)], by_reference=True),
    "mod_fmod_sign_of_dividend": Case("Mod", [np.array([-7.5, 7.5], np.float32),
                                              np.array([3, -3], np.float32)], {"fmod": 1}, by_reference=True),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_folded_constant_equals_onnxruntime(case: Case) -> None:
    """The node folds away and its constant equals onnxruntime's output bit for bit (float Range: 1e-6)."""
    proto = case.proto()
    expected = ort(proto, {})["y"]
    model, result = run_pass(proto, "fold-constants")
    stats = {"folded": 1, f"folded_{case.op}": 1}
    if case.by_reference:
        stats["reference_evaluations"] = 1
    assert result.stats == stats
    assert op_types(model) == []
    got = model.graph.outputs[0].const.numpy()
    assert (got.dtype, got.shape) == (expected.dtype, expected.shape)
    if case.rtol:
        np.testing.assert_allclose(got, expected, rtol=case.rtol)
    else:
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(ort(model, {})["y"], got)  # the exported constant round-trips


def test_float_range_element_count_uses_ceil_of_the_quotient() -> None:
    """Range(0, 1, 0.3) has 4 elements: ceil(1 / 0.3)."""
    model, _ = run_pass(CASES["range_float_fraction_count"].proto(), "fold-constants")
    assert model.graph.outputs[0].const.shape == (4,)


def test_never_fold_integer_division_by_zero() -> None:
    """Division by zero of integers is undefined: the Div must stay."""
    proto = Case("Div", [i64(7, 1), i64(0, 1)]).proto()
    model, result = run_pass(proto, "fold-constants")
    assert op_types(model) == ["Div"]
    assert result.changed is False


def test_never_fold_out_of_range_float_to_int_cast() -> None:
    """300.7 does not fit uint8: the result is implementation defined, so the Cast must stay."""
    proto = Case("Cast", [np.array([1.5, 300.7], np.float32)], {"to": T.UINT8}).proto()
    model, result = run_pass(proto, "fold-constants")
    assert op_types(model) == ["Cast"]
    assert result.changed is False


@pytest.mark.parametrize("end", [2**63 - 1, 2**31 - 1])
def test_never_fold_a_reversing_slice_whose_end_is_int_max(end: int) -> None:
    """Slice(arange(4), start 2, end INT_MAX, step -1): the spec says [], onnxruntime [2, 1, 0].
    Folding either way would change what some runtime computes, so the Slice stays."""
    proto = make([h.make_node("Slice", ["v", "st", "en", "ax", "sp"], ["o"])], [], [untyped("o")],
                 [array("v", np.arange(4)), array("st", np.array([2])), array("en", np.array([end])),
                  array("ax", np.array([0])), array("sp", np.array([-1]))])
    model, result = run_pass(proto, "fold-constants")
    assert op_types(model) == ["Slice"]
    assert (result.changed, result.stats) == (False, {"unfoldable": 1})
    assert ort(proto, {})["o"].tolist() == [2, 1, 0]  # what the kept Slice computes
