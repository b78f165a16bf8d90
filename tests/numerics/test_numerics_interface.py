"""graphopt.numerics.interface: the interface perms recorded in a model's metadata, how they compose, and
how feeds and outputs are moved between the original layout and the model's."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from graphopt import Graph, Model, export_model, import_model
from graphopt.numerics.interface import (
    INTERFACE_KEY,
    adapt_feeds,
    adapt_outputs,
    interface_perms,
    record_interface_perm,
)

TO_LAST = [0, 2, 3, 1]


def _model() -> Model:
    return Model(Graph("g"))


def _data(*shape: int) -> np.ndarray:
    return np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)


def test_a_model_without_a_record_has_no_interface_perms() -> None:
    assert interface_perms(_model()) == ({}, {})


def test_an_empty_record_is_no_record() -> None:
    model = _model()
    model.metadata_props[INTERFACE_KEY] = ""
    assert interface_perms(model) == ({}, {})


def test_record_writes_sorted_json_under_the_key() -> None:
    model = _model()
    record_interface_perm(model, "inputs", "x", TO_LAST)
    record_interface_perm(model, "outputs", "y", [0, 2, 1])
    assert json.loads(model.metadata_props[INTERFACE_KEY]) == {"inputs": {"x": TO_LAST},
                                                              "outputs": {"y": [0, 2, 1]}}
    assert model.metadata_props[INTERFACE_KEY] == json.dumps(
        {"inputs": {"x": TO_LAST}, "outputs": {"y": [0, 2, 1]}}, sort_keys=True)
    assert interface_perms(model) == ({"x": TO_LAST}, {"y": [0, 2, 1]})


def test_recording_twice_composes_the_perms() -> None:
    """x' = transpose(x, p1), x'' = transpose(x', p2) = transpose(x, [p1[i] for i in p2])."""
    model = _model()
    p1, p2 = TO_LAST, [0, 3, 1, 2]
    record_interface_perm(model, "inputs", "x", p1)
    record_interface_perm(model, "inputs", "x", p2)
    composed = interface_perms(model)[0]["x"]
    x = _data(2, 3, 4, 5)
    np.testing.assert_array_equal(np.transpose(x, composed), np.transpose(np.transpose(x, p1), p2))
    assert composed == [0, 1, 2, 3]  # NHWC then back to NCHW: the original layout again


def test_composition_of_non_inverse_perms() -> None:
    model = _model()
    record_interface_perm(model, "outputs", "y", [1, 2, 0])
    record_interface_perm(model, "outputs", "y", [0, 2, 1])
    y = _data(2, 3, 4)
    np.testing.assert_array_equal(np.transpose(y, interface_perms(model)[1]["y"]),
                                  np.transpose(np.transpose(y, [1, 2, 0]), [0, 2, 1]))


def test_adapt_feeds_permutes_recorded_inputs_only_and_contiguously() -> None:
    model = _model()
    record_interface_perm(model, "inputs", "x", TO_LAST)
    x, v = _data(1, 2, 3, 4), _data(3, 4)
    adapted = adapt_feeds(model, {"x": x, "v": v})
    assert adapted["x"].shape == (1, 3, 4, 2) and adapted["x"].flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(adapted["x"], x.transpose(TO_LAST))
    assert adapted["v"] is v
    np.testing.assert_array_equal(x, _data(1, 2, 3, 4))  # the caller's array is untouched


def test_adapt_outputs_applies_the_inverse_perm() -> None:
    """A recorded [0, 2, 3, 1] output is brought back with [0, 3, 1, 2]; for a non-self-inverse 3-cycle
    the inverse differs from the perm itself."""
    model = _model()
    record_interface_perm(model, "outputs", "y", TO_LAST)
    record_interface_perm(model, "outputs", "z", [1, 2, 0])
    y, z = _data(1, 2, 3, 4), _data(2, 3, 4)
    got = adapt_outputs(model, {"y": y.transpose(TO_LAST), "z": z.transpose([1, 2, 0]), "u": 5})
    np.testing.assert_array_equal(got["y"], y)
    np.testing.assert_array_equal(got["z"], z)
    assert got["u"] == 5


def test_adapt_outputs_leaves_non_array_outputs_alone() -> None:
    """Sequence outputs (lists) are not transposed even if their name is recorded."""
    model = _model()
    record_interface_perm(model, "outputs", "seq", TO_LAST)
    seq = [_data(1, 2, 3, 4)]
    assert adapt_outputs(model, {"seq": seq})["seq"] is seq


def test_round_trip_of_feeds_and_outputs_through_a_transposing_model() -> None:
    """adapt_feeds then adapt_outputs around a model that is T(NHWC) of its own input is the identity."""
    model = _model()
    record_interface_perm(model, "inputs", "x", TO_LAST)
    record_interface_perm(model, "outputs", "y", TO_LAST)
    x = _data(1, 2, 3, 4)
    fed = adapt_feeds(model, {"x": x})
    assert adapt_outputs(model, {"y": fed["x"]})["y"].tolist() == x.tolist()


def test_the_record_survives_export_and_import() -> None:
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [1, 2, 3, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 2, 3, 4])])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 8
    model = import_model(proto)
    record_interface_perm(model, "inputs", "x", TO_LAST)
    exported = export_model(model)
    assert {p.key: p.value for p in exported.metadata_props}[INTERFACE_KEY] == \
        model.metadata_props[INTERFACE_KEY]
    again = import_model(onnx.load_from_string(exported.SerializeToString()))
    assert interface_perms(again) == ({"x": TO_LAST}, {})


@pytest.mark.parametrize("kind", ["inputs", "outputs"])
def test_recording_one_kind_keeps_the_other(kind: str) -> None:
    model = _model()
    record_interface_perm(model, "inputs", "a", [1, 0])
    record_interface_perm(model, "outputs", "b", [1, 0])
    record_interface_perm(model, kind, "c", [0, 2, 1])
    inputs, outputs = interface_perms(model)
    assert inputs == ({"a": [1, 0], "c": [0, 2, 1]} if kind == "inputs" else {"a": [1, 0]})
    assert outputs == ({"b": [1, 0], "c": [0, 2, 1]} if kind == "outputs" else {"b": [1, 0]})


def test_adapting_relative_to_a_base_layout_applies_only_the_difference() -> None:
    """A reference already NHWC (perm [0,2,3,1]) and a candidate with the same perm: nothing moves;
    a candidate converted once more (composed perm) is fed the difference only."""
    model = Model(Graph("g"))
    record_interface_perm(model, "inputs", "x", [0, 2, 3, 1])
    base = interface_perms(model)[0]
    feeds = {"x": np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)}
    assert adapt_feeds(model, feeds, base)["x"] is feeds["x"]
    record_interface_perm(model, "inputs", "x", [0, 3, 1, 2])  # back to NCHW overall
    assert interface_perms(model)[0] == {"x": [0, 1, 2, 3]}
    expected = np.transpose(feeds["x"], [0, 3, 1, 2])
    np.testing.assert_array_equal(adapt_feeds(model, feeds, base)["x"], expected)
