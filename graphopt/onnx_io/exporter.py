"""IR -> ONNX ModelProto. One name generator serves every value of every (sub)graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx
from onnx import AttributeProto as A

from graphopt.ir.attributes import Attr
from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.names import NameGenerator
from graphopt.ir.node import Node
from graphopt.ir.tensor import Tensor
from graphopt.ir.value import Value
from graphopt.onnx_io.types import make_value_info


@dataclass
class ExternalDataPlan:
    """Where large tensors go: ``location`` relative to the model file, for tensors >= threshold."""

    location: str
    threshold: int = 1024
    entries: list[tuple[Tensor, int]] = field(default_factory=list)  # filled by export: (tensor, offset)
    size: int = 0

    def place(self, tensor: Tensor) -> tuple[int, int]:
        """Reserve 4 KiB-aligned room for ``tensor``; returns (offset, length)."""
        offset = (self.size + 4095) // 4096 * 4096
        self.entries.append((tensor, offset))
        self.size = offset + tensor.nbytes
        return offset, tensor.nbytes


def export_model(model: Model, *, external: ExternalDataPlan | None = None) -> onnx.ModelProto:
    """Lower ``model`` to a ModelProto; the IR is not modified."""
    return export_with_names(model, external=external)[0]


def export_with_names(model: Model, *, external: ExternalDataPlan | None = None,
                      skeleton: bool = False) -> tuple[onnx.ModelProto, dict[Value, str]]:
    """Export and also return the name given to each value.

    With ``skeleton`` (for analyses such as shape inference) constants that are not small integer
    tensors become typed graph inputs without data, value_info of intermediates is left out, and the
    main graph's outputs carry no declared type: only what can be inferred from inputs is inferred.
    """
    proto, names, _ = _export(model, external, skeleton, defer=False)
    return proto, names


def export_parts(model: Model, *, external: ExternalDataPlan | None = None
                 ) -> tuple[onnx.ModelProto, list[bytes | memoryview]]:
    """Export with the main graph's initializers left out of the proto, as serialized parts.

    Unchanged weights come back as views of the input file's bytes: nothing is decoded or copied
    until ``wire.write_model`` writes them.
    """
    proto, _, parts = _export(model, external, False, defer=True)
    return proto, parts


def export_parts_with_names(model: Model) -> tuple[onnx.ModelProto, list[bytes | memoryview],
                                                   dict[Value, str]]:
    """``export_parts`` that also returns the name given to each value (to fetch intermediates)."""
    proto, names, parts = _export(model, None, False, defer=True)
    return proto, parts, names


def _export(model: Model, external: ExternalDataPlan | None, skeleton: bool, defer: bool
            ) -> tuple[onnx.ModelProto, dict[Value, str], list[bytes | memoryview]]:
    exporter = _Exporter(model, external, skeleton)
    exporter.deferred = [] if defer else None
    proto = _make(onnx.ModelProto, ir_version=model.ir_version, producer_name=model.producer_name,
                  producer_version=model.producer_version, domain=model.domain,
                  model_version=model.model_version, doc_string=model.doc_string)
    for domain, version in model.opset_imports.items():
        proto.opset_import.add(domain=domain, version=version)
    for key, value in model.metadata_props.items():
        proto.metadata_props.add(key=key, value=value)
    proto.graph.CopyFrom(exporter.graph(model.graph, main=True))
    proto.functions.extend(model.functions)
    proto.training_info.extend(model.training_info)
    return proto, exporter.names, exporter.deferred or []


def _make(cls: type, **fields: object) -> object:
    """Build a proto setting only non-empty fields, so absent fields stay absent (proto2 presence)."""
    return cls(**{k: v for k, v in fields.items() if v not in ("", 0, None, ())})


def export_node(node: Node, input_names: list[str], output_names: list[str]) -> onnx.NodeProto:
    """One node as a NodeProto with the given value names (for evaluating it in isolation).

    Subgraph attributes are not supported here: nodes holding subgraphs read outer names.
    """
    exporter = _Exporter.__new__(_Exporter)
    proto = _make(onnx.NodeProto, op_type=node.op_type, domain=node.domain, name=node.name)
    proto.input.extend(input_names)
    proto.output.extend(output_names)
    proto.attribute.extend(exporter.attribute(a) for a in node.attrs.values()
                           if a.type not in (A.GRAPH, A.GRAPHS))
    return proto


def _small_int(value: Value) -> bool:
    """Constants that shape inference may need the data of (shapes, axes, indices)."""
    tensor = value.const
    return tensor is not None and tensor.dtype in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) \
        and tensor.size <= 1024


class _Exporter:
    def __init__(self, model: Model, external: ExternalDataPlan | None, skeleton: bool = False) -> None:
        self.external = external
        self.skeleton = skeleton
        self.deferred: list[bytes | memoryview] | None = None
        self.inline_consts = model.ir_version < 4  # initializers must then also be graph inputs
        self.names: dict[Value, str] = {}
        self.gen = NameGenerator()
        self._name_interface(model.graph)
        for graph in model.graph.all_graphs():
            self._name_graph(graph)

    # ----- naming -----------------------------------------------------------------------------
    def _name_interface(self, graph: Graph) -> None:
        for value in [*graph.inputs, *graph.outputs]:
            if value not in self.names:
                self.names[value] = self.gen.claim(value.name, "input")

    def _name_graph(self, graph: Graph) -> None:
        for value in [*graph.inputs, *graph.outputs, *graph.consts, *graph.sparse_consts]:
            self._name(value, "const" if value.const is not None else "value")
        for node in graph:
            for out in node.outputs:
                if out.name == "" and not out.num_uses and not out.is_graph_output:
                    self.names[out] = ""  # an omitted optional output stays omitted
                else:
                    self._name(out, node.op_type.lower())

    def _name(self, value: Value, stem: str) -> None:
        if value not in self.names:
            self.names[value] = self.gen.claim(value.name, stem)

    # ----- graphs -----------------------------------------------------------------------------
    def graph(self, graph: Graph, main: bool = False) -> onnx.GraphProto:
        gp = _make(onnx.GraphProto, name=graph.name, doc_string=graph.doc_string)
        for key, value in graph.metadata_props.items():
            gp.metadata_props.add(key=key, value=value)
        gp.input.extend(self._info(v) for v in graph.inputs)
        constant_nodes: list[onnx.NodeProto] = []
        for value in graph.consts:
            assert value.const is not None
            name = self.names[value]
            if self.skeleton and main and not _small_int(value):
                gp.input.append(self._info(value))
            elif main and not self.inline_consts and not value.is_graph_output:
                self._add_initializer(gp, value.const, name)
            elif not self.inline_consts and not value.is_graph_output:  # subgraph initializer
                gp.initializer.append(self._initializer(value.const, name))
            else:
                constant_nodes.append(onnx.helper.make_node(
                    "Constant", [], [name], value=value.const.to_proto(name)))
        for value, tensor in graph.input_defaults.items():
            self._add_initializer(gp, tensor, self.names[value])
        gp.sparse_initializer.extend(graph.sparse_consts.values())
        gp.node.extend(constant_nodes)
        gp.node.extend(self.node(n) for n in graph)
        if self.skeleton:
            gp.output.extend(onnx.ValueInfoProto(name=self.names[v]) if main else self._info(v)
                             for v in graph.outputs)
            return gp
        gp.output.extend(self._info(v) for v in graph.outputs)
        interface = {*graph.inputs, *graph.outputs}
        for node in graph:
            for out in node.outputs:
                if out not in interface and self.names[out]:
                    info = make_value_info(self.names[out], out)
                    if info is not None:
                        gp.value_info.append(info)
        gp.value_info.extend(graph.extra_value_infos)
        return gp

    def _info(self, value: Value) -> onnx.ValueInfoProto:
        name = self.names[value]
        return make_value_info(name, value, interface=True) or onnx.ValueInfoProto(name=name)

    def _add_initializer(self, gp: onnx.GraphProto, tensor: Tensor, name: str) -> None:
        if self.deferred is None:
            gp.initializer.append(self._initializer(tensor, name))
            return
        encoded = tensor.encoded_as(name) if self.external is None else None
        self.deferred.append(encoded if encoded is not None
                             else self._initializer(tensor, name).SerializeToString())

    def _initializer(self, tensor: Tensor, name: str) -> onnx.TensorProto:
        plan = self.external
        if plan is None or tensor.nbytes < plan.threshold or tensor.dtype == onnx.TensorProto.STRING:
            return tensor.to_proto(name)
        offset, length = plan.place(tensor)
        proto = _make(onnx.TensorProto, name=name, data_type=tensor.dtype, dims=tensor.shape,
                      doc_string=tensor.doc_string, data_location=onnx.TensorProto.EXTERNAL)
        for key, val in (("location", plan.location), ("offset", str(offset)),
                         ("length", str(length))):
            proto.external_data.add(key=key, value=val)
        return proto

    # ----- nodes ------------------------------------------------------------------------------
    def node(self, node: Node) -> onnx.NodeProto:
        np_ = _make(onnx.NodeProto, op_type=node.op_type, domain=node.domain, name=node.name,
                    doc_string=node.doc_string, overload=node.overload)
        np_.input.extend(self.names[v] if v is not None else "" for v in node.inputs)
        np_.output.extend(self.names[v] for v in node.outputs)
        np_.attribute.extend(self.attribute(a) for a in node.attrs.values())
        for key, value in node.metadata_props.items():
            np_.metadata_props.add(key=key, value=value)
        return np_

    def attribute(self, attr: Attr) -> onnx.AttributeProto:
        ap = _make(onnx.AttributeProto, name=attr.name, type=attr.type,
                   ref_attr_name=attr.ref_attr_name, doc_string=attr.doc_string)
        kind, value = attr.type, attr.value
        if kind == A.FLOAT:
            ap.f = value
        elif kind == A.INT:
            ap.i = value
        elif kind == A.STRING:
            ap.s = value.encode("utf-8", "surrogateescape")
        elif kind == A.TENSOR:
            ap.t.CopyFrom(value.to_proto())
        elif kind == A.GRAPH:
            ap.g.CopyFrom(self.graph(value))
        elif kind == A.FLOATS:
            ap.floats.extend(value)
        elif kind == A.INTS:
            ap.ints.extend(value)
        elif kind == A.STRINGS:
            ap.strings.extend(s.encode("utf-8", "surrogateescape") for s in value)
        elif kind == A.TENSORS:
            ap.tensors.extend(t.to_proto() for t in value)
        elif kind == A.GRAPHS:
            ap.graphs.extend(self.graph(g) for g in value)
        elif kind == A.SPARSE_TENSOR:
            ap.sparse_tensor.CopyFrom(value)
        elif kind == A.SPARSE_TENSORS:
            ap.sparse_tensors.extend(value)
        elif kind == A.TYPE_PROTO:
            ap.tp.CopyFrom(value)
        elif kind == A.TYPE_PROTOS:
            ap.type_protos.extend(value)
        return ap
