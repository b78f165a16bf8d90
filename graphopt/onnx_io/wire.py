"""Just enough of the protobuf wire format to read a model without decoding its weights.

``split_model`` scans a serialized ModelProto, cuts out the main graph's initializers as byte ranges
(decoding only their small header fields) and returns the rest for normal parsing. Writing mirrors it:
``write_model`` streams a ModelProto whose initializers are given as byte-like parts, so unchanged
weights go from the input file to the output file without ever being decoded or re-encoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Iterator, Sequence, Union

import onnx

from graphopt.errors import WireError

MODEL_GRAPH = 7
GRAPH_INITIALIZER = 5
# TensorProto payload fields: float_data, int32_data, string_data, int64_data, raw_data,
# double_data, uint64_data. Everything else is header.
TENSOR_PAYLOAD = frozenset({4, 5, 6, 7, 9, 10, 11})

Buffer = Union[bytes, memoryview]




@dataclass
class RawTensor:
    """An initializer left encoded: its header fields and where its full message lies."""

    header: onnx.TensorProto
    data: memoryview  # the complete serialized TensorProto


def _varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError("varint too long")


def fields(buf: Buffer, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield ``(field_number, field_start, value_start, value_end)`` for each field in a message."""
    pos = start
    while pos < end:
        field_start = pos
        key, pos = _varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, value_end = _varint(buf, pos, end)
        elif wire_type == 1:
            value_end = pos + 8
        elif wire_type == 2:
            length, pos = _varint(buf, pos, end)
            value_end = pos + length
        elif wire_type == 5:
            value_end = pos + 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if value_end > end or number == 0:
            raise WireError("truncated or malformed message")
        yield number, field_start, pos, value_end
        pos = value_end


def split_model(buf: memoryview) -> tuple[onnx.ModelProto, list[RawTensor]]:
    """Parse a serialized model except the main graph's initializers, returned as RawTensors."""
    model_parts: list[Buffer] = []
    graph_parts: list[Buffer] = []
    tensors: list[RawTensor] = []
    for number, fstart, vstart, vend in fields(buf, 0, len(buf)):
        if number != MODEL_GRAPH:
            model_parts.append(buf[fstart:vend])
            continue
        for gnum, gfstart, gvstart, gvend in fields(buf, vstart, vend):
            if gnum == GRAPH_INITIALIZER:
                tensors.append(_raw_tensor(buf, gvstart, gvend))
            else:
                graph_parts.append(buf[gfstart:gvend])
    model = onnx.ModelProto()
    model.ParseFromString(b"".join(model_parts))
    graph = onnx.GraphProto()
    graph.ParseFromString(b"".join(graph_parts))
    model.graph.CopyFrom(graph)
    return model, tensors


def _raw_tensor(buf: memoryview, start: int, end: int) -> RawTensor:
    header_parts = [buf[f:v] for n, f, _, v in fields(buf, start, end) if n not in TENSOR_PAYLOAD]
    header = onnx.TensorProto()
    header.ParseFromString(b"".join(header_parts))
    return RawTensor(header, buf[start:end])


def _key(number: int) -> bytes:
    return _encode_varint(number << 3 | 2)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write_model(out: BinaryIO, model: onnx.ModelProto, initializers: Sequence[Buffer]) -> int:
    """Write ``model`` with ``initializers`` (serialized TensorProtos) appended to its main graph.

    ``model.graph`` must not hold those initializers itself. Returns the number of bytes written.
    """
    graph_bytes = model.graph.SerializeToString()
    head = onnx.ModelProto()
    head.CopyFrom(model)
    head.ClearField("graph")
    key = _key(GRAPH_INITIALIZER)
    prefixes = [key + _encode_varint(len(part)) for part in initializers]
    graph_len = len(graph_bytes) + sum(len(p) + len(t) for p, t in zip(prefixes, initializers))
    written = 0
    for chunk in (head.SerializeToString(), _key(MODEL_GRAPH), _encode_varint(graph_len), graph_bytes):
        written += out.write(chunk)
    for prefix, part in zip(prefixes, initializers):
        written += out.write(prefix)
        written += out.write(part)
    return written
