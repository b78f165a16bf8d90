"""The drift budget of a reduced-precision pass: its outputs may move by at most ``rtol`` of their own
magnitude (plus ``atol``) from the float32 reference, and the measured drift is reported per output,
with the intermediate tensors where it grows most, instead of a pass/fail on every tensor."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphopt.numerics.compare import Mismatch, is_float_dtype

HOT_TENSORS = 5  # intermediates with the largest drift shown in a report


@dataclass
class Drift:
    """Per-output relative drift (max over input sets) and the intermediates that drift most."""

    budget: tuple[float, float]
    outputs: dict[str, float] = field(default_factory=dict)
    hottest: list[tuple[str, float]] = field(default_factory=list)

    def output(self, name: str, expected: Any, actual: Any) -> None:
        """Record the drift of one output on one input set."""
        rel = relative_drift(expected, actual)
        self.outputs[name] = max(self.outputs.get(name, 0.0), rel)

    def intermediate(self, name: str, mismatch: Mismatch | None) -> None:
        """Record one intermediate's drift (a comparison at zero tolerance: None means exact)."""
        rel = 0.0 if mismatch is None else mismatch.max_rel
        self.hottest.append((name, rel))
        self.hottest.sort(key=lambda item: (-item[1], item[0]))
        del self.hottest[HOT_TENSORS:]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the report."""
        return {"budget": {"rtol": self.budget[0], "atol": self.budget[1]},
                "outputs": dict(sorted(self.outputs.items())),
                "hottest_intermediates": [{"tensor": n, "max_rel": r} for n, r in self.hottest]}


def relative_drift(expected: Any, actual: Any) -> float:
    """max |actual - expected| / max |expected| over the finite values (inf when NaN/Inf appear or
    vanish, 0 for exact non-float tensors)."""
    if actual is None or isinstance(expected, list):
        return 0.0 if actual is not None else float("inf")
    e, a = np.asarray(expected), np.asarray(actual)
    if e.shape != a.shape:
        return float("inf")
    if not is_float_dtype(e.dtype):
        return 0.0 if np.array_equal(e, a) else float("inf")
    e64, a64 = e.astype(np.float64), a.astype(np.float64)
    finite = np.isfinite(e64)
    if not np.array_equal(finite, np.isfinite(a64)):
        return float("inf")
    if not finite.any():
        return 0.0
    scale = float(np.max(np.abs(e64[finite])))
    diff = float(np.max(np.abs(e64[finite] - a64[finite])))
    return diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf"))


def as_reference_dtypes(actual: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """The candidate's float tensors cast to the reference's float dtype (float16 -> float32), so a
    lower-precision model is compared by value; everything else as it is."""
    out = dict(actual)
    for name, value in actual.items():
        ref = expected.get(name)
        ref_dtype = getattr(ref, "dtype", None)
        if ref_dtype is None or not isinstance(value, np.ndarray) or value.dtype == ref_dtype:
            continue
        if is_float_dtype(value.dtype) and is_float_dtype(ref_dtype):
            out[name] = value.astype(ref_dtype)
    return out


def feeds_as_inputs(model: Any, feeds: dict[str, Any]) -> dict[str, Any]:
    """Float feeds cast to the float dtype a lowered model's inputs declare (float32 -> float16)."""
    from graphopt.ir.tensor import numpy_dtype

    wanted = {v.name: v.dtype for v in model.graph.inputs if v.const is None and v.dtype is not None}
    out = dict(feeds)
    for name, value in feeds.items():
        dtype = wanted.get(name)
        if dtype is None or not isinstance(value, np.ndarray) or not is_float_dtype(value.dtype):
            continue
        target = numpy_dtype(dtype)
        if is_float_dtype(target) and value.dtype != target:
            out[name] = value.astype(target)
    return out
