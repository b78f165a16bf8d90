"""What a model is, without running it: interface, opsets, op histogram (subgraphs too), parameters,
MACs/FLOPs per op type (see ``graphopt.analyses.costs`` for the convention), external data files,
custom domains and model-local functions. Plain data with ``as_dict()`` for ``graphopt inspect --json``.

The file is read twice, cheaply: into the IR (for shapes, ``--fix-dims`` and costs) and as a proto
skeleton without weight payloads (for the facts of the file as written: Constant nodes in the op
histogram, external-data locations). Neither reads external data or decodes weights.

Example:
    >>> info = inspect_model("fixtures/tiny_cnn.onnx", fix=["N=1"])
    >>> info.compute.macs
    206928
"""

from __future__ import annotations

import math
import mmap
import shlex
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto as A

from graphopt.analyses.costs import UNNAMED, dynamic_dims, is_counted, node_cost, suggest_fix_dims
from graphopt.analyses.shapes import apply_types, infer_types
from graphopt.errors import WireError
from graphopt.fix_dims import fix_dims, parse_fix_dims
from graphopt.ir.model import Model
from graphopt.ir.ops import is_standard_domain
from graphopt.ir.tensor import element_size
from graphopt.ir.value import Dim, Value
from graphopt.onnx_io.importer import load_model, load_proto
from graphopt.onnx_io.wire import split_model


@dataclass(frozen=True)
class TensorSig:
    """A graph input or output: name, element type and shape (ints, dim names, None for unknown)."""

    name: str
    dtype: str
    shape: list[Dim] | None


@dataclass
class OpStats:
    """One op type over all graphs: node count, summed MACs/FLOPs of the nodes with known shapes (None
    when the op is not counted or no node of it is known) and how many nodes were unknown."""

    op: str
    count: int
    macs: int | None = None
    flops: int | None = None
    unknown: int = 0


@dataclass(frozen=True)
class GraphOps:
    """The ops of one graph; ``path`` is ``main`` or e.g. ``If 'cond'/then_branch`` (nested with /)."""

    path: str
    nodes: int
    ops: dict[str, int]


@dataclass
class Compute:
    """Known MACs and FLOPs, how many counted nodes had unknown shapes, the dims responsible (names,
    and ``?`` for dims without one) and the ``--fix-dims`` specs suggested to make them static."""

    macs: int = 0
    flops: int = 0
    unknown_nodes: int = 0
    dynamic_dims: list[str] = field(default_factory=list)
    fix_dims: list[str] = field(default_factory=list)


@dataclass
class Inspection:
    """Everything ``graphopt inspect`` reports about one model file."""

    path: str
    ir_version: int
    producer_name: str
    producer_version: str
    opsets: dict[str, int]
    inputs: list[TensorSig]
    outputs: list[TensorSig]
    ops: list[OpStats]
    subgraphs: list[GraphOps]
    compute: Compute
    parameters: dict[str, dict[str, int]]  # dtype -> {"count": elements, "bytes": bytes}
    external_data: list[dict[str, Any]]  # {"file", "tensors", "bytes"} per location
    custom_domains: dict[str, dict[str, int]]  # domain -> op -> count
    functions: list[dict[str, Any]]  # {"name", "domain", "nodes", "calls"}
    given_fix_dims: list[str] = field(default_factory=list)

    @property
    def nodes(self) -> int:
        """Nodes in all graphs, as written in the file (Constant nodes included)."""
        return sum(op.count for op in self.ops)

    def suggestion(self) -> str | None:
        """The command line that would fix the dims blocking MACs, or None when none is known."""
        if not self.compute.fix_dims:
            return None
        return " ".join(["graphopt inspect", shlex.quote(self.path),
                         *(f"--fix-dims {shlex.quote(spec)}" for spec in self.compute.fix_dims)])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data with stable keys in a fixed order; exact integers, no formatting."""
        params = self.parameters
        return {
            "model": self.path, "ir_version": self.ir_version,
            "producer": {"name": self.producer_name, "version": self.producer_version},
            "opsets": self.opsets,
            "inputs": [vars(s) for s in self.inputs], "outputs": [vars(s) for s in self.outputs],
            "nodes": self.nodes,
            "ops": {s.op: {"count": s.count, "macs": s.macs, "flops": s.flops, "unknown": s.unknown}
                    for s in self.ops},
            "subgraphs": [vars(g) for g in self.subgraphs],
            "compute": {**vars(self.compute), "complete": not self.compute.unknown_nodes,
                        "suggestion": self.suggestion()},
            "parameters": {"count": sum(p["count"] for p in params.values()),
                           "bytes": sum(p["bytes"] for p in params.values()), "by_dtype": params},
            "external_data": self.external_data, "custom_domains": self.custom_domains,
            "functions": self.functions, "fix_dims": self.given_fix_dims,
        }


def inspect_model(path: str, fix: Sequence[str] = ()) -> Inspection:
    """Inspect the model file at ``path``; ``fix`` are ``--fix-dims`` texts (``batch=1``...) applied
    first. Raises the loader's ModelLoadError for unreadable files, UsageError for bad specs."""
    specs = parse_fix_dims(fix)
    model = load_model(path)
    fixed = fix_dims(model, specs) if specs else None
    if fixed is None or not fixed.inputs:  # fix_dims infers again only when it changed something
        apply_types(model, infer_types(model))
    proto, headers = _skeleton(path)
    graphs = _graph_ops(proto.graph)
    totals: Counter[str] = sum((Counter(graph.ops) for graph in graphs), Counter())
    ops, compute = _costs(model, totals)
    suggested = suggest_fix_dims(model, compute.dynamic_dims)
    compute.fix_dims = [*fix, *suggested] if suggested else []
    return Inspection(
        path=path, ir_version=model.ir_version, producer_name=model.producer_name,
        producer_version=model.producer_version, opsets=dict(sorted(model.opset_imports.items())),
        inputs=[_sig(v, v.dtype, v.shape) for v in model.graph.inputs if v not in model.graph.input_defaults],
        outputs=[_sig(v, *(v.declared or (v.dtype, v.shape))) for v in model.graph.outputs],
        ops=ops, subgraphs=graphs[1:], compute=compute, parameters=_parameters(model),
        external_data=_external_data(proto, headers), custom_domains=_custom_domains(totals),
        functions=_functions(proto, totals), given_fix_dims=list(fix))


def _skeleton(path: str) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """The file's proto without the main graph's initializers, and those initializers' headers
    (name, dims, dtype, external-data entries): weight payloads are neither copied nor decoded."""
    with open(path, "rb") as f:
        buf = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    try:
        proto, raws = split_model(buf)
    except (WireError, DecodeError, RuntimeError, ValueError):  # the loader fell back the same way
        return load_proto(path), []
    return proto, [raw.header for raw in raws]


def _qualified(node: onnx.NodeProto) -> str:
    return node.op_type if is_standard_domain(node.domain) else f"{node.domain}::{node.op_type}"

def _graph_ops(main: onnx.GraphProto) -> list[GraphOps]:
    """Op counts of the main graph, then of every subgraph depth first, each named by its path."""
    found: list[GraphOps] = []
    stack: list[tuple[str, onnx.GraphProto]] = [("main", main)]
    while stack:
        path, graph = stack.pop()
        counts = Counter(_qualified(n) for n in graph.node)
        found.append(GraphOps(path, len(graph.node), dict(sorted(counts.items(), key=_by_count))))
        nested = []
        for index, node in enumerate(graph.node):
            holder = f"{node.op_type} {node.name!r}" if node.name else f"{node.op_type} #{index}"
            prefix = "" if path == "main" else path + "/"
            for attr in node.attribute:
                bodies = [attr.g] if attr.type == A.GRAPH else list(attr.graphs)
                for i, body in enumerate(bodies):
                    suffix = f"[{i}]" if attr.type == A.GRAPHS else ""
                    nested.append((f"{prefix}{holder}/{attr.name}{suffix}", body))
        stack.extend(reversed(nested))
    return found


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return -item[1], item[0]

def _costs(model: Model, totals: Counter[str]) -> tuple[list[OpStats], Compute]:
    """Per-op and total costs over every node of the IR, and the dims that left some unknown."""
    stats = {op: OpStats(op, count) for op, count in totals.items()}
    compute, blocking = Compute(), set()
    for node in model.graph.all_nodes():
        entry = stats.setdefault(node.qualified_type, OpStats(node.qualified_type, 0))
        if not is_counted(node):
            continue
        cost = node_cost(node)
        if cost is None:
            entry.unknown += 1
            compute.unknown_nodes += 1
            blocking |= dynamic_dims(node)
            continue
        entry.macs, entry.flops = (entry.macs or 0) + cost.macs, (entry.flops or 0) + cost.flops
        compute.macs += cost.macs
        compute.flops += cost.flops
    compute.dynamic_dims = sorted(blocking - {UNNAMED}) + ([UNNAMED] if UNNAMED in blocking else [])
    return sorted(stats.values(), key=lambda s: (-s.count, s.op)), compute


def _sig(value: Value, dtype: int | None, shape: tuple[Dim, ...] | None) -> TensorSig:
    return TensorSig(value.name or "", dtype_name(dtype), list(shape) if shape is not None else None)


def dtype_name(dtype: int | None) -> str:
    """``float32``, ``int64``, ``bfloat16``...: numpy-like names for ONNX element types (``?`` if unknown)."""
    if not dtype:
        return "?"
    name = onnx.TensorProto.DataType.Name(dtype).lower()
    return {"float": "float32", "double": "float64"}.get(name, name)


def _parameters(model: Model) -> dict[str, dict[str, int]]:
    """Elements and bytes of every constant tensor (initializers and Constant nodes, all graphs), by dtype."""
    by_dtype: dict[str, dict[str, int]] = {}
    for graph in model.graph.all_graphs():
        tensors = [v.const for v in graph.consts if v.const is not None] + list(graph.input_defaults.values())
        for tensor in tensors:
            entry = by_dtype.setdefault(dtype_name(tensor.dtype), {"count": 0, "bytes": 0})
            entry["count"] += tensor.size
            entry["bytes"] += tensor.nbytes
    return dict(sorted(by_dtype.items(), key=lambda item: (-item[1]["bytes"], item[0])))


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Initializers and Constant-node tensors of a graph and its subgraphs (sparse ones included)."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == A.TENSOR:
                yield attr.t
            for body in [attr.g] if attr.type == A.GRAPH else list(attr.graphs):
                yield from _tensors(body)


def _external_data(proto: onnx.ModelProto, headers: list[onnx.TensorProto]) -> list[dict[str, Any]]:
    """Per external-data location: how many tensors and bytes the model reads from it (not opened)."""
    files: dict[str, dict[str, Any]] = {}
    for tensor in [*headers, *_tensors(proto.graph)]:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        expected = math.ceil(math.prod(tensor.dims) * element_size(tensor.data_type))
        length = int(info["length"]) if info.get("length", "").isdigit() else expected
        entry = files.setdefault(info.get("location", ""), {"tensors": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["bytes"] += length
    return [{"file": name, **entry} for name, entry in sorted(files.items())]


def _custom_domains(totals: Counter[str]) -> dict[str, dict[str, int]]:
    """Ops of every domain but the default ONNX one (``com.microsoft``, ``ai.onnx.ml``, functions'...)."""
    domains: dict[str, dict[str, int]] = {}
    for qualified, count in sorted(totals.items()):
        domain, sep, op = qualified.rpartition("::")
        if sep:
            domains.setdefault(domain, {})[op] = count
    return dict(sorted(domains.items()))


def _functions(proto: onnx.ModelProto, totals: Counter[str]) -> list[dict[str, Any]]:
    """Model-local functions: name, domain, body nodes, and how many nodes call them."""
    return [{"name": f.name, "domain": f.domain, "nodes": len(f.node),
             "calls": totals.get(f.name if is_standard_domain(f.domain) else f"{f.domain}::{f.name}", 0)}
            for f in proto.functions]
