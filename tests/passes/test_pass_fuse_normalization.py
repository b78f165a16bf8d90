"""fuse-normalization: decomposed LayerNormalization (opset >= 17) and exact Gelu (opset >= 20) become the
single ops, in every form exporters write, and nowhere the rewrite would change a value or a shape.
Outputs are compared with onnxruntime before and after within a float32 tolerance."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fuse_normalization_kit import BROADCASTS, PASS, check, layernorm
from onnx import helper as h
from passes_kit import array, info, only_node, op_types, ort, randn, run_pass

from graphopt import Node

NOT_TRAILING = "means are not over the same trailing axes with keepdims"


def _const(node: Node, index: int) -> np.ndarray:
    value = node.inputs[index]
    assert value is not None and value.const is not None
    return value.const.numpy()


# ---- LayerNormalization ----

@pytest.mark.parametrize("opset", [17, 18, 20])
@pytest.mark.parametrize("square", ["pow", "mul"])
@pytest.mark.parametrize("affine", ["", "scale", "affine"])
@pytest.mark.parametrize("swap", [False, True], ids=["x-first", "const-first"])
def test_decomposed_layernorm_becomes_one_node(opset: int, square: str, affine: str, swap: bool) -> None:
    """Pow(d, 2) or Mul(d, d); axes as attribute (17) or input (18+); optional * gamma and + beta on
    either side: one LayerNormalization over axis -1 with the same epsilon, gamma and beta (or 1 and 0)."""
    gamma, beta = randn(4, seed=1), randn(4, seed=2)
    proto, feeds = layernorm(square=square, opset=opset, eps=1e-3, swap=swap,
                             gamma=gamma if affine else None, beta=beta if affine == "affine" else None)
    ops, stats, model = check(proto, feeds)
    rule = f"layernorm-{square}" + (f"-{affine}" if affine else "")
    assert ops == ["LayerNormalization"] and stats == {f"fused_{rule}": 1}
    ln = only_node(model, "LayerNormalization")
    assert ln.inputs[0] is model.graph.inputs[0] and ln.outputs[0] is model.graph.outputs[0]
    assert ln.attr("axis") == -1 and ln.attr("epsilon") == pytest.approx(1e-3)
    np.testing.assert_array_equal(_const(ln, 1), gamma if affine else np.ones(4, np.float32))
    np.testing.assert_array_equal(_const(ln, 2), beta if affine == "affine" else np.zeros(4, np.float32))
    assert _const(ln, 1).dtype == _const(ln, 2).dtype == np.float32
    assert [v.name for v in model.graph.consts] == [v.name for v in ln.inputs[1:]]  # the rest went


@pytest.mark.parametrize("axes,var_axes", [((-2, -1), (-2, -1)), ((1, 2), (-2, -1)), ((-1, -2), (2, 1))],
                         ids=["negative", "positive-vs-negative", "unsorted"])
def test_means_over_several_trailing_axes_give_the_first_as_axis(axes: tuple, var_axes: tuple) -> None:
    """Axes are compared as sets modulo the rank: [1, 2], [-2, -1] and [-1, -2] of a rank-3 x all
    normalise the last two axes, written axis=-2."""
    proto, feeds = layernorm(axes=axes, var_axes=var_axes, gamma=randn(3, 4, seed=1))
    ops, stats, model = check(proto, feeds)
    assert ops == ["LayerNormalization"] and stats == {"fused_layernorm-pow-scale": 1}
    ln = only_node(model, "LayerNormalization")
    assert ln.attr("axis") == -2
    np.testing.assert_array_equal(_const(ln, 1), randn(3, 4, seed=1))
    np.testing.assert_array_equal(_const(ln, 2), np.zeros((3, 4), np.float32))


@pytest.mark.parametrize("gamma_shape,beta_shape", [((), ()), ((1,), (4,)), ((3, 1), (1, 4)), ((1, 1), ())],
                         ids=str)
def test_scale_and_bias_that_broadcast_over_the_normalized_dims_are_expanded(gamma_shape: tuple,
                                                                              beta_shape: tuple) -> None:
    """A gamma or beta of fewer or size-1 dims is broadcast to the normalized shape [3, 4]."""
    gamma, beta = randn(*gamma_shape, seed=1), randn(*beta_shape, seed=2)
    proto, feeds = layernorm(axes=(-2, -1), gamma=gamma, beta=beta)
    ops, stats, model = check(proto, feeds)
    assert ops == ["LayerNormalization"] and stats == {"fused_layernorm-pow-affine": 1}
    ln = only_node(model, "LayerNormalization")
    np.testing.assert_array_equal(_const(ln, 1), np.broadcast_to(gamma, (3, 4)))
    np.testing.assert_array_equal(_const(ln, 2), np.broadcast_to(beta, (3, 4)))


def test_a_bias_without_a_scale_stays_an_add_after_the_layernorm() -> None:
    """No rule takes Add(normalized, beta) without a Mul: the normalization fuses, the Add stays."""
    proto, feeds = layernorm(beta=randn(4, seed=2))
    ops, stats, _ = check(proto, feeds)
    assert ops == ["LayerNormalization", "Add"] and stats == {"fused_layernorm-pow": 1}


@pytest.mark.parametrize("eps_shape", [(), (1,), (1, 1, 1)], ids=str)
def test_epsilon_of_one_element_and_at_most_x_rank_is_a_scalar(eps_shape: tuple) -> None:
    proto, feeds = layernorm(eps=np.full(eps_shape, 0.25))
    ops, stats, model = check(proto, feeds)
    assert ops == ["LayerNormalization"] and stats == {"fused_layernorm-pow": 1}
    assert only_node(model, "LayerNormalization").attr("epsilon") == pytest.approx(0.25)


def test_a_symbolic_batch_dim_is_fine_but_symbolic_normalized_dims_need_a_scale() -> None:
    """Without gamma the pass must build ones of the normalized shape, which needs static dims."""
    proto, feeds = layernorm(("batch", 3, 4), gamma=randn(4, seed=1))
    ops, stats, _ = check(proto, feeds)
    assert ops == ["LayerNormalization"] and stats == {"fused_layernorm-pow-scale": 1}
    proto, feeds = layernorm((2, 3, "features"))
    ops, stats, _ = check(proto, feeds)
    assert ops[-1] == "Div" and len(ops) == 7
    assert stats == {"rejected_layernorm-pow:no scale and the normalized dims are not static": 1}


def test_float16_layernorm_keeps_float16_scale_and_bias() -> None:
    proto, feeds = layernorm(square="mul", dtype=np.float16, gamma=randn(4, seed=1), beta=randn(4, seed=2))
    ops, stats, model = check(proto, feeds, tol=(1e-2, 1e-2))
    assert ops == ["LayerNormalization"] and stats == {"fused_layernorm-mul-affine": 1}
    ln = only_node(model, "LayerNormalization")
    assert _const(ln, 1).dtype == _const(ln, 2).dtype == np.float16


def test_keep_layernorm_pattern_below_opset_17() -> None:
    """Opset 16 has no LayerNormalization: the pass does not even look."""
    proto, feeds = layernorm(opset=16, gamma=randn(4, seed=1), beta=randn(4, seed=2))
    ops, stats, _ = check(proto, feeds)
    assert ops == ["ReduceMean", "Sub", "Pow", "ReduceMean", "Add", "Sqrt", "Div", "Mul", "Add"]
    assert stats == {}


@pytest.mark.parametrize("opset", [17, 18])
@pytest.mark.parametrize("axes,var_axes", [((-1,), (-2, -1)), ((-2, -1), (-1,)), ((-2,), (-2,)),
                                           ((0, 1), (0, 1)), ((-3, -1), (-3, -1))],
                         ids=["var-wider", "mean-wider", "not-last", "leading", "gap"])
def test_keep_means_not_over_the_same_trailing_axes(opset: int, axes: tuple, var_axes: tuple) -> None:
    """Different axes on the two means, or axes that are not a trailing run, are not a LayerNorm."""
    proto, feeds = layernorm(axes=axes, var_axes=var_axes, opset=opset)
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops and len(ops) == 7
    assert stats == {f"rejected_layernorm-pow:{NOT_TRAILING}": 1}


@pytest.mark.parametrize("keepdims", [(0, 1), (1, 0), (0, 0)], ids=["mean", "var", "both"])
def test_keep_means_without_keepdims(keepdims: tuple) -> None:
    """keepdims=0 on a square x [4, 4] still broadcasts, along the other axis: not a LayerNorm."""
    proto, feeds = layernorm((4, 4), keepdims=keepdims)
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops and stats == {f"rejected_layernorm-pow:{NOT_TRAILING}": 1}


def test_keep_means_over_all_axes_by_default() -> None:
    """A ReduceMean without axes reduces every axis; the pass does not guess the count."""
    proto, feeds = layernorm((2, 4))
    for node in proto.graph.node:
        del node.attribute[:]
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops and stats == {f"rejected_layernorm-pow:{NOT_TRAILING}": 1}


def test_an_exponent_of_2s_per_feature_is_a_square() -> None:
    """Pow(d, [2, 2, 2, 2]) with x [2, 3, 4] is d * d: the exponent need not be a scalar."""
    ops, stats, _ = check(*layernorm(exponent=np.full(4, 2.0)))
    assert ops == ["LayerNormalization"] and stats == {"fused_layernorm-pow": 1}


@pytest.mark.parametrize("exponent", [3.0, np.array([2.0, 2.0, 2.0, 3.0])], ids=["3", "[2,2,2,3]"])
def test_keep_pow_with_an_exponent_other_than_2(exponent: Any) -> None:
    proto, feeds = layernorm(exponent=exponent)
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops and stats == {"rejected_layernorm-pow:Pow exponent is not 2": 1}


def test_keep_epsilon_that_is_not_a_scalar() -> None:
    """One epsilon per batch row [2, 1, 1] is not LayerNormalization's single float."""
    proto, feeds = layernorm(eps=np.array([1e-5, 1.0]).reshape(2, 1, 1))
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops and stats == {"rejected_layernorm-pow:epsilon is not a scalar": 1}


@pytest.mark.parametrize("which", ["eps", "two"])
def test_keep_a_one_element_constant_of_higher_rank_than_x(which: str) -> None:
    """Regression: eps or the exponent of shape [1, 1, 1] with x [2, 4] makes the output [1, 2, 4];
    LayerNormalization would return [2, 4]."""
    if which == "eps":
        proto, feeds = layernorm((2, 4), eps=np.full((1, 1, 1), 1e-5))
    else:
        proto, feeds = layernorm((2, 4), exponent=np.full((1, 1, 1), 2.0))
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops and stats == {f"rejected_layernorm-pow:{BROADCASTS}": 1}
    assert ort(proto, feeds)["y"].shape == (1, 2, 4)


@pytest.mark.parametrize("how", ["opset17-other-axes", "opset18-no-keepdims"])
@pytest.mark.parametrize("square", ["pow", "mul"])
def test_keep_a_numerator_and_a_square_of_different_centered_values(how: str, square: str) -> None:
    """Regression: the pattern names the Sub three times but matched two different Subs, and checked
    only the mean seen last. x - mean over [-2, -1] (or over [-1] without keepdims, sharing the axes
    input) divided by the deviation of x - mean over [-1] was fused into a LayerNorm (wrong values)."""
    opset = 17 if how.startswith("opset17") else 18
    proto, feeds = layernorm((3, 3), square=square, opset=opset)
    if opset == 17:
        other = h.make_node("ReduceMean", ["x"], ["mean2"], axes=[-2, -1])
    else:
        other = h.make_node("ReduceMean", ["x", "mean_axes"], ["mean2"], keepdims=0)
    proto.graph.node.insert(0, other)
    proto.graph.node.insert(1, h.make_node("Sub", ["x", "mean2"], ["d2"]))
    proto.graph.node[-1].input[0] = "d2"  # Div(d2, std) with std from d = x - mean over [-1]
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops
    # the pattern names the Sub "d" in every place: the matcher binds one capture to one node, so the
    # pattern does not match at all and no rejection is counted (the pass's own check stays as a guard)
    assert stats == {}


def test_keep_a_square_of_two_different_centered_values() -> None:
    """Mul(x - mean over [-1], x - mean over [-2]): the same hole through the other Sub."""
    proto, feeds = layernorm((3, 3), square="mul")
    proto.graph.node.insert(0, h.make_node("ReduceMean", ["x"], ["mean2"], axes=[-2]))
    proto.graph.node.insert(1, h.make_node("Sub", ["x", "mean2"], ["d2"]))
    sq = next(n for n in proto.graph.node if n.output[0] == "sq")
    sq.input[1] = "d2"
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops
    assert stats == {}  # the matcher binds the capture "d" to one Sub node: no match, no rejection


@pytest.mark.parametrize("gamma_shape", [(3, 1), (2, 1, 4), (1, 1, 4)], ids=str)
def test_a_scale_over_other_axes_stays_a_mul_after_the_layernorm(gamma_shape: tuple) -> None:
    """gamma [3, 1] varies along axis 1, [2, 1, 4] along the batch; [1, 1, 4] has more dims than the
    one normalized axis (the pass does not squeeze). The normalization alone still fuses."""
    proto, feeds = layernorm(gamma=randn(*gamma_shape, seed=1), beta=randn(4, seed=2))
    ops, stats, _ = check(proto, feeds)
    assert ops == ["LayerNormalization", "Mul", "Add"]
    reason = "gamma does not broadcast over the normalized dims only"
    assert stats == {f"rejected_layernorm-pow-affine:{reason}": 1,
                     f"rejected_layernorm-pow-scale:{reason}": 1, "fused_layernorm-pow": 1}


def test_a_scale_that_would_enlarge_a_normalized_dim_of_size_1_stays_a_mul() -> None:
    """x [2, 3, 1] normalized over its last axis, gamma [3]: the product is [2, 3, 3], not [2, 3, 1]."""
    proto, feeds = layernorm((2, 3, 1), gamma=randn(3, seed=1))
    ops, stats, _ = check(proto, feeds)
    assert ops == ["LayerNormalization", "Mul"]
    assert stats == {"rejected_layernorm-pow-scale:gamma does not broadcast over the normalized dims only": 1,
                     "fused_layernorm-pow": 1}


def test_a_bias_over_other_axes_stays_an_add() -> None:
    proto, feeds = layernorm(gamma=randn(4, seed=1), beta=randn(3, 1, seed=2))
    ops, stats, model = check(proto, feeds)
    assert ops == ["LayerNormalization", "Add"]
    assert stats == {"rejected_layernorm-pow-affine:beta does not broadcast over the normalized dims only": 1,
                     "fused_layernorm-pow-scale": 1}
    np.testing.assert_array_equal(_const(only_node(model, "LayerNormalization"), 1), randn(4, seed=1))


def test_keep_a_scale_of_another_dtype() -> None:
    """Mul(float32, float16) is not valid ONNX anyway; the pass does not build a mixed LayerNorm."""
    proto, _ = layernorm(gamma=randn(4, seed=1))
    proto.graph.initializer[-1].CopyFrom(array("gamma", randn(4, seed=1).astype(np.float16)))
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["LayerNormalization", "Mul"]
    assert result.stats == {"rejected_layernorm-pow-scale:gamma dtype differs": 1, "fused_layernorm-pow": 1}


@pytest.mark.parametrize("leak", ["mean", "d", "sq", "var", "std"])
@pytest.mark.parametrize("how", ["graph output", "other node"])
def test_keep_layernorm_whose_intermediate_is_read_elsewhere(leak: str, how: str) -> None:
    """The mean, the centered value or any other inner value is also a graph output or read by a Relu."""
    if how == "graph output":
        proto, feeds = layernorm(outputs=("y", leak))
        reason = "intermediate value is a graph output"
    else:
        proto, feeds = layernorm(outputs=("y", "r"), tail=[h.make_node("Relu", [leak], ["r"])])
        reason = "intermediate value is used outside the match"
    ops, stats, _ = check(proto, feeds)
    assert "LayerNormalization" not in ops and stats == {f"rejected_layernorm-pow:{reason}": 1}


def test_a_scaled_value_read_elsewhere_stops_only_the_bias() -> None:
    """n * gamma is also read by a Relu: the Add stays, the scale still fuses."""
    proto, feeds = layernorm(gamma=randn(4, seed=1), beta=randn(4, seed=2), outputs=("y", "r"),
                             tail=[h.make_node("Relu", ["s"], ["r"])])
    ops, stats, _ = check(proto, feeds)
    assert ops == ["LayerNormalization", "Add", "Relu"]
    assert stats == {"rejected_layernorm-pow-affine:intermediate value is used outside the match": 1,
                     "fused_layernorm-pow-scale": 1}


def test_keep_a_mean_of_another_tensor() -> None:
    """x - mean(z): the pattern's x must be one value everywhere, so nothing matches."""
    proto, feeds = layernorm()
    proto.graph.node[0].input[0] = "z"
    proto.graph.input.append(info("z", [2, 3, 4]))
    ops, stats, _ = check(proto, {**feeds, "z": randn(2, 3, 4, seed=9)})
    assert "LayerNormalization" not in ops and stats == {}


def test_keep_layernorm_of_an_integer_input() -> None:
    """The pass checks the dtype first (onnxruntime has no integer Sqrt to compare with)."""
    proto, _ = layernorm(dtype=np.int32, exponent=2, eps=1)
    model, result = run_pass(proto, PASS)
    assert "LayerNormalization" not in op_types(model)
    assert result.stats == {"rejected_layernorm-pow:input is not floating point": 1}
