"""fuse-pad: a zero-filled constant-mode Pad folds into the pads of the Conv or AveragePool reading it,
exactly where the result is the same tensor (checked against onnxruntime), for Pad's pads as an input
(opset 11+, with the opset-18 axes) or as an attribute (opset < 11)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import helper as h
from passes_kit import array, info, ints, make, op_types, ort, randn, run_pass

from graphopt import Model, Node
from graphopt.numerics.compare import compare_outputs

PASS = "fuse-pad"
TOL = (1e-5, 1e-6)  # a Conv may pick another algorithm for other pads: float32 rounding only


def _model(amounts: list[int], consumer: str = "Conv", *, opset: int = 17, x_shape: list[int] | None = None,
           mode: str | None = None, value: float | None = None, axes: list[int] | None = None,
           outputs: tuple[str, ...] = ("y",), **attrs: Any) -> onnx.ModelProto:
    """x -> Pad(amounts, value, axes; mode) -> p -> consumer(**attrs) -> y; Conv weights [4, C, 3, ..]
    where C is x's channel count plus what the Pad adds to it."""
    x_shape = x_shape or [1, 3, 6, 6]
    channels = x_shape[1] + (amounts[1] + amounts[len(amounts) // 2 + 1] if axes is None else 0)
    pad_attrs: dict[str, Any] = {} if mode is None else {"mode": mode}
    inits: list[onnx.TensorProto] = []
    if opset >= 11:
        pad_inputs = ["x", "pads", "" if value is None else "value"] + ([] if axes is None else ["axes"])
        inits.append(ints("pads", amounts))
        if value is not None:
            inits.append(array("value", np.array(value, np.float32)))
        if axes is not None:
            inits.append(ints("axes", axes))
        while pad_inputs[-1] == "":
            pad_inputs.pop()
    else:
        pad_inputs = ["x"]
        pad_attrs["pads"] = amounts
        if value is not None:
            pad_attrs["value"] = value
    nodes = [h.make_node("Pad", pad_inputs, ["p"], **pad_attrs)]
    if consumer == "Conv":
        inits.append(array("w", randn(4, channels, *[3] * (len(x_shape) - 2), seed=1)))
        nodes.append(h.make_node("Conv", ["p", "w"], ["y"], **attrs))
    else:
        attrs.setdefault("kernel_shape", [3] * (len(x_shape) - 2))
        nodes.append(h.make_node(consumer, ["p"], ["y"], **attrs))
    return make(nodes, [info("x", x_shape)], [info(o, None) for o in outputs], inits, opset=opset)


def _check(proto: onnx.ModelProto, x_shape: list[int] | None = None) -> tuple[list[str], dict, Model]:
    """Run the pass; outputs agree with onnxruntime; a second run changes nothing."""
    feeds = {"x": randn(*(x_shape or [1, 3, 6, 6]), seed=2)}
    model, result = run_pass(proto, PASS)
    before, after = ort(proto, feeds), ort(model, feeds)
    assert list(after) == list(before)
    problems = compare_outputs(before, after, TOL)
    assert not problems, problems
    _, again = run_pass(model, PASS)
    assert not again.changed
    return op_types(model), result.stats, model


def _only(model: Model) -> Node:
    (node,) = list(model.graph)
    return node


# ---- folded ----

def test_fold_pad_into_conv_adding_to_its_own_pads() -> None:
    """Spatial pads [1, 2 | 3, 4] plus the Conv's [1, 0 | 0, 1] give [2, 2, 3, 5]; x feeds the Conv
    directly; other attributes and the weights stay."""
    proto = _model([0, 0, 1, 2, 0, 0, 3, 4], pads=[1, 0, 0, 1], strides=[2, 1], dilations=[1, 2])
    ops, stats, model = _check(proto)
    assert ops == ["Conv"] and stats == {"fused_pad-conv": 1}
    conv = _only(model)
    assert conv.attr("pads") == [2, 2, 3, 5]
    assert (conv.attr("strides"), conv.attr("dilations")) == ([2, 1], [1, 2])
    assert [v.name for v in conv.inputs] == ["x", "w"]
    assert [v.name for v in model.graph.consts] == ["w"]  # the Pad's pads constant went with it
    assert model.graph.outputs[0].name == "y"


def test_fold_pad_into_a_grouped_conv_with_bias() -> None:
    """Conv's weight and bias inputs are kept as they are."""
    nodes = [h.make_node("Pad", ["x", "pads"], ["p"]),
             h.make_node("Conv", ["p", "w", "b"], ["y"], group=3)]
    proto = make(nodes, [info("x", [1, 3, 6, 6])], [info("y", None)],
                 [ints("pads", [0, 0, 2, 1, 0, 0, 0, 1]), array("w", randn(6, 1, 3, 3, seed=1)),
                  array("b", randn(6, seed=3))])
    ops, stats, model = _check(proto)
    assert ops == ["Conv"] and stats == {"fused_pad-conv": 1}
    conv = _only(model)
    assert conv.attr("pads") == [2, 1, 0, 1] and conv.attr("group") == 3
    assert [v.name for v in conv.inputs] == ["x", "w", "b"]


@pytest.mark.parametrize("x_shape,pads,expected", [
    ([1, 3, 8], [0, 0, 2, 0, 0, 1], [2, 1]),
    ([1, 3, 4, 4, 4], [0, 0, 1, 0, 2, 0, 0, 0, 1, 1], [1, 0, 2, 0, 1, 1]),
], ids=["1d", "3d"])
def test_fold_pad_into_1d_and_3d_convs(x_shape: list[int], pads: list[int], expected: list[int]) -> None:
    """The spatial rank follows the weights: 1 and 3 spatial axes work the same way."""
    ops, stats, model = _check(_model(pads, x_shape=x_shape), x_shape)
    assert ops == ["Conv"] and stats == {"fused_pad-conv": 1}
    assert _only(model).attr("pads") == expected


@pytest.mark.parametrize("count_include_pad", [None, 0, 1])
def test_fold_pad_into_average_pool_counting_the_padding(count_include_pad: int | None) -> None:
    """The Pad's zeros were real elements of every window: the fused pool must count them."""
    attrs = {} if count_include_pad is None else {"count_include_pad": count_include_pad}
    proto = _model([0, 0, 1, 2, 0, 0, 2, 0], "AveragePool", strides=[2, 2], **attrs)
    ops, stats, model = _check(proto)
    assert ops == ["AveragePool"] and stats == {"fused_pad-averagepool": 1}
    pool = _only(model)
    assert pool.attr("pads") == [1, 2, 2, 0] and pool.attr("count_include_pad") == 1
    assert (pool.attr("kernel_shape"), pool.attr("strides")) == ([3, 3], [2, 2])


@pytest.mark.parametrize("value", [None, 0.0], ids=["omitted", "explicit-0"])
def test_fold_a_pad_whose_value_input_is_zero_or_omitted(value: float | None) -> None:
    ops, stats, model = _check(_model([0, 0, 1, 1, 0, 0, 1, 1], value=value, mode="constant"))
    assert ops == ["Conv"] and stats == {"fused_pad-conv": 1}
    assert _only(model).attr("pads") == [1, 1, 1, 1]


@pytest.mark.parametrize("axes,pads,expected", [
    ([2, 3], [1, 2, 3, 4], [1, 2, 3, 4]),
    ([-1, -2], [1, 2, 3, 4], [2, 1, 4, 3]),
    ([3], [2, 1], [0, 2, 0, 1]),
    ([1, 2], [0, 1, 0, 1], [1, 0, 1, 0]),
], ids=["spatial", "negative-reversed", "one-axis", "zero-channel-pad"])
def test_opset18_axes_input_maps_pads_to_their_axes(axes: list[int], pads: list[int],
                                                     expected: list[int]) -> None:
    """Opset 18: pads [begin..., end...] follow ``axes`` (negative axes count from the end)."""
    ops, stats, model = _check(_model(pads, opset=18, axes=axes))
    assert ops == ["Conv"] and stats == {"fused_pad-conv": 1}
    assert _only(model).attr("pads") == expected


@pytest.mark.parametrize("consumer", ["Conv", "AveragePool"])
def test_opset10_pad_with_attribute_pads(consumer: str) -> None:
    """Before opset 11 the pads (and the fill value) are attributes."""
    ops, stats, model = _check(_model([0, 0, 1, 0, 0, 0, 2, 1], consumer, opset=10, value=0.0))
    assert ops == [consumer] and stats == {f"fused_pad-{consumer.lower()}": 1}
    assert _only(model).attr("pads") == [1, 0, 2, 1]
    assert [v.name for v in _only(model).inputs][0] == "x"


# ---- left alone ----

def _rejected(proto: onnx.ModelProto, reason: str | None, rule: str = "pad-conv",
              x_shape: list[int] | None = None) -> None:
    """Nothing changes; stats hold exactly ``reason`` (None: not even matched)."""
    ops, stats, _ = _check(proto, x_shape)
    assert ops == ["Pad", proto.graph.node[-1].op_type]
    assert stats == ({} if reason is None else {f"rejected_{rule}:{reason}": 1})


def test_keep_pad_before_max_pool() -> None:
    """MaxPool pads with -inf, not with the Pad's zeros: no rule for it."""
    _rejected(_model([0, 0, 1, 1, 0, 0, 1, 1], "MaxPool"), None)


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_keep_reflect_and_edge_pads(mode: str) -> None:
    _rejected(_model([0, 0, 1, 1, 0, 0, 1, 1], mode=mode), "Pad mode is not constant")


@pytest.mark.parametrize("opset", [10, 17])
def test_keep_pad_with_a_non_zero_value(opset: int) -> None:
    """The fill value as an input (opset 11+) or an attribute (opset < 11)."""
    _rejected(_model([0, 0, 1, 1, 0, 0, 1, 1], opset=opset, value=0.5), "Pad value is not zero")


def test_keep_negative_pads() -> None:
    """A negative pad crops: Conv pads cannot do that."""
    _rejected(_model([0, 0, 1, -1, 0, 0, 1, 1]), "negative pads (cropping)")


@pytest.mark.parametrize("consumer", ["Conv", "AveragePool"])
@pytest.mark.parametrize("amounts", [[1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1, 0, 0]],
                         ids=["batch", "channel"])
def test_keep_pad_of_the_batch_or_channel_axis(amounts: list[int], consumer: str) -> None:
    """Conv and pool pads cover spatial axes only."""
    _rejected(_model(amounts, consumer), "Pad pads the batch or channel axis", f"pad-{consumer.lower()}")


def test_keep_pad_of_the_channel_axis_given_through_axes() -> None:
    """Opset 18 axes [1, 3]: the channel axis gets a pad of 1."""
    _rejected(_model([1, 1, 0, 1], "AveragePool", opset=18, axes=[1, 3]),
              "Pad pads the batch or channel axis", "pad-averagepool")


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "VALID"])
def test_keep_pad_before_a_consumer_with_auto_pad(auto_pad: str) -> None:
    _rejected(_model([0, 0, 1, 1, 0, 0, 1, 1], auto_pad=auto_pad), "consumer uses auto_pad")


def test_keep_pad_before_an_average_pool_that_already_pads() -> None:
    """Its own pads are excluded from the divisor (count_include_pad=0): merging would count them."""
    _rejected(_model([0, 0, 1, 1, 0, 0, 1, 1], "AveragePool", pads=[1, 0, 0, 0]),
              "AveragePool already pads (its divisor would change)", "pad-averagepool")


def test_keep_pad_before_an_average_pool_with_ceil_mode() -> None:
    """ceil_mode windows may reach past the padded tensor, where pool pads are not counted."""
    _rejected(_model([0, 0, 1, 1, 0, 0, 1, 1], "AveragePool", ceil_mode=1, strides=[2, 2]),
              "AveragePool with ceil_mode", "pad-averagepool")


def test_keep_pad_as_large_as_the_average_pool_kernel() -> None:
    """onnxruntime refuses pooling pads >= kernel_shape: a pad of 3 before a 2x2 pool stays a Pad."""
    _rejected(_model([0, 0, 3, 0, 0, 0, 0, 0], "AveragePool", kernel_shape=[2, 2]),
              "pads not smaller than the AveragePool kernel", "pad-averagepool")


def test_keep_pad_whose_output_is_a_graph_output() -> None:
    _rejected(_model([0, 0, 1, 1, 0, 0, 1, 1], outputs=("y", "p")), "intermediate value is a graph output")


def test_keep_pad_whose_output_feeds_another_node() -> None:
    proto = _model([0, 0, 1, 1, 0, 0, 1, 1], outputs=("y", "r"))
    proto.graph.node.insert(1, h.make_node("Relu", ["p"], ["r"]))
    ops, stats, _ = _check(proto)
    assert ops == ["Pad", "Relu", "Conv"]
    assert stats == {"rejected_pad-conv:intermediate value is used outside the match": 1}


def test_keep_pad_whose_pads_are_a_graph_input() -> None:
    """Run-time pads are not matched at all."""
    proto = _model([0, 0, 1, 1, 0, 0, 1, 1])
    proto.graph.initializer.pop(0)
    proto.graph.input.append(info("pads", [8], onnx.TensorProto.INT64))
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Pad", "Conv"] and result.stats == {}
    feeds = {"x": randn(1, 3, 6, 6), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}
    np.testing.assert_array_equal(ort(model, feeds)["y"], ort(proto, feeds)["y"])


def test_keep_opset18_axes_pad_of_unknown_rank() -> None:
    """Axes need x's rank to place the pads; without it the full pads are unknown."""
    proto = _model([1, 1], opset=18, axes=[-1])
    proto.graph.input[0].type.tensor_type.ClearField("shape")
    _rejected(proto, "pads are not constant")


def test_keep_pad_when_the_conv_spatial_rank_is_unknown() -> None:
    """Weights of unknown rank and no kernel_shape: the Pad's and the Conv's ranks cannot be compared."""
    proto = _model([0, 0, 1, 1, 0, 0, 1, 1])
    proto.graph.initializer.pop()
    proto.graph.input.append(onnx.helper.make_tensor_value_info("w", onnx.TensorProto.FLOAT, None))
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Pad", "Conv"]
    assert result.stats == {"rejected_pad-conv:ranks of Pad and consumer do not agree": 1}


# ---- property ----

@st.composite
def _cases(draw: st.DrawFn) -> dict[str, Any]:
    # About half the cases carry one defect that must block folding; the rest may still be refused
    # for pads, ceil_mode or the pool's own pads, which are drawn freely.
    defect = draw(st.sampled_from([None] * 6 + ["maxpool", "mode", "value", "negative", "outer"]))
    consumer = "MaxPool" if defect == "maxpool" else draw(st.sampled_from(["Conv", "AveragePool"]))
    mode = draw(st.sampled_from(["reflect", "edge"])) if defect == "mode" else "constant"
    value = 1.5 if defect == "value" else draw(st.sampled_from([None, 0.0]))
    spatial = draw(st.lists(st.sampled_from([0, 0, 1, 1, 2, 3]), min_size=4, max_size=4))
    if defect == "negative":
        spatial[draw(st.integers(0, 3))] = -1
    outer = [0, 0, 0, 0]  # N, C begin/end
    if defect == "outer":
        outer[draw(st.integers(0, 3))] = 1
    pads = [outer[0], outer[1], spatial[0], spatial[1], outer[2], outer[3], spatial[2], spatial[3]]
    return {"consumer": consumer, "mode": mode, "pads": pads, "value": value,
            "kernel": draw(st.integers(2, 3)),
            "own_pads": draw(st.sampled_from([[0, 0, 0, 0]] * 3 + [[1, 0, 0, 1]])),
            "ceil": draw(st.sampled_from([0, 0, 1])), "stride": draw(st.integers(1, 2))}


def _fusable(case: dict[str, Any]) -> bool:
    """When folding is sound (and onnxruntime accepts the result), stated independently of the pass."""
    pads, spatial = case["pads"], case["pads"][2:4] + case["pads"][6:8]
    if case["consumer"] == "MaxPool" or case["mode"] != "constant" or case["value"] not in (None, 0.0):
        return False
    if min(pads) < 0 or pads[0] or pads[1] or pads[4] or pads[5]:
        return False
    if case["consumer"] == "AveragePool":
        return not any(case["own_pads"]) and not case["ceil"] and max(spatial) < case["kernel"]
    return True


@settings(max_examples=60, deadline=None, derandomize=True)
@given(_cases())
def test_any_pad_before_conv_or_pool_matches_onnxruntime(case: dict[str, Any]) -> None:
    """Property: random pads (negative, batch/channel, as large as the kernel), modes, fill values and
    consumers. Outputs agree with onnxruntime; the Pad is gone exactly when folding is sound, and then
    the consumer's pads are its own plus the Pad's spatial ones."""
    attrs: dict[str, Any] = {"pads": case["own_pads"], "strides": [case["stride"]] * 2}
    if case["consumer"] == "Conv":
        proto = _model(case["pads"], mode=case["mode"], value=case["value"], **attrs)
        channels = 3 + case["pads"][1] + case["pads"][5]
        proto.graph.initializer[-1].CopyFrom(array("w", randn(4, channels, case["kernel"], case["kernel"],
                                                           seed=1)))
    else:
        attrs.update(kernel_shape=[case["kernel"]] * 2, ceil_mode=case["ceil"])
        proto = _model(case["pads"], case["consumer"], mode=case["mode"], value=case["value"], **attrs)
    ops, stats, model = _check(proto)
    expected = _fusable(case)
    event(f"fused={expected}")
    assert (ops == [case["consumer"]]) == any(k.startswith("fused_") for k in stats) == expected, stats
    if expected:
        p, own = case["pads"], case["own_pads"]
        assert _only(model).attr("pads") == [own[0] + p[2], own[1] + p[3], own[2] + p[6], own[3] + p[7]]
