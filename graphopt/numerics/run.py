"""Running models with onnxruntime on the CPU, graph optimisations off (we test our rewrites,
not ORT's)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import onnx

from graphopt.errors import RuntimeCheckError

INLINE_LIMIT = 1_500_000_000  # above this a model is run from a temporary file with external data


def session_options() -> Any:
    """ORT options for checks: no graph optimisation, quiet logs, deterministic thread count."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.log_severity_level = 4  # failures reach the user as one GraphoptError line, not ORT logs
    opts.intra_op_num_threads = 1 if (os.cpu_count() or 1) <= 2 else 2
    opts.inter_op_num_threads = 1
    return opts


def run_proto(proto: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray],
              what: str = "model") -> dict[str, Any]:
    """Run a model (proto or serialized bytes) and return its outputs by name."""
    import onnxruntime as ort

    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    try:
        session = ort.InferenceSession(data, session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RuntimeCheckError(f"onnxruntime cannot load the {what}: {_first_line(exc)}") from None
    return _run(session, feeds, what)


def _weights_as_inputs(model: Any, feeds: dict[str, np.ndarray], what: str) -> dict[str, Any] | None:
    """Run a huge model with its main-graph weights turned into graph inputs fed from the IR's own
    (memory-mapped) arrays: onnxruntime reads them in place, so no copy of the weights is written or
    held a second time. None when even the weightless model is too large to pass in memory."""
    from graphopt.onnx_io.exporter import export_with_names

    proto, names = export_with_names(model, skeleton=True)
    if proto.ByteSize() > INLINE_LIMIT:
        return None
    interface = {names[v] for v in model.graph.inputs}
    by_name = {names[v]: v for v in model.graph.consts if v in names}
    weights = {i.name: by_name[i.name].const.numpy() for i in proto.graph.input
               if i.name not in interface and i.name in by_name}
    return run_proto(proto.SerializeToString(), {**feeds, **weights}, what)


def run_model(model: Any, feeds: dict[str, np.ndarray], what: str = "model") -> dict[str, Any]:
    """Run an IR Model; huge models go through a temporary folder with external data."""
    from graphopt.onnx_io.save import model_bytes, save_model

    if model.const_bytes() < INLINE_LIMIT:
        return run_proto(model_bytes(model), feeds, what)
    import onnxruntime as ort

    weightless = _weights_as_inputs(model, feeds, what)
    if weightless is not None:
        return weightless
    with tempfile.TemporaryDirectory(prefix="graphopt-check-") as folder:
        path = os.path.join(folder, "model.onnx")
        save_model(model, path, external_data=True)
        try:
            session = ort.InferenceSession(path, session_options(), providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RuntimeCheckError(f"onnxruntime cannot load the {what}: {_first_line(exc)}") from None
        return _run(session, feeds, what)


def _run(session: Any, feeds: dict[str, np.ndarray], what: str) -> dict[str, Any]:
    names = [o.name for o in session.get_outputs()]
    # IR < 4 initializers that are also graph inputs can be overridden: feed them too
    wanted = {i.name for i in [*session.get_inputs(), *session.get_overridable_initializers()]}
    try:
        values = session.run(names, {k: v for k, v in feeds.items() if k in wanted})
    except Exception as exc:
        raise RuntimeCheckError(f"onnxruntime failed to run the {what}: {_first_line(exc)}") from None
    return dict(zip(names, values))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:400] if text else type(exc).__name__
