"""plan-memory's lifetimes: byte sizes, live steps for one order (graph outputs to the end, unread
outputs only at their step, reads inside If/Loop bodies at the holder's step), the peak, sizes at
fixed input shapes, and the error that asks for --input-shape."""

from __future__ import annotations

import onnx
import pytest
from graphopt.passes.plan_memory._lifetimes import (
    lifetimes,
    peak_bytes,
    sizes_at_shapes,
    tensor_bytes,
)
from memory_kit import TINY_CNN, chain, if_capture, names, two_branches, typed
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import info, ints, make

from graphopt import Value, load_model
from graphopt.errors import UnknownSizeError, UsageError


def _spans(model, order=None, size_of=tensor_bytes) -> list[tuple[str, int, int, int]]:
    return [(s.value.name, s.size, s.start, s.end) for s in lifetimes(model.graph, order, size_of)]


@pytest.mark.parametrize(("dtype", "shape", "size"), [
    (T.FLOAT, (2, 3), 24), (T.INT64, (5,), 40), (T.BOOL, (3,), 3), (T.FLOAT16, (4,), 8),
    (T.DOUBLE, (), 8), (T.UINT8, (7, 1), 7), (T.FLOAT, (0, 4), 0)])
def test_tensor_bytes_is_the_element_count_times_the_item_size(dtype: int, shape: tuple, size: int) -> None:
    assert tensor_bytes(Value("v", dtype=dtype, shape=shape)) == size


@pytest.mark.parametrize("value", [
    Value("dynamic", dtype=T.FLOAT, shape=("N", 3)), Value("unknown_dim", dtype=T.FLOAT, shape=(None, 3)),
    Value("no_shape", dtype=T.FLOAT), Value("no_dtype", shape=(2, 3)),
    Value("string", dtype=T.STRING, shape=(2,)),
    Value("sequence", dtype=T.FLOAT, shape=(2,), type_proto=h.make_sequence_type_proto(
        h.make_tensor_type_proto(T.FLOAT, [2])))], ids=lambda v: v.name)
def test_tensor_bytes_is_none_unless_the_shape_is_static_and_the_dtype_fixed_width(value: Value) -> None:
    assert tensor_bytes(value) is None


def test_each_tensor_lives_from_its_producer_to_its_last_reader() -> None:
    """The graph output y lives one step past the last node (step len(order) = 4)."""
    assert _spans(typed(chain())) == [("c", 128, 0, 1), ("r", 128, 1, 2), ("f", 128, 2, 3), ("y", 20, 3, 4)]


def test_a_graph_output_read_by_a_later_node_still_lives_to_the_end() -> None:
    proto = make([h.make_node("Relu", ["x"], ["a"]), h.make_node("Neg", ["a"], ["b"]),
                  h.make_node("Exp", ["b"], ["y"])], [info("x", [4])], [info("a", [4]), info("y", [4])])
    assert _spans(typed(proto)) == [("a", 16, 0, 3), ("b", 16, 1, 2), ("y", 16, 2, 3)]


def test_tiny_cnn_at_batch_one_has_these_lifetimes_and_its_unread_output_lives_one_step() -> None:
    """The dead MatMul's output (nothing reads it) is live only at its own step, 15."""
    model = load_model(TINY_CNN)
    assert _spans(model, size_of=sizes_at_shapes(model, {"x": [1, 3, 16, 16]})) == [
        ("c1", 8192, 0, 1), ("b1", 8192, 1, 2), ("r1", 8192, 2, 3), ("r1_id", 8192, 3, 4),
        ("c2", 8192, 4, 5), ("d2", 8192, 5, 6), ("d2c", 8192, 6, 7), ("gap", 32, 7, 12),
        ("gap_shape", 32, 8, 9), ("batch", 8, 9, 10), ("batch1", 8, 10, 11), ("flat_shape", 16, 11, 12),
        ("flat", 32, 12, 13), ("mm", 40, 13, 14), ("logits", 40, 14, 16), ("dead", 1024, 15, 15)]


def test_a_read_inside_nested_if_bodies_counts_at_the_outer_if_step() -> None:
    """``a`` is read only by ReduceMean (step 1 in this order) and by an If inside the then-branch of
    the If at step 2: it lives to step 2. Counting only direct inputs would end it at step 1."""
    model = typed(if_capture())
    tile, outer_if, mean, add = model.graph
    order = [tile, mean, outer_if, add]
    assert _spans(model, order) == [("a", 1024, 0, 2), ("m", 4, 1, 3), ("o", 4, 2, 3), ("y", 4, 3, 4)]


def test_a_read_inside_a_loop_body_counts_at_the_loop_step() -> None:
    """The Loop body adds outer ``a`` each iteration: ``a`` lives to the Loop's step 2. (Shape inference
    cannot size a Loop's carried output, so every tensor is given 24 bytes here.)"""
    body = h.make_graph([h.make_node("Identity", ["c_in"], ["c_out"]),
                         h.make_node("Add", ["v_in", "a"], ["v_out"])], "body",
                        [info("i", [], T.INT64), info("c_in", [], T.BOOL), info("v_in", [2, 3])],
                        [info("c_out", [], T.BOOL), info("v_out", [2, 3])])
    proto = make([h.make_node("Exp", ["x"], ["a"]), h.make_node("Neg", ["x"], ["n"]),
                  h.make_node("Loop", ["trips", "", "n"], ["l"], body=body),
                  h.make_node("Sigmoid", ["l"], ["y"])],
                 [info("x", [2, 3])], [info("y", [2, 3])], [ints("trips", 3)])
    onnx.checker.check_model(proto, full_check=True)
    spans = _spans(typed(proto), size_of=lambda v: 24)
    assert spans == [("a", 24, 0, 2), ("n", 24, 1, 2), ("l", 24, 2, 3), ("y", 24, 3, 4)]


def test_lifetimes_follow_the_order_they_are_given() -> None:
    model = typed(two_branches())
    b1, b2, s1, s2, add = model.graph
    assert _spans(model) == [("b1", 1024, 0, 2), ("b2", 1024, 1, 3), ("s1", 4, 2, 4), ("s2", 4, 3, 4),
                             ("y", 4, 4, 5)]
    order = [b1, s1, b2, s2, add]
    assert names(order) == ["b1", "s1", "b2", "s2", "y"]
    assert _spans(model, order) == [("b1", 1024, 0, 1), ("s1", 4, 1, 4), ("b2", 1024, 2, 3), ("s2", 4, 3, 4),
                                    ("y", 4, 4, 5)]


@pytest.mark.parametrize(("spans", "steps", "peak"), [
    ([], 0, 0),
    ([(10, 0, 1), (20, 1, 2), (5, 2, 2)], 3, 30),  # step 1: 10 + 20; step 2: 20 + 5
    ([(10, 0, 0), (20, 1, 1), (5, 2, 2)], 3, 20),  # nothing overlaps: the largest alone
    ([(7, 0, 3), (1, 3, 3), (2, 3, 3)], 3, 10),  # a graph output live at the last step (= steps)
])
def test_peak_bytes_is_the_largest_total_live_at_one_step(spans: list, steps: int, peak: int) -> None:
    assert peak_bytes(spans, steps) == peak


def test_sizes_at_shapes_fixes_dynamic_dims_by_input_name_and_leaves_the_model_alone() -> None:
    """At batch 2 every activation doubles; int64 shape tensors keep their sizes; the model's declared
    input shape keeps its symbol N."""
    model = load_model(TINY_CNN)
    size_of = sizes_at_shapes(model, {"x": [2, 3, 16, 16]})
    sizes = {s.value.name: s.size for s in lifetimes(model.graph, None, size_of)}
    assert (sizes["c1"], sizes["gap"], sizes["gap_shape"], sizes["batch"], sizes["logits"], sizes["dead"]) \
        == (16384, 64, 32, 8, 80, 1024)
    assert model.graph.inputs[0].shape == ("N", 3, 16, 16)
    assert tensor_bytes(model.graph.inputs[0]) is None


def test_sizes_at_shapes_rejects_a_name_that_is_not_an_input() -> None:
    model = load_model(TINY_CNN)
    with pytest.raises(UsageError, match=r"^--input-shape names 'y', which is not an input of the model "
                                         r"\(inputs: .*\bx\b"):
        sizes_at_shapes(model, {"y": [1, 3, 16, 16]})


def test_unknown_size_error_names_the_tensor_and_its_node_and_says_how_to_fix_it() -> None:
    model = load_model(TINY_CNN)
    with pytest.raises(UnknownSizeError) as caught:
        lifetimes(model.graph)
    assert str(caught.value) == ("the size of c1 of Conv node 'conv1' is not static; fix dynamic input dims "
                                 "with --input-shape NAME=D0,D1,...")
    assert isinstance(caught.value, UsageError) and caught.value.exit_code == 2
