"""plan-memory: the plan it stores in metadata_props (exact placements on a tiny chain, arena at the
lower bound on small CNN/MLP graphs), order auto/keep, stats, option errors, determinism, and the
error for a model whose sizes are not static."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphopt.passes.plan_memory._lifetimes import tensor_bytes
from graphopt.passes.plan_memory._schedule import memory_greedy_order
from memory_kit import (
    TINY_CNN,
    chain,
    mlp,
    names,
    plan_of,
    planned,
    residual_cnn,
    table,
    two_branches,
    typed,
)
from onnx import helper as h
from passes_kit import array, assert_same_outputs, info, ints, make, randn

import graphopt
from graphopt import export_model, load_model
from graphopt.errors import UnknownSizeError, UsageError
from graphopt.memory import METADATA_KEY
from graphopt.memory.verify import check_plan
from graphopt.pass_infra.registry import DEFAULT_REGISTRY

STATS = {"arena_bytes", "lower_bound_bytes", "lower_bound_unshared_bytes", "naive_bytes", "reordered",
         "aliases", "in_place", "tensors"}
SHAPES = "x=1x3x16x16"


def test_the_chain_gets_exactly_this_plan() -> None:
    """Relu writes over the Conv output, the Reshape views it: one 128-byte buffer at 0; y (20 bytes,
    aligned to 64) sits above it. Without sharing two 128-byte tensors would be live at step 1."""
    model, plan, stats = planned(chain())
    assert table(plan) == {"c": (128, 0, 1, 0, None, False), "r": (128, 1, 2, 0, "c", True),
                           "f": (128, 2, 3, 0, "r", False), "y": (20, 3, 4, 128, None, False)}
    assert (plan.alignment, plan.arena_bytes, plan.lower_bound_bytes, plan.lower_bound_unshared_bytes,
            plan.naive_bytes, plan.steps) == (64, 192, 192, 256, 448, 4)
    assert plan.order == [["c"], ["r"], ["f"], ["y"]]
    assert (plan.input_shapes, plan.planner) == ({}, {"inplace": "unary", "order": "auto"})
    assert stats == {"arena_bytes": 192, "lower_bound_bytes": 192, "lower_bound_unshared_bytes": 256,
                     "naive_bytes": 448, "reordered": 0, "aliases": 1, "in_place": 1, "tensors": 4}
    assert check_plan(export_model(model), plan) == []


def test_alignment_one_packs_the_graph_output_right_after_the_shared_buffer() -> None:
    _, plan, stats = planned(chain(), alignment=1)
    assert table(plan)["y"] == (20, 3, 4, 128, None, False)
    assert (stats["arena_bytes"], stats["lower_bound_bytes"], stats["naive_bytes"]) == (148, 148, 404)


def test_every_offset_is_a_multiple_of_a_non_power_of_two_alignment() -> None:
    """At alignment 48 each 8192-byte activation takes 8208 bytes."""
    model, plan, _ = planned(load_model(TINY_CNN), alignment=48, shapes=SHAPES)
    assert sorted({t.offset for t in plan.tensors}) == [0, 48, 1056, 8208]
    assert (plan.arena_bytes, plan.lower_bound_bytes) == (16416, 16416)
    assert check_plan(export_model(model), plan) == []


@pytest.mark.parametrize(("name", "inplace", "arena", "aliases", "in_place"), [
    ("mlp", "none", 1024, 0, 0), ("mlp", "unary", 1024, 0, 1), ("mlp", "binary", 640, 0, 3),
    ("residual_cnn", "none", 3072, 1, 0), ("residual_cnn", "unary", 3072, 1, 2),
    ("residual_cnn", "binary", 2048, 1, 3),
    ("tiny_cnn", "none", 16384, 3, 0), ("tiny_cnn", "unary", 16384, 3, 1),
    ("tiny_cnn", "binary", 16384, 3, 1)])
def test_the_arena_reaches_the_lower_bound_on_small_cnn_and_mlp_graphs(
        name: str, inplace: str, arena: int, aliases: int, in_place: int) -> None:
    """Binary in-place writes let the MLP's bias Adds and the residual Add reuse their input's bytes."""
    builders = {"mlp": mlp, "residual_cnn": residual_cnn}
    source = load_model(TINY_CNN) if name == "tiny_cnn" else builders[name]()
    options = {"shapes": SHAPES} if name == "tiny_cnn" else {}
    model, plan, stats = planned(source, inplace=inplace, **options)
    assert (stats["arena_bytes"], stats["lower_bound_bytes"]) == (arena, arena)
    assert (stats["aliases"], stats["in_place"], stats["reordered"]) == (aliases, in_place, 0)
    assert set(stats) == STATS
    assert check_plan(export_model(model), plan) == []


def test_order_keep_never_reorders_even_when_reordering_would_help() -> None:
    model, plan, stats = planned(two_branches(), order="keep")
    assert names(model.graph) == ["b1", "b2", "s1", "s2", "y"]
    assert (stats["reordered"], stats["lower_bound_bytes"], stats["arena_bytes"]) == (0, 2112, 2112)
    assert plan.planner == {"inplace": "unary", "order": "keep"}


def test_order_auto_reorders_when_that_lowers_the_bound_and_the_outputs_stay_equal() -> None:
    """Two 1 KB Tiles no longer live together: the bound drops from 2112 to 1152 bytes."""
    proto = two_branches()
    model, plan, stats = planned(proto)
    assert names(model.graph) == ["b1", "s1", "b2", "s2", "y"]
    assert plan.order == [["b1"], ["s1"], ["b2"], ["s2"], ["y"]]
    assert (stats["reordered"], stats["lower_bound_bytes"], stats["arena_bytes"]) == (1, 1152, 1152)
    assert check_plan(export_model(model), plan) == []
    assert_same_outputs(proto, model, {"x": randn(1, 4)})


def test_order_auto_keeps_the_stored_order_when_the_greedy_one_is_not_better() -> None:
    """a = Tile(x) (1 KB) then b = ReduceSum(x): the greedy order runs the small b first, but y = a + b
    is live with both either way, so the bound is the same and the stored order stays."""
    proto = make([h.make_node("Tile", ["x", "reps"], ["a"]), h.make_node("ReduceSum", ["x"], ["b"]),
                  h.make_node("Add", ["a", "b"], ["y"])], [info("x", [1, 4])], [info("y", [64, 4])],
                 [ints("reps", [64, 1])])
    graph = typed(proto).graph
    assert names(memory_greedy_order(graph, lambda v: tensor_bytes(v) or 0)) == ["b", "a", "y"]
    model, _, stats = planned(proto)
    assert names(model.graph) == ["a", "b", "y"]
    assert (stats["reordered"], stats["lower_bound_bytes"]) == (0, 2112)


def test_unnamed_tensors_get_unique_names_that_the_plan_and_the_saved_model_share() -> None:
    """The Conv output is called relu_out_0 already, so the unnamed Relu output becomes relu_out_1."""
    model = typed(chain())
    conv, relu, reshape, _ = model.graph
    conv.outputs[0].name, relu.outputs[0].name, reshape.outputs[0].name = "relu_out_0", "", None
    model, plan, _ = planned(model)
    (first,), (second,), (third,), (last,) = plan.order
    assert (first, second, last) == ("relu_out_0", "relu_out_1", "y") and third.startswith("reshape_out_")
    assert len({first, second, third, last}) == 4
    assert table(plan)["relu_out_1"] == (128, 1, 2, 0, "relu_out_0", True)
    saved = export_model(model)
    assert [list(n.output) for n in saved.graph.node] == plan.order
    assert check_plan(saved, plan) == []


@pytest.mark.parametrize(("options", "message"), [
    ({"inplace": "all"}, "plan-memory: inplace must be one of none, unary, binary"),
    ({"alignment": "0"}, "plan-memory: alignment must be >= 1, not 0"),
    ({"alignment": "-64"}, "plan-memory: alignment must be >= 1, not -64"),
    ({"alignment": "abc"}, "option alignment='abc' of pass 'plan-memory' is not a valid int"),
    ({"order": "best"}, "plan-memory: order must be auto or keep"),
    ({"shapes": "x=1,a"}, "plan-memory: bad input shape 'x=1,a'; expected NAME=D0xD1x... with dims >= 0"),
    ({"shapes": "x=1x3x16x16+y=2x?"},
     "plan-memory: bad input shape 'y=2x?'; expected NAME=D0xD1x... with dims >= 0"),
    ({"colour": "red"},
     "pass 'plan-memory' has no option 'colour' (options: alignment, inplace, inputs, order, shapes)"),
])
def test_bad_options_are_usage_errors(options: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        DEFAULT_REGISTRY.create("plan-memory", options)
    assert str(caught.value) == message


def test_shapes_naming_no_input_is_a_usage_error_when_the_pass_runs() -> None:
    with pytest.raises(UsageError, match=r"^--input-shape names 'z', which is not an input of the model"):
        planned(load_model(TINY_CNN), shapes="z=1x3x16x16")


def test_a_dynamic_input_without_shapes_is_an_unknown_size_error() -> None:
    model = load_model(TINY_CNN)
    with pytest.raises(UnknownSizeError, match="--input-shape NAME=D0,D1,..."):
        DEFAULT_REGISTRY.create("plan-memory", {}).run(model)
    assert METADATA_KEY not in model.metadata_props
    assert names(model.graph)[:3] == ["c1", "b1", "r1"]


def test_the_plan_is_deterministic_and_a_second_run_changes_nothing() -> None:
    first, _, _ = planned(load_model(TINY_CNN), shapes=SHAPES)
    second, _, _ = planned(load_model(TINY_CNN), shapes=SHAPES)
    text = first.metadata_props[METADATA_KEY]
    assert second.metadata_props[METADATA_KEY] == text
    assert plan_of(first).input_shapes == {"x": [1, 3, 16, 16]}
    reordered, _, _ = planned(two_branches())
    for model in (first, reordered):
        before = model.metadata_props[METADATA_KEY]
        options = {"shapes": SHAPES} if model is first else {}
        result = DEFAULT_REGISTRY.create("plan-memory", options).run(model)
        assert (result.changed, result.stats["reordered"]) == (False, 0)
        assert model.metadata_props[METADATA_KEY] == before


def test_through_optimize_the_plan_lands_in_the_saved_model_and_verifies(tmp_path) -> None:
    options = graphopt.OptimizeOptions(pipeline=f"plan-memory{{shapes={SHAPES}}}", check="off")
    result = graphopt.optimize(TINY_CNN, options)
    (record,) = result.report.records
    assert (record.name, record.status, record.stats["arena_bytes"]) == ("plan-memory", "changed", 16384)
    path = str(tmp_path / "planned.onnx")
    result.save(path)
    saved = onnx.load(path)
    plan = plan_of(load_model(path))
    assert {p.key: p.value for p in saved.metadata_props}[METADATA_KEY] == plan.to_json()
    assert (plan.arena_bytes, plan.lower_bound_bytes, plan.naive_bytes) == (16384, 16384, 58880)
    assert check_plan(saved, plan) == []


@pytest.mark.parametrize("options", [{}, {"shapes": "x=1x1x2x2"}], ids=["static", "shapes"])
def test_a_static_resize_is_planned(options: dict[str, str]) -> None:
    """Inference on the weightless skeleton cannot see Resize's float scales, but onnx's own inference on
    the model gives r [1,1,4,4] (64 bytes), and so must the plan. (Found by these tests: plan-memory used
    to raise UnknownSizeError here, asking for an --input-shape that cannot help.)"""
    proto = make([h.make_node("Resize", ["x", "", "scales"], ["r"], mode="nearest"),
                  h.make_node("Relu", ["r"], ["y"])], [info("x", [1, 1, 2, 2])], [info("y", [1, 1, 4, 4])],
                 [array("scales", np.array([1, 1, 2, 2], np.float32))])
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    assert [d.dim_value for d in inferred.graph.value_info[0].type.tensor_type.shape.dim] == [1, 1, 4, 4]
    model, plan, _ = planned(proto, **options)
    assert table(plan) == {"r": (64, 0, 1, 0, None, False), "y": (64, 1, 2, 64, None, False)}
    assert check_plan(export_model(model), plan) == []


def test_negative_dims_in_shapes_are_a_usage_error() -> None:
    with pytest.raises(UsageError, match="x=1x3x-4x16"):
        planned(load_model(TINY_CNN), shapes="x=1x3x-4x16")


def test_shapes_naming_a_weight_is_refused_and_the_message_lists_only_the_real_inputs() -> None:
    with pytest.raises(UsageError, match=r"'fc\.w', which is not an input of the model \(inputs: x\)"):
        planned(load_model(TINY_CNN), shapes="x=1x3x16x16+fc.w=8x20")
