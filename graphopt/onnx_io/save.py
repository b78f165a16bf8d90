"""Writing models: atomic (temporary file + rename), deterministic, with optional external data."""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from typing import Iterator

import onnx

from graphopt.errors import OutputWriteError
from graphopt.ir.model import Model
from graphopt.onnx_io.exporter import ExternalDataPlan, export_parts
from graphopt.onnx_io.wire import write_model

PROTOBUF_LIMIT = 2**31 - 1
AUTO_EXTERNAL_BYTES = 1_800_000_000  # leave headroom under protobuf's 2 GiB limit for the graph


def serialize(proto: onnx.ModelProto) -> bytes:
    """Deterministic bytes for a model (map fields sorted), so equal models give equal files."""
    return proto.SerializeToString(deterministic=True)


def model_bytes(model: Model) -> bytes:
    """The serialized model, built the same way save_model writes it (weights copied once)."""
    proto, parts = export_parts(model)
    buffer = io.BytesIO()
    write_model(buffer, proto, parts)
    return buffer.getvalue()


def save_model(model: Model, path: str, *, external_data: bool | None = None,
               threshold: int = 1024) -> None:
    """Write ``model`` to ``path`` atomically; large models (or ``external_data``) get a data file.

    The data file is named ``<file>.data`` beside the output and never points at the input's data.
    """
    if external_data is None:
        external_data = model.const_bytes() > AUTO_EXTERNAL_BYTES
    plan = ExternalDataPlan(os.path.basename(path) + ".data", threshold) if external_data else None
    proto, parts = export_parts(model, external=plan)
    if proto.ByteSize() + sum(len(p) + 16 for p in parts) > PROTOBUF_LIMIT:
        raise OutputWriteError(f"{path}: the model is over 2 GiB; write it with --external-data")
    folder = os.path.dirname(os.path.abspath(path))
    with _atomic(path) as tmp_model:
        if plan is not None and plan.entries:
            with _atomic(os.path.join(folder, plan.location)) as tmp_data:
                _write_data(plan, tmp_data)
                _write_model(tmp_model, proto, parts)
        else:
            _write_model(tmp_model, proto, parts)


def _write_model(path: str, proto: onnx.ModelProto, parts: list[bytes | memoryview]) -> None:
    with open(path, "wb") as f:
        write_model(f, proto, parts)


def _write_data(plan: ExternalDataPlan, path: str) -> None:
    with open(path, "wb") as f:
        for tensor, offset in plan.entries:
            f.seek(offset)
            f.write(tensor.raw_bytes())
        f.truncate(plan.size)


@contextmanager
def _atomic(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it into place only if the block succeeds."""
    folder = os.path.dirname(os.path.abspath(path)) or "."
    try:
        fd, tmp = tempfile.mkstemp(prefix=".graphopt-", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an output should get ordinary permissions
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputWriteError(f"{path}: write failed ({exc.strerror})") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text_atomic(path: str, text: str) -> None:
    """Write a text file (a report, a plan) atomically: a temporary file renamed over ``path``."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputWriteError(f"{path}: cannot write it ({exc.strerror})") from None
