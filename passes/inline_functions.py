"""inline-functions: replace calls to model-local functions by their bodies, with onnx's own inliner.

graphopt keeps ``ModelProto.functions`` as opaque protos, so every other pass sees a call as one
opaque node; inlining first lets them optimize across the call boundary. The work is done by
``onnx.inliner.inline_local_functions`` (nested calls, attribute references, calls inside If/Loop
bodies, unique renaming), on the exported model, which is then imported back. Two gaps of onnx 1.23's
inliner are closed here: it drops a function's default attribute values (a call that omits such an
attribute got a Constant with no value), so the defaults are written into each call first; and
without ``convert_version`` it silently leaves a function whose opset differs from the model's, while
with it the converter asserts on nested calls, so a function whose ops mean the same at the model's
opset is simply moved to that opset first (the converter handles the rest). Being a pass, the
result is checked like any other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import onnx
import onnx.defs
import onnx.inliner

from graphopt import Model, PassResult, export_model, import_model, register_pass
from graphopt.errors import PassFailedError


@register_pass
@dataclass
class InlineFunctions:
    """Inline calls to model-local functions (onnx's inliner), nested ones and those in bodies too."""

    name: ClassVar[str] = "inline-functions"
    may_grow: ClassVar[bool] = True  # a call becomes its body's nodes: that is what was asked for

    def run(self, model: Model) -> PassResult:
        if not model.functions:
            return PassResult(False)
        proto = export_model(model)
        calls = _fill_defaults(proto)
        _align_opsets(proto)
        inlined = onnx.inliner.inline_local_functions(proto, convert_version=True)
        left = {(f.domain, f.name) for f in inlined.functions}
        if left:
            raise PassFailedError(f"onnx's inliner left the functions {sorted(left)} in place")
        new = import_model(inlined, base_dir=model.base_dir)
        model.graph, model.functions = new.graph, new.functions
        model.opset_imports = new.opset_imports
        model.analysis_stamps.clear()
        return PassResult(True, {"functions": len(proto.functions), "calls": calls})


def _fill_defaults(proto: onnx.ModelProto) -> int:
    """Write each function's default attribute values into the calls that omit them; returns the
    number of calls (main graph, bodies and function bodies)."""
    defaults = {(f.domain, f.name): list(f.attribute_proto) for f in proto.functions}
    calls = 0
    for node in _nodes(proto):
        key = (node.domain, node.op_type)
        if key not in defaults:
            continue
        calls += 1
        given = {a.name for a in node.attribute}
        node.attribute.extend(a for a in defaults[key] if a.name not in given)
    return calls


def _align_opsets(proto: onnx.ModelProto) -> None:
    """Give a function the model's default-domain opset when each of its ops has the same version at
    both (nothing to convert, so the inliner need not call the version converter)."""
    target = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    for function in proto.functions:
        ops = {n.op_type for n in _walk(function.node) if n.domain in ("", "ai.onnx")}
        for opset in function.opset_import:
            if opset.domain in ("", "ai.onnx") and target and opset.version != target \
                    and all(_since(op, opset.version) == _since(op, target) is not None for op in ops):
                opset.version = target


def _since(op: str, opset: int) -> int | None:
    try:
        return onnx.defs.get_schema(op, opset, "").since_version
    except onnx.defs.SchemaError:
        return None


def _walk(nodes: Any) -> Any:
    for node in nodes:
        yield node
        for attr in node.attribute:
            for body in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _walk(body.node)


def _nodes(proto: onnx.ModelProto) -> Any:
    """Every node: main graph, functions, and the bodies inside either."""
    yield from _walk(proto.graph.node)
    for function in proto.functions:
        yield from _walk(function.node)
