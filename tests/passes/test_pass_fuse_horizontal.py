"""fuse-horizontal: Q/K/V-style MatMuls (with their bias Adds) and parallel Convs of one input become one
op and a Split; an elementwise op on every piece moves before the Split and a Concat of every piece
cancels it. Exact structure, and outputs against onnxruntime on the original; the cases that stay."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper as h
from passes_kit import array, info, make, op_types, ort, randn, run_pass

PASS = "fuse-horizontal"


def _same(proto: onnx.ModelProto, model, feeds: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    expected, actual = ort(proto, feeds), ort(model, feeds)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-5 * float(np.abs(value).max()))


def _qkv(bias: bool = True, heads: int = 3, shared: bool = False) -> onnx.ModelProto:
    nodes, inits, outs = [], [], []
    for i, name in enumerate("qkv"[:heads]):
        w = "w0" if shared and i else f"w{i}"
        if not (shared and i):
            inits.append(array(w, randn(8, 8, seed=i)))
        nodes.append(h.make_node("MatMul", ["x", w], [f"m{name}"]))
        last = f"m{name}"
        if bias:
            inits.append(array(f"b{i}", randn(8, seed=10 + i)))
            nodes.append(h.make_node("Add", [f"m{name}", f"b{i}"], [f"a{name}"]))
            last = f"a{name}"
        nodes.append(h.make_node(("Tanh", "Relu", "Sigmoid")[i], [last], [name]))  # each its own reader
        outs.append(info(name, None))
    return make(nodes, [info("x", [2, 5, 8])], outs, inits)


def test_qkv_projections_become_one_matmul_one_add_and_a_split() -> None:
    proto = _qkv()
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["MatMul", "Add", "Split", "Tanh", "Relu", "Sigmoid"]
    assert result.stats == {"fused_matmuls": 3}
    matmul, add, split = list(model.graph)[:3]
    np.testing.assert_array_equal(matmul.inputs[1].const.numpy(),
                                  np.concatenate([randn(8, 8, seed=i) for i in range(3)], axis=1))
    assert split.attr("axis") == -1 and split.inputs[1].const.numpy().tolist() == [8, 8, 8]
    _same(proto, model, {"x": randn(2, 5, 8, seed=4)})


def test_three_projections_without_bias_fuse_two_do_not() -> None:
    model, result = run_pass(_qkv(bias=False), PASS)
    assert op_types(model) == ["MatMul", "Split", "Tanh", "Relu", "Sigmoid"]
    model, result = run_pass(_qkv(bias=False, heads=2), PASS)
    assert not result.changed  # one MatMul and a Split are no fewer nodes than two MatMuls


def test_a_weight_another_node_reads_is_not_merged() -> None:
    """k and v share w0: merging would copy it; only q's MatMul is private, so nothing fuses."""
    model, result = run_pass(_qkv(shared=True), PASS)
    assert not result.changed


def test_parallel_1x1_convs_their_relus_and_the_concat_become_conv_and_relu() -> None:
    """Inception-style: three 1x1 Convs of x, a Relu each, Concat on channels: 7 nodes -> 2."""
    nodes, inits = [], []
    for i, c in enumerate((4, 6, 2)):
        inits += [array(f"w{i}", randn(c, 3, 1, 1, seed=i)), array(f"b{i}", randn(c, seed=5 + i))]
        nodes += [h.make_node("Conv", ["x", f"w{i}", f"b{i}"], [f"c{i}"]),
                  h.make_node("Relu", [f"c{i}"], [f"r{i}"])]
    nodes.append(h.make_node("Concat", ["r0", "r1", "r2"], ["y"], axis=1))
    proto = make(nodes, [info("x", [1, 3, 5, 5])], [info("y", None)], inits)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Conv", "Relu"]
    assert result.stats == {"cancelled_split_concat": 1, "fused_convs": 3, "hoisted_Relu": 1}
    assert next(iter(model.graph)).inputs[1].const.shape == (12, 3, 1, 1)
    _same(proto, model, {"x": randn(1, 3, 5, 5, seed=9)})


def test_a_concat_in_another_order_keeps_the_split() -> None:
    nodes = [h.make_node("Split", ["x"], ["p0", "p1"], axis=1, num_outputs=2),
             h.make_node("Concat", ["p1", "p0"], ["y"], axis=1)]
    proto = make(nodes, [info("x", [1, 4])], [info("y", None)], opset=18)
    model, result = run_pass(proto, PASS)
    assert not result.changed and op_types(model) == ["Split", "Concat"]


def test_different_ops_on_the_pieces_stay_after_the_split() -> None:
    nodes = [h.make_node("Split", ["x"], ["p0", "p1"], axis=1, num_outputs=2),
             h.make_node("Relu", ["p0"], ["y0"]), h.make_node("Tanh", ["p1"], ["y1"])]
    proto = make(nodes, [info("x", [1, 4])], [info("y0", None), info("y1", None)], opset=18)
    model, result = run_pass(proto, PASS)
    assert not result.changed
