"""convert-opset: move the default ONNX domain to another opset, up or down, subgraphs included."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import onnx
from onnx import defs

from graphopt import Model, Node, PassResult, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.errors import UsageError

from .opset_adapters import DOWN, UP, OpsetConversionError
from .opset_decompose import DECOMPOSITIONS, SOFTMAX_FAMILY, softmax_down, softmax_up

STANDARD = ("", "ai.onnx")
OLDEST = 7
RENAMED = {"Scatter": ("ScatterElements", 11)}  # deprecated op -> (same op, new name, since)


def _deprecated(op: str, opset: int) -> bool:
    try:
        return bool(defs.get_schema(op, opset, "").deprecated)
    except defs.SchemaError:
        return False


def newest_opset() -> int:
    """The newest default-domain opset this onnx knows (onnxruntime 1.32 runs all of them)."""
    return defs.onnx_opset_version()


def since(op: str, opset: int) -> int | None:
    """The version of ``op`` in force at ``opset`` (None: the op does not exist there)."""
    try:
        return defs.get_schema(op, opset, "").since_version
    except defs.SchemaError:
        return None


def boundaries(op: str, low: int, high: int) -> list[int]:
    """Opsets in (low, high] in which ``op`` got a new version."""
    found = set()
    for opset in range(low + 1, high + 1):
        version = since(op, opset)
        if version is not None and version > low:
            found.add(version)
    return sorted(found)


@register_pass
@dataclass
class ConvertOpset:
    """Convert the default ONNX domain to opset ``target``, up or down, recursing into subgraphs.

    Version changes that matter get their own adapters both ways (axes/split/min-max/pads/slice
    attributes that became inputs, Softmax axis semantics at 13, attributes new in later versions);
    ops missing at the target are decomposed (LayerNormalization, Gelu, HardSwish, Mish); other version
    bumps keep the node after checking its dtypes are legal at the target. What cannot be expressed is
    refused, naming the op and node, and nothing is written.
    """

    name: ClassVar[str] = "convert-opset"
    may_grow: ClassVar[bool] = True  # decompositions add nodes; the target opset is what was asked for
    target: int = 0

    def __post_init__(self) -> None:
        newest = newest_opset()
        if not OLDEST <= int(self.target) <= newest:
            raise UsageError(f"convert-opset: target opset must be {OLDEST}..{newest}, not {self.target}")

    def run(self, model: Model) -> PassResult:
        source, target = model.opset, int(self.target)
        if source == target:
            return PassResult(False, {})
        refresh_types(model)
        stats: Counter = Counter()
        for graph in list(model.graph.all_graphs()):
            for node in list(graph):
                if node.domain in STANDARD and node.graph is graph:
                    self._convert(node, source, target, stats)
        model.opset_imports[""] = target
        model.opset_imports.pop("ai.onnx", None)
        model.ir_version = max(model.ir_version, _ir_for(target))
        stats[f"opset_{source}_to_{target}"] = 1
        return PassResult(True, dict(sorted(stats.items())))

    def _convert(self, node: Node, source: int, target: int, stats: Counter) -> None:
        op, graph = node.op_type, node.graph
        assert graph is not None
        if op in RENAMED and target >= RENAMED[op][1] and _deprecated(op, target):
            new_name, introduced = RENAMED[op]
            node.op_type = new_name  # the same semantics under the op's new name
            stats[f"renamed_{op}"] += 1
            op, source = new_name, max(source, introduced)
        if since(op, source) is None:
            raise OpsetConversionError(f"{op} node {node.name!r} is not an op of opset {source}")
        if since(op, target) is None:
            decompose = DECOMPOSITIONS.get(op)
            if decompose is None:
                raise OpsetConversionError(f"{op} node {node.name!r} does not exist in opset {target} "
                                           "and graphopt has no decomposition for it")
            decompose(node, graph, target)
            stats[f"decomposed_{op}"] += 1
            return
        if target > source:
            steps = boundaries(op, source, target)
            for version in steps:
                self._step(node, version, UP, softmax_up, stats)
        else:
            steps = boundaries(op, target, source)[::-1]
            for version in steps:
                self._step(node, version, DOWN, softmax_down, stats)
        if node.graph is not None:
            _check_types(node, target, source)

    def _step(self, node: Node, version: int, table: dict, softmax, stats: Counter) -> None:  # type: ignore[no-untyped-def]
        if node.graph is None:
            return  # replaced by an earlier step
        if node.op_type in SOFTMAX_FAMILY and version == 13:
            softmax(node, node.graph)
            stats[f"adapted_{node.op_type}@13"] += 1
            return
        adapter = table.get((node.op_type, version))
        if adapter is not None:
            adapter(node, node.graph)
            stats[f"adapted_{node.op_type}@{version}"] += 1
        else:
            stats["version_bumps"] += 1


def _check_types(node: Node, opset: int, source: int) -> None:
    """Every tensor input/output dtype must be allowed by the op's type constraints at ``opset``.

    A value whose dtype is unknown takes the dtype of another value bound to the same type parameter;
    if none is known either, it passes only when the target allows every type the source allowed.
    Unused optional outputs and sequence/optional-typed values are not constrained here.
    """
    schema = defs.get_schema(node.op_type, opset, "")
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    before_schema = defs.get_schema(node.op_type, source, "")
    before = {c.type_param_str: set(c.allowed_type_strs) for c in before_schema.type_constraints}
    bound: list[tuple[str, str, object]] = []
    sides = ((schema.inputs, node.inputs, False), (schema.outputs, node.outputs, True))
    for formals, values, outputs in sides:
        for i, value in enumerate(values):
            if value is None or not formals or value.type_proto is not None:
                continue
            if outputs and not value.num_uses and not value.is_graph_output:
                continue
            formal = formals[min(i, len(formals) - 1)]
            bound.append((formal.type_str, formal.name, value.dtype))
    known = {param: dtype for param, _, dtype in bound if dtype is not None}
    for param, formal_name, dtype in bound:
        types = allowed.get(param)
        if types is None:
            continue
        dtype = dtype if dtype is not None else known.get(param)
        if dtype is None:
            if not before.get(param, set()) <= types:
                raise OpsetConversionError(
                    f"{node.op_type} node {node.name!r}: the dtype of {formal_name} is unknown and "
                    f"opset {opset} allows fewer types")
            continue
        name = f"tensor({onnx.helper.tensor_dtype_to_string(dtype).split('.')[-1].lower()})"  # type: ignore[arg-type]
        if name not in types:
            raise OpsetConversionError(f"{node.op_type} node {node.name!r}: {name} is not allowed for "
                                       f"{formal_name} at opset {opset}")


def _ir_for(opset: int) -> int:
    """The lowest IR version that may carry ``opset``."""
    ir = 3
    for _release, ir_version, ai_onnx, *_ in onnx.helper.VERSION_TABLE:
        if ai_onnx <= opset:
            ir = ir_version
        if ai_onnx >= opset:
            return ir_version
    return ir
