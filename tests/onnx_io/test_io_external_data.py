"""External data on save and load: one data file per output, lazy on load, never outside the folder."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import ExternalDataError, OutputWriteError
from graphopt.ir import Tensor
from graphopt.onnx_io import load_model, save_model
from graphopt.onnx_io import save as save_module

FLOAT = TensorProto.FLOAT
_SIZES = {"big_a": 64, "big_b": 100, "tiny": 2}


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(n).astype(np.float32) for name, n in _SIZES.items()}


def _model(weights: dict[str, np.ndarray], *, float_data: bool = False) -> onnx.ModelProto:
    """y = Concat(x, big_a, big_b, tiny): three weights of 256, 400 and 8 bytes."""
    inits = [helper.make_tensor(n, FLOAT, list(w.shape), w.tolist()) if float_data
             else numpy_helper.from_array(w, n) for n, w in weights.items()]
    nodes = [helper.make_node("Concat", ["x", *weights], ["y"], axis=0)]
    n = 3 + sum(w.size for w in weights.values())
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", FLOAT, [3])],
                              [helper.make_tensor_value_info("y", FLOAT, [n])], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def _external_locations(proto: onnx.ModelProto) -> dict[str, str]:
    return {t.name: {e.key: e.value for e in t.external_data}["location"]
            for t in proto.graph.initializer if t.data_location == TensorProto.EXTERNAL}


def _arrays(model_path: Path) -> dict[str, np.ndarray]:
    model = load_model(str(model_path))
    return {v.name: np.array(v.const.numpy()) for v in model.graph.consts}


def _save_external(tmp_path: Path, proto: onnx.ModelProto, name: str = "in.onnx") -> Path:
    """Write ``proto`` with all tensors in ``<name>.weights`` via onnx itself."""
    path = tmp_path / name
    onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=f"{name}.weights", size_threshold=0)
    return path


@pytest.mark.parametrize("float_data", [False, True], ids=["raw_data", "float_data"])
def test_save_with_external_data_writes_out_data_beside_the_model(tmp_path: Path, float_data: bool) -> None:
    """Tensors at or over the threshold go to <out>.data; smaller ones stay inline."""
    weights = _weights()
    src = tmp_path / "src.onnx"
    onnx.save(_model(weights, float_data=float_data), str(src))
    out = tmp_path / "out.onnx"
    save_model(load_model(str(src)), str(out), external_data=True, threshold=64)
    stored = onnx.load(str(out), load_external_data=False)
    assert _external_locations(stored) == {"big_a": "out.onnx.data", "big_b": "out.onnx.data"}
    assert (tmp_path / "out.onnx.data").is_file()
    tiny = [t for t in stored.graph.initializer if t.name == "tiny"][0]
    assert tiny.data_location != TensorProto.EXTERNAL
    got = _arrays(out)
    assert sorted(got) == sorted(weights)
    for name, array in weights.items():
        np.testing.assert_array_equal(got[name], array)


def test_external_offsets_are_aligned_and_lengths_match_payloads(tmp_path: Path) -> None:
    """Each entry starts at a 4 KiB boundary and its length is the tensor's byte size."""
    out = tmp_path / "out.onnx"
    src = tmp_path / "src.onnx"
    onnx.save(_model(_weights()), str(src))
    save_model(load_model(str(src)), str(out), external_data=True, threshold=1)
    written = onnx.load(str(out), load_external_data=False)
    entries = {t.name: {e.key: int(e.value) for e in t.external_data if e.key != "location"}
               for t in written.graph.initializer}
    assert all(e["offset"] % 4096 == 0 for e in entries.values())
    assert {n: e["length"] for n, e in entries.items()} == {n: 4 * s for n, s in _SIZES.items()}
    assert os.path.getsize(str(out) + ".data") == max(e["offset"] + e["length"] for e in entries.values())


def test_resaving_an_external_data_model_never_points_at_the_input_data(tmp_path: Path) -> None:
    """A model loaded with external data is re-saved into the output's own data file (or inline)."""
    weights = _weights()
    src = _save_external(tmp_path, _model(weights))
    model = load_model(str(src))
    assert all(v.const.is_external for v in model.graph.consts)

    save_model(model, str(tmp_path / "out.onnx"), external_data=True, threshold=16)
    written = onnx.load(str(tmp_path / "out.onnx"), load_external_data=False)
    assert set(_external_locations(written).values()) == {"out.onnx.data"}
    assert len(written.graph.initializer) == 3
    save_model(model, str(tmp_path / "inline.onnx"), external_data=False)
    inline = onnx.load(str(tmp_path / "inline.onnx"), load_external_data=False)
    assert _external_locations(inline) == {} and len(inline.graph.initializer) == 3
    assert not (tmp_path / "inline.onnx.data").exists()

    os.unlink(tmp_path / "in.onnx.weights")  # the outputs must not need the input's data any more
    for name in ("out.onnx", "inline.onnx"):
        got = _arrays(tmp_path / name)
        for key, array in weights.items():
            np.testing.assert_array_equal(got[key], array)


def test_reloaded_external_tensors_are_lazy_and_equal(tmp_path: Path) -> None:
    """After reload the IR tensors are backed by the data file and decode to the saved values."""
    weights = _weights()
    src = tmp_path / "src.onnx"
    onnx.save(_model(weights), str(src))
    out = tmp_path / "out.onnx"
    save_model(load_model(str(src)), str(out), external_data=True, threshold=64)
    model = load_model(str(out))
    backing = {v.name: v.const.is_external for v in model.graph.consts}
    assert backing == {"big_a": True, "big_b": True, "tiny": False}
    big_a = [v for v in model.graph.consts if v.name == "big_a"][0]
    assert (big_a.dtype, big_a.shape, big_a.const.nbytes) == (FLOAT, (64,), 256)
    np.testing.assert_array_equal(big_a.const.numpy(), weights["big_a"])


def test_saving_over_the_input_then_reloading_reads_the_new_data(tmp_path: Path) -> None:
    """Overwriting a model and its data file in place, then loading it again, gives the new weights."""
    path = tmp_path / "m.onnx"
    first, second = _weights(1), _weights(2)
    src = tmp_path / "first.onnx"
    onnx.save(_model(first), str(src))
    save_model(load_model(str(src)), str(path), external_data=True, threshold=16)
    np.testing.assert_array_equal(_arrays(path)["big_a"], first["big_a"])  # maps m.onnx.data

    onnx.save(_model(second), str(src))
    save_model(load_model(str(src)), str(path), external_data=True, threshold=16)
    got = _arrays(path)
    for name, array in second.items():
        np.testing.assert_array_equal(got[name], array)


def test_a_model_still_reads_its_own_data_after_being_saved_in_place(tmp_path: Path) -> None:
    """An IR model loaded from a path keeps its values after it is saved over that same path."""
    path = tmp_path / "m.onnx"
    weights = _weights(3)
    onnx.save(_model(weights), str(tmp_path / "src.onnx"))
    save_model(load_model(str(tmp_path / "src.onnx")), str(path), external_data=True, threshold=16)
    model = load_model(str(path))
    save_model(model, str(path), external_data=True, threshold=300)  # big_a now inline: new layout
    consts = {v.name: v.const for v in model.graph.consts}
    np.testing.assert_array_equal(consts["big_b"].numpy(), weights["big_b"])
    got = _arrays(path)
    for name, array in weights.items():
        np.testing.assert_array_equal(got[name], array)


@pytest.mark.parametrize("location", ["../x.bin", "ABSOLUTE", "link.bin"],
                         ids=["parent", "absolute", "symlink"])
def test_external_location_escaping_the_model_folder_is_refused(tmp_path: Path, location: str) -> None:
    """'../x', an absolute path, or a symlink leading outside the folder raise ExternalDataError."""
    folder = tmp_path / "model"
    folder.mkdir()
    outside = tmp_path / "x.bin"
    outside.write_bytes(np.arange(16, dtype=np.float32).tobytes())
    if location == "ABSOLUTE":
        location = str(outside)
    if location == "link.bin":
        os.symlink(outside, folder / "link.bin")
    proto = _model({"w": np.zeros(16, np.float32)})
    tensor = proto.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    path = folder / "m.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ExternalDataError, match="'w'.*(escapes|resolves outside) the model folder"):
        load_model(str(path))


def test_missing_external_data_file_is_an_external_data_error(tmp_path: Path) -> None:
    """A model whose data file was not copied along fails at load, naming the file."""
    src = _save_external(tmp_path, _model(_weights()))
    os.unlink(tmp_path / "in.onnx.weights")
    with pytest.raises(ExternalDataError, match=r"external data file 'in\.onnx\.weights' not found"):
        load_model(str(src))


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _fail_on_second_tensor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the first tensor's bytes be written, then break (a disk error in the middle of the data)."""
    real = Tensor.raw_bytes
    calls = []

    def flaky(self: Tensor) -> bytes | memoryview:
        calls.append(self)
        if len(calls) > 1:
            raise RuntimeError("disk went away")
        return real(self)

    monkeypatch.setattr(Tensor, "raw_bytes", flaky)


def _fail_writing_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write half of the model file's bytes, then break."""
    real = save_module.write_model

    def half(out: BinaryIO, *args: object) -> int:
        buffer = io.BytesIO()
        real(buffer, *args)
        out.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise RuntimeError("disk went away")

    monkeypatch.setattr(save_module, "write_model", half)


@pytest.mark.parametrize("fail", [_fail_on_second_tensor, _fail_writing_the_model],
                         ids=["in-data-file", "in-model-file"])
def test_failed_save_leaves_no_output_and_no_temporary_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: Callable[[pytest.MonkeyPatch], None]) -> None:
    """A write that breaks midway removes its temporaries and publishes neither file."""
    src = tmp_path / "src.onnx"
    onnx.save(_model(_weights()), str(src))
    model = load_model(str(src))
    fail(monkeypatch)
    before = _listing(tmp_path)
    with pytest.raises(RuntimeError, match="disk went away"):
        save_model(model, str(tmp_path / "out.onnx"), external_data=True, threshold=16)
    assert _listing(tmp_path) == before == ["src.onnx"]


def test_failed_save_keeps_the_previous_output_intact(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """An OS error while overwriting an output is an OutputWriteError; old file and data stay intact."""
    src = tmp_path / "src.onnx"
    onnx.save(_model(_weights()), str(src))
    model = load_model(str(src))
    out = tmp_path / "out.onnx"
    save_model(model, str(out), external_data=True, threshold=16)
    old_model, old_data = out.read_bytes(), Path(str(out) + ".data").read_bytes()

    def no_space(*_args: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(save_module, "write_model", no_space)
    with pytest.raises(OutputWriteError, match=r"out\.onnx.*No space left on device"):
        save_model(model, str(out), external_data=True, threshold=16)
    assert out.read_bytes() == old_model
    assert Path(str(out) + ".data").read_bytes() == old_data
    assert _listing(tmp_path) == ["out.onnx", "out.onnx.data", "src.onnx"]


def test_save_into_a_missing_folder_is_an_output_write_error(tmp_path: Path) -> None:
    """A folder that does not exist gives OutputWriteError, not a traceback."""
    src = tmp_path / "src.onnx"
    onnx.save(_model(_weights()), str(src))
    with pytest.raises(OutputWriteError, match="cannot write here"):
        save_model(load_model(str(src)), str(tmp_path / "no" / "out.onnx"))
