"""Asserts for testing passes: equivalence, semantics preservation, IR consistency.

A failing check writes the model it failed on to a file and names a CLI line that reproduces it, so
a shrunk hypothesis example can be replayed outside the test.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import tempfile
from typing import Any

import numpy as np
import onnx

from graphopt.errors import GraphoptError
from graphopt.ir.clone import clone_model
from graphopt.ir.model import Model
from graphopt.ir.verify import verify
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.feeds import make_feeds
from graphopt.numerics.interface import adapt_feeds, adapt_outputs, interface_perms
from graphopt.numerics.run import run_model
from graphopt.onnx_io.exporter import export_model
from graphopt.onnx_io.importer import import_model, load_model
from graphopt.onnx_io.save import save_model
from graphopt.pass_infra.base import PassResult

FAILURES_DIR_ENV = "GRAPHOPT_FAILURES_DIR"


def _as_model(source: Model | onnx.ModelProto | str) -> Model:
    if isinstance(source, Model):
        return source
    if isinstance(source, onnx.ModelProto):
        return import_model(source)
    return load_model(source)


def failures_dir() -> str:
    """Where failing models are written: $GRAPHOPT_FAILURES_DIR or <tmp>/graphopt-failures."""
    folder = os.environ.get(FAILURES_DIR_ENV) or os.path.join(tempfile.gettempdir(), "graphopt-failures")
    os.makedirs(folder, exist_ok=True)
    return folder


def save_failure(model: Model, label: str) -> str:
    """Write ``model`` as ``failing-<label>.onnx`` (overwritten, so a shrunk example ends last)."""
    slug = re.sub(r"[^\w\-]+", "_", label).strip("_")[:80] or "model"
    path = os.path.join(failures_dir(), f"failing-{slug}.onnx")
    save_model(model, path)
    return path


def assert_ir_consistent(model: Model) -> None:
    """The verifier passes, use lists are the exact inverse of inputs, and export passes onnx.checker."""
    verify(model)
    for graph in model.graph.all_graphs():
        for node in graph:
            for index, value in enumerate(node.inputs):
                if value is not None:
                    assert (node, index) in value.uses(), f"{value!r} misses use ({node!r}, {index})"
            for value in node.outputs:
                _assert_uses_point_back(value)
        for value in [*graph.inputs, *graph.consts]:
            _assert_uses_point_back(value)
    onnx.checker.check_model(export_model(model))


def _assert_uses_point_back(value: Any) -> None:
    for node, index in value.uses():
        assert node.graph is not None, f"{value!r} is used by removed node {node!r}"
        assert node.inputs[index] is value, f"{value!r} records ({node!r}, {index}) wrongly"


def assert_equivalent(a: Model | onnx.ModelProto | str, b: Model | onnx.ModelProto | str, *,
                      feeds: dict[str, np.ndarray] | None = None,
                      tolerance: tuple[float, float] | None = None, seed: int = 0) -> None:
    """Both models give the same outputs (graphopt's dtype-aware tolerances) on ``feeds``.

    Without ``feeds``, seeded inputs are generated from ``a``'s graph inputs.
    """
    model_a, model_b = _as_model(a), _as_model(b)
    feeds = feeds if feeds is not None else make_feeds(model_a, seed=seed)
    expected = run_model(model_a, feeds, what="reference model")
    base_in, base_out = interface_perms(model_a)  # a layout-converted candidate is fed in a's layout
    actual = adapt_outputs(model_b, run_model(model_b, adapt_feeds(model_b, feeds, base_in),
                                              what="candidate model"), base_out)
    mismatches = compare_outputs(expected, actual, tolerance)
    assert not mismatches, "models differ: " + "; ".join(str(m) for m in mismatches)


def assert_pass_preserves_semantics(pass_or_pipeline: Any, model: Model | onnx.ModelProto | str, *,
                                    feeds: dict[str, np.ndarray] | None = None,
                                    tolerance: tuple[float, float] | None = None) -> Model:
    """Run a pass (an instance, or a pipeline text) on a copy of ``model`` and check it thoroughly.

    Checks: the pass does not raise, the IR stays consistent, the output passes onnx.checker and
    matches the original numerically with identical output shapes. On failure the original model is
    saved and the message gives the ``graphopt optimize`` line that reproduces it. Returns the result.
    """
    original = _as_model(model)
    candidate = clone_model(original)
    label = pass_or_pipeline if isinstance(pass_or_pipeline, str) else \
        getattr(pass_or_pipeline, "name", type(pass_or_pipeline).__name__)
    try:
        _run(pass_or_pipeline, candidate)
        assert_ir_consistent(candidate)
        assert_equivalent(original, candidate, feeds=feeds, tolerance=tolerance)
    except (AssertionError, GraphoptError, onnx.checker.ValidationError) as exc:
        path = save_failure(original, str(label))
        raise AssertionError(f"{label} broke the model: {exc}\n  model saved to {path}\n  reproduce: "
                             f"{reproduce_line(pass_or_pipeline, str(label), path)}") from exc
    return candidate


def reproduce_line(pass_or_pipeline: Any, label: str, path: str) -> str:
    """The ``graphopt optimize`` command that replays a failure (loading the pass's file as a plugin)."""
    plugin = ""
    if not isinstance(pass_or_pipeline, str):
        cls = type(pass_or_pipeline)
        try:
            source = inspect.getfile(cls)
        except (TypeError, OSError):
            source = ""
        if source and os.path.isfile(source) and not cls.__module__.startswith("graphopt."):
            plugin = f" --plugin {shlex.quote(source)}"
    return (f"graphopt optimize {shlex.quote(path)} -o /tmp/repro.onnx --pipeline {shlex.quote(label)} "
            f"--on-failure raise{plugin}")


def _run(pass_or_pipeline: Any, model: Model) -> None:
    if isinstance(pass_or_pipeline, str):
        from graphopt.api import optimize

        optimize(model, pipeline=pass_or_pipeline, check="off", on_failure="raise")
        return
    result = pass_or_pipeline.run(model)
    if not isinstance(result, PassResult):
        raise AssertionError(f"run() returned {type(result).__name__}, expected PassResult")
