"""Whether a reference tensor can reveal a wrong rewrite: a check is only "ok" when it could have
failed. A float tensor is informative when it varies by more than 100 times its comparison tolerance
(a change of 1% of its spread is then caught); an integer or boolean tensor when not all its values are
equal; a single number when it exceeds 100 tolerances. All-NaN, empty, constant or tiny outputs make a
weak check, and so do saturated ones (every value at the minimum or the maximum: a box clipped to the
image, a sigmoid at 0 and 1), which a changed input no longer moves."""

from __future__ import annotations

from typing import Any

import numpy as np

from graphopt.numerics.compare import is_float_dtype, tolerance_for

RESOLUTION = 100.0  # a tensor must vary by this many tolerances to be informative


def weakness(array: Any, tolerance: tuple[float, float] | None = None) -> str | None:
    """None when ``array`` is informative, else why not (one short phrase)."""
    if isinstance(array, list):
        reasons = [weakness(a, tolerance) for a in array]
        return None if any(r is None for r in reasons) else (reasons[0] if reasons else "empty sequence")
    if array is None:
        return "absent"
    values = np.asarray(array)
    if values.size == 0:
        return "empty"
    if not is_float_dtype(values.dtype):
        if values.dtype.kind == "O":
            return None if len(set(values.reshape(-1).tolist())) > 1 else "constant"
        flat = values.reshape(-1)
        return None if np.any(flat != flat[0]) else f"constant ({flat[0]!r} everywhere)"
    return _float_weakness(values, tolerance)


def _float_weakness(values: np.ndarray, tolerance: tuple[float, float] | None) -> str | None:
    rtol, atol = tolerance_for(values.dtype, tolerance)
    data = values.astype(np.float64, copy=False)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return "NaN/Inf everywhere"
    low, high = float(finite.min()), float(finite.max())
    spread = high - low
    tol = atol + rtol * max(abs(low), abs(high))
    if finite.size == 1:  # one number: informative when a 1% change of it exceeds the tolerance
        return None if abs(high) > RESOLUTION * tol else f"a single value {high:.2g} (tolerance {tol:.2g})"
    if spread == 0:
        return f"constant ({low:.3g} everywhere)"
    if spread <= RESOLUTION * tol:
        return f"varies by only {spread:.2g} (tolerance {tol:.2g})"
    if finite.size > 2 and np.count_nonzero((finite == low) | (finite == high)) == finite.size:
        return f"takes only the values {low:.3g} and {high:.3g} (saturated or thresholded)"
    return None
