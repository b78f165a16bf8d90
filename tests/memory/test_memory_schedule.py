"""passes/memory_schedule.py memory_greedy_order: a valid topological order (captures of If bodies
included), deterministic, and lower-peak than a stored order that computes every big producer first."""

from __future__ import annotations

from graphopt.passes.plan_memory._lifetimes import lifetimes, peak_bytes, sizes_at_shapes, tensor_bytes
from graphopt.passes.plan_memory._schedule import is_valid_order, memory_greedy_order, outer_reads
from memory_kit import TINY_CNN, chain, if_capture, names, residual_cnn, two_branches, typed
from onnx import helper as h
from passes_kit import info, make

from graphopt import load_model


def _size(value) -> int:
    return tensor_bytes(value) or 0


def _peak(graph, order) -> int:
    return peak_bytes(((s.size, s.start, s.end) for s in lifetimes(graph, order)), len(order))


def test_branches_run_one_after_the_other_and_the_peak_drops() -> None:
    """Stored: b1, b2 (1 KB each), then both reductions: both big tensors live at once. Greedy runs each
    reduction right after its Tile: one big tensor at a time."""
    graph = typed(two_branches()).graph
    order = memory_greedy_order(graph, _size)
    assert names(order) == ["b1", "s1", "b2", "s2", "y"]
    assert is_valid_order(order, graph)
    assert (_peak(graph, list(graph)), _peak(graph, order)) == (2052, 1032)


def test_the_greedy_order_is_deterministic() -> None:
    first = typed(two_branches()).graph
    again = memory_greedy_order(first, _size)
    assert memory_greedy_order(first, _size) == again
    assert names(memory_greedy_order(typed(two_branches()).graph, _size)) == names(again)


def test_a_chain_keeps_its_only_order() -> None:
    graph = typed(chain()).graph
    assert memory_greedy_order(graph, _size) == list(graph)


def test_ties_keep_the_stored_position() -> None:
    """Three independent Exp of the same size: the same score, so the stored order wins."""
    proto = make([h.make_node("Exp", ["x"], [name]) for name in ("p", "q", "r")] +
                 [h.make_node("Sum", ["p", "q", "r"], ["y"])], [info("x", [4])], [info("y", [4])])
    graph = typed(proto).graph
    assert memory_greedy_order(graph, _size) == list(graph)


def test_an_if_that_captures_a_value_in_a_nested_body_runs_after_that_value_s_producer() -> None:
    """The outer If allocates 4 bytes and the Tile 1 KB, so a scheduler blind to captures would run the
    If first; ``a`` is read by an If inside its then-branch, so the If must wait for the Tile."""
    graph = typed(if_capture()).graph
    tile, outer_if, mean, add = graph
    assert tile.outputs[0] in outer_reads(outer_if, graph)
    order = memory_greedy_order(graph, _size)
    assert order.index(tile) < order.index(outer_if)
    assert is_valid_order(order, graph)
    assert not is_valid_order([outer_if, tile, mean, add], graph)


def test_is_valid_order_rejects_a_consumer_before_its_producer() -> None:
    graph = typed(chain()).graph
    conv, relu, reshape, matmul = graph
    assert is_valid_order([conv, relu, reshape, matmul], graph)
    assert not is_valid_order([conv, reshape, relu, matmul], graph)


def test_greedy_orders_of_real_models_are_valid_permutations() -> None:
    model = load_model(TINY_CNN)
    size_of = sizes_at_shapes(model, {"x": [1, 3, 16, 16]})
    for graph, size in ((model.graph, lambda v: size_of(v) or 0), (typed(residual_cnn()).graph, _size)):
        order = memory_greedy_order(graph, size)
        assert sorted(map(id, order)) == sorted(map(id, graph))
        assert is_valid_order(order, graph)
