"""graphopt.memory.verify check_plan finds every hand-made corruption of a correct plan, and
graphopt.memory.execute runs a model inside one arena: equal to onnxruntime for planned models, and
visibly wrong when a plan lets two live tensors that the arithmetic reads overlap."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from memory_kit import (
    TINY_CNN,
    chain,
    if_capture,
    if_feeds,
    mlp,
    planned,
    residual_cnn,
    two_branches,
    with_tensor,
)
from onnx import helper as h
from passes_kit import info, ints, make, randn

from graphopt import export_model, load_model
from graphopt.memory import MemoryPlan, Placement
from graphopt.memory.execute import PlanExecutionError, check_by_execution, run_with_arena
from graphopt.memory.verify import check_plan
from graphopt.numerics.feeds import make_feeds
from graphopt.numerics.run import run_proto

X4 = np.array([1, -2, 3, -4], np.float32)


def _chain_plan() -> tuple[onnx.ModelProto, MemoryPlan]:
    model, plan, _ = planned(chain())
    return export_model(model), plan


def _plan(order: list[str], tensors: list[Placement], arena: int) -> MemoryPlan:
    """A hand-written plan at alignment 1 (totals other than the arena do not matter to the checks)."""
    return MemoryPlan(alignment=1, arena_bytes=arena, lower_bound_bytes=arena,
                      lower_bound_unshared_bytes=arena, naive_bytes=sum(t.size for t in tensors),
                      steps=len(order), order=[[n] for n in order], tensors=tensors)


def _relu_neg_add() -> onnx.ModelProto:
    """a = Relu(x); b = Neg(x); y = a + b: a and b are both live at step 1 and both read at step 2."""
    return make([h.make_node("Relu", ["x"], ["a"]), h.make_node("Neg", ["x"], ["b"]),
                 h.make_node("Add", ["a", "b"], ["y"])], [info("x", [4])], [info("y", [4])])


def test_a_correct_plan_has_no_problems() -> None:
    proto, plan = _chain_plan()
    assert check_plan(proto, plan) == []


@pytest.mark.parametrize(("name", "changes", "problems"), [
    ("y", {"offset": 0}, ["f and y are both live at step 3 and share bytes 0..20"]),
    ("c", {"end": 0}, ["c: planned live 0..0, but it is live 0..1"]),
    ("c", {"start": 1}, ["c: planned live 1..1, but it is live 0..1"]),
    ("y", {"alias_of": "c"}, ["y: declared to share the bytes of c but placed at 128, not at 0",
                              "y: declared to share the bytes of c, which its node does not read"]),
    ("f", {"alias_of": "c"}, ["f: declared to share the bytes of c, which its node does not read"]),
    ("r", {"in_place": False}, ["r: Relu is not a view of c"]),
    ("y", {"offset": 192}, ["y: bytes 192..212 outside the arena"]),
    ("y", {"offset": 130}, ["y: offset 130 is not aligned to 64"]),
])
def test_each_corruption_of_the_chain_plan_is_reported(name: str, changes: dict[str, Any],
                                                       problems: list[str]) -> None:
    proto, plan = _chain_plan()
    assert check_plan(proto, with_tensor(plan, name, **changes)) == problems


def test_a_plan_for_another_order_is_reported() -> None:
    proto, plan = _chain_plan()
    plan.order = [["c"], ["f"], ["r"], ["y"]]
    assert check_plan(proto, plan) == ["the model's node order is not the plan's order"]


def test_a_tensor_missing_from_the_plan_is_reported() -> None:
    proto, plan = _chain_plan()
    plan.tensors = [t for t in plan.tensors if t.name != "r"]
    assert check_plan(proto, plan) == ["r: produced at step 1 and read, but not in the plan",
                                       "f: declared to share the bytes of r but placed at 0, not at None"]


def test_writing_in_place_over_a_tensor_read_later_is_reported_and_breaks_execution() -> None:
    """c = Neg(x); r = Relu(c); y = r + c. The planner gives r its own bytes; a plan that writes r over
    c is caught by the verifier, and running it computes r + r instead."""
    proto = make([h.make_node("Neg", ["x"], ["c"]), h.make_node("Relu", ["c"], ["r"]),
                  h.make_node("Add", ["r", "c"], ["y"])], [info("x", [4])], [info("y", [4])])
    model, plan, _ = planned(proto, alignment=1)
    saved = export_model(model)
    assert [(t.name, t.offset, t.alias_of) for t in plan.tensors] == [("c", 0, None), ("r", 16, None),
                                                                      ("y", 32, None)]
    assert check_by_execution(saved, plan, {"x": X4}) == []
    np.testing.assert_array_equal(run_with_arena(saved, plan, {"x": X4})["y"], [-1, 4, -3, 8])
    bad = with_tensor(plan, "r", offset=0, alias_of="c", in_place=True)
    assert check_plan(saved, bad) == ["r: written in place at step 1 over bytes that c still needs at step 2"]
    np.testing.assert_array_equal(run_with_arena(saved, bad, {"x": X4})["y"], [0, 4, 0, 8])


def test_overlapping_live_tensors_are_caught_by_both_the_verifier_and_the_executor() -> None:
    """b placed over a: the Add reads b twice, so y = 2 * Neg(x) instead of Relu(x) + Neg(x)."""
    proto = _relu_neg_add()
    good = _plan(["a", "b", "y"], [Placement("a", 16, 0, 2, 0), Placement("b", 16, 1, 2, 16),
                                   Placement("y", 16, 2, 3, 32)], 48)
    assert check_plan(proto, good) == []
    np.testing.assert_array_equal(run_with_arena(proto, good, {"x": X4})["y"], np.maximum(X4, 0) - X4)
    bad = with_tensor(good, "b", offset=0)
    assert check_plan(proto, bad) == ["a and b are both live at step 1 and share bytes 0..16"]
    np.testing.assert_array_equal(run_with_arena(proto, bad, {"x": X4})["y"], -2 * X4)
    (mismatch,) = check_by_execution(proto, bad, {"x": X4})
    assert mismatch.startswith("output 'y': values differ")


def test_an_arena_slot_smaller_than_the_tensor_stops_execution() -> None:
    proto, plan = _chain_plan()
    with pytest.raises(PlanExecutionError, match=r"^c: 128 bytes at run time, 64 planned$"):
        run_with_arena(proto, with_tensor(plan, "c", size=64), {"x": randn(1, 3, 4, 4)})


def test_writing_in_place_over_a_graph_output_is_reported_and_breaks_execution() -> None:
    """a = Relu(x) is a graph output; b = Neg(a) written over it; y = Exp(b). No node reads a after
    step 1, but as an output it must survive to the end (step 3). (Found by these tests: check_plan
    used to accept this plan.)"""
    proto = make([h.make_node("Relu", ["x"], ["a"]), h.make_node("Neg", ["a"], ["b"]),
                  h.make_node("Exp", ["b"], ["y"])], [info("x", [4])], [info("a", [4]), info("y", [4])])
    bad = _plan(["a", "b", "y"], [Placement("a", 16, 0, 3, 0), Placement("b", 16, 1, 2, 0, "a", True),
                                  Placement("y", 16, 2, 3, 16)], 32)
    assert check_plan(proto, bad) == ["b: written in place at step 1 over bytes that a still needs at step 3"]
    (mismatch,) = check_by_execution(proto, bad, {"x": X4})
    assert mismatch.startswith("output 'a': values differ")


def test_a_view_placed_away_from_the_bytes_it_shares_is_reported() -> None:
    """v = Reshape(a) is declared to share a's bytes at 0 but placed at 16; z overwrites offset 0 at
    step 2 while v (that is, a's bytes) is still read at step 3. (Found by these tests: check_plan used
    to accept this plan.)"""
    proto = make([h.make_node("Neg", ["x"], ["a"]), h.make_node("Reshape", ["a", "s"], ["v"]),
                  h.make_node("Exp", ["x"], ["z"]), h.make_node("Add", ["v", "z"], ["y"])],
                 [info("x", [4])], [info("y", [2, 2])], [ints("s", [2, 2])])
    bad = _plan(["a", "v", "z", "y"], [Placement("a", 16, 0, 1, 0), Placement("v", 16, 1, 3, 16, "a"),
                                       Placement("z", 16, 2, 3, 0), Placement("y", 16, 3, 4, 32)], 48)
    assert check_plan(proto, bad) == ["v: declared to share the bytes of a but placed at 16, not at 0"]


def _cases() -> list[tuple[str, onnx.ModelProto | str, dict[str, str], list[dict[str, np.ndarray]]]]:
    return [
        ("chain", chain(), {}, [{"x": randn(1, 3, 4, 4)}]),
        ("mlp-binary", mlp(), {"inplace": "binary"}, [{"x": randn(4, 16)}]),
        ("residual-binary", residual_cnn(), {"inplace": "binary"}, [{"x": randn(1, 4, 8, 8)}]),
        ("two-branches-reordered", two_branches(), {}, [{"x": randn(1, 4)}]),
        ("if-capture", if_capture(), {}, [if_feeds(True), if_feeds(False)]),
        ("tiny-cnn", TINY_CNN, {"shapes": "x=1x3x16x16"}, []),
    ]


@pytest.mark.parametrize(("name", "source", "options", "inputs"), _cases(), ids=[c[0] for c in _cases()])
def test_running_inside_the_planned_arena_equals_a_normal_run(name: str, source: Any, options: dict[str, str],
                                                              inputs: list[dict[str, np.ndarray]]) -> None:
    model, plan, _ = planned(load_model(source) if isinstance(source, str) else source, **options)
    saved = export_model(model)
    assert check_plan(saved, plan) == []
    for feeds in inputs or [make_feeds(model, shapes={"x": (1, 3, 16, 16)})]:
        expected = run_proto(onnx.load(source) if isinstance(source, str) else source, feeds)
        got = run_with_arena(saved, plan, feeds)
        assert list(got) == list(expected)
        for key, value in expected.items():
            assert got[key].dtype == value.dtype and got[key].shape == value.shape
            # one node per session: onnxruntime may pick another kernel path (last-bit differences)
            np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-6, err_msg=key)
        assert check_by_execution(saved, plan, feeds) == []
