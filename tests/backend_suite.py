"""The ONNX backend node-test set as a round-trip and optimization harness.

Generated from the installed onnx package (the wheel no longer ships the data files). Run directly for
the pass counts quoted in issue notes: ``python tests/backend_suite.py``.
"""

from __future__ import annotations

import functools
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

NONDETERMINISTIC = ("random", "bernoulli", "multinomial", "dropout_default_mask_ratio",
                    "training_dropout")


@dataclass
class Case:
    """One backend node test: its model, first data set and tolerances."""

    name: str
    model: onnx.ModelProto
    inputs: dict[str, Any]
    expected: list[Any]
    rtol: float
    atol: float

    @property
    def deterministic(self) -> bool:
        return not any(k in self.name for k in NONDETERMINISTIC)


@functools.lru_cache(maxsize=1)
def all_cases() -> tuple[Case, ...]:
    """Every node test case with at least one data set, by name."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = collect_testcases(None)
    cases = []
    for tc in raw:
        if not tc.data_sets:
            continue
        ins, outs = tc.data_sets[0]
        names = [i.name for i in tc.model.graph.input]
        cases.append(Case(tc.name, tc.model, dict(zip(names, ins)), list(outs), tc.rtol, tc.atol))
    return tuple(sorted(cases, key=lambda c: c.name))


def ort_run(model: onnx.ModelProto, feeds: dict[str, Any]) -> list[Any] | None:
    """Run with onnxruntime (optimisations off); None when ORT cannot load or run the model."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4
    opts.intra_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        wanted = {i.name for i in sess.get_inputs()}
        return sess.run(names, {k: v for k, v in feeds.items() if k in wanted})
    except Exception:
        return None


def close(a: Any, b: Any, rtol: float, atol: float) -> bool:
    """Outputs equal within tolerance (NaN equal to NaN), recursing into sequences."""
    if isinstance(a, list) or isinstance(b, list):
        return isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and \
            all(close(x, y, rtol, atol) for x, y in zip(a, b))
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "OSUb" or a.dtype.kind in "iu":
        return bool(np.array_equal(a, b))
    try:
        return bool(np.allclose(a.astype(np.float64), b.astype(np.float64), rtol=rtol, atol=atol,
                                equal_nan=True))
    except (TypeError, ValueError):
        return bool(np.array_equal(a, b))


def all_close(xs: list[Any], ys: list[Any], rtol: float, atol: float) -> bool:
    return len(xs) == len(ys) and all(close(x, y, rtol, atol) for x, y in zip(xs, ys))


@functools.cache
def ort_correct(name: str) -> list[Any] | None:
    """ORT's outputs on the original model when they match the case's expected outputs, else None."""
    case = by_name()[name]
    outs = ort_run(case.model, case.inputs)
    if outs is None or not all_close(outs, case.expected, max(case.rtol, 1e-3), max(case.atol, 1e-5)):
        return None
    return outs


@functools.lru_cache(maxsize=1)
def by_name() -> dict[str, Case]:
    return {c.name: c for c in all_cases()}


def bake_inputs(model: onnx.ModelProto, inputs: dict[str, Any]) -> onnx.ModelProto | None:
    """The model with every tensor input turned into an initializer (so folding has work to do)."""
    baked = onnx.ModelProto()
    baked.CopyFrom(model)
    keep = []
    for vi in baked.graph.input:
        value = inputs.get(vi.name)
        if not isinstance(value, np.ndarray) or value.dtype == object:
            keep.append(vi)
            continue
        try:
            baked.graph.initializer.append(onnx.numpy_helper.from_array(value, vi.name))
        except Exception:
            return None
    del baked.graph.input[:]
    baked.graph.input.extend(keep)
    if baked.ir_version < 4:
        baked.ir_version = 4
    return baked


def roundtrip(model: onnx.ModelProto) -> onnx.ModelProto:
    """import + export through graphopt's IR."""
    from graphopt import export_model, import_model

    return export_model(import_model(model))


def optimized(model: onnx.ModelProto) -> onnx.ModelProto:
    """The default pipeline with checks off (the harness compares outputs itself)."""
    from graphopt import export_model, optimize

    return export_model(optimize(model, check="off", on_failure="raise").model)


def evaluate(case: Case, mode: str) -> str:
    """'pass', 'fail: ...' or 'skip: ...' for one case in one mode (roundtrip|optimize|baked)."""
    reference = ort_correct(case.name)
    if reference is None:
        return "skip: onnxruntime does not run the original correctly"
    model, feeds = case.model, case.inputs
    if mode == "baked":
        model = bake_inputs(model, feeds)
        if model is None:
            return "skip: inputs cannot be baked"
    try:
        out_model = roundtrip(model) if mode == "roundtrip" else optimized(model)
    except Exception as exc:
        return f"fail: {type(exc).__name__}: {exc}"
    outs = ort_run(out_model, feeds)
    if outs is None:
        return "fail: onnxruntime cannot run the result"
    if not case.deterministic:
        same = len(outs) == len(reference) and all(
            np.asarray(o).shape == np.asarray(r).shape for o, r in zip(outs, reference))
        return "pass" if same else "fail: output shapes differ"
    if mode == "roundtrip":
        exact = all_close(outs, reference, 0.0, 0.0)
        return "pass" if exact else "fail: outputs differ after import+export"
    return "pass" if all_close(outs, reference, max(case.rtol, 1e-4), max(case.atol, 1e-5)) \
        else "fail: outputs differ after optimize"


def main() -> int:
    """Print pass/fail/skip counts per mode and the failures."""
    from collections import Counter

    for mode in ("roundtrip", "optimize", "baked"):
        counts: Counter = Counter()
        failures = []
        for case in all_cases():
            outcome = evaluate(case, mode)
            counts[outcome.split(":")[0]] += 1
            if outcome.startswith("fail"):
                failures.append(f"  {case.name}: {outcome}")
        print(f"{mode}: {dict(counts)} of {len(all_cases())}")
        print("\n".join(failures[:60]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
