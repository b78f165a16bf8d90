"""eliminate-dead-code: optional inputs equal to their default (zero LSTM/GRU state, zero Pad value,
infinite Clip bounds) are omitted, and only those."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper as h
from passes_kit import array, assert_same_outputs, info, ints, make, op_types, randn, run_pass

from graphopt import export_model

HIDDEN, FEATURES, STEPS = 4, 3, 5


def _lstm_model(fill: float, *, shared_with_output: bool = False) -> onnx.ModelProto:
    """An LSTM whose initial h and c come from a ConstantOfShape of ``fill`` (PyTorch's export)."""
    fill_tensor = h.make_tensor("v", onnx.TensorProto.FLOAT, [1], [fill])
    nodes = [
        h.make_node("ConstantOfShape", ["state_shape"], ["zeros"], value=fill_tensor),
        h.make_node("LSTM", ["x", "w", "r", "b", "", "zeros", "zeros"], ["y", "y_h"], hidden_size=HIDDEN),
    ]
    outputs = [info("y", [STEPS, 1, 1, HIDDEN]), info("y_h", [1, 1, HIDDEN])]
    if shared_with_output:
        outputs.append(info("zeros", [1, 1, HIDDEN]))
    inits = [array("w", randn(1, 4 * HIDDEN, FEATURES)), array("r", randn(1, 4 * HIDDEN, HIDDEN, seed=1)),
             array("b", randn(1, 8 * HIDDEN, seed=2)), ints("state_shape", [1, 1, HIDDEN])]
    return make(nodes, [info("x", [STEPS, 1, FEATURES])], outputs, inits)


def test_zero_initial_state_of_an_lstm_is_omitted_and_its_constant_of_shape_dies() -> None:
    proto = _lstm_model(0.0)
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"default_input_LSTM": 2, "dead_nodes": 1, "unused_constants": 1}
    assert op_types(model) == ["LSTM"]
    lstm = export_model(model).graph.node[0]
    assert list(lstm.input) == ["x", "w", "r", "b"]
    assert_same_outputs(proto, model, {"x": randn(STEPS, 1, FEATURES, seed=3)})


def test_nonzero_or_negative_zero_initial_state_stays() -> None:
    for fill in (0.5, -0.0):
        _, result = run_pass(_lstm_model(fill), "eliminate-dead-code")
        assert result.changed is False, fill


def test_a_zero_state_that_is_also_a_graph_output_keeps_its_producer() -> None:
    proto = _lstm_model(0.0, shared_with_output=True)
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"default_input_LSTM": 2}
    assert op_types(model) == ["ConstantOfShape", "LSTM"]
    assert_same_outputs(proto, model, {"x": randn(STEPS, 1, FEATURES, seed=3)})


def test_zero_bias_constant_of_a_gru_is_omitted_in_the_middle_of_the_input_list() -> None:
    nodes = [h.make_node("GRU", ["x", "w", "r", "b", "", "h0"], ["y"], hidden_size=HIDDEN)]
    inits = [array("w", randn(1, 3 * HIDDEN, FEATURES)), array("r", randn(1, 3 * HIDDEN, HIDDEN, seed=1)),
             array("b", np.zeros((1, 6 * HIDDEN), np.float32))]
    proto = make(nodes, [info("x", [STEPS, 1, FEATURES]), info("h0", [1, 1, HIDDEN])],
                 [info("y", [STEPS, 1, 1, HIDDEN])], inits)
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"default_input_GRU": 1, "unused_constants": 1}
    assert list(export_model(model).graph.node[0].input) == ["x", "w", "r", "", "", "h0"]
    assert_same_outputs(proto, model, {"x": randn(STEPS, 1, FEATURES, seed=3),
                                       "h0": randn(1, 1, HIDDEN, seed=4)})


def test_zero_pad_value_and_infinite_clip_bounds_are_omitted() -> None:
    nodes = [h.make_node("Pad", ["x", "pads", "zero"], ["p"]),
             h.make_node("Clip", ["p", "low", "inf"], ["y"])]
    inits = [ints("pads", [0, 1, 0, 2]), array("zero", np.zeros((), np.float32)),
             array("low", np.array(-0.5, np.float32)), array("inf", np.array(np.inf, np.float32))]
    proto = make(nodes, [info("x", [2, 3])], [info("y", [2, 6])], inits)
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"default_input_Pad": 1, "default_input_Clip": 1, "unused_constants": 2}
    exported = export_model(model).graph.node
    assert [list(n.input) for n in exported] == [["x", "pads"], [exported[0].output[0], "low"]]
    assert_same_outputs(proto, model, {"x": randn(2, 3)})


def test_a_nonzero_pad_value_and_a_finite_clip_bound_stay() -> None:
    nodes = [h.make_node("Pad", ["x", "pads", "one"], ["p"]),
             h.make_node("Clip", ["p", "low", "big"], ["y"])]
    inits = [ints("pads", [0, 1, 0, 2]), array("one", np.ones((), np.float32)),
             array("low", np.array(-np.inf, np.float32)), array("big", np.array(3.4e38, np.float32))]
    proto = make(nodes, [info("x", [2, 3])], [info("y", [2, 6])], inits)
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"default_input_Clip": 1, "unused_constants": 1}
    exported = export_model(model).graph.node
    assert [list(n.input) for n in exported] == [["x", "pads", "one"], [exported[0].output[0], "", "big"]]
    assert_same_outputs(proto, model, {"x": randn(2, 3)})


def test_zero_state_of_onnxruntime_dynamic_quantize_lstm_is_omitted() -> None:
    """The int8 LSTM of onnxruntime's dynamic quantization shares LSTM's optional inputs."""
    size = (1, FEATURES + HIDDEN, 4 * HIDDEN)
    quant = np.random.default_rng(5).integers(-100, 100, size=size).astype(np.int8)
    nodes = [
        h.make_node("ConstantOfShape", ["state_shape"], ["zeros"]),
        h.make_node("DynamicQuantizeLSTM", ["x", "w", "r", "b", "", "zeros", "zeros", "", "w_scale", "w_zp",
                                            "r_scale", "r_zp"], ["y"], domain="com.microsoft",
                    hidden_size=HIDDEN),
    ]
    inits = [array("w", quant[:, :FEATURES]), array("r", quant[:, FEATURES:]),
             array("b", randn(1, 8 * HIDDEN)),
             ints("state_shape", [1, 1, HIDDEN]), array("w_scale", np.array([0.01], np.float32)),
             array("w_zp", np.zeros(1, np.int8)), array("r_scale", np.array([0.02], np.float32)),
             array("r_zp", np.zeros(1, np.int8))]
    proto = make(nodes, [info("x", [STEPS, 1, FEATURES])], [info("y", [STEPS, 1, 1, HIDDEN])], inits,
                 extra_opsets={"com.microsoft": 1})
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"default_input_DynamicQuantizeLSTM": 2, "dead_nodes": 1, "unused_constants": 1}
    assert list(export_model(model).graph.node[0].input)[4:8] == ["", "", "", ""]
    assert_same_outputs(proto, model, {"x": randn(STEPS, 1, FEATURES, seed=3)})
