"""eliminate-dead-channels: Conv output channels with all-zero weights leave the Conv, the channel-wise
ops after it and the reading Convs; a non-zero constant channel goes into the reader's bias. Exact
structure (weight shapes), outputs against onnxruntime on the original, and the cases that stay."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h
from passes_kit import array, info, make, op_types, ort, randn, run_pass

from graphopt import Model

PASS = "eliminate-dead-channels"
DEAD = [2, 5]


def _weights(out: int, inp: int, k: int, seed: int, dead: list[int] = ()) -> np.ndarray:
    w = randn(out, inp, k, k, seed=seed)
    w[list(dead)] = 0.0
    return w


def _shapes(model: Model) -> dict[str, tuple[int, ...]]:
    """Initializer shapes of each Conv's weight, in node order."""
    return {n.name or f"conv{i}": tuple(n.inputs[1].const.shape)
            for i, n in enumerate(m for m in model.graph if m.op_type == "Conv")}


def _close(proto: onnx.ModelProto, model: Model, batch: int = 2) -> None:
    feeds = {"x": randn(batch, 3, 8, 8, seed=batch)}
    expected, actual = ort(proto, feeds), ort(model, feeds)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-5 * float(np.abs(value).max()))


def _chain(middle: list[onnx.NodeProto], bias: np.ndarray | None, reader_pads: int,
           extra: list[onnx.TensorProto] = (), outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    """x -> Conv(8 channels, 2 and 5 dead) -> ``middle`` (reads c1, writes a) -> Conv(4) -> y."""
    conv1 = ["x", "w1"] + (["b1"] if bias is not None else [])
    nodes = [h.make_node("Conv", conv1, ["c1"], pads=[1] * 4), *middle,
             h.make_node("Conv", ["a", "w2", "b2"], ["y"], pads=[reader_pads] * 4)]
    k = 2 * reader_pads + 1
    inits = [array("w1", _weights(8, 3, 3, 1, DEAD)), array("w2", _weights(4, 8, k, 2)),
             array("b2", randn(4, seed=3)), *extra]
    if bias is not None:
        inits.append(array("b1", bias))
    return make(nodes, [info("x", ["N", 3, 8, 8])], [info(o, None) for o in outputs], inits)


def test_zero_channels_through_relu_leave_both_convs_even_with_padding() -> None:
    """Dead channels without bias are 0, Relu keeps 0, so a padded 3x3 reader loses them too."""
    proto = _chain([h.make_node("Relu", ["c1"], ["a"])], None, reader_pads=1)
    model, result = run_pass(proto, PASS)
    assert result.stats == {"channels": 2, "convs": 1}
    assert list(_shapes(model).values()) == [(6, 3, 3, 3), (4, 6, 3, 3)]
    _close(proto, model)
    assert not run_pass(model, PASS)[1].changed


def test_a_biased_dead_channel_through_silu_goes_into_a_pointwise_readers_bias() -> None:
    """A dead channel holds its bias b everywhere, SiLU makes it b*sigmoid(b); a 1x1 reader without
    padding adds that times its weights: the reader's bias takes it."""
    bias = randn(8, seed=4)
    middle = [h.make_node("Sigmoid", ["c1"], ["s"]), h.make_node("Mul", ["c1", "s"], ["a"])]
    proto = _chain(middle, bias, reader_pads=0)
    model, result = run_pass(proto, PASS)
    assert result.stats == {"channels": 2, "convs": 1}
    assert list(_shapes(model).values()) == [(6, 3, 3, 3), (4, 6, 1, 1)]
    assert op_types(model) == ["Conv", "Sigmoid", "Mul", "Conv"]
    _close(proto, model)


def test_per_channel_constants_and_a_depthwise_conv_shrink_with_the_channels() -> None:
    """Mul by a [8,1,1] scale, a depthwise 3x3 Conv and Clip: every per-channel tensor loses 2 and 5."""
    middle = [h.make_node("Mul", ["c1", "scale"], ["m"]),
              h.make_node("Conv", ["m", "wd"], ["d"], group=8, pads=[1] * 4),
              h.make_node("Clip", ["d", "lo", "hi"], ["a"])]
    extra = [array("scale", randn(8, 1, 1, seed=5)), array("wd", randn(8, 1, 3, 3, seed=6)),
             array("lo", np.array(0.0, np.float32)), array("hi", np.array(6.0, np.float32))]
    proto = _chain(middle, None, reader_pads=1, extra=extra)
    model, result = run_pass(proto, PASS)
    assert result.stats == {"channels": 2, "convs": 1}
    assert list(_shapes(model).values()) == [(6, 3, 3, 3), (6, 1, 3, 3), (4, 6, 3, 3)]
    depthwise = [n for n in model.graph if n.op_type == "Conv"][1]
    assert depthwise.attr("group") == 6
    mul = next(n for n in model.graph if n.op_type == "Mul")
    assert mul.inputs[1].const.shape == (6, 1, 1)
    _close(proto, model, batch=1)


def test_a_constant_channel_read_through_zero_padding_stays() -> None:
    """Bias 0.7 on the dead channels and a padded 3x3 reader: the border would see 0.7 next to 0."""
    bias = np.full(8, 0.7, np.float32)
    proto = _chain([h.make_node("Relu", ["c1"], ["a"])], bias, reader_pads=1)
    model, result = run_pass(proto, PASS)
    assert not result.changed and result.stats == {"skipped_padding_reads_a_constant": 1}
    assert list(_shapes(model).values()) == [(8, 3, 3, 3), (4, 8, 3, 3)]


@pytest.mark.parametrize("case", ["residual add", "graph output", "shared reader weight"])
def test_channels_that_reach_something_else_stay(case: str) -> None:
    """An Add with the input (channels mix with live data), the region as a graph output, or a reader
    weight that another Conv reads too: nothing is removed."""
    if case == "residual add":
        middle = [h.make_node("Relu", ["c1"], ["r"]), h.make_node("Conv", ["x", "wx"], ["side"]),
                  h.make_node("Add", ["r", "side"], ["a"])]
        proto = _chain(middle, None, 1, [array("wx", randn(8, 3, 1, 1, seed=7))])
    elif case == "graph output":
        proto = _chain([h.make_node("Relu", ["c1"], ["a"])], None, 1, outputs=("y", "a"))
    else:
        proto = _chain([h.make_node("Relu", ["c1"], ["a"])], None, 1, outputs=("y", "y2"))
        proto.graph.node.append(h.make_node("Conv", ["a2", "w2"], ["y2"], pads=[1] * 4))
        proto.graph.input.append(info("a2", [1, 8, 8, 8]))
    model, result = run_pass(proto, PASS)
    assert not result.changed
    assert _shapes(model)[next(iter(_shapes(model)))] == (8, 3, 3, 3)
