"""fuse-affine: dropping zero biases, and the property over random producers, ops and constants
(the rule tests are in test_pass_fuse_affine.py, the shared helpers in fuse_affine_kit.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from fuse_affine_kit import KEEP_BIAS, check, inputs_of
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import helper as h
from passes_kit import array, info, ints, make, only_node, randn

# ---- zero bias ----

@pytest.mark.parametrize("conv_type", ["Conv", "ConvTranspose"])
@pytest.mark.parametrize("zero", [0.0, -0.0], ids=["+0", "-0"])
def test_drop_a_bias_of_zeros(conv_type: str, zero: float) -> None:
    """A bias of (signed) zeros adds nothing: the Conv loses its third input, and the constant goes."""
    w = randn(4, 4, 3, 3, seed=1)
    nodes = [h.make_node(conv_type, ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])]
    proto = make(nodes, [info("x", [1, 4, 5, 5])], [info("y", None)],
                 [array("w", w), array("b", np.full(4, zero, np.float32))])
    ops, stats, model = check(proto, {"x": randn(1, 4, 5, 5, seed=3)})
    assert ops == [conv_type] and stats == {f"fused_{conv_type.lower()}-zero-bias": 1}
    x, w2 = inputs_of(only_node(model, conv_type))
    assert x == "x"
    np.testing.assert_array_equal(w2, w)
    assert [v.name for v in model.graph.consts] == ["w"]


def test_drop_a_bias_that_expands_a_zero_scalar() -> None:
    """Expand(0, [C]) is all zeros too; the Expand is left for dead-code removal."""
    nodes = [h.make_node("Expand", ["z", "shape"], ["b"]), h.make_node("Conv", ["x", "w", "b"], ["y"])]
    proto = make(nodes, [info("x", [1, 4, 5, 5])], [info("y", None)],
                 [array("w", randn(6, 4, 3, 3, seed=1)), array("z", np.zeros((1,), np.float32)),
                  ints("shape", [6])])
    ops, stats, model = check(proto, {"x": randn(1, 4, 5, 5, seed=3)})
    assert ops == ["Expand", "Conv"] and stats == {"fused_conv-zero-bias": 1}
    assert inputs_of(only_node(model, "Conv"))[0] == "x" and len(only_node(model, "Conv").inputs) == 2
    assert only_node(model, "Expand").outputs[0].num_uses == 0


@pytest.mark.parametrize("how", ["one non-zero", "expand of non-zero", "graph input", "nan"])
def test_keep_a_bias_not_known_to_be_zero(how: str) -> None:
    """One non-zero (or NaN) element, an Expand of a non-zero scalar, or a run-time bias: kept."""
    inits = [array("w", randn(6, 4, 3, 3, seed=1))]
    nodes = [h.make_node("Conv", ["x", "w", "b"], ["y"])]
    inputs = [info("x", [1, 4, 5, 5])]
    feeds = {"x": randn(1, 4, 5, 5, seed=3)}
    if how in ("one non-zero", "nan"):
        b = np.zeros(6, np.float32)
        b[5] = 1e-30 if how == "one non-zero" else np.nan
        inits.append(array("b", b))
    elif how == "expand of non-zero":
        nodes.insert(0, h.make_node("Expand", ["z", "shape"], ["b"]))
        inits += [array("z", np.full((), 1e-30, np.float32)), ints("shape", [6])]
    else:
        inputs.append(info("b", [6]))
        feeds["b"] = np.zeros(6, np.float32)
    proto = make(nodes, inputs, [info("y", None)], inits)
    ops, stats, _ = check(proto, feeds)
    assert ops[-1] == "Conv" and len(ops) == len(nodes)
    assert stats == {KEEP_BIAS: 1}


# ---- property ----

_KINDS = ["conv", "conv-grouped", "convtranspose-grouped", "gemm", "gemm-transB", "matmul-1d",
          "matmul-2d", "matmul-3d", "batchnorm"]
_VALUES = ["positive", "negative", "mixed", "zeros", "one zero"]


def _producer(kind: str, channels: int) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[int],
                                                 tuple[int, ...], int]:
    """Nodes computing v from x, their constants, x's shape, v's shape and v's channel axis."""
    if kind in ("conv", "conv-grouped"):
        group = 2 if kind == "conv-grouped" else 1
        return ([h.make_node("Conv", ["x", "w", "b"], ["v"], group=group)],
                [array("w", randn(channels, 4 // group, 1, 1, seed=1)), array("b", randn(channels, seed=2))],
                [1, 4, 3, 3], (1, channels, 3, 3), 1)
    if kind == "convtranspose-grouped":  # 2 groups of channels // 2 outputs each
        return ([h.make_node("ConvTranspose", ["x", "w"], ["v"], group=2)],
                [array("w", randn(4, channels // 2, 2, 2, seed=1))], [1, 4, 2, 2], (1, channels, 3, 3), 1)
    if kind.startswith("gemm"):
        trans_b = int(kind.endswith("transB"))
        w = randn(channels, 3, seed=1) if trans_b else randn(3, channels, seed=1)
        return ([h.make_node("Gemm", ["x", "w", "b"], ["v"], transB=trans_b)],
                [array("w", w), array("b", randn(channels, seed=2))], [2, 3], (2, channels), 1)
    if kind.startswith("matmul"):
        x_shape = {"matmul-1d": [3], "matmul-2d": [2, 3], "matmul-3d": [2, 2, 3]}[kind]
        out = (*x_shape[:-1], channels)
        return ([h.make_node("MatMul", ["x", "w"], ["v"])], [array("w", randn(3, channels, seed=1))],
                x_shape, out, len(out) - 1)
    return ([h.make_node("BatchNormalization", ["x", "s", "bb", "m", "var"], ["v"])],
            [array("s", randn(channels, seed=1)), array("bb", randn(channels, seed=2)),
             array("m", randn(channels, seed=3)), array("var", np.abs(randn(channels, seed=4)) + 0.5)],
            [2, channels, 2], (2, channels, 2), 1)


def _fusable(kind: str, op: str, const_first: bool, c: np.ndarray, out_shape: tuple, axis: int) -> bool:
    """What the pass may fuse, stated independently of its code."""
    if const_first and op in ("Sub", "Div"):
        return False  # c - v, c / v are not affine in v
    if np.broadcast_shapes(c.shape, out_shape) != out_shape:
        return False  # would enlarge the output
    padded = (1,) * (len(out_shape) - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(padded) if i != axis):
        return False  # varies along a non-channel axis
    if op == "Div" and np.any(c == 0):
        return False
    return not (kind.startswith("matmul") and op in ("Add", "Sub") and np.any(c))  # MatMul has no bias


@st.composite
def _cases(draw: st.DrawFn) -> tuple:
    kind = draw(st.sampled_from(_KINDS))
    channels = draw(st.sampled_from([2, 4, 6] if "grouped" in kind else [1, 2, 3, 5]))
    out_shape = _producer(kind, channels)[3]
    rank = draw(st.integers(0, len(out_shape) + 1))
    dims = []
    for i in range(rank):  # right-aligned with v; always a valid broadcast, often not per channel
        pos = len(out_shape) - rank + i
        choices = [1, 2] if pos < 0 else sorted({1, out_shape[pos], 2 if out_shape[pos] == 1 else 1})
        dims.append(draw(st.sampled_from(choices)))
    op = draw(st.sampled_from(["Mul", "Add", "Sub", "Div"]))
    return kind, channels, op, tuple(dims), draw(st.sampled_from(_VALUES)), draw(st.booleans())


def _values(shape: tuple, how: str) -> np.ndarray:
    rng = np.random.default_rng(len(shape))
    c = rng.uniform(0.5, 2.0, shape)
    if how == "negative":
        c = -c
    elif how == "mixed":
        c = c * rng.choice([-1.0, 1.0], shape)
    elif how == "zeros":
        c = np.zeros(shape)
    elif how == "one zero":
        c.reshape(-1)[0] = 0.0
    return np.asarray(c, np.float32)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(_cases())
def test_any_elementwise_constant_after_any_producer_matches_onnxruntime(case: tuple) -> None:
    """Property: random producer, op, constant shape and values (fusable or not) and operand order.
    Outputs agree with onnxruntime; the Mul/Add/Sub/Div is gone exactly when the constant is one the
    producer can absorb, and exactly then the stats report a fusion."""
    kind, channels, op, shape, how, const_first = case
    nodes, inits, x_shape, out_shape, axis = _producer(kind, channels)
    c = _values(shape, how)
    ew = h.make_node(op, ["c", "v"] if const_first else ["v", "c"], ["y"])
    proto = make(nodes + [ew], [info("x", x_shape)], [info("y", None)], inits + [array("c", c)])
    ops, stats, _ = check(proto, {"x": randn(*x_shape, seed=5)})
    fused = [k for k in stats if k.startswith("fused_") and not k.endswith("zero-bias")]
    expected = _fusable(kind, op, const_first, c, out_shape, axis)
    event(f"fused={expected}")
    assert (op not in ops) == bool(fused) == expected, (ops, stats)
    assert len(ops) == (1 if expected else 2)
