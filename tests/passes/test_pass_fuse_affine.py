"""fuse-affine: a Mul/Add/Sub/Div by a per-output-channel constant folds into the Conv, ConvTranspose,
Gemm, MatMul or BatchNormalization before it exactly where that is sound, and a Conv bias of zeros is
dropped. Fused weights are checked against an independent numpy formulation, outputs against onnxruntime."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from fuse_affine_kit import KEEP_BIAS, PASS, check, inputs_of
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, info, ints, make, only_node, op_types, randn, run_pass

NOT_PER_CHANNEL = "constant is not per output channel (or rank unknown)"


def _conv(c: np.ndarray, op: str = "Mul", *, group: int = 1, c_in: int = 4, c_out: int = 6,
          bias: bool = True, const_first: bool = False,
          outputs: tuple[str, ...] = ("y",)) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x[1, c_in, 5, 5] -> Conv(w, b) -> v -> op(v, c) -> y (Conv weights [c_out, c_in/group, 3, 3])."""
    inits = [array("w", randn(c_out, c_in // group, 3, 3, seed=1)), array("c", c)]
    inputs = ["x", "w"]
    if bias:
        inits.append(array("b", randn(c_out, seed=2)))
        inputs.append("b")
    ew = ["c", "v"] if const_first else ["v", "c"]
    nodes = [h.make_node("Conv", inputs, ["v"], group=group, pads=[1, 1, 1, 1]),
             h.make_node(op, ew, ["y"])]
    proto = make(nodes, [info("x", [1, c_in, 5, 5])], [info(o, None) for o in outputs], inits)
    return proto, {"x": randn(1, c_in, 5, 5, seed=3)}


def _positive(c_out: int, seed: int = 4) -> np.ndarray:
    return (np.abs(randn(c_out, seed=seed)) + 0.5).astype(np.float32)


# ---- Conv ----

@pytest.mark.parametrize("group,c_in,c_out", [(1, 4, 6), (2, 4, 6), (4, 4, 4)],
                         ids=["plain", "grouped", "depthwise"])
@pytest.mark.parametrize("const_first", [False, True], ids=["v*c", "c*v"])
@pytest.mark.parametrize("lead", [(), (1,)], ids=["[C,1,1]", "[1,C,1,1]"])
def test_mul_by_a_channel_vector_scales_conv_weights_and_bias(group: int, c_in: int, c_out: int,
                                                              const_first: bool, lead: tuple) -> None:
    """Conv(x, w, b) * s is Conv(x, w * s[o], b * s): output channel o of w is scaled, whatever the
    group count and whichever side of the Mul the constant is on."""
    s = _positive(c_out)
    proto, feeds = _conv(s.reshape(*lead, c_out, 1, 1), group=group, c_in=c_in, c_out=c_out,
                         const_first=const_first)
    ops, stats, model = check(proto, feeds)
    assert ops == ["Conv"] and stats == {"fused_conv-mul": 1, KEEP_BIAS: 1}
    conv = only_node(model, "Conv")
    x, w, b = inputs_of(conv)
    assert x == "x" and conv.attr("group", 1) == group and conv.attr("pads") == [1, 1, 1, 1]
    np.testing.assert_allclose(w, randn(c_out, c_in // group, 3, 3, seed=1) * s[:, None, None, None],
                               rtol=1e-6)
    np.testing.assert_allclose(b, randn(c_out, seed=2) * s, rtol=1e-6)
    assert model.graph.outputs[0].name == "y" and model.graph.outputs[0].producer is conv


@pytest.mark.parametrize("op", ["Add", "Sub", "Div"])
def test_add_sub_div_by_a_channel_vector_fold_into_conv_bias_and_weights(op: str) -> None:
    """An offset lands in the bias only; a divisor scales weights and bias by 1/c."""
    c = _positive(6)
    proto, feeds = _conv(c.reshape(6, 1, 1), op)
    ops, stats, model = check(proto, feeds)
    assert ops == ["Conv"] and stats == {f"fused_conv-{op.lower()}": 1, KEEP_BIAS: 1}
    _, w, b = inputs_of(only_node(model, "Conv"))
    w0, b0 = randn(6, 4, 3, 3, seed=1), randn(6, seed=2)
    expected = {"Add": (w0, b0 + c), "Sub": (w0, b0 - c),
                "Div": (w0 / c[:, None, None, None], b0 / c)}[op]
    np.testing.assert_allclose(w, expected[0], rtol=1e-6)
    np.testing.assert_allclose(b, expected[1], rtol=1e-6)


@pytest.mark.parametrize("shape", [(), (1,), (1, 1, 1), (1, 1, 1, 1)], ids=str)
def test_a_scalar_like_constant_scales_every_channel(shape: tuple) -> None:
    """Constants of size 1 and rank <= the output's rank are one value for every channel."""
    proto, feeds = _conv(np.full(shape, 2.5, np.float32))
    ops, stats, model = check(proto, feeds)
    assert ops == ["Conv"] and stats == {"fused_conv-mul": 1, KEEP_BIAS: 1}
    np.testing.assert_allclose(inputs_of(only_node(model, "Conv"))[2], randn(6, seed=2) * 2.5, rtol=1e-6)


def test_conv_without_bias_gets_the_offset_as_its_bias() -> None:
    """Conv(x, w) + c is Conv(x, w, c)."""
    c = randn(6, seed=5)
    proto, feeds = _conv(c.reshape(6, 1, 1), "Add", bias=False)
    ops, stats, model = check(proto, feeds)
    assert ops == ["Conv"] and stats == {"fused_conv-add": 1, KEEP_BIAS: 1}
    x, w, b = inputs_of(only_node(model, "Conv"))
    np.testing.assert_array_equal(w, randn(6, 4, 3, 3, seed=1))
    np.testing.assert_array_equal(b, c)


def test_conv_without_bias_times_a_constant_ends_without_a_bias() -> None:
    """Conv(x, w) * s: a multiplier with no bias before and no offset adds no bias."""
    s = _positive(6)
    proto, feeds = _conv(s.reshape(6, 1, 1), bias=False)
    ops, stats, model = check(proto, feeds)
    assert ops == ["Conv"] and stats == {"fused_conv-mul": 1}
    assert len(only_node(model, "Conv").inputs) == 2
    x, w = inputs_of(only_node(model, "Conv"))
    np.testing.assert_allclose(w, randn(6, 4, 3, 3, seed=1) * s[:, None, None, None], rtol=1e-6)
    assert [v.const.shape for v in model.graph.consts] == [(6, 4, 3, 3)]  # old w, c and the 0 bias went


def test_a_mul_add_chain_folds_into_one_conv() -> None:
    """Conv -> Mul -> Add (the usual frozen-BN export) becomes one Conv."""
    s, t = _positive(6), randn(6, seed=6)
    proto, _ = _conv(s.reshape(6, 1, 1))
    proto.graph.node[1].output[0] = "m"
    proto.graph.node.append(h.make_node("Add", ["m", "t"], ["y"]))
    proto.graph.initializer.append(array("t", t.reshape(1, 6, 1, 1)))
    ops, stats, model = check(proto, {"x": randn(1, 4, 5, 5, seed=3)})
    assert ops == ["Conv"] and stats == {"fused_conv-mul": 1, "fused_conv-add": 1, KEEP_BIAS: 1}
    np.testing.assert_allclose(inputs_of(only_node(model, "Conv"))[2], randn(6, seed=2) * s + t, rtol=1e-6)


def test_float16_weights_are_fused_in_float16() -> None:
    """Computed in float64, stored in the weights' dtype."""
    w, b, s = (randn(6, 4, 3, 3, seed=1).astype(np.float16), randn(6, seed=2).astype(np.float16),
               _positive(6).astype(np.float16))
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["v"]), h.make_node("Mul", ["v", "c"], ["y"])]
    proto = make(nodes, [info("x", [1, 4, 5, 5], T.FLOAT16)], [info("y", None, T.FLOAT16)],
                 [array("w", w), array("b", b), array("c", s.reshape(6, 1, 1))])
    ops, stats, model = check(proto, {"x": randn(1, 4, 5, 5).astype(np.float16)}, tol=None)
    assert ops == ["Conv"] and stats == {"fused_conv-mul": 1, KEEP_BIAS: 1}
    _, w2, b2 = inputs_of(only_node(model, "Conv"))
    assert w2.dtype == b2.dtype == np.float16
    np.testing.assert_array_equal(b2, (b.astype(np.float64) * s).astype(np.float16))


# ---- ConvTranspose ----

@pytest.mark.parametrize("group", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False])
def test_mul_scales_conv_transpose_output_channels_of_every_group(group: int, bias: bool) -> None:
    """ConvTranspose weights are [C_in, C_out/group, k, k]: output channel g * per + j of group g is
    column j of the rows of group g."""
    c_in, per = 6, 2
    c_out = per * group
    s = _positive(c_out)
    w0, b0 = randn(c_in, per, 2, 2, seed=1), randn(c_out, seed=2)
    inits = [array("w", w0), array("c", s.reshape(c_out, 1, 1))] + ([array("b", b0)] if bias else [])
    nodes = [h.make_node("ConvTranspose", ["x", "w", "b"] if bias else ["x", "w"], ["v"], group=group,
                         strides=[2, 2]),
             h.make_node("Mul", ["v", "c"], ["y"])]
    proto = make(nodes, [info("x", [1, c_in, 3, 3])], [info("y", None)], inits)
    ops, stats, model = check(proto, {"x": randn(1, c_in, 3, 3, seed=3)})
    expected_stats = {"fused_convtranspose-mul": 1}
    if bias:
        expected_stats["rejected_convtranspose-zero-bias:bias is not known to be zero"] = 1
    assert ops == ["ConvTranspose"] and stats == expected_stats
    node = only_node(model, "ConvTranspose")
    assert node.attr("group", 1) == group and node.attr("strides") == [2, 2]
    expected = (w0.reshape(group, c_in // group, per, 2, 2) * s.reshape(group, 1, per, 1, 1))
    np.testing.assert_allclose(inputs_of(node)[1], expected.reshape(c_in, per, 2, 2), rtol=1e-6)
    if bias:
        np.testing.assert_allclose(inputs_of(node)[2], b0 * s, rtol=1e-6)
    else:
        assert len(node.inputs) == 2


# ---- Gemm ----

def _gemm(op: str, c: np.ndarray, *, trans_b: int, bias: np.ndarray | None,
          const_first: bool = False) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x[3, 4] -> Gemm(B, C, alpha=0.5, beta=2) -> [3, 5] -> op(., c) -> y."""
    w = randn(5, 4, seed=1) if trans_b else randn(4, 5, seed=1)
    inits = [array("w", w), array("c", c)] + ([] if bias is None else [array("b", bias)])
    ew = ["c", "g"] if const_first else ["g", "c"]
    nodes = [h.make_node("Gemm", ["x", "w"] + ([] if bias is None else ["b"]), ["g"], transB=trans_b,
                         alpha=0.5, beta=2.0),
             h.make_node(op, ew, ["y"])]
    return make(nodes, [info("x", [3, 4])], [info("y", None)], inits), {"x": randn(3, 4, seed=3)}


@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("bias_shape", [None, (5,), (1, 5), (3, 1), (3, 5), ()], ids=str)
def test_mul_by_a_column_vector_folds_into_gemm_b_and_c(trans_b: int, bias_shape: tuple | None) -> None:
    """Gemm(x, B, C) * s: the columns of B (rows when transB) and beta * C are scaled; beta goes, alpha
    stays. A C without a column axis (here [3, 1] or a scalar) is broadcast to [.., 5]; no C stays no C."""
    s = _positive(5)
    bias = None if bias_shape is None else randn(*bias_shape, seed=2)
    proto, feeds = _gemm("Mul", s.reshape(1, 5), trans_b=trans_b, bias=bias)
    ops, stats, model = check(proto, feeds)
    assert ops == ["Gemm"] and stats == {"fused_gemm-mul": 1}
    gemm = only_node(model, "Gemm")
    assert gemm.attr("alpha") == 0.5 and gemm.attr("beta") is None and gemm.attr("transB") == trans_b
    x, w, *c = inputs_of(gemm)
    w0 = randn(5, 4, seed=1) if trans_b else randn(4, 5, seed=1)
    np.testing.assert_allclose(w, w0 * (s[:, None] if trans_b else s[None, :]), rtol=1e-6)
    if bias is None:
        assert c == []
        return
    expected_c = np.broadcast_to(2.0 * bias, np.broadcast_shapes(bias.shape, (5,))) * s
    np.testing.assert_allclose(c[0], expected_c, rtol=1e-6)


@pytest.mark.parametrize("op", ["Add", "Sub"])
def test_an_offset_goes_into_gemm_c(op: str) -> None:
    """Gemm(x, B, C) - t is Gemm(x, B, beta * C - t) with beta 1."""
    t, b0 = randn(5, seed=6), randn(5, seed=2)
    proto, feeds = _gemm(op, t, trans_b=1, bias=b0, const_first=op == "Add")
    ops, stats, model = check(proto, feeds)
    assert ops == ["Gemm"] and stats == {f"fused_gemm-{op.lower()}": 1}
    np.testing.assert_allclose(inputs_of(only_node(model, "Gemm"))[2], 2.0 * b0 + (t if op == "Add" else -t),
                               rtol=1e-6)


def test_keep_gemm_mul_by_a_row_vector() -> None:
    """c of shape [3, 1] scales rows (the batch axis), not output columns."""
    proto, feeds = _gemm("Mul", _positive(3).reshape(3, 1), trans_b=0, bias=None)
    ops, stats, _ = check(proto, feeds)
    assert ops == ["Gemm", "Mul"] and stats == {f"rejected_gemm-mul:{NOT_PER_CHANNEL}": 1}


# ---- MatMul ----

@pytest.mark.parametrize("x_shape,c_shape", [([4], (5,)), ([3, 4], (5,)), ([3, 4], (1, 5)),
                                             ([2, 3, 4], (5,)), ([2, 3, 4], (1, 1, 5))], ids=str)
def test_mul_by_a_column_vector_folds_into_matmul_weights(x_shape: list[int], c_shape: tuple) -> None:
    """x @ W * s is x @ (W * s) for 1-D, 2-D and batched x."""
    s = _positive(5)
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Mul", ["c", "m"], ["y"])]
    proto = make(nodes, [info("x", x_shape)], [info("y", None)],
                 [array("w", randn(4, 5, seed=1)), array("c", s.reshape(c_shape))])
    ops, stats, model = check(proto, {"x": randn(*x_shape, seed=3)})
    assert ops == ["MatMul"] and stats == {"fused_matmul-mul": 1}
    x, w = inputs_of(only_node(model, "MatMul"))
    assert x == "x"
    np.testing.assert_allclose(w, randn(4, 5, seed=1) * s, rtol=1e-6)


@pytest.mark.parametrize("x_shape,c_shape", [([4], (1, 5)), ([3, 4], (3, 1)), ([2, 3, 4], (2, 1, 5)),
                                             ([2, 3, 4], (1, 1, 1, 5)), ([3, 4], (2, 1, 5))], ids=str)
def test_keep_matmul_mul_that_broadcasts_over_rows_or_enlarges_the_output(x_shape: list[int],
                                                                           c_shape: tuple) -> None:
    """A [1, N] constant would make a 1-D MatMul result 2-D; [3, 1] or [2, 1, N] vary along rows or
    the batch; a constant of higher rank enlarges the output: all rejected."""
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Mul", ["m", "c"], ["y"])]
    proto = make(nodes, [info("x", x_shape)], [info("y", None)],
                 [array("w", randn(4, 5, seed=1)), array("c", np.full(c_shape, 1.5, np.float32))])
    ops, stats, _ = check(proto, {"x": randn(*x_shape, seed=3)})
    assert ops == ["MatMul", "Mul"] and stats == {f"rejected_matmul-mul:{NOT_PER_CHANNEL}": 1}


def test_keep_matmul_add_since_matmul_has_no_bias() -> None:
    """MatMul takes multipliers only: an Add of non-zero offsets is rejected (fuse-matmul-add's job)."""
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Add", ["m", "c"], ["y"])]
    proto = make(nodes, [info("x", [3, 4])], [info("y", None)],
                 [array("w", randn(4, 5, seed=1)), array("c", randn(5, seed=2))])
    ops, stats, _ = check(proto, {"x": randn(3, 4)})
    assert ops == ["MatMul", "Add"]
    assert stats == {"rejected_matmul-add:MatMul has no bias to take an offset": 1}


def test_keep_matmul_mul_when_the_rank_of_x_is_unknown() -> None:
    """Without x's rank the channel axis of the result is unknown."""
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Mul", ["m", "c"], ["y"])]
    proto = make(nodes, [info("x", None)], [info("y", None)],
                 [array("w", randn(4, 5, seed=1)), array("c", _positive(5))])
    ops, stats, _ = check(proto, {"x": randn(3, 4)})
    assert ops == ["MatMul", "Mul"] and stats == {f"rejected_matmul-mul:{NOT_PER_CHANNEL}": 1}


def test_keep_integer_matmul() -> None:
    """Integer weights would need exact division and overflow care: not fused."""
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Mul", ["m", "c"], ["y"])]
    proto = make(nodes, [info("x", [3, 4], T.INT32)], [info("y", None, T.INT32)],
                 [ints("w", np.arange(20).reshape(4, 5), np.int32), ints("c", [1, 2, 3, 4, 5], np.int32)])
    ops, stats, _ = check(proto, {"x": np.arange(12, dtype=np.int32).reshape(3, 4)})
    assert ops == ["MatMul", "Mul"] and stats == {"rejected_matmul-mul:weights are not floating point": 1}


# ---- BatchNormalization ----

def _bn(tail: list[onnx.NodeProto], extra: list[onnx.TensorProto], *, opset: int = 17,
        outputs: tuple[str, ...] = ("y",), bn_outputs: tuple[str, ...] = ("n",),
        **attrs: Any) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x[2, 3, 4, 4] -> BatchNormalization -> n -> tail -> y."""
    params = [array("s", randn(3, seed=1)), array("bb", randn(3, seed=2)), array("m", randn(3, seed=3)),
              array("var", np.abs(randn(3, seed=4)) + 0.5)]
    nodes = [h.make_node("BatchNormalization", ["x", "s", "bb", "m", "var"], list(bn_outputs), **attrs),
             *tail]
    proto = make(nodes, [info("x", [2, 3, 4, 4])], [info(o, None) for o in outputs], params + extra,
                 opset=opset)
    return proto, {"x": randn(2, 3, 4, 4, seed=5)}


def test_batchnorm_absorbs_a_following_mul_and_add() -> None:
    """s * BN(x) + t is BN with gamma * s and beta * s + t; mean and variance stay the same tensors."""
    s, t = randn(3, seed=6), randn(3, seed=7)
    proto, feeds = _bn([h.make_node("Mul", ["n", "cs"], ["p"]), h.make_node("Add", ["ct", "p"], ["y"])],
                       [array("cs", s.reshape(3, 1, 1)), array("ct", t.reshape(1, 3, 1, 1))], epsilon=1e-3)
    ops, stats, model = check(proto, feeds)
    assert ops == ["BatchNormalization"] and stats == {"fused_batchnorm-mul": 1, "fused_batchnorm-add": 1}
    bn = only_node(model, "BatchNormalization")
    x, gamma, beta, mean, var = inputs_of(bn)
    assert x == "x" and bn.attr("epsilon") == pytest.approx(1e-3)
    np.testing.assert_allclose(gamma, randn(3, seed=1) * s, rtol=1e-6)
    np.testing.assert_allclose(beta, randn(3, seed=2) * s + t, rtol=1e-6)
    assert (bn.inputs[3].name, bn.inputs[4].name) == ("m", "var")


def test_keep_batchnorm_in_training_mode() -> None:
    """training_mode=1 normalises with the batch statistics: its gamma is not a plain multiplier."""
    proto, _ = _bn([h.make_node("Mul", ["n", "cs"], ["y"])], [array("cs", _positive(3).reshape(3, 1, 1))],
                   training_mode=1)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["BatchNormalization", "Mul"]
    assert result.stats == {"rejected_batchnorm-mul:BatchNormalization in training mode": 1}


def test_keep_batchnorm_whose_statistics_outputs_are_read() -> None:
    """Opset 9: a running-mean output that is a graph output keeps the BN as it is."""
    proto, _ = _bn([h.make_node("Mul", ["n", "cs"], ["y"])], [array("cs", _positive(3).reshape(3, 1, 1))],
                   opset=9, outputs=("y", "mean_out"), bn_outputs=("n", "mean_out"))
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["BatchNormalization", "Mul"]
    assert result.stats == {"rejected_batchnorm-mul:intermediate value is a graph output": 1}


def test_keep_batchnorm_with_spatial_zero_before_opset_9() -> None:
    """spatial=0 (opset < 9) normalises per activation, not per channel."""
    proto, _ = _bn([h.make_node("Mul", ["n", "cs"], ["y"])], [array("cs", _positive(3).reshape(3, 1, 1))],
                   opset=8, spatial=0)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["BatchNormalization", "Mul"]
    assert result.stats == {"rejected_batchnorm-mul:BatchNormalization with spatial=0": 1}


def test_keep_mul_whose_dtype_differs_from_the_batchnorm_parameters() -> None:
    """Opset 15 lets X be float16 while scale is float32: a float16 multiplier is not folded."""
    params = [array("s", randn(3, seed=1)), array("bb", randn(3, seed=2)), array("m", randn(3, seed=3)),
              array("var", np.abs(randn(3, seed=4)) + 0.5), array("cs", _positive(3).astype(np.float16)
                                                                 .reshape(3, 1, 1))]
    nodes = [h.make_node("BatchNormalization", ["x", "s", "bb", "m", "var"], ["n"]),
             h.make_node("Mul", ["n", "cs"], ["y"])]
    proto = make(nodes, [info("x", [2, 3, 4, 4], T.FLOAT16)], [info("y", None, T.FLOAT16)], params)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["BatchNormalization", "Mul"]
    assert result.stats == {"rejected_batchnorm-mul:constant is not of the weights' float dtype": 1}


# ---- rejections shared by every producer ----

@pytest.mark.parametrize("op", ["Sub", "Div"])
def test_keep_sub_and_div_with_the_constant_on_the_left(op: str) -> None:
    """c - Conv(x) and c / Conv(x) are not affine in the Conv's output: no match at all."""
    proto, feeds = _conv(_positive(6).reshape(6, 1, 1), op, bias=False, const_first=True)
    ops, stats, _ = check(proto, feeds)
    assert ops == ["Conv", op] and stats == {}


@pytest.mark.parametrize("zero", [0.0, -0.0], ids=["+0", "-0"])
def test_keep_division_by_a_constant_holding_zero(zero: float) -> None:
    """Conv / c with one zero channel is inf/nan there, not a finite weight: kept."""
    c = _positive(6)
    c[3] = zero
    proto, feeds = _conv(c.reshape(6, 1, 1), "Div", bias=False)
    ops, stats, _ = check(proto, feeds)
    assert ops == ["Conv", "Div"] and stats == {"rejected_conv-div:division by zero": 1}


@pytest.mark.parametrize("shape", [(5,), (5, 1), (1, 1, 5, 5), (1, 6, 5, 5), (2, 6, 1, 1),
                                   (1, 1, 6, 1, 1), (1, 1, 1, 1, 1)], ids=str)
def test_keep_a_constant_that_is_not_one_value_per_channel(shape: tuple) -> None:
    """[5] and [5, 1] align with the spatial axes W and H; [.., 5, 5] varies over space; [2, 6, 1, 1]
    would enlarge the batch of 1 to 2; a rank-5 constant (even of one element) would enlarge the rank."""
    proto, feeds = _conv(np.full(shape, 1.5, np.float32), bias=False)
    ops, stats, _ = check(proto, feeds)
    assert ops == ["Conv", "Mul"] and stats == {f"rejected_conv-mul:{NOT_PER_CHANNEL}": 1}


def test_keep_mul_when_the_conv_output_is_read_elsewhere() -> None:
    """The Conv output is also a graph output: folding would change it."""
    proto, feeds = _conv(_positive(6).reshape(6, 1, 1), bias=False, outputs=("y", "v"))
    ops, stats, _ = check(proto, feeds)
    assert ops == ["Conv", "Mul"]
    assert stats == {"rejected_conv-mul:intermediate value is a graph output": 1}


def test_keep_mul_when_the_conv_output_feeds_another_node() -> None:
    """A Relu also reads the Conv output."""
    proto, feeds = _conv(_positive(6).reshape(6, 1, 1), bias=False, outputs=("y", "r"))
    proto.graph.node.append(h.make_node("Relu", ["v"], ["r"]))
    ops, stats, _ = check(proto, feeds)
    assert ops == ["Conv", "Mul", "Relu"]
    assert stats == {"rejected_conv-mul:intermediate value is used outside the match": 1}


def test_keep_mul_by_a_graph_input() -> None:
    """A non-constant operand is not matched."""
    proto, _ = _conv(_positive(6).reshape(6, 1, 1), bias=False)
    proto.graph.initializer.pop(1)
    proto.graph.input.append(info("c", [6, 1, 1]))
    ops, stats, _ = check(proto, {"x": randn(1, 4, 5, 5, seed=3), "c": _positive(6).reshape(6, 1, 1)})
    assert ops == ["Conv", "Mul"] and stats == {}
