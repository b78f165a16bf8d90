"""convert-opset: move the default ONNX domain to another opset, up or down, subgraphs included."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import onnx
from onnx import defs

from graphopt import Model, Node, PassResult, is_standard_domain, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.errors import OpsetConversionError, UsageError

from . import (
    _changed_meaning,  # noqa: F401  (registers the RoiAlign/DFT/Scan adapters)
    _resize,  # also registers the Resize/Upsample adapters
)
from ._adapters import DOWN, UP
from ._checks import check_attrs, check_types
from ._decompose import DECOMPOSITIONS, SOFTMAX_FAMILY, softmax_down, softmax_up

OLDEST = 7
# deprecated op -> (the op that replaced it with the same semantics, from opset)
RENAMED = {"Scatter": ("ScatterElements", 11), "Upsample": ("Resize", 10)}
# what a renamed op knows that its new name does not; the hook adapts the node, returning its version
RENAME_HOOKS = {"Upsample": _resize.upsample_as_resize}
RENAME_DOWN_HOOKS = {"Resize": _resize.resize_as_upsample}  # checks before a new op takes its old name
OLD_NAMES = {new: (old, introduced) for old, (new, introduced) in RENAMED.items()}


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
                if is_standard_domain(node.domain) and node.graph is graph:
                    self._convert(node, source, target, stats)
        model.opset_imports[""] = target
        model.opset_imports.pop("ai.onnx", None)
        model.ir_version = max(model.ir_version, _ir_for(target))
        stats[f"opset_{source}_to_{target}"] = 1
        return PassResult(True, dict(sorted(stats.items())))

    def _convert(self, node: Node, source: int, target: int, stats: Counter) -> None:
        op = node.op_type
        if since(op, source) is None:
            raise OpsetConversionError(f"{op} node {node.name!r} is not an op of opset {source}")
        if op in RENAMED and target >= RENAMED[op][1]:
            new_name, introduced = RENAMED[op]  # same semantics under a new name from ``introduced``
            if source < introduced - 1:
                self._walk(node, source, introduced - 1, stats)
            node.op_type = new_name
            stats[f"renamed_{op}"] += 1
            hook = RENAME_HOOKS.get(op)
            op, source = new_name, (hook(node, target) if hook is not None else introduced - 1)
        elif since(op, target) is None and op in OLD_NAMES and target < OLD_NAMES[op][1]:
            old_name, introduced = OLD_NAMES[op]
            self._walk(node, source, introduced, stats)
            if op in RENAME_DOWN_HOOKS:
                RENAME_DOWN_HOOKS[op](node, target)
            node.op_type = old_name
            stats[f"renamed_{op}"] += 1
            op, source = old_name, introduced - 1
        if since(op, target) is None or _deprecated(op, target):
            self._decompose(node, source, target, stats)
            return
        self._walk(node, source, target, stats)
        if node.graph is not None:
            try:
                check_types(node, target, source)
            except OpsetConversionError:
                if op not in DECOMPOSITIONS:
                    raise
                self._decompose(node, source, target, stats)  # e.g. Celu on float16: Elu takes it
                return
            check_attrs(node, target, source)

    def _decompose(self, node: Node, source: int, target: int, stats: Counter) -> None:
        """Replace ``node`` by primitive ops, each of which must exist at ``target`` (or decompose too)."""
        op, graph = node.op_type, node.graph
        assert graph is not None
        decompose = DECOMPOSITIONS.get(op)
        if decompose is None:
            raise OpsetConversionError(f"{op} node {node.name!r} does not exist in opset {target} "
                                       "and graphopt has no decomposition for it")
        new_nodes = decompose(node, graph, target, source)
        stats[f"decomposed_{op}"] += 1
        for part in new_nodes:
            if since(part.op_type, target) is None or _deprecated(part.op_type, target):
                if part.op_type not in DECOMPOSITIONS:
                    raise OpsetConversionError(f"{op} node {node.name!r}: its decomposition needs "
                                               f"{part.op_type}, which opset {target} does not have")
                self._decompose(part, target, target, stats)
            else:
                check_types(part, target, target)

    def _walk(self, node: Node, source: int, target: int, stats: Counter) -> None:
        """Cross every version boundary of ``node``'s op between ``source`` and ``target``."""
        if target > source:
            for version in boundaries(node.op_type, source, target):
                self._step(node, version, UP, softmax_up, stats)
        else:
            for version in boundaries(node.op_type, target, source)[::-1]:
                self._step(node, version, DOWN, softmax_down, stats)

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


def _ir_for(opset: int) -> int:
    """The lowest IR version that may carry ``opset``."""
    ir = 3
    for _release, ir_version, ai_onnx, *_ in onnx.helper.VERSION_TABLE:
        if ai_onnx <= opset:
            ir = ir_version
        if ai_onnx >= opset:
            return ir_version
    return ir
