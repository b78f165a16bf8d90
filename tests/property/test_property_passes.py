"""Every registered pass and the default pipeline preserve semantics on random models, are
idempotent, and give byte-identical output twice; import/export round-trips bit-exactly."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from property_budget import examples

import graphopt
from graphopt.numerics.run import run_proto
from graphopt.onnx_io.save import model_bytes
from graphopt.pass_infra.registry import DEFAULT_REGISTRY
from graphopt.testing.asserts import assert_ir_consistent, assert_pass_preserves_semantics
from graphopt.testing.strategies import feeds, models

BUILTIN = ["eliminate-common-subexpressions", "eliminate-dead-code", "fold-constants", "fuse-affine",
           "fuse-batchnorm", "fuse-matmul-add", "fuse-normalization", "fuse-ort-contrib", "fuse-pad",
           "simplify-chains", "topological-sort"]
RICH = dict(max_nodes=16, constants=True, dead_branches=True, shape_subgraphs=True)


def test_every_builtin_pass_is_covered_here() -> None:
    """A new built-in pass must be added to this suite (and so be proven sound)."""
    builtin = {n for n, cls in DEFAULT_REGISTRY.all().items() if cls.__module__.startswith("graphopt.passes")}
    assert builtin == set(BUILTIN)


@settings(max_examples=examples(400))
@given(st.data())
def test_import_export_round_trip_is_bit_exact(data: st.DataObject) -> None:
    """import + export changes nothing onnxruntime can observe, and the IR is consistent."""
    proto = data.draw(models(**RICH, if_subgraphs=True, dynamic_batch=data.draw(st.booleans())))
    inputs = data.draw(feeds(proto))
    model = graphopt.import_model(proto)
    assert_ir_consistent(model)
    before = run_proto(proto, inputs)
    after = run_proto(model_bytes(model), inputs)
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


@pytest.mark.parametrize("pass_name", BUILTIN)
@settings(max_examples=examples(400))
@given(data=st.data())
def test_builtin_pass_preserves_semantics(pass_name: str, data: st.DataObject) -> None:
    """Outputs and their shapes stay equal (within tolerance); the IR stays consistent."""
    proto = data.draw(models(**RICH, if_subgraphs=data.draw(st.booleans())))
    assert_pass_preserves_semantics(pass_name, proto, feeds=data.draw(feeds(proto)))


@settings(max_examples=examples(500))
@given(data=st.data())
def test_default_pipeline_preserves_semantics(data: st.DataObject) -> None:
    """The default pipeline as a whole, on the richest models."""
    proto = data.draw(models(**RICH, if_subgraphs=True, dynamic_batch=data.draw(st.booleans())))
    assert_pass_preserves_semantics(graphopt.DEFAULT_PIPELINE, proto, feeds=data.draw(feeds(proto)))


@settings(max_examples=examples(300))
@given(proto=models(**RICH, if_subgraphs=True))
def test_default_pipeline_is_idempotent(proto: onnx.ModelProto) -> None:
    """A second run of the default pipeline changes nothing."""
    once = graphopt.optimize(proto, check="off", on_failure="raise").model
    again = graphopt.optimize(once, check="off", on_failure="raise")
    changed = [r.name for r in again.report.records if r.status != "unchanged"]
    assert changed == [], f"second run changed the model: {changed}"


@settings(max_examples=examples(200))
@given(proto=models(**RICH, if_subgraphs=True))
def test_default_pipeline_output_is_deterministic(proto: onnx.ModelProto) -> None:
    """Two independent runs write byte-identical files."""
    first = model_bytes(graphopt.optimize(proto, check="off").model)
    second = model_bytes(graphopt.optimize(proto, check="off").model)
    assert first == second
