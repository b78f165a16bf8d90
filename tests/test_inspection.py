"""inspect_model: the facts of a model file (op histogram by graph, parameters by dtype, costs) and what
it suggests when dynamic dims leave MACs unknown; exact numbers, worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from graphopt.errors import UsageError
from graphopt.inspection import inspect_model

# tiny_cnn with N=1: conv1 y[1,8,16,16] * 3*3*3 = 55296, conv2 y[1,8,16,16] * 8*3*3 = 147456,
# the head MatMul [1,8]x[8,10] = 80, and the dead MatMul [16,16]x[16,16] = 4096 (static even with N free)
TINY_CNN_MACS = 55296 + 147456 + 80 + 4096
# FLOPs: twice the MACs, plus one per output element of Add (10), BatchNormalization and Relu (2048 each)
# and GlobalAveragePool (8)
TINY_CNN_FLOPS = 2 * TINY_CNN_MACS + 10 + 2048 + 2048 + 8


def _save(tmp_path: Path, graph: onnx.GraphProto, **kwargs: object) -> str:
    path = str(tmp_path / "m.onnx")
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 18)], **kwargs), path)
    return path


def test_tiny_cnn_with_its_batch_fixed_has_every_mac_known(tiny_cnn: Path) -> None:
    compute = inspect_model(str(tiny_cnn), fix=["N=1"]).compute
    assert (compute.macs, compute.flops, compute.unknown_nodes) == (TINY_CNN_MACS, TINY_CNN_FLOPS, 0)
    assert compute.fix_dims == [] and compute.dynamic_dims == []


def test_tiny_cnn_with_a_dynamic_batch_counts_what_is_static_and_names_the_dim(tiny_cnn: Path) -> None:
    """Only the dead MatMul on two weights is static; the rest waits for N (and, behind the
    Shape->Reshape, a dim inference cannot name)."""
    info = inspect_model(str(tiny_cnn))
    assert (info.compute.macs, info.compute.unknown_nodes) == (4096, 7)
    assert info.compute.dynamic_dims == ["N", "?"]
    assert info.compute.fix_dims == ["N=1"]
    assert info.suggestion() == f"graphopt inspect {tiny_cnn} --fix-dims N=1"
    conv = next(op for op in info.ops if op.op == "Conv")
    assert (conv.count, conv.macs, conv.unknown) == (2, None, 2)


def test_tiny_cnn_parameters_by_dtype_and_interface(tiny_cnn: Path) -> None:
    """float32: conv1 8*3*3*3 + 8, batchnorm 4*8, conv2 8*8*3*3, fc 8*10 + 10, unused 16*16 = 1178;
    int64: zero, minus_one, axes0 = 3 elements."""
    info = inspect_model(str(tiny_cnn))
    assert info.parameters == {"float32": {"count": 1178, "bytes": 4712}, "int64": {"count": 3, "bytes": 24}}
    assert [(s.name, s.dtype, s.shape) for s in info.inputs] == [("x", "float32", ["N", 3, 16, 16])]
    assert [(s.name, s.dtype, s.shape) for s in info.outputs] == [("logits", "float32", ["N", 10])]
    assert (info.ir_version, info.opsets, info.producer_name) == (8, {"": 17}, "graphopt-fixtures")


def test_op_histogram_counts_constant_nodes_and_each_subgraph_by_its_path(tmp_path: Path) -> None:
    """A Loop body holding an If: each body is listed under its holder's path; totals cover every graph."""
    then = h.make_graph([h.make_node("Relu", ["v"], ["t1"]), h.make_node("Relu", ["t1"], ["t"])], "then", [],
                        [h.make_tensor_value_info("t", T.FLOAT, [2])])
    other = h.make_graph([h.make_node("Neg", ["v"], ["e"])], "else", [],
                         [h.make_tensor_value_info("e", T.FLOAT, [2])])
    body = h.make_graph(
        [h.make_node("Add", ["v_in", "one"], ["v"]), h.make_node("Identity", ["c_in"], ["c_out"]),
         h.make_node("If", ["c_in"], ["v_out"], name="inner", then_branch=then, else_branch=other)],
        "body", [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("c_in", T.BOOL, []),
                 h.make_tensor_value_info("v_in", T.FLOAT, [2])],
        [h.make_tensor_value_info("c_out", T.BOOL, []), h.make_tensor_value_info("v_out", T.FLOAT, [2])])
    nodes = [h.make_node("Constant", [], ["one"], value=numpy_helper.from_array(np.ones(2, np.float32))),
             h.make_node("Loop", ["n", "c", "x"], ["y"], name="loop", body=body)]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("n", T.INT64, []),
                                      h.make_tensor_value_info("c", T.BOOL, []),
                                      h.make_tensor_value_info("x", T.FLOAT, [2])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2])])
    info = inspect_model(_save(tmp_path, graph))
    assert [(g.path, g.nodes, g.ops) for g in info.subgraphs] == [
        ("Loop 'loop'/body", 3, {"Add": 1, "Identity": 1, "If": 1}),
        ("Loop 'loop'/body/If 'inner'/else_branch", 1, {"Neg": 1}),  # attribute order in the file
        ("Loop 'loop'/body/If 'inner'/then_branch", 2, {"Relu": 2})]
    assert {op.op: op.count for op in info.ops} == {"Relu": 2, "Add": 1, "Constant": 1, "Identity": 1,
                                                     "If": 1, "Loop": 1, "Neg": 1}
    assert info.nodes == 8
    relu = next(op for op in info.ops if op.op == "Relu")
    assert (relu.macs, relu.flops) == (0, 4)  # inside the body, typed by inference: 2 elements each


def test_suggestion_guesses_sizes_by_name_and_keeps_the_given_specs(tmp_path: Path) -> None:
    """x[batch, sequence, 16] @ W[16, 32]: batch fixed by the user, sequence still blocks the MatMul."""
    w = numpy_helper.from_array(np.zeros((16, 32), np.float32), "w")
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, ["batch", "sequence", 16])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["batch", "sequence", 32])], [w])
    path = _save(tmp_path, graph)
    assert inspect_model(path).compute.fix_dims == ["batch=1", "sequence=128"]
    partly = inspect_model(path, fix=["batch=2"])
    assert partly.compute.dynamic_dims == ["sequence"]
    assert partly.compute.fix_dims == ["batch=2", "sequence=128"]
    assert inspect_model(path, fix=["batch=2", "sequence=10"]).compute.macs == 2 * 10 * 32 * 16


def test_an_unnamed_dynamic_input_axis_is_suggested_by_axis(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.zeros((4, 3), np.float32), "w")
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [None, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [None, 3])], [w])
    info = inspect_model(_save(tmp_path, graph))
    assert (info.compute.dynamic_dims, info.compute.fix_dims) == (["?"], ["x:0=1"])


def test_as_dict_has_stable_keys_in_a_fixed_order(tiny_cnn: Path) -> None:
    data = inspect_model(str(tiny_cnn)).as_dict()
    assert list(data) == ["model", "ir_version", "producer", "opsets", "inputs", "outputs", "nodes", "ops",
                          "subgraphs", "compute", "parameters", "external_data", "custom_domains",
                          "functions", "fix_dims"]
    assert list(data["compute"]) == ["macs", "flops", "unknown_nodes", "dynamic_dims", "fix_dims",
                                     "complete", "suggestion"]
    assert list(data["ops"])[:2] == ["Conv", "MatMul"]  # by count, then name
    assert data["parameters"]["count"] == 1181 and data["parameters"]["bytes"] == 4736


def test_a_bad_fix_dims_spec_is_a_usage_error(tiny_cnn: Path) -> None:
    with pytest.raises(UsageError, match="no input or dim of that name"):
        inspect_model(str(tiny_cnn), fix=["batch=1"])
    with pytest.raises(UsageError, match="expected NAME="):
        inspect_model(str(tiny_cnn), fix=["N"])
