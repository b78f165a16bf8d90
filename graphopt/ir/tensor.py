"""Immutable, lazy tensors: dtype, shape and nbytes never read weight bytes.

A tensor is backed by one of: a numpy array (made by a pass), a ``TensorProto`` (kept as imported, decoded
only when a pass asks for values), or a slice of an external data file (memory-mapped on first use).
Snapshots for rollback share tensors, so they cost nothing in weight bytes.
"""

from __future__ import annotations

import math
import mmap
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import ExternalDataError, ModelLoadError

_FOUR_BIT = {
    TensorProto.INT4,
    TensorProto.UINT4,
    *(getattr(TensorProto, n) for n in ("FLOAT4E2M1",) if hasattr(TensorProto, n)),
}


VALID_DTYPES = frozenset(v for v in TensorProto.DataType.values() if v != TensorProto.UNDEFINED)
MAX_ELEMENTS = 1 << 48  # more than any machine holds: dims beyond this are corrupt, not large


def check_header(proto: TensorProto) -> None:
    """A tensor's type and dims must be real before anything trusts them (a broken or hostile file
    would otherwise fail later, deep inside a pass)."""
    if proto.data_type not in VALID_DTYPES:
        raise ModelLoadError(f"tensor {proto.name!r}: unknown data type {proto.data_type}")
    if any(d < 0 for d in proto.dims) or math.prod(proto.dims) > MAX_ELEMENTS:
        raise ModelLoadError(f"tensor {proto.name!r}: impossible dims {list(proto.dims)}")


def element_size(dtype: int) -> float:
    """Bytes per element of an ONNX dtype (0.5 for 4-bit types, 0 where unknown such as strings)."""
    if dtype in _FOUR_BIT:
        return 0.5
    if dtype in (TensorProto.STRING, TensorProto.UNDEFINED):
        return 0
    return float(helper.tensor_dtype_to_np_dtype(dtype).itemsize)


def numpy_dtype(dtype: int) -> np.dtype:
    """The numpy dtype for an ONNX element type."""
    return helper.tensor_dtype_to_np_dtype(dtype)


def onnx_dtype(np_dtype: Any) -> int:
    """The ONNX element type for a numpy dtype."""
    return helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))


@dataclass(frozen=True)
class ExternalRef:
    """Where a tensor's bytes live in an external data file."""

    path: str
    offset: int
    length: int
    stamp: tuple[int, ...] = ()  # (device, inode, size, mtime_ns) of the file that was checked


class Tensor:
    """An immutable tensor value; see the module docstring for the three backings."""

    __slots__ = ("dtype", "shape", "size", "_array", "_proto", "_external", "_encoded", "doc_string")

    def __init__(
        self,
        dtype: int,
        shape: tuple[int, ...],
        *,
        array: np.ndarray | None = None,
        proto: TensorProto | None = None,
        external: ExternalRef | None = None,
        encoded: memoryview | None = None,
        doc_string: str = "",
    ) -> None:
        self.dtype = dtype
        self.shape = tuple(int(d) for d in shape)
        self.size = math.prod(self.shape)  # number of elements
        self._array = array
        self._proto = proto
        self._external = external
        self._encoded = encoded  # the full serialized TensorProto, still in the input file's bytes
        self.doc_string = doc_string

    @classmethod
    def from_array(cls, array: Any, dtype: int | None = None) -> Tensor:
        """Wrap a numpy array (copied and made read-only so that nobody mutates it behind our back)."""
        arr = np.array(array, copy=True)
        arr.setflags(write=False)
        onnx_type = dtype if dtype is not None else onnx_dtype(arr.dtype)
        return cls(onnx_type, arr.shape, array=arr)

    @classmethod
    def from_proto(cls, proto: TensorProto, base_dir: str | None) -> Tensor:
        """Wrap an imported TensorProto without decoding it; external data is located, not read."""
        check_header(proto)
        shape = tuple(proto.dims)
        if proto.data_location == TensorProto.EXTERNAL:
            return cls(proto.data_type, shape, external=_external_ref(proto, base_dir),
                       doc_string=proto.doc_string)
        return cls(proto.data_type, shape, proto=proto, doc_string=proto.doc_string)

    @classmethod
    def from_encoded(cls, header: TensorProto, encoded: memoryview, base_dir: str | None) -> Tensor:
        """Wrap a serialized TensorProto (``header`` holds its non-payload fields) without decoding it."""
        if header.data_location == TensorProto.EXTERNAL:
            return cls.from_proto(header, base_dir)
        check_header(header)
        tensor = cls(header.data_type, tuple(header.dims), proto=header, encoded=encoded,
                     doc_string=header.doc_string)
        return tensor

    def encoded_as(self, name: str) -> memoryview | None:
        """The original serialized bytes when they can be written as they are under ``name``."""
        if self._encoded is not None and self._proto is not None and self._proto.name == name:
            return self._encoded
        return None

    def _full_proto(self) -> TensorProto | None:
        """The complete TensorProto for proto-backed tensors (decoding the payload if still encoded)."""
        if self._encoded is not None:
            return TensorProto.FromString(bytes(self._encoded))
        return self._proto

    @property
    def nbytes(self) -> int:
        """Bytes of the payload, computed from dtype and shape only (strings: from the proto)."""
        if self.dtype == TensorProto.STRING:
            full = self._full_proto()
            if full is not None:
                return sum(len(s) for s in full.string_data)
            return sum(len(str(s)) for s in self.numpy().flat)
        return int(np.ceil(self.size * element_size(self.dtype)))

    @property
    def is_external(self) -> bool:
        """True while the bytes still live in an external data file."""
        return self._external is not None

    def numpy(self) -> np.ndarray:
        """The values as a read-only numpy array (decodes or maps the bytes on each call)."""
        if self._array is not None:
            return self._array
        try:
            if self._external is not None:
                arr = _read_external(self._external, self.dtype, self.shape)
            else:
                full = self._full_proto()
                assert full is not None
                arr = numpy_helper.to_array(full)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:  # a payload that does not fit
            raise ModelLoadError(f"a tensor's data does not match its type and dims {list(self.shape)} "
                                 f"({exc})") from None
        arr.setflags(write=False)
        return arr

    def to_proto(self, name: str | None = None) -> TensorProto:
        """A TensorProto carrying the full payload under ``name`` (None keeps the imported name)."""
        full = self._full_proto()
        if full is not None:
            out = full if self._encoded is not None else TensorProto()
            if out is not full:
                out.CopyFrom(full)
            if name is not None:
                out.name = name
            return out
        name = name or ""
        proto = numpy_helper.from_array(np.asarray(self.numpy()), name)
        if proto.data_type != self.dtype:  # e.g. bfloat16 or 4-bit types carried in wider arrays
            proto = helper.make_tensor(name, self.dtype, self.shape, self.numpy().flatten().tolist())
        proto.doc_string = self.doc_string
        return proto

    def tail_sample(self, n: int = 256) -> bytes:
        """Up to ``n`` bytes from the end of the stored payload, read without decoding the tensor.

        A cheap pre-filter for equality tests (equal tensors stored the same way give equal samples);
        confirm with the full bytes.
        """
        if self._encoded is not None:  # raw_data is the last field exporters write
            return bytes(self._encoded[-n:])
        if self._external is not None:
            end = self._external.offset + self._external.length
            view = _map_file(self._external.path, self._external.stamp)
            return bytes(view[max(self._external.offset, end - n):end])
        return bytes(self.raw_bytes()[-n:])

    def raw_bytes(self) -> bytes | memoryview:
        """Little-endian payload bytes as ONNX stores them in raw_data or external files."""
        if self._external is not None:
            return _map_file(self._external.path, self._external.stamp)[self._external.offset:
                                                   self._external.offset + self._external.length]
        full = self._full_proto()
        if full is not None and full.HasField("raw_data"):
            return full.raw_data
        return self.to_proto("").raw_data or numpy_helper.tobytes_little_endian(
            np.asarray(self.numpy()))

    def __repr__(self) -> str:
        backing = "array" if self._array is not None else "external" if self._external else "proto"
        return f"Tensor({onnx.TensorProto.DataType.Name(self.dtype)}, {list(self.shape)}, {backing})"


def _external_ref(proto: TensorProto, base_dir: str | None) -> ExternalRef:
    """Resolve and validate a proto's external data entry (refuses paths escaping the model folder)."""
    info = {e.key: e.value for e in proto.external_data}
    location = info.get("location", "")
    if not location or base_dir is None:
        raise ExternalDataError(f"tensor {proto.name!r} has external data but no usable location")
    if os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
        raise ExternalDataError(
            f"tensor {proto.name!r}: external data location {location!r} escapes the model folder")
    root = os.path.realpath(base_dir)
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise ExternalDataError(
            f"tensor {proto.name!r}: external data {location!r} resolves outside the model folder")
    if not os.path.isfile(path):
        raise ExternalDataError(f"tensor {proto.name!r}: external data file {location!r} not found")
    expected = math.ceil(math.prod(proto.dims) * element_size(proto.data_type))
    try:
        offset = int(info.get("offset", 0) or 0)
        length = int(info.get("length", expected) or expected)
    except ValueError:
        raise ExternalDataError(f"tensor {proto.name!r}: external data offset/length are not integers "
                                f"({info.get('offset')!r}, {info.get('length')!r})") from None
    if offset < 0 or length < 0:
        raise ExternalDataError(f"tensor {proto.name!r}: negative external data offset or length "
                                f"({offset}, {length})")
    if length < expected:
        raise ExternalDataError(f"tensor {proto.name!r}: external data length {length} is shorter than its "
                                f"{expected} bytes of {list(proto.dims)}")
    stat = os.stat(path)
    if offset + length > stat.st_size:
        raise ExternalDataError(
            f"tensor {proto.name!r}: external data {location!r} is shorter than offset+length "
            f"({offset}+{length})")
    return ExternalRef(path, offset, length, _stamp(stat))


def _stamp(stat: os.stat_result) -> tuple[int, ...]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


# Keyed by path *and* file identity: a data file replaced under the same name (a model saved over
# its input) is a different file, and must never be served from the old mapping.
_MAPS: dict[tuple[str, tuple[int, ...]], mmap.mmap] = {}


def _map_file(path: str, stamp: tuple[int, ...] = ()) -> mmap.mmap:
    """Memory-map an external data file read-only, once per process and file version.

    ``stamp`` is the file identity recorded when the tensor was imported; a file that has changed
    since then is refused rather than read at offsets that were checked against another file.
    """
    mapped = _MAPS.get((path, stamp))
    if mapped is None:
        with open(path, "rb") as f:
            stat = os.fstat(f.fileno())
            if stamp and _stamp(stat) != stamp:
                raise ExternalDataError(f"external data file {path!r} changed since the model was loaded")
            size = stat.st_size
            mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ) if size else b""  # type: ignore[assignment]
        _MAPS[(path, stamp)] = mapped  # type: ignore[assignment]
    return mapped  # type: ignore[return-value]


def _read_external(ref: ExternalRef, dtype: int, shape: tuple[int, ...]) -> np.ndarray:
    """View an external tensor's bytes as an array without copying them."""
    buf = _map_file(ref.path, ref.stamp)
    np_type = numpy_dtype(dtype)
    if dtype in _FOUR_BIT or dtype == TensorProto.STRING:
        raw = bytes(buf[ref.offset:ref.offset + ref.length])
        proto = TensorProto(data_type=dtype, dims=shape, raw_data=raw)
        return numpy_helper.to_array(proto)
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    arr = np.frombuffer(buf, dtype=np.dtype(np_type).newbyteorder("<"), count=count, offset=ref.offset)
    return arr.reshape(shape)
