"""fuse-ort-contrib: Conv followed by Relu, Tanh, Sigmoid, LeakyRelu, HardSigmoid or a constant Clip
becomes onnxruntime's com.microsoft.FusedConv (float32 only). The point of the pass is a model onnxruntime
still runs: every fused model here is run by onnxruntime and compared with the original."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import helper as h
from passes_kit import array, info, make, op_types, ort, randn, run_pass

from graphopt import Model, Node
from graphopt.numerics.compare import compare_outputs

PASS = "fuse-ort-contrib"
ORT_DOMAIN = "com.microsoft"
TOL = (1e-5, 1e-6)  # rtol of the output's largest magnitude, atol: same MLAS conv, activation in place
F32_MIN, F32_MAX = float(np.finfo(np.float32).min), float(np.finfo(np.float32).max)
NOT_FLOAT32 = "not float32 (FusedConv's CPU kernel is float only)"


def _check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray],
           tol: tuple[float, float] | None = TOL) -> tuple[list[str], dict, Model]:
    """Run the pass; onnxruntime loads and runs the result and agrees within ``tol``; a second run
    changes nothing."""
    model, result = run_pass(proto, PASS)
    before, after = ort(proto, feeds), ort(model, feeds)
    assert list(after) == list(before)
    problems = compare_outputs(before, after, tol)
    assert not problems, problems
    _, again = run_pass(model, PASS)
    assert not again.changed and not any(k.startswith("fused_") for k in again.stats)
    return op_types(model), result.stats, model


def _fused(model: Model) -> Node:
    (node,) = [n for n in model.graph if n.op_type == "FusedConv"]
    assert node.domain == ORT_DOMAIN
    return node


def _params(node: Node) -> Any:
    """activation_params, comparable with float32-rounded values (defaults come in as Python floats)."""
    params = node.attr("activation_params")
    return None if params is None else pytest.approx(params, rel=1e-7)


def _f32(*values: float) -> list[float]:
    """Float attributes are stored as float32."""
    return [float(np.float32(v)) for v in values]


def _conv(act: str, act_attrs: dict[str, Any] | None = None, *, opset: int = 17,
          bounds: Sequence[Any] = (), dtype: Any = np.float32, group: int = 1, c_in: int = 4, c_out: int = 6,
          bias: bool = True, spatial: Sequence[int] = (5, 5), kernel: Sequence[int] = (3, 3),
          conv_attrs: dict[str, Any] | None = None, outputs: Sequence[str] = ("y",),
          tail: Sequence[onnx.NodeProto] = ()) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x[1, c_in, *spatial] -> Conv(w[, b]) -> v -> act -> y. ``bounds`` are Clip's min/max inputs:
    a number is a constant, "input" a graph input (fed 0.5), "default" a graph input with an
    initializer (overridable), None an omitted input."""
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [array("w", randn(c_out, c_in // group, *kernel, seed=1).astype(dtype))]
    if bias:
        inits.append(array("b", randn(c_out, seed=2).astype(dtype)))
    inputs = [info("x", [1, c_in, *spatial], elem)]
    feeds = {"x": (randn(1, c_in, *spatial, seed=3) * 2).astype(dtype)}
    act_inputs = ["v"]
    for name, bound in zip(("lo", "hi"), bounds):
        if bound is None:
            act_inputs.append("")
            continue
        act_inputs.append(name)
        if bound in ("input", "default"):
            inputs.append(info(name, [], elem))
            feeds[name] = np.asarray(0.5 if name == "hi" else -0.5, dtype)
            if bound == "default":
                inits.append(array(name, np.asarray(0.0, dtype)))
        else:
            inits.append(array(name, np.asarray(bound, dtype)))
    nodes = [h.make_node("Conv", ["x", "w", "b"] if bias else ["x", "w"], ["v"], group=group,
                         **(conv_attrs if conv_attrs is not None else {"pads": [1] * 2 * len(kernel)})),
             h.make_node(act, act_inputs, ["y"], **(act_attrs or {}))]
    proto = make(nodes + list(tail), inputs, [info(o, None, elem) for o in outputs], inits, opset=opset)
    return proto, feeds


@pytest.mark.parametrize("act,attrs,params", [
    ("Relu", {}, None), ("Tanh", {}, None), ("Sigmoid", {}, None),
    ("LeakyRelu", {"alpha": 0.2}, _f32(0.2)), ("LeakyRelu", {}, _f32(0.01)),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, _f32(0.3, 0.4)), ("HardSigmoid", {}, _f32(0.2, 0.5)),
], ids=["relu", "tanh", "sigmoid", "leakyrelu", "leakyrelu-default", "hardsigmoid", "hardsigmoid-default"])
def test_conv_and_activation_become_one_fused_conv(act: str, attrs: dict, params: list[float] | None) -> None:
    """FusedConv carries the Conv's inputs and attributes, the activation's name and its attributes
    (defaults spelled out) as activation_params; the com.microsoft opset is imported."""
    proto, feeds = _conv(act, attrs, conv_attrs={"pads": [1, 1, 1, 1], "strides": [2, 1]})
    ops, stats, model = _check(proto, feeds)
    assert ops == ["FusedConv"] and stats == {f"fused_conv-{act.lower()}": 1}
    node = _fused(model)
    assert [v.name for v in node.inputs] == ["x", "w", "b"] and node.outputs[0] is model.graph.outputs[0]
    assert node.attr("activation") == act and _params(node) == params
    assert node.attr("pads") == [1, 1, 1, 1] and node.attr("strides") == [2, 1]
    assert model.opset_imports == {"": 17, ORT_DOMAIN: 1}


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize("bounds,params", [((-0.5, 0.7), _f32(-0.5, 0.7)), ((0.0, None), [0.0, F32_MAX]),
                                           ((None, 6.0), [F32_MIN, 6.0]), ((), [F32_MIN, F32_MAX])],
                         ids=["min-max", "min", "max", "none"])
def test_clip_with_constant_inputs_is_fused_with_its_bounds(opset: int, bounds: tuple,
                                                            params: list[float]) -> None:
    """From opset 11 Clip's bounds are inputs; an omitted one is the float32 limit."""
    ops, stats, model = _check(*_conv("Clip", opset=opset, bounds=bounds))
    assert ops == ["FusedConv"] and stats == {"fused_conv-clip": 1}
    assert _fused(model).attr("activation") == "Clip" and _params(_fused(model)) == params
    assert model.opset_imports == {"": opset, ORT_DOMAIN: 1} and not model.graph.consts[2:]  # lo/hi went


@pytest.mark.parametrize("opset", [6, 10])
@pytest.mark.parametrize("attrs,params", [({"min": -0.2, "max": 0.5}, _f32(-0.2, 0.5)),
                                          ({"max": 6.0}, [F32_MIN, 6.0]), ({}, [F32_MIN, F32_MAX])],
                         ids=["min-max", "max", "none"])
def test_clip_with_attributes_before_opset_11_is_fused_with_its_bounds(opset: int, attrs: dict,
                                                                      params: list[float]) -> None:
    ops, stats, model = _check(*_conv("Clip", attrs, opset=opset))
    assert ops == ["FusedConv"] and stats == {"fused_conv-clip": 1}
    assert _params(_fused(model)) == params


@pytest.mark.parametrize("bounds", [("input", 1.0), (-1.0, "input"), ("default", None), (None, "default")],
                         ids=["min-input", "max-input", "min-overridable", "max-overridable"])
def test_keep_clip_with_a_bound_known_only_at_run_time(bounds: tuple) -> None:
    """A graph input, even one with an initializer as its default, is not a constant: no match at all."""
    ops, stats, model = _check(*_conv("Clip", opset=13, bounds=bounds))
    assert ops == ["Conv", "Clip"] and stats == {}
    assert ORT_DOMAIN not in model.opset_imports


@pytest.mark.parametrize("dtype", [np.float16, np.float64], ids=["float16", "float64"])
@pytest.mark.parametrize("act", ["Relu", "Clip"])
def test_keep_conv_that_is_not_float32(dtype: Any, act: str) -> None:
    """onnxruntime registers FusedConv for float only (it has no double Conv either: not run here)."""
    proto, feeds = _conv(act, opset=13, bounds=(0.0, 6.0) if act == "Clip" else (), dtype=dtype)
    if dtype == np.float16:
        ops, stats, model = _check(proto, feeds, tol=None)
    else:
        model, result = run_pass(proto, PASS)
        ops, stats = op_types(model), result.stats
    assert ops == ["Conv", act] and stats == {f"rejected_conv-{act.lower()}:{NOT_FLOAT32}": 1}
    assert ORT_DOMAIN not in model.opset_imports


def test_keep_conv_whose_output_is_a_graph_output() -> None:
    ops, stats, _ = _check(*_conv("Relu", outputs=("y", "v")))
    assert ops == ["Conv", "Relu"] and stats == {"rejected_conv-relu:intermediate value is a graph output": 1}


def test_keep_conv_whose_output_feeds_another_node() -> None:
    ops, stats, _ = _check(*_conv("Sigmoid", outputs=("y", "r"), tail=[h.make_node("Neg", ["v"], ["r"])]))
    assert ops == ["Conv", "Sigmoid", "Neg"]
    assert stats == {"rejected_conv-sigmoid:intermediate value is used outside the match": 1}


@pytest.mark.parametrize("group,c_in,c_out", [(2, 4, 6), (4, 4, 4)], ids=["grouped", "depthwise"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
def test_grouped_conv_and_conv_without_bias_are_fused(group: int, c_in: int, c_out: int, bias: bool) -> None:
    """group, dilations, pads and strides are carried over; a missing bias stays missing."""
    attrs = {"pads": [2, 1, 0, 1], "dilations": [2, 1], "strides": [1, 2]}
    proto, feeds = _conv("LeakyRelu", {"alpha": 0.1}, group=group, c_in=c_in, c_out=c_out, bias=bias,
                         conv_attrs=attrs)
    ops, stats, model = _check(proto, feeds)
    assert ops == ["FusedConv"] and stats == {"fused_conv-leakyrelu": 1}
    node = _fused(model)
    assert [v.name for v in node.inputs if v is not None] == (["x", "w", "b"] if bias else ["x", "w"])
    assert node.attr("group") == group and node.attr("pads") == [2, 1, 0, 1]
    assert node.attr("dilations") == [2, 1] and node.attr("strides") == [1, 2] and _params(node) == _f32(0.1)


@pytest.mark.parametrize("spatial,kernel", [((9,), (3,)), ((3, 4, 5), (3, 3, 3))], ids=["1d", "3d"])
def test_1d_and_3d_convs_are_fused(spatial: tuple, kernel: tuple) -> None:
    ops, stats, _ = _check(*_conv("Tanh", spatial=spatial, kernel=kernel))
    assert ops == ["FusedConv"] and stats == {"fused_conv-tanh": 1}


def test_a_chain_of_conv_activation_pairs_fuses_every_pair() -> None:
    """Conv -> Relu -> Conv -> Clip: two FusedConvs, the second reading the first."""
    proto, feeds = _conv("Relu", opset=13)
    proto.graph.node[1].output[0] = "r"
    proto.graph.node.extend([h.make_node("Conv", ["r", "w2"], ["v2"]),
                             h.make_node("Clip", ["v2", "lo", "hi"], ["y"])])
    proto.graph.initializer.extend([array("w2", randn(3, 6, 1, 1, seed=4)), array("lo", np.float32(0)),
                                    array("hi", np.float32(1))])
    ops, stats, model = _check(proto, feeds)
    assert ops == ["FusedConv", "FusedConv"] and stats == {"fused_conv-relu": 1, "fused_conv-clip": 1}
    first, second = model.graph
    assert second.inputs[0] is first.outputs[0] and _params(second) == [0.0, 1.0]


def test_an_existing_com_microsoft_import_is_kept() -> None:
    proto, feeds = _conv("Relu")
    proto.opset_import.append(h.make_opsetid(ORT_DOMAIN, 1))
    _, _, model = _check(proto, feeds)
    assert model.opset_imports == {"": 17, ORT_DOMAIN: 1}


@pytest.mark.parametrize("act", ["Elu", "Softplus", "Selu", "HardSwish"])
def test_keep_an_activation_fused_conv_does_not_know(act: str) -> None:
    """onnxruntime's FusedConv (MLAS) has Relu, Tanh, Sigmoid, LeakyRelu, HardSigmoid and Clip only."""
    ops, stats, model = _check(*_conv(act))
    assert ops == ["Conv", act] and stats == {} and ORT_DOMAIN not in model.opset_imports


def test_keep_an_activation_that_does_not_follow_a_conv() -> None:
    nodes = [h.make_node("MatMul", ["x", "w"], ["v"]), h.make_node("Relu", ["v"], ["y"])]
    proto = make(nodes, [info("x", [2, 3])], [info("y", None)], [array("w", randn(3, 4, seed=1))])
    ops, stats, model = _check(proto, {"x": randn(2, 3)})
    assert ops == ["MatMul", "Relu"] and stats == {} and ORT_DOMAIN not in model.opset_imports


# ---- property ----

_ACTS = ["Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid", "Clip", "Elu"]  # Elu: not supported


@st.composite
def _cases(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(1, 2))
    group = draw(st.sampled_from([1, 2]))
    kernel = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    per_axis = st.lists(st.integers(1, 2), min_size=rank, max_size=rank)
    conv_attrs: dict[str, Any] = {"strides": draw(per_axis), "dilations": draw(per_axis)}
    if draw(st.booleans()):  # onnxruntime's Conv has no SAME_* padding with dilations
        conv_attrs["auto_pad"] = draw(st.sampled_from(["SAME_UPPER", "SAME_LOWER", "VALID"]))
        if conv_attrs["auto_pad"] != "VALID":
            conv_attrs["dilations"] = [1] * rank
    else:
        conv_attrs["pads"] = draw(st.lists(st.integers(0, 1), min_size=2 * rank, max_size=2 * rank))
    act = draw(st.sampled_from(_ACTS))
    opset = draw(st.sampled_from([10, 13, 17] if act == "Clip" else [13, 17]))
    act_attrs: dict[str, Any] = {}
    bounds: tuple = ()
    if act in ("LeakyRelu", "HardSigmoid", "Elu") and draw(st.booleans()):
        act_attrs["alpha"] = draw(st.sampled_from([0.05, 0.3]))
    if act == "Clip" and opset < 11:
        act_attrs = {k: v for k, v in (("min", -0.5), ("max", 1.0)) if draw(st.booleans())}
    elif act == "Clip":
        bounds = tuple(draw(st.sampled_from([None, -0.5, 1.0, "input", "default"])) for _ in range(2))
    return {"act": act, "act_attrs": act_attrs, "opset": opset, "bounds": bounds, "group": group,
            "c_out": 2 * draw(st.integers(1, 3)), "bias": draw(st.booleans()), "kernel": kernel,
            "spatial": [draw(st.integers(k * 2, 7)) for k in kernel], "conv_attrs": conv_attrs,
            "dtype": draw(st.sampled_from([np.float32] * 4 + [np.float16])),
            "leak": draw(st.sampled_from([None] * 5 + ["output", "node"]))}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(_cases())
def test_random_conv_activations_fuse_exactly_when_supported(case: dict[str, Any]) -> None:
    """Property: random 1-d/2-d Conv geometry, groups, bias, activation (with attributes, constant,
    run-time or omitted Clip bounds, at opsets before and after Clip's bounds became inputs), dtype and
    leaked Conv outputs. onnxruntime runs the result and agrees; FusedConv appears exactly when the
    Conv is float32, its output is read only by the activation, and Clip's bounds are constants."""
    leak = case.pop("leak")
    extra: dict[str, Any] = {}
    if leak == "output":
        extra["outputs"] = ("y", "v")
    elif leak == "node":
        extra = {"outputs": ("y", "r"), "tail": [h.make_node("Neg", ["v"], ["r"])]}
    proto, feeds = _conv(**case, **extra)
    ops, stats, model = _check(proto, feeds, tol=TOL if case["dtype"] == np.float32 else None)
    runtime_bound = any(b in ("input", "default") for b in case["bounds"])
    expected = case["dtype"] == np.float32 and leak is None and not runtime_bound and case["act"] != "Elu"
    event(f"fused={expected}")
    assert ("FusedConv" in ops) == expected == (ORT_DOMAIN in model.opset_imports), (ops, stats)
    assert len(ops) == (1 if expected else 2) + (leak == "node")
    if expected:
        node = _fused(model)
        assert node.attr("activation") == case["act"] and stats == {f"fused_conv-{case['act'].lower()}": 1}
        assert all(node.attr(k) == v for k, v in case["conv_attrs"].items())
