"""fold-constants with symbolic shapes: a Reshape or Expand whose computed target gives its input's
dims back is dropped, and a -1 is written only beside dims proved non-zero in every run that succeeds.
Checked with onnxruntime, with symbolic dims fed several concrete sizes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h
from passes_kit import array, assert_same_outputs, info, ints, make, randn, run_pass, untyped

from graphopt import Model

PASS = "fold-constants"


def _check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[list[str], dict, Model]:
    """Run the pass; outputs are bit-exact with onnxruntime; a second run changes nothing."""
    model, result = run_pass(proto, PASS)
    assert_same_outputs(proto, model, feeds)
    _, again = run_pass(model, PASS)
    assert not again.changed, again.stats
    return [n.op_type for n in model.graph], result.stats, model


def _batch_and_other(proven: bool) -> onnx.ModelProto:
    """r[N, M, 4] reshaped to (N from r, K from z, 4); when ``proven``, another Reshape divides by N
    (Reshape(r, [0, -1])), so N is not 0 in any run that succeeds."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Shape", ["r"], ["rs"]),
             h.make_node("Shape", ["z"], ["zs"]),
             h.make_node("Slice", ["rs", "i0", "i1"], ["n"]),
             h.make_node("Slice", ["zs", "i0", "i1"], ["k"]),
             h.make_node("Concat", ["n", "k", "four"], ["t"], axis=0),
             h.make_node("Reshape", ["r", "t"], ["y"])]
    outputs = [untyped("y")]
    if proven:
        nodes.append(h.make_node("Reshape", ["r", "flat"], ["f"]))
        outputs.append(untyped("f"))
    inits = [ints("i0", [0]), ints("i1", [1]), ints("four", [4]), ints("flat", [0, -1])]
    return make(nodes, [info("x", ["N", "M", 4]), info("z", ["K"])], outputs, inits, opset=17)


@pytest.mark.parametrize("proven", [False, True])
def test_minus_one_only_next_to_dims_proved_non_zero(proven: bool) -> None:
    """(N, K, 4) for r[N, M, 4]: with N = 0 the original reshape succeeds while (0, -1, 4) fails in
    onnxruntime, so the -1 needs N proved non-zero; a Reshape by (0, -1) elsewhere proves it."""
    proto = _batch_and_other(proven)
    feeds = {"x": randn(2, 3, 4), "z": randn(3)}
    ops, stats, model = _check(proto, feeds)
    reshape = next(n for n in model.graph if n.op_type == "Reshape")
    target = reshape.inputs[1].const
    if proven:
        assert target is not None and target.numpy().tolist() == [0, -1, 4]
    else:
        assert target is None and "Shape" in ops


def _heads_round_trip(order: tuple[int, int]) -> onnx.ModelProto:
    """x[B, S, 64] -> Reshape(B, -1, 4, 16) -> Transpose(0,2,1,3) -> Relu -> a[B, 4, S, 16]; then
    Reshape(a, Concat(x's dim ``order[0]``, 4, x's dim ``order[1]``, 16)) -> Relu -> y: the target
    reads x's shape, not a's."""
    nodes = [
        h.make_node("Shape", ["x"], ["xs"]), h.make_node("Gather", ["xs", "i0"], ["b"], axis=0),
        h.make_node("Unsqueeze", ["b", "ax"], ["b1"]), h.make_node("Concat", ["b1", "split"], ["t1"], axis=0),
        h.make_node("Reshape", ["x", "t1"], ["heads"]),
        h.make_node("Transpose", ["heads"], ["ht"], perm=[0, 2, 1, 3]), h.make_node("Relu", ["ht"], ["a"]),
        h.make_node("Gather", ["xs", "first"], ["d0"], axis=0),
        h.make_node("Gather", ["xs", "second"], ["d1"], axis=0),
        h.make_node("Concat", ["d0", "four", "d1", "sixteen"], ["t2"], axis=0),
        h.make_node("Reshape", ["a", "t2"], ["back"]), h.make_node("Relu", ["back"], ["y"]),
    ]
    inits = [array("i0", np.array(0, np.int64)), ints("ax", [0]), ints("split", [-1, 4, 16]),
             ints("first", [order[0]]), ints("second", [order[1]]), ints("four", [4]), ints("sixteen", [16])]
    return make(nodes, [info("x", ["B", "S", 64])], [untyped("y")], inits, opset=17)


def test_reshape_to_its_own_dims_is_dropped_when_they_are_proved_equal() -> None:
    """a is [B, 4, S, 16] because the first Reshape's -1 is B*S*64 / (B*4*16) = S: the second
    Reshape asks for exactly that and is dropped with the shape reads feeding it (onnx's inference
    names a's dim 2 afresh and cannot see it)."""
    proto = _heads_round_trip((0, 1))
    feeds = {"x": randn(3, 5, 64)}
    ops, stats, model = _check(proto, feeds)
    assert ops == ["Reshape", "Transpose", "Relu", "Relu"]
    assert stats["reshape_to_itself"] == 1 and stats["reshape_target_copies_dims"] == 1
    for sizes in ((1, 1), (2, 7)):  # any batch and sequence, not only the check's
        assert_same_outputs(proto, model, {"x": randn(*sizes, 64, seed=sum(sizes))})


def test_keep_a_reshape_that_swaps_two_dims() -> None:
    """Asking for S then B where a has B then S is a real reshape whenever B != S."""
    proto = _heads_round_trip((1, 0))
    ops, stats, _ = _check(proto, {"x": randn(3, 5, 64)})
    assert ops.count("Reshape") == 2 and "reshape_to_itself" not in stats


def _expand_by(target_nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
               inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    nodes = [h.make_node("Relu", ["x"], ["r"]), *target_nodes, h.make_node("Expand", ["r", "t"], ["e"]),
             h.make_node("Relu", ["e"], ["y"])]
    return make(nodes, inputs, [untyped("y")], inits, opset=17)


def test_expand_to_its_own_dims_is_dropped() -> None:
    """Expand(r, Concat(Shape(r)[0], 1, 8)) on r[B, 1, 8] changes nothing."""
    target = [h.make_node("Shape", ["r"], ["s"]), h.make_node("Slice", ["s", "i0", "i1"], ["b"]),
              h.make_node("Concat", ["b", "one_eight"], ["t"], axis=0)]
    inits = [ints("i0", [0]), ints("i1", [1]), ints("one_eight", [1, 8])]
    proto = _expand_by(target, [info("x", ["B", 1, 8])], inits)
    ops, stats, _ = _check(proto, {"x": randn(3, 1, 8)})
    assert ops == ["Relu", "Relu"] and stats == {"folded": 1, "expand_to_itself": 1}


def test_keep_an_expand_to_another_inputs_dim() -> None:
    """r[B, 1, 8] expanded to z's dim 0 on axis 1 really broadcasts (z's dim is not r's)."""
    target = [h.make_node("Shape", ["r"], ["s"]), h.make_node("Slice", ["s", "i0", "i1"], ["b"]),
              h.make_node("Shape", ["z"], ["zs"]), h.make_node("Slice", ["zs", "i0", "i1"], ["m"]),
              h.make_node("Concat", ["b", "m", "eight"], ["t"], axis=0)]
    inits = [ints("i0", [0]), ints("i1", [1]), ints("eight", [8])]
    proto = _expand_by(target, [info("x", ["B", 1, 8]), info("z", ["M"])], inits)
    ops, stats, _ = _check(proto, {"x": randn(3, 1, 8), "z": randn(5)})
    assert "Expand" in ops and "expand_to_itself" not in stats
