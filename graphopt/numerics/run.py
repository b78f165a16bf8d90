"""Running models with onnxruntime on the CPU, graph optimisations off (we test our rewrites,
not ORT's)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper

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


INTEGER_DIVISION = ("Div", "Mod")
_CHILD = r"""
import pickle, sys, numpy as np, onnxruntime as ort
from graphopt.numerics.run import session_options, _run
with open(sys.argv[2], "rb") as f:
    feeds = pickle.load(f)
session = ort.InferenceSession(sys.argv[1], session_options(), providers=["CPUExecutionProvider"])
with open(sys.argv[3], "wb") as f:
    pickle.dump(_run(session, feeds, sys.argv[4]), f)
"""


FLOATS = frozenset({onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                    onnx.TensorProto.BFLOAT16})


def has_integer_division(divisions: Any) -> bool:
    """Div/Mod on integers (or of unknown type): onnxruntime's integer kernels raise SIGFPE on x / 0
    and on INT_MIN / -1, which would kill graphopt itself; such models run in a child process.
    ``divisions`` yields the output element type of each Div/Mod (None when unknown)."""
    return any(dtype not in FLOATS for dtype in divisions)


def _safe_divisor(values: np.ndarray | None) -> bool:
    """A constant divisor without 0 and -1 cannot trap (x / 0, INT_MIN / -1)."""
    return values is not None and values.size > 0 and not np.any((values == 0) | (values == -1))


def _ir_divisions(model: Any) -> list[int | None]:
    divisions = [n for n in model.graph.all_nodes() if n.op_type in INTEGER_DIVISION and not (
        len(n.inputs) > 1 and n.inputs[1] is not None and n.inputs[1].const is not None
        and _safe_divisor(n.inputs[1].const.numpy()))]
    if any(n.outputs[0].dtype is None for n in divisions):
        from graphopt.analyses.shapes import refresh_types

        refresh_types(model)  # usually known already; inference is cached between passes
    return [n.outputs[0].dtype for n in divisions]


def _proto_divisions(graph: onnx.GraphProto, types: dict[str, int] | None = None) -> Any:
    types = dict(types or {})
    for info in [*graph.input, *graph.value_info, *graph.output]:
        types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        divisor = constants.get(node.input[1]) if len(node.input) > 1 else None
        if node.op_type in INTEGER_DIVISION and not (
                divisor is not None and _safe_divisor(onnx.numpy_helper.to_array(divisor))):
            yield types.get(node.output[0]) or types.get(node.input[0]) if node.input else None
        for attr in node.attribute:
            for body in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _proto_divisions(body, types)


def _run_in_child(data: bytes, feeds: dict[str, np.ndarray], what: str) -> dict[str, Any]:
    """Run in a separate Python process, so that a crash of onnxruntime is an error, not our death."""
    import pickle
    import signal
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="graphopt-run-") as folder:
        paths = [os.path.join(folder, name) for name in ("model.onnx", "feeds.pkl", "out.pkl")]
        with open(paths[0], "wb") as f:
            f.write(data)
        with open(paths[1], "wb") as f:
            pickle.dump(feeds, f)
        child = subprocess.run([sys.executable, "-c", _CHILD, *paths, what], capture_output=True, text=True)
        if child.returncode < 0:
            name = signal.Signals(-child.returncode).name
            raise RuntimeCheckError(f"onnxruntime crashed ({name}) running the {what}"
                                    + (": an integer division by zero or of the smallest integer by -1?"
                                       if name == "SIGFPE" else ""))
        if child.returncode != 0:
            lines = [line for line in child.stderr.strip().splitlines() if line.strip()]
            message = lines[-1] if lines else f"exit code {child.returncode}"
            raise RuntimeCheckError(message.split("RuntimeCheckError: ", 1)[-1][:400])
        with open(paths[2], "rb") as f:
            return pickle.load(f)  # noqa: S301 - written just now by our own child process


def run_proto(proto: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray],
              what: str = "model", isolate: bool | None = None) -> dict[str, Any]:
    """Run a model (proto or serialized bytes) and return its outputs by name; ``isolate`` (default:
    when a parsed proto has Div/Mod) runs it in a child process."""
    import onnxruntime as ort

    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    if isolate is None:
        isolate = not isinstance(proto, bytes) and has_integer_division(_proto_divisions(proto.graph))
    if isolate:
        return _run_in_child(data, feeds, what)
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
    isolate = has_integer_division(_ir_divisions(model))
    return run_proto(proto.SerializeToString(), {**feeds, **weights}, what, isolate=isolate)


def run_model(model: Any, feeds: dict[str, np.ndarray], what: str = "model") -> dict[str, Any]:
    """Run an IR Model; huge models go through a temporary folder with external data."""
    from graphopt.onnx_io.save import model_bytes, save_model

    isolate = has_integer_division(_ir_divisions(model))
    if model.const_bytes() < INLINE_LIMIT:
        return run_proto(model_bytes(model), feeds, what, isolate=isolate)
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
