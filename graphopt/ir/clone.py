"""Deep copies of the IR structure that share the immutable tensors (cheap rollback snapshots)."""

from __future__ import annotations

from graphopt.ir.attributes import Attr
from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.node import Node
from graphopt.ir.value import Value


def clone_model(model: Model) -> Model:
    """A structurally independent copy of ``model``; tensors and opaque protos are shared."""
    mapping: dict[Value, Value] = {}
    graph = _clone_graph(model.graph, mapping, None)
    return Model(graph=graph, opset_imports=dict(model.opset_imports), ir_version=model.ir_version,
                 producer_name=model.producer_name, producer_version=model.producer_version,
                 domain=model.domain, model_version=model.model_version,
                 doc_string=model.doc_string, metadata_props=dict(model.metadata_props),
                 functions=list(model.functions), training_info=list(model.training_info),
                 base_dir=model.base_dir, source_ops=dict(model.source_ops),
                 shape_inference=model.shape_inference)


def _copy_value(old: Value, new: Value) -> Value:
    new.name, new.dtype, new.shape, new.declared = old.name, old.dtype, old.shape, old.declared
    new.type_proto, new.doc_string = old.type_proto, old.doc_string
    return new


def _clone_graph(old: Graph, mapping: dict[Value, Value], parent: Node | None) -> Graph:
    new = Graph(old.name)
    new.doc_string, new.parent = old.doc_string, parent
    new.metadata_props = dict(old.metadata_props)
    new.extra_value_infos = list(old.extra_value_infos)
    for value in old.inputs:
        mapping[value] = new.add_input(_copy_value(value, Value()))
    for value, tensor in old.input_defaults.items():
        new.input_defaults[mapping[value]] = tensor
    for value in old.consts:
        mapping[value] = _copy_value(value, new.add_const(value.const))  # type: ignore[arg-type]
    for value, proto in old.sparse_consts.items():
        copy = _copy_value(value, Value())
        copy._graph = new
        new.sparse_consts[copy] = proto
        mapping[value] = copy
    for node in old:
        new.append(_clone_node(node, mapping))
    new.outputs = [mapping[v] for v in old.outputs]
    return new


def _clone_node(old: Node, mapping: dict[Value, Value]) -> Node:
    outputs = [_copy_value(v, Value()) for v in old.outputs]
    node = Node(old.op_type, [mapping[v] if v is not None else None for v in old.inputs],
                domain=old.domain, outputs=outputs, name=old.name, overload=old.overload)
    node.doc_string = old.doc_string
    node.metadata_props = dict(old.metadata_props)
    for value, copy in zip(old.outputs, outputs):
        mapping[value] = copy
    for key, attr in old.attrs.items():
        node.attrs[key] = Attr(attr.name, attr.type, _clone_attr_value(attr.value, mapping, node),
                               attr.ref_attr_name, attr.doc_string)
    return node


def _clone_attr_value(value: object, mapping: dict[Value, Value], node: Node) -> object:
    if isinstance(value, Graph):
        return _clone_graph(value, mapping, node)
    if isinstance(value, list):
        return [_clone_attr_value(v, mapping, node) for v in value]
    return value
