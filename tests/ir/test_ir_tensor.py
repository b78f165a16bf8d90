"""Tensor: immutable and lazy; dtype, shape and nbytes never decode or read weight bytes."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import ExternalDataError
from graphopt.ir import Graph, Model, Tensor, Value
from graphopt.ir import tensor as tensor_module
from graphopt.ir.tensor import element_size


@pytest.fixture
def no_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any decode of a TensorProto fail loudly."""
    def refuse(*_args: object, **_kwargs: object) -> np.ndarray:
        raise AssertionError("TensorProto was decoded")

    monkeypatch.setattr(onnx.numpy_helper, "to_array", refuse)


@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "float_data"])
def test_dtype_shape_and_nbytes_of_a_proto_tensor_never_decode(no_decode: None, raw: bool) -> None:
    """Reading metadata (and building a constant Value or model size) does not call to_array."""
    proto = helper.make_tensor("w", TensorProto.FLOAT, [3, 4], np.arange(12, dtype=np.float32), raw=raw)
    tensor = Tensor.from_proto(proto, None)
    assert tensor.dtype == TensorProto.FLOAT
    assert tensor.shape == (3, 4)
    assert tensor.size == 12
    assert tensor.nbytes == 48
    assert not tensor.is_external
    g = Graph()
    value = g.add_const(tensor, "w")
    assert (value.dtype, value.shape) == (TensorProto.FLOAT, (3, 4))
    assert Model(graph=g).const_bytes() == 48
    assert "FLOAT" in repr(tensor)
    with pytest.raises(AssertionError, match="decoded"):
        tensor.numpy()


def test_nbytes_of_a_string_proto_tensor_counts_bytes_without_decoding(no_decode: None) -> None:
    """String tensors report the sum of their byte lengths straight from the proto."""
    proto = helper.make_tensor("s", TensorProto.STRING, [3], [b"ab", b"", b"\xff\xfe\xfd"])
    assert Tensor.from_proto(proto, None).nbytes == 5


def test_to_proto_of_an_imported_tensor_copies_without_decoding(no_decode: None) -> None:
    """Export copies the imported proto (renamed if asked) and never decodes it."""
    proto = helper.make_tensor("w", TensorProto.INT64, [2], [7, 8])
    out = Tensor.from_proto(proto, None).to_proto("renamed")
    assert out.name == "renamed" and list(out.int64_data) == [7, 8]
    assert proto.name == "w"


@pytest.mark.parametrize(("dtype", "shape", "nbytes"), [
    (TensorProto.INT4, (3,), 2),
    (TensorProto.INT4, (4,), 2),
    (TensorProto.UINT4, (5, 3), 8),
    (TensorProto.UINT4, (), 1),
    (TensorProto.FLOAT16, (3,), 6),
    (TensorProto.DOUBLE, (2, 0), 0),
])
def test_nbytes_is_computed_from_dtype_and_shape_rounding_4bit_up(dtype: int, shape: tuple[int, ...],
                                                                 nbytes: int) -> None:
    """4-bit types pack two elements per byte, rounded up; empty tensors have no bytes."""
    assert Tensor(dtype, shape).nbytes == nbytes


def test_element_size_of_4bit_string_and_float_types() -> None:
    """Element sizes: half a byte for INT4/UINT4, 0 for strings, itemsize otherwise."""
    assert element_size(TensorProto.INT4) == 0.5
    assert element_size(TensorProto.UINT4) == 0.5
    assert element_size(TensorProto.STRING) == 0
    assert element_size(TensorProto.FLOAT) == 4.0
    assert element_size(TensorProto.BFLOAT16) == 2.0


def test_from_array_copies_and_returns_a_read_only_array() -> None:
    """The source array can change afterwards without affecting the tensor, which refuses writes."""
    source = np.array([1.0, 2.0], dtype=np.float32)
    tensor = Tensor.from_array(source)
    source[0] = 99.0
    arr = tensor.numpy()
    assert arr.tolist() == [1.0, 2.0]
    assert not arr.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        arr[0] = 5.0
    assert tensor.dtype == TensorProto.FLOAT and tensor.shape == (2,)


def test_numpy_of_a_proto_tensor_is_read_only_and_equal_to_the_payload() -> None:
    """Decoding a proto gives the stored values in a read-only array."""
    proto = numpy_helper.from_array(np.array([[1, 2], [3, 4]], dtype=np.int32), "w")
    arr = Tensor.from_proto(proto, None).numpy()
    assert arr.tolist() == [[1, 2], [3, 4]] and arr.dtype == np.int32
    assert not arr.flags.writeable


def _external_proto(name: str, dtype: int, dims: list[int], location: str, offset: int,
                    length: int | None = None) -> TensorProto:
    proto = TensorProto(name=name, data_type=dtype, dims=dims, data_location=TensorProto.EXTERNAL)
    entries = [("location", location), ("offset", str(offset))]
    if length is not None:
        entries.append(("length", str(length)))
    for key, value in entries:
        proto.external_data.add(key=key, value=value)
    return proto


def _mapped(path: str) -> bool:
    return any(key[0] == path for key in tensor_module._MAPS)


def test_external_tensor_is_located_not_read_and_maps_the_file_on_use(tmp_path: Path) -> None:
    """from_proto only checks the file; numpy() views the mmap'd bytes at the given offset."""
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    blob = b"\x00" * 16 + data.astype("<f4").tobytes()
    (tmp_path / "w.bin").write_bytes(blob)
    tensor = Tensor.from_proto(_external_proto("w", TensorProto.FLOAT, [2, 3], "w.bin", 16, 24),
                               str(tmp_path))
    path = os.path.realpath(tmp_path / "w.bin")
    assert not _mapped(path)  # located and checked, not opened
    assert tensor.is_external
    assert (tensor.dtype, tensor.shape, tensor.nbytes) == (TensorProto.FLOAT, (2, 3), 24)
    assert "external" in repr(tensor)
    arr = tensor.numpy()
    assert _mapped(path)
    np.testing.assert_array_equal(arr, data)
    assert not arr.flags.writeable
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    assert isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)  # a view, not a copy
    assert bytes(tensor.raw_bytes()) == data.astype("<f4").tobytes()


def test_external_tensor_without_length_uses_dtype_and_shape(tmp_path: Path) -> None:
    """A missing length entry defaults to size * element size."""
    (tmp_path / "d.bin").write_bytes(np.array([5, 6, 7], dtype="<i8").tobytes())
    tensor = Tensor.from_proto(_external_proto("d", TensorProto.INT64, [3], "d.bin", 0), str(tmp_path))
    assert tensor.numpy().tolist() == [5, 6, 7]


@pytest.mark.parametrize(("location", "message"), [
    ("../outside.bin", "escapes the model folder"),
    ("sub/../../outside.bin", "escapes the model folder"),
    ("missing.bin", "not found"),
    ("", "no usable location"),
])
def test_external_locations_outside_the_folder_or_missing_are_refused(
        tmp_path: Path, location: str, message: str) -> None:
    """Relative escapes, missing files and empty locations raise ExternalDataError naming the tensor."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\x00" * 16)
    with pytest.raises(ExternalDataError, match=f"'w'.*{message}"):
        Tensor.from_proto(_external_proto("w", TensorProto.FLOAT, [4], location, 0), str(model_dir))


def test_external_absolute_location_is_refused(tmp_path: Path) -> None:
    """An absolute location is refused even when it points at a real file."""
    target = tmp_path / "abs.bin"
    target.write_bytes(b"\x00" * 16)
    with pytest.raises(ExternalDataError, match="escapes the model folder"):
        Tensor.from_proto(_external_proto("w", TensorProto.FLOAT, [4], str(target), 0), str(tmp_path))


def test_external_symlink_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    """A symlink inside the folder that resolves outside it is refused."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\x00" * 16)
    os.symlink(tmp_path / "secret.bin", model_dir / "link.bin")
    with pytest.raises(ExternalDataError, match="resolves outside the model folder"):
        Tensor.from_proto(_external_proto("w", TensorProto.FLOAT, [4], "link.bin", 0), str(model_dir))


def test_external_data_shorter_than_offset_plus_length_is_refused(tmp_path: Path) -> None:
    """A truncated data file is caught when the tensor is imported, not when it is read."""
    (tmp_path / "short.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(ExternalDataError, match=r"shorter than offset\+length \(4\+8\)"):
        Tensor.from_proto(_external_proto("w", TensorProto.FLOAT, [2], "short.bin", 4), str(tmp_path))


def test_value_takes_dtype_and_shape_from_its_constant() -> None:
    """A constant Value without explicit type reads it from its tensor."""
    value = Value("c", const=Tensor.from_array(np.zeros((2, 5), np.int8)))
    assert (value.dtype, value.shape, value.rank, value.static_shape) == (TensorProto.INT8, (2, 5), 2,
                                                                           (2, 5))


def test_external_file_replaced_after_import_is_never_read_through_a_stale_mapping(tmp_path: Path) -> None:
    """A fresh import sees a data file swapped under the same name; a tensor mapped before keeps its bytes."""
    (tmp_path / "v.bin").write_bytes(np.array([1, 2], dtype="<i4").tobytes())
    first = Tensor.from_proto(_external_proto("v", TensorProto.INT32, [2], "v.bin", 0), str(tmp_path))
    assert first.numpy().tolist() == [1, 2]
    replacement = tmp_path / "v.tmp"
    replacement.write_bytes(np.array([7, 8, 9], dtype="<i4").tobytes())
    os.replace(replacement, tmp_path / "v.bin")
    second = Tensor.from_proto(_external_proto("v", TensorProto.INT32, [2], "v.bin", 0), str(tmp_path))
    assert second.numpy().tolist() == [7, 8]
    assert first.numpy().tolist() == [1, 2]


def test_external_file_replaced_before_first_read_is_refused(tmp_path: Path) -> None:
    """A lazy tensor whose file changed between import and first read raises instead of misreading."""
    (tmp_path / "u.bin").write_bytes(np.array([1, 2], dtype="<i4").tobytes())
    lazy = Tensor.from_proto(_external_proto("u", TensorProto.INT32, [2], "u.bin", 0), str(tmp_path))
    replacement = tmp_path / "u.tmp"
    replacement.write_bytes(np.array([7, 8, 9], dtype="<i4").tobytes())
    os.replace(replacement, tmp_path / "u.bin")
    with pytest.raises(ExternalDataError, match="changed since the model was loaded"):
        lazy.numpy()
