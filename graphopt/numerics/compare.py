"""Dtype-aware comparison of model outputs.

An output matches when shapes and dtypes are equal, NaN/Inf sit at the same places, and for floats
``max|actual - expected| <= atol + rtol * max|expected|``. Scaling by the output's own magnitude is what
makes folding legitimate: folding BatchNormalization into a Conv moves logits of scale ~200 by ~6e-5,
a relative change of 3e-7, while a real bug moves them by a sizeable fraction of that scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# (rtol relative to the output's largest magnitude, atol); calibrated on float32 CNNs and BERT.
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-12),
    "float32": (1e-4, 1e-5),
    "float16": (1e-2, 1e-3),
    "bfloat16": (2e-2, 1e-2),
}
LOW_PRECISION = (1.3e-1, 1e-1)  # float8 / float4 families


@dataclass
class Mismatch:
    """One output that differs: why, and by how much."""

    output: str
    reason: str
    max_abs: float = 0.0
    max_rel: float = 0.0

    def __str__(self) -> str:
        return f"output {self.output!r}: {self.reason} (max abs err {self.max_abs:.3g}, " \
               f"max rel err {self.max_rel:.3g})"


def is_float_dtype(dtype: Any) -> bool:
    """True for numpy's floats and the ml_dtypes ones (bfloat16, float8...) numpy does not class as such."""
    dtype = np.dtype(dtype)
    return dtype.kind in "fc" or dtype.name.startswith(("float", "bfloat"))


def tolerance_for(dtype: np.dtype, override: tuple[float, float] | None = None) -> tuple[float, float]:
    """The (rtol, atol) used for a float dtype."""
    if override is not None:
        return override
    return DEFAULT_TOLERANCES.get(np.dtype(dtype).name, LOW_PRECISION)


def compare_outputs(expected: dict[str, Any], actual: dict[str, Any],
                    tolerance: tuple[float, float] | None = None) -> list[Mismatch]:
    """Every mismatch between two output dicts (empty list means equivalent)."""
    problems: list[Mismatch] = []
    for name, exp in expected.items():
        if name not in actual:
            problems.append(Mismatch(name, "missing from the optimized model's outputs"))
            continue
        problems.extend(_compare(name, exp, actual[name], tolerance))
    return problems


def _compare(name: str, exp: Any, act: Any, tolerance: tuple[float, float] | None) -> list[Mismatch]:
    if isinstance(exp, list) or isinstance(act, list):
        if not isinstance(exp, list) or not isinstance(act, list) or len(exp) != len(act):
            return [Mismatch(name, "sequence outputs differ in kind or length")]
        return [m for i, (e, a) in enumerate(zip(exp, act))
                for m in _compare(f"{name}[{i}]", e, a, tolerance)]
    if exp is None or act is None:
        return [] if exp is None and act is None else [Mismatch(name, "optional presence differs")]
    exp, act = np.asarray(exp), np.asarray(act)
    if exp.shape != act.shape:
        return [Mismatch(name, f"shape {list(act.shape)} != expected {list(exp.shape)}")]
    if exp.dtype != act.dtype:
        return [Mismatch(name, f"dtype {act.dtype} != expected {exp.dtype}")]
    if exp.size == 0:
        return []
    if not is_float_dtype(exp.dtype):
        if np.array_equal(exp, act):
            return []
        count = int(np.sum(exp != act))
        return [Mismatch(name, f"{count} of {exp.size} values differ (exact dtype)",
                         float(np.max(np.abs(exp.astype(np.float64) - act.astype(np.float64))))
                         if exp.dtype.kind in "iub" else 1.0)]
    return _compare_float(name, exp, act, tolerance)


def _compare_float(name: str, exp: np.ndarray, act: np.ndarray,
                   tolerance: tuple[float, float] | None) -> list[Mismatch]:
    rtol, atol = tolerance_for(exp.dtype, tolerance)
    e, a = exp.astype(np.float64), act.astype(np.float64)
    finite = np.isfinite(e)
    if not np.array_equal(finite, np.isfinite(a)) or not np.array_equal(e[~finite], a[~finite],
                                                                         equal_nan=True):
        return [Mismatch(name, "NaN/Inf positions differ", float("inf"), float("inf"))]
    if not finite.any():
        return []
    diff = np.abs(e[finite] - a[finite])
    scale = float(np.max(np.abs(e[finite])))
    max_abs = float(diff.max())
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    if max_abs <= atol + rtol * scale:
        return []
    return [Mismatch(name, f"values differ beyond rtol={rtol:g}, atol={atol:g}", max_abs, max_rel)]


def max_errors(expected: dict[str, Any], actual: dict[str, Any]) -> tuple[float, float]:
    """Largest absolute and scale-relative error over all float outputs (for reports)."""
    worst_abs = worst_rel = 0.0
    for name, exp in expected.items():
        exp, act = np.asarray(exp), np.asarray(actual.get(name))
        if exp.shape != act.shape or exp.size == 0 or exp.dtype.kind not in "fiu":
            continue
        e, a = exp.astype(np.float64), act.astype(np.float64)
        ok = np.isfinite(e) & np.isfinite(a)
        if not ok.any():
            continue
        diff = float(np.max(np.abs(e[ok] - a[ok])))
        scale = float(np.max(np.abs(e[ok]))) or 1.0
        worst_abs, worst_rel = max(worst_abs, diff), max(worst_rel, diff / scale)
    return worst_abs, worst_rel
