"""Shrunk failures the property suite found, kept as plain regression tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

from graphopt import Node, bypass, export_model, import_model
from graphopt.testing.asserts import assert_equivalent, assert_ir_consistent


def test_bypassed_identity_output_keeps_its_declared_interface_shape() -> None:
    """Found by the IR-mutation machine (long profile): x -> Neg -> Neg -> Identity -> y, round-tripped
    through ONNX, then the Identity bypassed. The output's value_info lost its shape (onnx.checker:
    "Field 'shape' of 'type' is required but missing") because the hand-over kept the new value's
    declared type (dtype only) instead of the interface's."""
    graph = h.make_graph([h.make_node("Identity", ["x"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 3])])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 8
    model = import_model(proto)
    ident = model.graph.nodes[0]
    x = ident.inputs[0]
    first = Node("Neg", [x])
    second = Node("Neg", [first.outputs[0]])
    for node in (first, second):
        node.outputs[0].dtype = T.FLOAT
    model.graph.insert_before(ident, [first, second])
    ident.replace_input(0, second.outputs[0])
    model = import_model(export_model(model))
    bypass([n for n in model.graph if n.op_type == "Identity"][0])
    assert_ir_consistent(model)
    out = export_model(model).graph.output[0]
    assert out.name == "y" and [d.dim_value for d in out.type.tensor_type.shape.dim] == [2, 3]
    assert_equivalent(proto, model, feeds={"x": np.arange(6, dtype=np.float32).reshape(2, 3)})
    onnx.checker.check_model(export_model(model), full_check=True)
