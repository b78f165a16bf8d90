"""Output comparison: shapes, dtypes, NaN/Inf positions, scale-relative float tolerance, exact integers."""

from __future__ import annotations

import numpy as np
import pytest

from graphopt.numerics.compare import Mismatch, compare_outputs, max_errors, tolerance_for


def _logits(scale: float = 200.0) -> np.ndarray:
    """float32 logits whose largest magnitude is exactly ``scale``."""
    x = np.random.default_rng(0).uniform(-1, 1, size=(4, 1000)).astype(np.float32)
    x[0, 0] = 1.0
    return (x * scale).astype(np.float32)


def test_equal_outputs_have_no_mismatch() -> None:
    """Identical dicts compare clean."""
    out = {"y": _logits(), "ids": np.array([1, 2], np.int64)}
    assert compare_outputs(out, {k: v.copy() for k, v in out.items()}) == []


def test_a_6e_5_change_on_logits_of_scale_200_passes() -> None:
    """Folding BatchNorm into Conv moves logits by ~6e-5: well inside 1e-5 + 1e-4 * 200."""
    expected = _logits()
    actual = expected.copy()
    actual[1, 2] += np.float32(6e-5)
    assert compare_outputs({"y": expected}, {"y": actual}) == []


def test_a_one_percent_relative_change_fails_with_its_errors() -> None:
    """1e-2 of the scale (2.0 on logits of 200) is a bug; abs and rel errors are reported."""
    expected = _logits()
    actual = expected.copy()
    actual[0, 0] += np.float32(2.0)
    (mismatch,) = compare_outputs({"y": expected}, {"y": actual})
    assert (mismatch.output, mismatch.reason) == ("y", "values differ beyond rtol=0.0001, atol=1e-05")
    assert mismatch.max_abs == pytest.approx(2.0)
    assert mismatch.max_rel == pytest.approx(0.01)
    assert str(mismatch) == ("output 'y': values differ beyond rtol=0.0001, atol=1e-05 "
                             "(max abs err 2, max rel err 0.01)")


def test_tolerance_bound_is_inclusive() -> None:
    """max|diff| == atol + rtol * scale passes, a hair more fails (exact binary values: bound 0.5)."""
    expected = np.array([1.0, 0.5], np.float64)
    assert compare_outputs({"y": expected}, {"y": expected + [0.5, 0.0]}, (0.25, 0.25)) == []
    assert len(compare_outputs({"y": expected}, {"y": expected + [0.5 + 2**-20, 0.0]}, (0.25, 0.25))) == 1


def test_shape_mismatch_is_reported_before_values() -> None:
    """The reason gives both shapes."""
    (m,) = compare_outputs({"y": np.zeros((2, 3), np.float32)}, {"y": np.zeros((3, 2), np.float32)})
    assert m.reason == "shape [3, 2] != expected [2, 3]"


def test_dtype_mismatch_is_reported_even_for_equal_values() -> None:
    """float64 where float32 was expected is a mismatch."""
    (m,) = compare_outputs({"y": np.zeros(3, np.float32)}, {"y": np.zeros(3, np.float64)})
    assert m.reason == "dtype float64 != expected float32"


def test_nan_at_the_same_positions_is_equal() -> None:
    """NaN and Inf where the reference has them are fine."""
    expected = np.array([np.nan, 1.0, np.inf, -np.inf], np.float32)
    assert compare_outputs({"y": expected}, {"y": expected.copy()}) == []


@pytest.mark.parametrize("actual", [
    np.array([1.0, np.nan, np.inf], np.float32),       # NaN moved
    np.array([np.nan, 1.0, -np.inf], np.float32),      # +Inf became -Inf
    np.array([np.nan, 1.0, 5.0], np.float32),          # Inf became finite
])
def test_nan_or_inf_at_other_positions_is_a_mismatch(actual: np.ndarray) -> None:
    """Non-finite values must sit at the same places with the same value."""
    expected = np.array([np.nan, 1.0, np.inf], np.float32)
    (m,) = compare_outputs({"y": expected}, {"y": actual})
    assert (m.reason, m.max_abs, m.max_rel) == ("NaN/Inf positions differ", float("inf"), float("inf"))


def test_integers_must_be_exactly_equal() -> None:
    """An off-by-one in int64 fails however large the values; the count and max abs are given."""
    expected = np.array([10**12, 5, 7], np.int64)
    actual = np.array([10**12 + 1, 5, 7], np.int64)
    (m,) = compare_outputs({"ids": expected}, {"ids": actual})
    assert (m.reason, m.max_abs) == ("1 of 3 values differ (exact dtype)", 1.0)


def test_booleans_must_be_exactly_equal() -> None:
    """A flipped mask bit is a mismatch."""
    (m,) = compare_outputs({"m": np.array([True, False])}, {"m": np.array([True, True])})
    assert m.reason == "1 of 2 values differ (exact dtype)"


def test_missing_output_is_a_mismatch() -> None:
    """Every expected output must be present."""
    assert compare_outputs({"y": np.zeros(1)}, {}) == [
        Mismatch("y", "missing from the optimized model's outputs")]


def test_sequence_outputs_compare_element_wise_and_by_length() -> None:
    """Sequences compare item by item; a length change is one mismatch."""
    seq = [np.zeros(2, np.float32), np.ones(2, np.float32)]
    assert compare_outputs({"s": seq}, {"s": [a.copy() for a in seq]}) == []
    assert [m.reason for m in compare_outputs({"s": seq}, {"s": seq[:1]})] == [
        "sequence outputs differ in kind or length"]
    wrong = [seq[0], seq[1] + 1]
    assert [m.output for m in compare_outputs({"s": seq}, {"s": wrong})] == ["s[1]"]


def test_optional_outputs_must_agree_on_presence() -> None:
    """None against an array is a mismatch; None against None is fine."""
    assert compare_outputs({"o": None}, {"o": None}) == []
    mismatches = compare_outputs({"o": None}, {"o": np.zeros(1)})
    assert [m.reason for m in mismatches] == ["optional presence differs"]


def test_empty_outputs_of_equal_shape_are_equal() -> None:
    """Zero-size tensors have no values to compare."""
    assert compare_outputs({"y": np.zeros((0, 3), np.float32)}, {"y": np.zeros((0, 3), np.float32)}) == []


@pytest.mark.parametrize("dtype,expected", [("float64", (1e-9, 1e-12)), ("float32", (1e-4, 1e-5)),
                                            ("float16", (1e-2, 1e-3))])
def test_default_tolerances_by_dtype(dtype: str, expected: tuple[float, float]) -> None:
    """The README's table."""
    assert tolerance_for(np.dtype(dtype)) == expected


def test_tolerance_override_replaces_the_defaults() -> None:
    """--rtol/--atol reach the comparison."""
    assert tolerance_for(np.dtype("float32"), (0.5, 0.0)) == (0.5, 0.0)
    expected = np.array([1.0], np.float32)
    assert compare_outputs({"y": expected}, {"y": np.array([1.4], np.float32)}, (0.5, 0.0)) == []


def test_float16_tolerance_is_looser_than_float32() -> None:
    """A 0.5% change passes in float16 and fails in float32."""
    for dtype, ok in ((np.float16, True), (np.float32, False)):
        expected = np.array([1.0, 2.0], dtype)
        actual = (expected * 1.005).astype(dtype)
        assert (compare_outputs({"y": expected}, {"y": actual}) == []) is ok


def test_max_errors_over_all_outputs() -> None:
    """Worst absolute and scale-relative errors across float outputs, for reports."""
    expected = {"a": np.array([10.0, -20.0], np.float32), "b": np.array([1.0, 2.0], np.float32)}
    actual = {"a": np.array([10.5, -20.0], np.float32), "b": np.array([1.0, 2.2], np.float32)}
    max_abs, max_rel = max_errors(expected, actual)
    assert max_abs == pytest.approx(0.5)
    assert max_rel == pytest.approx(0.1)
