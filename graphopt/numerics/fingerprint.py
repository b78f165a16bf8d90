"""Compact records of reference tensors, so every intermediate of a big model can be compared without
keeping it: small tensors whole, large ones as a fixed seeded sample of positions plus the count of
their NaN/Inf values, with the tolerance taken from the whole tensor's magnitude."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from graphopt.numerics.compare import Mismatch, compare_outputs, is_float_dtype, tolerance_for
from graphopt.numerics.strength import weakness

SAMPLE = 4096  # elements kept of a large tensor


@dataclass
class Fingerprint:
    """What is kept of one reference tensor."""

    shape: tuple[int, ...]
    dtype: np.dtype
    values: Any  # the whole tensor (small, or a sequence), or the sample at ``positions``
    positions: np.ndarray | None
    scale: float  # largest finite magnitude of the whole tensor
    nonfinite: int
    weak: str | None  # why this tensor cannot reveal a change, or None
    nbytes: int


def _positions(size: int) -> np.ndarray:
    """The same positions for every tensor of ``size`` elements (reference and candidate agree)."""
    return np.unique(np.random.default_rng(size).integers(0, size, SAMPLE))


def _is_float(array: np.ndarray) -> bool:
    return is_float_dtype(array.dtype)


def fingerprint(value: Any, tolerance: tuple[float, float] | None = None) -> Fingerprint:
    """Record a reference tensor (or sequence / optional value)."""
    weak = weakness(value, tolerance)
    if value is None or isinstance(value, list):
        return Fingerprint((), np.dtype(object), value, None, 0.0, 0, weak,
                           sum(np.asarray(v).nbytes for v in value or []))
    array = np.asarray(value)
    scale, nonfinite = 0.0, 0
    if _is_float(array) and array.size:
        data = array.astype(np.float64, copy=False)
        finite = np.isfinite(data)
        nonfinite = int(array.size - np.count_nonzero(finite))
        scale = float(np.max(np.abs(data[finite]))) if nonfinite < array.size else 0.0
    if array.size <= SAMPLE or array.dtype.kind == "O":
        return Fingerprint(array.shape, array.dtype, array.copy(), None, scale, nonfinite, weak, array.nbytes)
    positions = _positions(array.size)
    return Fingerprint(array.shape, array.dtype, array.reshape(-1)[positions].copy(), positions, scale,
                       nonfinite, weak, array.nbytes)


def compare(name: str, reference: Fingerprint, actual: Any,
            tolerance: tuple[float, float] | None = None) -> Mismatch | None:
    """The mismatch between a candidate tensor and a reference fingerprint, or None."""
    if reference.positions is None:
        found = compare_outputs({name: reference.values}, {name: actual}, tolerance)
        return found[0] if found else None
    array = np.asarray(actual) if not isinstance(actual, list) and actual is not None else None
    if array is None:
        return Mismatch(name, "a tensor in the original, a sequence or nothing here")
    if array.shape != reference.shape:
        return Mismatch(name, f"shape {list(array.shape)} != expected {list(reference.shape)}")
    if array.dtype != reference.dtype:
        return Mismatch(name, f"dtype {array.dtype} != expected {reference.dtype}")
    sample = array.reshape(-1)[reference.positions]
    if _is_float(array):
        nonfinite = int(array.size - np.count_nonzero(np.isfinite(array)))
        if nonfinite != reference.nonfinite:
            return Mismatch(name, f"{nonfinite} NaN/Inf values, expected {reference.nonfinite}",
                            float("inf"), float("inf"))
        return _compare_sample(name, reference, sample, tolerance)
    if not np.array_equal(sample, reference.values):
        count = int(np.sum(sample != reference.values))
        return Mismatch(name, f"{count} of {sample.size} sampled values differ (exact dtype)", 1.0, 1.0)
    return None


def _compare_sample(name: str, reference: Fingerprint, sample: np.ndarray,
                    tolerance: tuple[float, float] | None) -> Mismatch | None:
    rtol, atol = tolerance_for(reference.dtype, tolerance)
    e, a = reference.values.astype(np.float64), sample.astype(np.float64)
    finite = np.isfinite(e)
    if not np.array_equal(finite, np.isfinite(a)) or not np.array_equal(e[~finite], a[~finite],
                                                                         equal_nan=True):
        return Mismatch(name, "NaN/Inf positions differ", float("inf"), float("inf"))
    if not finite.any():
        return None
    max_abs = float(np.max(np.abs(e[finite] - a[finite])))
    if max_abs <= atol + rtol * reference.scale:
        return None
    rel = max_abs / reference.scale if reference.scale > 0 else float("inf")
    return Mismatch(name, f"values differ beyond rtol={rtol:g}, atol={atol:g} (sampled)", max_abs, rel)
