"""ONNX ModelProto -> IR. Constant nodes become constants; names are resolved through nested scopes."""

from __future__ import annotations

import heapq
import mmap
import os
from collections import Counter
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import AttributeProto as A

from graphopt.errors import ModelLoadError, ModelNotFoundError
from graphopt.ir.attributes import Attr
from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.node import Node
from graphopt.ir.ops import is_standard_domain
from graphopt.ir.tensor import Tensor
from graphopt.ir.value import Value
from graphopt.onnx_io.foreign import foreign_format
from graphopt.onnx_io.types import read_type
from graphopt.onnx_io.wire import RawTensor, WireError, split_model

_CONSTANT_ATTR_TYPES = {"value": A.TENSOR, "value_float": A.FLOAT, "value_floats": A.FLOATS,
                        "value_int": A.INT, "value_ints": A.INTS, "value_string": A.STRING,
                        "value_strings": A.STRINGS}
_CONSTANT_VALUE_ATTRS = ("value", "value_float", "value_floats", "value_int", "value_ints",
                         "value_string", "value_strings")


def load_proto(path: str) -> onnx.ModelProto:
    """Read a model file without its external data; every failure becomes a ModelLoadError."""
    load_proto_checks(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror})") from None
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a valid ONNX protobuf file ({exc})") from None
    if not proto.HasField("graph") or not proto.opset_import:
        raise ModelLoadError(f"{path}: not an ONNX model (no graph or no opset_import)")
    return proto


def load_model(path: str) -> Model:
    """Load an .onnx file into the IR without decoding weights.

    The file is memory-mapped and the main graph's initializers stay encoded in it (see wire.py);
    external data is located and checked, not read.
    """
    base_dir = os.path.dirname(os.path.abspath(path))
    buf = _map(path)
    try:
        proto, raws = split_model(buf)
    except (WireError, DecodeError, RuntimeError, ValueError):
        proto = load_proto(path)  # let the full parser produce the error message, or succeed
        return import_model(proto, base_dir=base_dir, source=path)
    if not proto.HasField("graph") or not proto.opset_import:
        raise ModelLoadError(f"{path}: not an ONNX model (no graph or no opset_import)")
    return import_model(proto, base_dir=base_dir, source=path, raw_initializers=raws)


def _map(path: str) -> memoryview:
    """The file's bytes, memory-mapped read-only (kept alive by the tensors that view it)."""
    load_proto_checks(path)
    with open(path, "rb") as f:
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


def load_proto_checks(path: str) -> None:
    """Refuse a missing file, a directory or an empty file with a one-line reason."""
    if not os.path.exists(path):
        raise ModelNotFoundError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ModelLoadError(f"{path}: is a directory, expected an .onnx file")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc.strerror})") from None
    if size == 0:
        raise ModelLoadError(f"{path}: file is empty")
    foreign = foreign_format(path)
    if foreign is not None:
        raise ModelLoadError(f"{path}: {foreign}")


def import_model(proto: onnx.ModelProto, base_dir: str | None = None, source: str = "<model>",
                 raw_initializers: list[RawTensor] | None = None) -> Model:
    """Build the IR for ``proto`` (which is not modified and may be dropped afterwards).

    ``raw_initializers`` are main-graph initializers still encoded (from ``wire.split_model``).
    """
    _check_text(proto)
    _refuse_verbatim_external_data(proto)
    for field in ("producer_name", "producer_version", "domain", "doc_string"):
        if not isinstance(getattr(proto, field), str):  # the wire reader keeps undecodable text as bytes
            raise ModelLoadError(f"model: field {field!r} holds bytes that are not UTF-8")
    importer = _Importer(base_dir, source)
    graph = importer.graph(proto.graph, [], ir_version=proto.ir_version, raws=raw_initializers or [])
    return Model(
        graph=graph,
        opset_imports={o.domain: o.version for o in proto.opset_import},
        ir_version=proto.ir_version,
        producer_name=proto.producer_name,
        producer_version=proto.producer_version,
        domain=proto.domain,
        model_version=proto.model_version,
        doc_string=proto.doc_string,
        metadata_props={p.key: p.value for p in proto.metadata_props},
        functions=list(proto.functions),
        training_info=list(proto.training_info),
        base_dir=base_dir,
        source_ops=dict(_op_counts(proto.graph)),
    )


def _refuse_verbatim_external_data(proto: onnx.ModelProto) -> None:
    """Tensors graphopt keeps verbatim (sparse initializers, tensors inside model-local functions)
    would keep their external-data locations unchecked, pointing the output at the input's folder or
    anywhere: such external data is refused. Initializers and Constant values of every graph are
    resolved and checked like main-graph weights."""
    def sparse_of(graph: onnx.GraphProto) -> Any:
        for sparse in graph.sparse_initializer:
            yield "sparse initializer", sparse.values
            yield "sparse initializer", sparse.indices
        for node in graph.node:
            for attr in node.attribute:
                for body in ([attr.g] if attr.type == A.GRAPH else list(attr.graphs)):
                    yield from sparse_of(body)

    sources = list(sparse_of(proto.graph))
    for function in proto.functions:
        for node in function.node:
            for attr in node.attribute:
                tensors = [attr.t] if attr.type == A.TENSOR else list(attr.tensors)
                sources += [(f"a tensor in function {function.name!r}", t) for t in tensors]
    for where, tensor in sources:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelLoadError(f"{where} {tensor.name!r} keeps its data in an external file; graphopt "
                                 "keeps such tensors verbatim and cannot check or move that data")


def _check_text(message: Any, where: str = "model") -> None:
    """Every string field must be valid UTF-8: protobuf reads invalid bytes into strings it then
    cannot write back, so such a name would fail at the very end, after all the work."""
    from google.protobuf.descriptor import FieldDescriptor

    for field, value in message.ListFields():
        if field.type == FieldDescriptor.TYPE_STRING:
            for text in ([value] if isinstance(value, (str, bytes)) else value):
                raw = text if isinstance(text, bytes) else None  # protobuf hands back undecodable text
                if isinstance(text, str):
                    try:
                        text.encode("utf-8")
                    except UnicodeEncodeError:
                        raw = text.encode("utf-8", "surrogateescape")
                if raw is not None:
                    raise ModelLoadError(f"{where}: field {field.name!r} holds bytes that are not UTF-8 "
                                         f"({raw[:40]!r})")
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in ([value] if hasattr(value, "ListFields") else value):
                if not hasattr(item, "ListFields"):
                    continue
                _check_text(item, f"{where}.{field.name}")


def _op_counts(graph: onnx.GraphProto, counts: Counter | None = None) -> Counter:
    """Node count per qualified op type in a GraphProto and its subgraphs (Constant nodes included)."""
    counts = Counter() if counts is None else counts
    for node in graph.node:
        domain = node.domain
        counts[node.op_type if is_standard_domain(domain) else f"{domain}::{node.op_type}"] += 1
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == A.GRAPH else attr.graphs:
                _op_counts(sub, counts)
    return counts


class _Importer:
    """Walks a GraphProto, resolving each input name to a Value in the current or an outer scope."""

    def __init__(self, base_dir: str | None, source: str) -> None:
        self.base_dir = base_dir
        self.source = source

    def graph(self, gp: onnx.GraphProto, outer: list[dict[str, Value]], *, ir_version: int = 10,
              parent: Node | None = None, raws: list[RawTensor] | None = None) -> Graph:
        graph = Graph(gp.name)
        graph.doc_string = gp.doc_string
        graph.parent = parent
        graph.metadata_props = {p.key: p.value for p in getattr(gp, "metadata_props", [])}
        scope: dict[str, Value] = {}
        scopes = outer + [scope]
        infos = {vi.name: vi for vi in gp.value_info}
        input_names = {vi.name for vi in gp.input}
        for vi in gp.input:
            value = graph.add_input(Value(vi.name))
            read_type(value, vi.type)
            value.doc_string = vi.doc_string
            self._define(scope, vi.name, value, "graph input")
        initializers = [(tp.name, Tensor.from_proto(tp, self.base_dir)) for tp in gp.initializer]
        initializers += [(r.header.name, Tensor.from_encoded(r.header, r.data, self.base_dir))
                         for r in raws or []]
        for name, tensor in initializers:
            if name in input_names:
                graph.input_defaults[scope[name]] = tensor
            else:
                self._define(scope, name, graph.add_const(tensor, name), "initializer")
        for sp in gp.sparse_initializer:
            value = Value(sp.values.name, dtype=sp.values.data_type, shape=tuple(sp.dims))
            value._graph = graph
            graph.sparse_consts[value] = sp
            self._define(scope, sp.values.name, value, "sparse initializer")
        for np_ in _in_topological_order(gp, scope):
            self.node(np_, graph, scopes, scope)
        for vi in list(gp.output):
            graph.outputs.append(self._output(graph, vi, scopes, scope))
        for name, vi in infos.items():
            value = scope.get(name)
            if value is None:
                graph.extra_value_infos.append(vi)
            elif value.producer is not None and value.declared is None:
                read_type(value, vi.type, declared=True)
        return graph

    def node(self, np_: onnx.NodeProto, graph: Graph, scopes: list[dict[str, Value]],
             scope: dict[str, Value]) -> None:
        inputs = [self._lookup(name, scopes, np_) if name else None for name in np_.input]
        if np_.op_type == "Constant" and is_standard_domain(np_.domain) and len(np_.output) == 1:
            tensor = _constant_tensor(np_)
            if tensor is not None:
                self._define(scope, np_.output[0], graph.add_const(tensor, np_.output[0]), "Constant")
                return
        node = Node(np_.op_type, inputs, domain=np_.domain, name=np_.name,
                    outputs=[Value(name) for name in np_.output], overload=np_.overload)
        node.doc_string = np_.doc_string
        node.metadata_props = {p.key: p.value for p in getattr(np_, "metadata_props", [])}
        graph.append(node)
        for ap in np_.attribute:
            node.attrs[ap.name] = self.attribute(ap, scopes, node)
        for out in node.outputs:
            if out.name:
                self._define(scope, out.name, out, f"output of {np_.op_type} node {np_.name!r}")

    def attribute(self, ap: onnx.AttributeProto, scopes: list[dict[str, Value]], node: Node) -> Attr:
        kind = ap.type
        value: Any
        if kind == A.FLOAT:
            value = ap.f
        elif kind == A.INT:
            value = ap.i
        elif kind == A.STRING:
            value = ap.s.decode("utf-8", "surrogateescape")
        elif kind == A.TENSOR:
            value = Tensor.from_proto(ap.t, self.base_dir)
        elif kind == A.GRAPH:
            value = self.graph(ap.g, scopes, parent=node)
        elif kind == A.FLOATS:
            value = list(ap.floats)
        elif kind == A.INTS:
            value = list(ap.ints)
        elif kind == A.STRINGS:
            value = [s.decode("utf-8", "surrogateescape") for s in ap.strings]
        elif kind == A.TENSORS:
            value = [Tensor.from_proto(t, self.base_dir) for t in ap.tensors]
        elif kind == A.GRAPHS:
            value = [self.graph(g, scopes, parent=node) for g in ap.graphs]
        elif kind == A.SPARSE_TENSOR:
            value = ap.sparse_tensor
        elif kind == A.SPARSE_TENSORS:
            value = list(ap.sparse_tensors)
        elif kind == A.TYPE_PROTO:
            value = ap.tp
        elif kind == A.TYPE_PROTOS:
            value = list(ap.type_protos)
        else:
            value = None
        return Attr(ap.name, kind, value, ap.ref_attr_name, ap.doc_string)

    def _output(self, graph: Graph, vi: onnx.ValueInfoProto, scopes: list[dict[str, Value]],
                scope: dict[str, Value]) -> Value:
        value = scope.get(vi.name)
        if value is None:  # a subgraph returning an outer value: give it a local Identity
            outer = self._lookup(vi.name, scopes, None)
            ident = Node("Identity", [outer], outputs=[Value(None)])
            graph.append(ident)
            value = ident.outputs[0]
        if value.producer is not None:
            read_type(value, vi.type, declared=True)
        if value.producer is None and value.const is None and value.name != vi.name:
            value.name = vi.name
        value.doc_string = value.doc_string or vi.doc_string
        return value

    def _define(self, scope: dict[str, Value], name: str, value: Value, what: str) -> None:
        if name in scope:
            raise ModelLoadError(f"{self.source}: name {name!r} is defined twice ({what}); "
                                 "the graph is not in SSA form")
        scope[name] = value

    def _lookup(self, name: str, scopes: list[dict[str, Value]], np_: onnx.NodeProto | None) -> Value:
        for scope in reversed(scopes):
            value = scope.get(name)
            if value is not None:
                return value
        where = f"{np_.op_type} node {np_.name!r}" if np_ is not None else "a graph output"
        raise ModelLoadError(f"{self.source}: {where} reads {name!r}, which is not defined before it "
                             "(dangling input or nodes not in topological order)")


def _in_topological_order(gp: onnx.GraphProto, defined: dict[str, Value]) -> list[onnx.NodeProto]:
    """The graph's nodes, stably sorted when the file lists a node before what it reads."""
    nodes = list(gp.node)
    producer = {name: i for i, n in enumerate(nodes) for name in n.output if name}
    reads = [[producer[name] for name in _names_read(n) if name in producer and name not in defined]
             for n in nodes]
    if all(j < i or j == i for i, deps in enumerate(reads) for j in deps):
        return nodes


    pending = [len(set(d) - {i}) for i, d in enumerate(reads)]
    users: dict[int, list[int]] = {}
    for i, deps in enumerate(reads):
        for j in set(deps) - {i}:
            users.setdefault(j, []).append(i)
    ready = [i for i, p in enumerate(pending) if p == 0]
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for user in users.get(i, []):
            pending[user] -= 1
            if pending[user] == 0:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        stuck = nodes[pending.index(max(pending))]
        raise ModelLoadError(f"graph {gp.name!r} has a cycle through node {stuck.name!r} ({stuck.op_type})")
    return [nodes[i] for i in order]


def _names_read(node: onnx.NodeProto) -> list[str]:
    """Names a node reads, including those read from inside its subgraphs."""
    names = [n for n in node.input if n]
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == A.GRAPH else list(attr.graphs) if attr.type == A.GRAPHS else []
        for g in graphs:
            for inner in g.node:
                names.extend(_names_read(inner))
            names.extend(o.name for o in g.output)
    return names


def _constant_tensor(np_: onnx.NodeProto) -> Tensor | None:
    """The tensor a Constant node produces, or None for kinds kept as nodes (sparse_value)."""
    attrs = {a.name: a for a in np_.attribute}
    if len(attrs) != 1:
        return None
    (name, ap), = attrs.items()
    if name not in _CONSTANT_VALUE_ATTRS or ap.ref_attr_name:
        return None
    expected = _CONSTANT_ATTR_TYPES[name]
    if ap.type != expected:
        raise ModelLoadError(f"Constant node {np_.name!r}: attribute {name} has type "
                             f"{A.AttributeType.Name(ap.type)}, not {A.AttributeType.Name(expected)}")
    if name == "value":
        return Tensor.from_proto(ap.t, None) if ap.t.data_location != onnx.TensorProto.EXTERNAL else None
    return Tensor.from_proto(onnx.numpy_helper.from_array(_attr_array(name, ap)), None)


def _attr_array(name: str, ap: onnx.AttributeProto) -> np.ndarray:
    """The array a Constant node's value_* attribute denotes."""
    if name == "value_float":
        return np.array(ap.f, dtype=np.float32)
    if name == "value_floats":
        return np.array(list(ap.floats), dtype=np.float32)
    if name == "value_int":
        return np.array(ap.i, dtype=np.int64)
    if name == "value_ints":
        return np.array(list(ap.ints), dtype=np.int64)
    if name == "value_string":
        return np.array(ap.s.decode("utf-8", "surrogateescape"), dtype=object)
    return np.array([s.decode("utf-8", "surrogateescape") for s in ap.strings], dtype=object)
