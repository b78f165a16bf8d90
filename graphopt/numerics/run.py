"""Running models with onnxruntime on the CPU, graph optimisations off (we test our rewrites,
not ORT's)."""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any, Sequence

import numpy as np
import onnx
import onnx.numpy_helper

from graphopt.numerics.custom_ops import CustomOp, find_custom_ops
from graphopt.numerics.session import INLINE_LIMIT, ModelSession, Prepared, session_options

__all__ = ["INLINE_LIMIT", "ModelSession", "open_session", "run_model", "run_proto", "session_options"]


INTEGER_DIVISION = ("Div", "Mod")


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


def _proto_custom_ops(proto: onnx.ModelProto) -> tuple[CustomOp, ...]:
    def nodes(graph: onnx.GraphProto) -> Any:
        for node in graph.node:
            yield node
            for attr in node.attribute:
                for body in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                    yield from nodes(body)
    return find_custom_ops(nodes(proto.graph), [(f.domain, f.name) for f in proto.functions])


def prepare_proto(proto: onnx.ModelProto | bytes, isolate: bool | None = None) -> Prepared:
    """What a session over a proto (or serialized bytes) is built from; ``isolate`` defaults to
    "a parsed proto has an integer Div/Mod"."""
    parsed = proto if isinstance(proto, onnx.ModelProto) else None
    if isolate is None:
        isolate = parsed is not None and has_integer_division(_proto_divisions(parsed.graph))
    data = proto if isinstance(proto, bytes) else proto.SerializeToString()
    return Prepared(data, isolate=isolate, custom_ops=_proto_custom_ops(parsed) if parsed else ())


def prepare_model(model: Any, extra_outputs: Sequence[Any] = ()) -> tuple[Prepared, dict[Any, str]]:
    """What a session over an IR model is built from, with ``extra_outputs`` (values of the main graph)
    added as graph outputs; also returns the name each extra value was given. Huge models run with
    their weights fed as inputs from the IR's own (memory-mapped) arrays; beyond that, from a
    temporary folder with external data (without extra outputs)."""
    from graphopt.onnx_io.exporter import export_parts_with_names, export_with_names
    from graphopt.onnx_io.wire import write_model

    isolate = has_integer_division(_ir_divisions(model))
    custom = find_custom_ops(model.graph.all_nodes(), [(f.domain, f.name) for f in model.functions])
    if model.const_bytes() < INLINE_LIMIT:
        proto, parts, names = export_parts_with_names(model)
        extra = _add_outputs(proto, extra_outputs, names)
        buffer = io.BytesIO()
        write_model(buffer, proto, parts)
        return Prepared(buffer.getvalue(), isolate=isolate, custom_ops=custom), extra
    proto, names = export_with_names(model, skeleton=True)
    if proto.ByteSize() > INLINE_LIMIT:
        return Prepared(None, path=_external_copy(model), isolate=isolate, custom_ops=custom), {}
    extra = _add_outputs(proto, extra_outputs, names)
    interface = {names[v] for v in model.graph.inputs}
    by_name = {names[v]: v for v in model.graph.consts if v in names}
    weights = {i.name: by_name[i.name].const.numpy() for i in proto.graph.input
               if i.name not in interface and i.name in by_name}
    return Prepared(proto.SerializeToString(), fixed_feeds=weights, isolate=isolate, custom_ops=custom), extra


def _add_outputs(proto: onnx.ModelProto, values: Sequence[Any], names: dict[Any, str]) -> dict[Any, str]:
    """Append ``values`` as untyped graph outputs (onnxruntime infers their types)."""
    present = {o.name for o in proto.graph.output}
    added: dict[Any, str] = {}
    for value in values:
        name = names.get(value)
        if name and name not in present:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
            present.add(name)
        if name:
            added[value] = name
    return added


_TEMP_FOLDERS: list[tempfile.TemporaryDirectory] = []  # noqa: RUF012 - live as long as the process


def _external_copy(model: Any) -> str:
    """Save a huge model with external data into a temporary folder removed at exit."""
    from graphopt.onnx_io.save import save_model

    folder = tempfile.TemporaryDirectory(prefix="graphopt-check-")
    _TEMP_FOLDERS.append(folder)
    path = os.path.join(folder.name, "model.onnx")
    save_model(model, path, external_data=True)
    return path


def open_session(model: Any, what: str = "model", *, extra_outputs: Sequence[Any] = (),
                 libraries: Sequence[str] = ()) -> tuple[ModelSession, dict[Any, str]]:
    """A reusable session over an IR model (see prepare_model) and the names of ``extra_outputs``."""
    prepared, names = prepare_model(model, extra_outputs)
    return ModelSession(prepared, what, libraries), names


def run_proto(proto: onnx.ModelProto | bytes, feeds: dict[str, np.ndarray],
              what: str = "model", isolate: bool | None = None,
              libraries: Sequence[str] = ()) -> dict[str, Any]:
    """Run a model (proto or serialized bytes) once and return its outputs by name; ``isolate``
    (default: when a parsed proto has Div/Mod) runs it in a child process."""
    return ModelSession(prepare_proto(proto, isolate), what, libraries).run(feeds)


def run_model(model: Any, feeds: dict[str, np.ndarray], what: str = "model",
              libraries: Sequence[str] = ()) -> dict[str, Any]:
    """Run an IR Model once and return its outputs by name."""
    return open_session(model, what, libraries=libraries)[0].run(feeds)


def observe(model: Any, values: Sequence[Any], feeds: dict[str, np.ndarray],
            what: str = "model") -> dict[Any, Any]:
    """Run an IR Model once and return what ``values`` (any of its tensors, intermediates included)
    held, by Value: for passes that need to see real data (observed sizes, calibration ranges)."""
    session, names = open_session(model, what, extra_outputs=values)
    outputs = session.run(feeds)
    return {value: outputs[name] for value in values if (name := names.get(value)) and name in outputs}
