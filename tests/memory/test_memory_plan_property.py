"""plan-memory on random models (graphopt.testing.strategies): every plan verifies, its arena lies
between the lower bound and the naive sum, order=auto never has a higher bound than the stored order,
planning is deterministic, and running inside the arena gives onnxruntime's outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from memory_kit import names, plan_of
from passes_kit import run_pass

import graphopt
from graphopt import export_model
from graphopt.memory import METADATA_KEY
from graphopt.memory.execute import run_with_arena
from graphopt.memory.verify import check_plan
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.run import run_proto
from graphopt.testing.strategies import SUPPORTED_OPS, feeds, models

OPS = list(SUPPORTED_OPS)
# Elementwise ops and views: the ops that share bytes, with If bodies capturing outer values.
SHARING_OPS = ["Abs", "Add", "Clip", "Div", "Flatten", "HardSigmoid", "Identity", "If", "LeakyRelu", "Mul",
               "Relu", "Reshape", "Sigmoid", "Split", "Squeeze", "Sub", "Unsqueeze"]
PROFILE = dict(deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _shapes(proto: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> str:
    """The shapes option for the inputs with a symbolic dim (dynamic_batch), at the fed sizes."""
    dynamic = [v.name for v in proto.graph.input
               if any(d.HasField("dim_param") for d in v.type.tensor_type.shape.dim)]
    return "+".join(f"{name}={'x'.join(map(str, inputs[name].shape))}" for name in dynamic)


def _draw(data: st.DataObject,
          ops: list[str]) -> tuple[onnx.ModelProto, dict[str, np.ndarray], dict[str, Any]]:
    proto = data.draw(models(ops=ops, max_nodes=data.draw(st.sampled_from([8, 16, 30]), label="max_nodes"),
                             constants=data.draw(st.booleans(), label="constants"),
                             if_subgraphs=data.draw(st.booleans(), label="if"),
                             dynamic_batch=data.draw(st.booleans(), label="dynamic")))
    inputs = data.draw(feeds(proto))
    options = {"inplace": data.draw(st.sampled_from(["none", "unary", "binary"]), label="inplace"),
               "order": data.draw(st.sampled_from(["auto", "keep"]), label="order"),
               "alignment": data.draw(st.sampled_from([1, 4, 64]), label="alignment")}
    if _shapes(proto, inputs):
        options["shapes"] = _shapes(proto, inputs)
    return proto, inputs, options


def _check(proto: onnx.ModelProto, inputs: dict[str, np.ndarray], options: dict[str, Any],
           execute: bool) -> None:
    model, result = run_pass(proto, "plan-memory", **options)
    plan, saved = plan_of(model), export_model(model)
    assert check_plan(saved, plan) == []
    assert plan.lower_bound_bytes <= plan.arena_bytes <= plan.naive_bytes
    assert plan.lower_bound_bytes <= plan.lower_bound_unshared_bytes
    assert all(t.offset is None or t.offset % plan.alignment == 0 for t in plan.tensors)
    assert (result.stats["arena_bytes"], result.stats["tensors"]) == (plan.arena_bytes, len(plan.tensors))
    stored = names(graphopt.import_model(proto).graph)
    if options["order"] == "keep":
        assert names(model.graph) == stored and result.stats["reordered"] == 0
    else:
        kept, _ = run_pass(proto, "plan-memory", **{**options, "order": "keep"})
        assert plan.lower_bound_bytes <= plan_of(kept).lower_bound_bytes
        assert result.stats["reordered"] == int(names(model.graph) != stored)
    for key in ("reordered", "in_place", "aliases"):
        event(f"{key}: {'yes' if result.stats[key] else 'no'}")
    event(f"shapes option: {'yes' if 'shapes' in options else 'no'}")
    again, _ = run_pass(proto, "plan-memory", **options)
    assert again.metadata_props[METADATA_KEY] == model.metadata_props[METADATA_KEY]
    if execute:
        mismatches = compare_outputs(run_proto(proto, inputs), run_with_arena(saved, plan, inputs))
        assert not mismatches, [str(m) for m in mismatches]


@settings(max_examples=100, **PROFILE)
@given(data=st.data())
def test_plans_of_random_models_verify_and_lie_between_the_bound_and_the_naive_sum(
        data: st.DataObject) -> None:
    proto, inputs, options = _draw(data, OPS)
    _check(proto, inputs, options, execute=data.draw(st.booleans(), label="execute"))


@settings(max_examples=60, **PROFILE)
@given(data=st.data())
def test_sharing_heavy_random_models_run_inside_their_arena_like_onnxruntime(data: st.DataObject) -> None:
    proto, inputs, options = _draw(data, SHARING_OPS)
    _check(proto, inputs, options, execute=True)
