"""``--auto`` mixed precision: the fewest nodes kept in float32 that bring every output within budget.

One instrumented run of the original and one of the fully lowered model give every converting node's
own contribution to the drift (the relative error of its output minus the largest of its inputs');
nodes are ranked by it, and a bisection over how many of the top-ranked nodes keep float32 finds the
smallest such count whose outputs stay within the budget (with a margin: the check runs on other
inputs). Each bisection step costs one conversion and one run of the outputs, never a deep copy and a
full run per node as onnxconverter-common's auto_convert_mixed_precision does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from graphopt import Model, Node, Value, make_feeds, numpy_dtype, observe, relative_drift

from ._lower import lowered_copy
from ._plan import Plan

MARGIN = 0.5  # the bisection aims at half the budget: the check compares on other inputs


@dataclass
class AutoResult:
    """The nodes --auto keeps in float32 (ranked most sensitive first) and how many runs it took."""

    kept: list[Node]
    runs: int
    drift: float  # the outputs' drift with those kept, on the bisection's inputs


def choose_kept(model: Model, make: Callable[[frozenset[Node]], Plan], low: int, keep_io_types: bool,
                rtol: float, seed: int) -> AutoResult:
    """Rank the converting nodes by drift contribution and bisect the count kept in float32."""
    feeds = make_feeds(model, seed=seed)
    full = make(frozenset())
    tracked = [v for node in full.low for v in node.outputs]
    reference = observe(model, [*tracked, *model.graph.outputs], feeds, "model before precision conversion")
    lowered, mapping, _ = lowered_copy(model, full, low, keep_io_types)
    seen = observe(lowered, [mapping[v] for v in tracked], _feeds_for(lowered, feeds), "lowered model")
    error = {v: _relative(reference.get(v), seen.get(mapping[v])) for v in tracked}
    ranked = sorted(full.low, key=lambda n: -_contribution(n, error))
    runs = 2

    def drift(count: int) -> float:
        plan = make(frozenset(ranked[:count]))
        candidate, _, _ = lowered_copy(model, plan, low, keep_io_types)
        feeds_low = _feeds_for(candidate, feeds)
        outs = observe(candidate, list(candidate.graph.outputs), feeds_low, "lowered model")
        by_name = {v.name: a for v, a in outs.items()}
        drifts = [_relative(reference.get(v), by_name.get(v.name)) for v in model.graph.outputs]
        return max(drifts, default=0.0)

    target = rtol * MARGIN
    best, best_drift = len(ranked), 0.0
    low_count, high_count = 0, len(ranked)
    while low_count < high_count:
        middle = (low_count + high_count) // 2
        measured = drift(middle)
        runs += 1
        if measured <= target:
            best, best_drift, high_count = middle, measured, middle
        else:
            low_count = middle + 1
    return AutoResult(ranked[:best], runs, best_drift)


def _feeds_for(model: Model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    types = {v.name: v.dtype for v in model.graph.inputs}
    return {k: a.astype(numpy_dtype(types[k])) if types.get(k) is not None and a.dtype.kind == "f"
            and numpy_dtype(types[k]).kind == "f" else a for k, a in feeds.items()}


def _contribution(node: Node, error: dict[Value, float]) -> float:
    """How much drift this node adds: its outputs' relative error minus its inputs' largest."""
    out = max((error.get(v, 0.0) for v in node.outputs), default=0.0)
    into = max((error.get(v, 0.0) for v in node.inputs if v is not None), default=0.0)
    return out - into


def _relative(expected: object, actual: object) -> float:
    """The drift of one tensor (0 when either run did not produce it)."""
    return 0.0 if expected is None or actual is None else relative_drift(expected, actual)
