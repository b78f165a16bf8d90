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
    assert weakness(np.array([0, 0, 320, 320], np.float32)) == (
        "takes only the values 0 and 320 (saturated or thresholded)")
    assert weakness(np.array([0, 160, 320], np.float32)) is None


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


def _topk_then_scale() -> onnx.ModelProto:
    """m = |x| * w; v, i = TopK(m, 3); p = v * s; y = Sign(p) (saturated: only -1 and 1, whatever
    TopK picks); r = Relu(m)."""
    rng = np.random.default_rng(3)
    k = nh.from_array(np.array([3], np.int64), "k")
    w = nh.from_array(rng.uniform(0.5, 2.0, 8).astype(np.float32), "w")
    scale = nh.from_array(np.array([1.0, -2.0, 3.0], np.float32), "s")
    info = h.make_tensor_value_info
    nodes = [h.make_node("Abs", ["x"], ["a"]), h.make_node("Mul", ["a", "w"], ["m"]),
             h.make_node("TopK", ["m", "k"], ["v", "i"], name="topk"),
             h.make_node("Mul", ["v", "s"], ["p"], name="scale"), h.make_node("Sign", ["p"], ["y"]),
             h.make_node("Relu", ["m"], ["r"])]
    graph = h.make_graph(nodes, "select", [info("x", T.FLOAT, [8])],
                         [info("y", T.FLOAT, [3]), info("r", T.FLOAT, [8])], [k, w, scale])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


@dataclass
class ScaleAfterTopK:
    """Wrong on purpose: scales the constant applied after the TopK by 1.05, names kept."""

    name: ClassVar[str] = "scale-after-topk"
    may_grow: ClassVar[bool] = True

    def run(self, model: Model) -> PassResult:
        node = next(n for n in model.graph if n.name == "scale")
        node.replace_input(1, model.graph.add_const(Tensor.from_array(node.inputs[1].const.numpy() * 1.05)))
        return PassResult(True)


@dataclass
class FlipTopK:
    """Changes what the TopK selects (smallest instead of largest), names kept."""

    name: ClassVar[str] = "flip-topk"
    may_grow: ClassVar[bool] = True

    def run(self, model: Model) -> PassResult:
        next(n for n in model.graph if n.op_type == "TopK").set_attr("largest", 0)
        return PassResult(True)


def test_tensors_downstream_of_a_selection_wait_on_its_indices() -> None:
    """TopK's values and indices (and what is computed from them) may legitimately flip on a near tie
    after a rounding change: each is gated by the indices, and compared only when they agree exactly."""
    from graphopt.numerics.check import prepare_check

    checker = prepare_check(graphopt.import_model(_topk_then_scale()))
    assert set(checker.reference.tensors) == {"a", "m", "v", "i", "p"}
    assert checker.reference.gates == {"v": {"i"}, "i": {"i"}, "p": {"i"}}
    assert checker.reference.output_weakness["y"].startswith("takes only the values -1 and 1")


def test_a_wrong_rewrite_after_a_selection_is_caught_when_the_selection_agrees(
        builtin_registry: PassRegistry) -> None:
    """The detector case: the output is saturated, the bug sits after a TopK; the indices agree, so
    the tensor after it is compared and the pass rolled back."""
    builtin_registry.register(ScaleAfterTopK)
    result = graphopt.optimize(_topk_then_scale(), pipeline="scale-after-topk")
    record = result.report.records[0]
    assert (record.status, record.cause) == ("rolled-back", "check")
    assert record.checks["numeric"]["first_diverging"] == "p"
    assert record.failure is not None and record.failure.endswith("; outputs still match")


def test_a_selection_that_changed_leaves_its_dependents_uncompared_and_the_check_weak(
        builtin_registry: PassRegistry) -> None:
    """When the indices differ (a near tie may flip), nothing gated by them is compared: the pass is
    not failed on them, and with only a saturated output left the check says it proved nothing."""
    builtin_registry.register(FlipTopK)
    result = graphopt.optimize(_topk_then_scale(), pipeline="flip-topk")
    record = result.report.records[0]
    numeric = record.checks["numeric"]
    assert (record.status, numeric["strength"], numeric["compared"], numeric["unproven_nodes"]) == (
        "changed", "weak", 0, 1)


def test_a_body_that_selects_and_returns_indices_gates_what_follows_it() -> None:
    """A batched NMS under an If (torchvision's detectors): the If's index output is the selection;
    a body returning floats cannot be observed, so what follows it is never compared."""
    from graphopt.numerics.check import prepare_check

    info = h.make_tensor_value_info
    k = nh.from_array(np.array([3], np.int64), "k")

    def branch(largest: int, out_type: int) -> onnx.GraphProto:
        nodes = [h.make_node("TopK", ["m", "k"], ["bv", "bi"], largest=largest)]
        out = "bi" if out_type == T.INT64 else "bv"
        return h.make_graph(nodes, f"b{largest}", [], [info(out, out_type, [3])])

    for out_type, expected in ((T.INT64, {"sel": {"sel"}, "g": {"sel"}, "p": {"sel"}}), (T.FLOAT, {})):
        nodes = [h.make_node("Abs", ["x"], ["m"]), h.make_node("ReduceSum", ["x"], ["total"], keepdims=0),
                 h.make_node("Greater", ["total", "zero"], ["cond"]),
                 h.make_node("If", ["cond"], ["sel"], then_branch=branch(1, out_type),
                             else_branch=branch(0, out_type))]
        if out_type == T.INT64:
            nodes.append(h.make_node("Gather", ["m", "sel"], ["g"]))
        else:
            nodes.append(h.make_node("Identity", ["sel"], ["g"]))
        nodes += [h.make_node("Mul", ["g", "two"], ["p"]), h.make_node("Sign", ["p"], ["y"])]
        zero, two = nh.from_array(np.array(0.0, np.float32), "zero"), nh.from_array(np.float32(2.0), "two")
        graph = h.make_graph(nodes, "if-select", [info("x", T.FLOAT, [8])], [info("y", T.FLOAT, [3])],
                             [k, zero, two])
        checker = prepare_check(graphopt.import_model(h.make_model(
            graph, opset_imports=[h.make_opsetid("", 17)])))
        assert checker.reference.gates == expected
        assert ("p" in checker.reference.tensors) == bool(expected)
