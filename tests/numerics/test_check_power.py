"""What makes a check prove something: weak references are reported weak, intermediate tensors catch a
bug the outputs hide, and the first diverging tensor and its producer are named."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt import Model, PassResult, Tensor
from graphopt.numerics.strength import weakness
from graphopt.pass_infra.registry import PassRegistry


def _matmul_then(tail: list[onnx.NodeProto], out: str = "y") -> onnx.ModelProto:
    """x[4,8] @ w[8,8] -> a, then ``tail`` computing ``out`` from a."""
    w = nh.from_array(np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32), "w")
    graph = h.make_graph([h.make_node("MatMul", ["x", "w"], ["a"], name="mm"), *tail], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [4, 8])],
                         [h.make_tensor_value_info(out, T.FLOAT, [4, 8])], [w])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


@dataclass
class ScaleMatMulWeight:
    """Wrong on purpose: multiplies the MatMul weight by 1.05, keeping the tensors' names or (``rename``)
    giving every intermediate tensor a new one."""

    name: ClassVar[str] = "scale-matmul-weight"
    may_grow: ClassVar[bool] = True
    rename: bool = False

    def run(self, model: Model) -> PassResult:
        node = next(n for n in model.graph if n.op_type == "MatMul")
        weight = node.inputs[1].const.numpy()
        node.replace_input(1, model.graph.add_const(Tensor.from_array(weight * np.float32(1.05))))
        if self.rename:  # a rewrite that says its values are new
            for value in (v for n in model.graph for v in n.outputs if not v.is_graph_output):
                value.name = f"{value.name}_new"
        return PassResult(True)


def test_weakness_of_reference_tensors() -> None:
    """Informative: varies by > 100 tolerances, or one number > 100 tolerances; weak otherwise."""
    rng = np.random.default_rng(0)
    assert weakness(rng.standard_normal(100).astype(np.float32)) is None
    assert weakness(np.zeros(10, np.float32)) == "constant (0 everywhere)"
    assert weakness(np.full(10, np.nan, np.float32)) == "NaN/Inf everywhere"
    tiny = np.float32(3e-8) * rng.standard_normal(100).astype(np.float32)
    assert weakness(tiny).startswith("varies by only")
    assert weakness(np.array([0.5], np.float32)) is None
    assert weakness(np.array([1e-6], np.float32)).startswith("a single value")
    assert weakness(np.array([3, 3, 3], np.int64)) == "constant (np.int64(3) everywhere)"
    assert weakness(np.array([3, 4], np.int64)) is None
    assert weakness(np.zeros((0, 4), np.float32)) == "empty"


def test_a_check_whose_reference_is_degenerate_is_weak_not_ok(builtin_registry: PassRegistry) -> None:
    """Relu(a - 1000) is 0 for every input: a wrong weight (the tensors renamed, so no intermediate can
    witness it) passes the comparison, but the check says it proved nothing, and --strict refuses it."""
    builtin_registry.register(ScaleMatMulWeight)
    thousand = h.make_node("Constant", [], ["k"], value=nh.from_array(np.float32(1000.0)))
    proto = _matmul_then([thousand, h.make_node("Sub", ["a", "k"], ["s"]), h.make_node("Relu", ["s"], ["y"])])
    result = graphopt.optimize(proto, pipeline="scale-matmul-weight{rename=true}")
    record = result.report.records[0]
    assert (record.status, record.failure) == ("changed", None)
    numeric = record.checks["numeric"]
    # the MatMul, and the Sub and Relu that read renamed tensors
    assert (numeric["ok"], numeric["strength"], numeric["unproven_nodes"]) == (True, "weak", 3)
    assert result.check_inputs is not None
    assert result.check_inputs["weak_outputs"] == {"y": "constant (0 everywhere)"}
    assert result.strict_problems() == [
        "pass 'scale-matmul-weight': weak check (3 changed node(s) reach no informative tensor)"]


def test_a_saturated_output_hides_a_bug_that_the_intermediate_tensor_reveals(
        builtin_registry: PassRegistry) -> None:
    """Sign(x @ 1.05 w) == Sign(x @ w): the outputs match exactly, but 'a' kept its name and changed."""
    builtin_registry.register(ScaleMatMulWeight)
    proto = _matmul_then([h.make_node("Sign", ["a"], ["y"], name="sign")])
    result = graphopt.optimize(proto, pipeline="scale-matmul-weight")
    record = result.report.records[0]
    assert (record.status, record.cause) == ("rolled-back", "check")
    assert record.failure is not None
    assert record.failure.startswith("numeric check failed: first diverging tensor 'a' (output of MatMul "
                                     "'mm'): values differ beyond rtol=0.001, atol=0.0001")  # 10x outputs'
    assert record.failure.endswith("; outputs still match")
    assert record.checks["numeric"]["first_diverging"] == "a"
    assert graphopt.export_model(result.model).graph.initializer[0] == proto.graph.initializer[0]


def test_the_same_bug_renamed_is_caught_at_the_output_when_the_output_can_show_it(
        builtin_registry: PassRegistry) -> None:
    """With an informative output (Tanh of a), the renamed wrong weight fails on the output itself."""
    builtin_registry.register(ScaleMatMulWeight)
    proto = _matmul_then([h.make_node("Tanh", ["a"], ["y"], name="tanh")])
    result = graphopt.optimize(proto, pipeline="scale-matmul-weight{rename=true}")
    record = result.report.records[0]
    assert record.status == "rolled-back"
    assert record.failure is not None and record.failure.startswith(
        "numeric check failed: output 'y' (output of Tanh 'tanh'): values differ")


def test_a_correct_pass_is_ok_with_its_intermediates_counted() -> None:
    """The default pipeline on an informative model: every changing pass 'ok', tensors compared."""
    proto = _matmul_then([h.make_node("Identity", ["a"], ["b"]), h.make_node("Tanh", ["b"], ["y"])])
    result = graphopt.optimize(proto)
    checked = [r for r in result.report.records if r.checks.get("numeric")]
    assert checked and all(r.checks["numeric"]["strength"] == "ok" for r in checked)
    assert result.strict_problems() == []


def test_tensors_computed_from_float16_are_compared_at_float16_tolerance() -> None:
    """A float32 Softmax of float16 scores carries float16 rounding: a rewrite of the float16 part may
    move it by ~1e-3, which float32's 1e-4 would call a failure; the float16 part itself keeps its own."""
    from graphopt.numerics.compare import DEFAULT_TOLERANCES
    from graphopt.numerics.reference import precision_floors

    k = nh.from_array(np.array(0.5, np.float16), "k")
    nodes = [h.make_node("Mul", ["x", "k"], ["m"]), h.make_node("Cast", ["m"], ["c"], to=T.FLOAT),
             h.make_node("Softmax", ["c"], ["y"]), h.make_node("Relu", ["z"], ["r"])]
    info = h.make_tensor_value_info
    graph = h.make_graph(nodes, "mixed", [info("x", T.FLOAT16, [4]), info("z", T.FLOAT, [4])],
                         [info("y", T.FLOAT, [4]), info("r", T.FLOAT, [4])], [k])
    model = graphopt.import_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))
    assert precision_floors(model) == {"c": DEFAULT_TOLERANCES["float16"], "y": DEFAULT_TOLERANCES["float16"]}


def test_tensors_selected_by_a_float_comparison_are_compared_only_through_the_outputs() -> None:
    """TopK's values and indices (and what is computed from them) may legitimately flip on a near tie
    after a rounding change: they are not fingerprinted as intermediates; the Mul before them is."""
    from graphopt.numerics.check import prepare_check

    k = nh.from_array(np.array([3], np.int64), "k")
    two = nh.from_array(np.array(2.0, np.float32), "two")
    info = h.make_tensor_value_info
    nodes = [h.make_node("Mul", ["x", "two"], ["m"]), h.make_node("TopK", ["m", "k"], ["v", "i"]),
             h.make_node("Cast", ["i"], ["c"], to=T.FLOAT), h.make_node("Add", ["c", "v"], ["y"]),
             h.make_node("Relu", ["m"], ["r"])]
    graph = h.make_graph(nodes, "select", [info("x", T.FLOAT, [8])],
                         [info("y", T.FLOAT, [3]), info("r", T.FLOAT, [8])], [k, two])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    checker = prepare_check(graphopt.import_model(proto))
    assert set(checker.reference.tensors) == {"m"}
    assert set(checker.reference.outputs[0]) == {"y", "r"}
