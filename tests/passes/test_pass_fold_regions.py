"""fold-constants, regions: a connected sub-graph computable from constants alone folds as a whole when
the bytes it adds are worth the nodes it removes (16 KiB each), even where every single fold would grow
the model (anchor grids, shifted-window masks); too large a trade, a too-large tensor or a node that
cannot be evaluated keeps the region. Checked bit-exactly with onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper as h
from passes_kit import array, assert_same_outputs, info, ints, make, op_types, randn, run_pass, untyped

PASS = "fold-constants"


def _anchor_grid(side: int) -> onnx.ModelProto:
    """torchvision-style anchors: Range over the feature map side, scaled, meshed by Unsqueeze + Add
    (broadcast to [side, side]), flattened, then added to a run-time x. Each step creates more bytes
    than it reads; the grid is side*side floats."""
    nodes = [h.make_node("Range", ["zero", "n", "one"], ["r"]),
             h.make_node("Cast", ["r"], ["rf"], to=1),
             h.make_node("Mul", ["rf", "stride"], ["s"]),
             h.make_node("Unsqueeze", ["s", "ax1"], ["col"]),
             h.make_node("Unsqueeze", ["s", "ax0"], ["row"]),
             h.make_node("Add", ["col", "row"], ["grid"]),
             h.make_node("Reshape", ["grid", "flat"], ["anchors"]),
             h.make_node("Add", ["x", "anchors"], ["y"])]
    inits = [ints("zero", 0), ints("n", side), ints("one", 1), array("stride", np.float32(8.0)),
             ints("ax0", [0]), ints("ax1", [1]), ints("flat", [-1])]
    return make(nodes, [info("x", [side * side])], [untyped("y")], inits)


def test_an_anchor_grid_folds_as_one_region() -> None:
    """7 nodes, 16 KB of anchors (64x64): no single fold pays, the region does."""
    proto = _anchor_grid(64)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Add"]
    assert result.stats["folded_regions"] == 1 and result.stats["folded_region_nodes"] == 7
    (anchors,) = [v for v in model.graph.consts if v.const.size > 1]
    np.testing.assert_array_equal(anchors.const.numpy(), (8.0 * np.add.outer(np.arange(64), np.arange(64)))
                                  .reshape(-1).astype(np.float32))
    assert_same_outputs(proto, model, {"x": randn(64 * 64)})


def test_a_region_that_adds_more_than_its_nodes_are_worth_stays() -> None:
    """256x256 anchors are 256 KB for 7 nodes (worth 112 KB): kept, and counted."""
    proto = _anchor_grid(256)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == op_types(run_pass(proto, PASS, region_bytes_per_node=0)[0])
    assert "Range" in op_types(model) and result.stats["region_too_large"] == 1
    assert "folded_regions" not in result.stats


def test_region_budget_zero_restores_the_never_larger_rule() -> None:
    model, result = run_pass(_anchor_grid(64), PASS, region_bytes_per_node=0)
    assert "Range" in op_types(model) and "folded_regions" not in result.stats


def test_a_region_with_a_node_that_cannot_be_evaluated_stays() -> None:
    """A Div of integers by zero is undefined: the region is not folded (nothing hides the error)."""
    nodes = [h.make_node("Range", ["zero", "n", "one"], ["r"]),
             h.make_node("Div", ["r", "zero"], ["d"]),
             h.make_node("Cast", ["d"], ["df"], to=1),
             h.make_node("Add", ["x", "df"], ["y"])]
    proto = make(nodes, [info("x", [64])], [untyped("y")], [ints("zero", 0), ints("n", 64), ints("one", 1)])
    model, result = run_pass(proto, PASS)
    assert op_types(model)[:2] == ["Range", "Div"]
    assert result.stats.get("region_not_evaluable") == 1
