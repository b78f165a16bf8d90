"""Lazy weights: load_model leaves initializers encoded in the mapped file and save_model copies them."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt.onnx_io.wire import WireError, fields, split_model, write_model


def _model(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    weights = [nh.from_array(rng.standard_normal((4, 4)).astype(np.float32), "w"),
               nh.from_array(np.arange(6, dtype=np.int64).reshape(2, 3), "idx"),
               h.make_tensor("f", T.FLOAT, [3], [1.0, 2.0, 3.0])]  # float_data, not raw_data
    nodes = [h.make_node("MatMul", ["x", "w"], ["y"]), h.make_node("Add", ["y", "y"], ["z"])]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
                         [h.make_tensor_value_info("z", T.FLOAT, [2, 4])], weights)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def test_split_model_returns_headers_without_payload(tmp_path: Path) -> None:
    """Initializer headers carry name, dtype and dims but no payload; the rest parses normally."""
    data = memoryview(_model(tmp_path).read_bytes())
    proto, raws = split_model(data)
    assert [r.header.name for r in raws] == ["w", "idx", "f"]
    assert [list(r.header.dims) for r in raws] == [[4, 4], [2, 3], [3]]
    assert all(not r.header.raw_data and not r.header.float_data for r in raws)
    assert len(proto.graph.initializer) == 0 and len(proto.graph.node) == 2
    full = onnx.TensorProto.FromString(bytes(raws[2].data))
    assert list(full.float_data) == [1.0, 2.0, 3.0]


def test_loaded_weights_stay_encoded_until_asked(tmp_path: Path) -> None:
    """A loaded constant is backed by the file's bytes and decodes to the original values."""
    model = graphopt.load_model(str(_model(tmp_path)))
    consts = {v.name: v.const for v in model.graph.consts}
    assert consts["w"].encoded_as("w") is not None
    assert consts["w"].encoded_as("renamed") is None
    np.testing.assert_array_equal(consts["idx"].numpy(), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(consts["f"].numpy(), np.array([1, 2, 3], np.float32))


def test_save_copies_unchanged_weights_and_reencodes_renamed_ones(tmp_path: Path) -> None:
    """Saving writes the same tensors (also under a new name) and the result equals onnx's view."""
    src = _model(tmp_path)
    model = graphopt.load_model(str(src))
    (w,) = [v for v in model.graph.consts if v.name == "w"]
    w.name = "weight"
    out = tmp_path / "out.onnx"
    graphopt.save_model(model, str(out))
    original, written = onnx.load(str(src)), onnx.load(str(out))
    onnx.checker.check_model(written)
    before = {t.name: nh.to_array(t) for t in original.graph.initializer}
    after = {t.name: nh.to_array(t) for t in written.graph.initializer}
    assert sorted(after) == ["f", "idx", "weight"]
    np.testing.assert_array_equal(after["weight"], before["w"])
    np.testing.assert_array_equal(after["idx"], before["idx"])
    assert [n.input[1] for n in written.graph.node if n.op_type == "MatMul"] == ["weight"]


def test_write_model_output_parses_as_the_same_model() -> None:
    """Streaming initializers after the graph's other fields gives an equal ModelProto."""
    init = nh.from_array(np.ones((2, 2), np.float32), "w")
    graph = h.make_graph([h.make_node("Add", ["x", "w"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [2, 2])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 2])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    buffer = io.BytesIO()
    write_model(buffer, model, [init.SerializeToString()])
    parsed = onnx.ModelProto.FromString(buffer.getvalue())
    expected = onnx.ModelProto()
    expected.CopyFrom(model)
    expected.graph.initializer.append(init)
    assert parsed == expected


def test_truncated_bytes_raise_wire_error(tmp_path: Path) -> None:
    """A cut-off message is detected instead of silently read short."""
    data = memoryview(_model(tmp_path).read_bytes())
    with pytest.raises(WireError):
        list(fields(data, 0, len(data) - 7))
        split_model(data[: len(data) - 7])


def test_truncated_file_is_a_load_error(tmp_path: Path) -> None:
    """load_model on a truncated file raises ModelLoadError, never a protobuf exception."""
    src = _model(tmp_path)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(src.read_bytes()[:-7])
    with pytest.raises(graphopt.errors.ModelLoadError):
        graphopt.load_model(str(cut))
