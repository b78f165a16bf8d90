"""convert-layout: a channels-last (NHWC) interface in standard ONNX. Converted inputs get one Transpose to
channels-first, converted outputs one back to channels-last, the interface perms are recorded in the
metadata, and the numeric check feeds and compares in the original layout (a wrong record is caught).
End to end: ``graphopt optimize --layout nhwc`` on fixtures/tiny_cnn.onnx."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, info, make, ort, randn, run_pass

import graphopt
from graphopt import Model, export_model, import_model
from graphopt.cli import main
from graphopt.errors import UsageError
from graphopt.numerics.check import NumericCheck, prepare_check
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.interface import INTERFACE_KEY, interface_perms
from graphopt.pass_infra.manager import PassRecord

PASS = "convert-layout"
TO_LAST, TO_FIRST = [0, 2, 3, 1], [0, 3, 1, 2]
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "tiny_cnn.onnx"


def _structure(model: Model) -> list[str]:
    """``Op{perm}(inputs)`` per node; inputs by name (graph inputs, constants) or ``%k`` (node k)."""
    index = {id(o): k for k, n in enumerate(model.graph) for o in n.outputs}
    lines = []
    for node in model.graph:
        args = ",".join(f"%{index[id(v)]}" if id(v) in index else str(v.name) for v in node.inputs
                        if v is not None)
        perm = node.attr("perm")
        lines.append(f"{node.op_type}{perm if perm is not None else ''}({args})")
    return lines


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def _interface(model: Model) -> dict[str, dict[str, list[int]]]:
    inputs, outputs = interface_perms(model)
    return {"inputs": inputs, "outputs": outputs}


def _net() -> onnx.ModelProto:
    """An image x [1, 3, 6, 6] -> Conv -> Relu -> y [1, 4, 6, 6]; a matrix v [3, 4] -> MatMul -> u; a
    rank-3 s [2, 3, 5] -> Relu -> q (rank 3 is converted only by name)."""
    nodes = [h.make_node("Conv", ["x", "w"], ["c"]), h.make_node("Relu", ["c"], ["y"]),
             h.make_node("MatMul", ["v", "m"], ["u"]), h.make_node("Relu", ["s"], ["q"])]
    return make(nodes, [info("x", [1, 3, 6, 6]), info("v", [3, 4]), info("s", [2, 3, 5])],
                [info("y", [1, 4, 6, 6]), info("u", [3, 2]), info("q", [2, 3, 5])],
                [array("w", randn(4, 3, 1, 1, seed=1)), array("m", randn(4, 2, seed=2))])


def _net_feeds() -> dict[str, np.ndarray]:
    return {"x": randn(1, 3, 6, 6, seed=3), "v": randn(3, 4, seed=4), "s": randn(2, 3, 5, seed=5)}


def _assert_same_in_original_layout(proto: onnx.ModelProto, model: Model, feeds: dict[str, np.ndarray],
                                    perms_in: dict[str, list[int]], perms_out: dict[str, list[int]]) -> None:
    """The converted model, fed ``transpose(feed, perm)`` and with its outputs transposed back by hand
    (not through graphopt.numerics.interface), gives the original's outputs bit for bit."""
    converted_feeds = {k: np.ascontiguousarray(v.transpose(perms_in[k])) if k in perms_in else v
                       for k, v in feeds.items()}
    got = ort(model, converted_feeds)
    expected = ort(proto, feeds)
    assert list(got) == list(expected)
    for name, value in expected.items():
        actual = got[name].transpose(np.argsort(perms_out[name])) if name in perms_out else got[name]
        np.testing.assert_array_equal(actual, value, err_msg=name)


# ---- which inputs and outputs ----

def test_automatic_conversion_takes_every_float_input_and_output_of_rank_4_or_5() -> None:
    """x and y are converted; the matrices and the rank-3 tensors are not."""
    proto = _net()
    model, result = run_pass(proto, PASS)
    assert result.changed and result.stats == {"inputs_converted": 1, "outputs_converted": 1}
    assert _structure(model) == ["Transpose[0, 3, 1, 2](x)", "Conv(%0,w)", "Relu(%1)",
                                 "Transpose[0, 2, 3, 1](%2)", "MatMul(v,m)", "Relu(s)"]
    assert _interface(model) == {"inputs": {"x": TO_LAST}, "outputs": {"y": TO_LAST}}
    exported = export_model(model).graph
    assert [(vi.name, _dims(vi)) for vi in exported.input] == [("x", [1, 6, 6, 3]), ("v", [3, 4]),
                                                               ("s", [2, 3, 5])]
    assert [(vi.name, _dims(vi)) for vi in exported.output] == [("y", [1, 6, 6, 4]), ("u", [3, 2]),
                                                                ("q", [2, 3, 5])]
    _assert_same_in_original_layout(proto, model, _net_feeds(), {"x": TO_LAST}, {"y": TO_LAST})


def test_named_input_only() -> None:
    model, result = run_pass(_net(), PASS, inputs="x", outputs="none")
    assert result.stats == {"inputs_converted": 1}
    assert _structure(model)[:2] == ["Transpose[0, 3, 1, 2](x)", "Conv(%0,w)"]
    assert sum(n.op_type == "Transpose" for n in model.graph) == 1
    assert _interface(model) == {"inputs": {"x": TO_LAST}, "outputs": {}}
    _assert_same_in_original_layout(_net(), model, _net_feeds(), {"x": TO_LAST}, {})


def test_named_output_only() -> None:
    model, result = run_pass(_net(), PASS, inputs="none", outputs="y")
    assert result.stats == {"outputs_converted": 1}
    assert _structure(model) == ["Conv(x,w)", "Relu(%0)", "Transpose[0, 2, 3, 1](%1)", "MatMul(v,m)",
                                 "Relu(s)"]
    assert _interface(model) == {"inputs": {}, "outputs": {"y": TO_LAST}}
    _assert_same_in_original_layout(_net(), model, _net_feeds(), {}, {"y": TO_LAST})


def test_none_and_none_changes_nothing_and_records_nothing() -> None:
    model, result = run_pass(_net(), PASS, inputs="none", outputs="none")
    assert not result.changed and result.stats == {}
    assert INTERFACE_KEY not in model.metadata_props
    assert [n.op_type for n in model.graph] == ["Conv", "Relu", "MatMul", "Relu"]


def test_rank_3_tensors_are_converted_by_name_ncl_to_nlc() -> None:
    """'+' joins names (the pipeline text already uses ',')."""
    model, result = run_pass(_net(), PASS, inputs="s+x", outputs="q")
    assert result.stats == {"inputs_converted": 2, "outputs_converted": 1}
    assert _interface(model) == {"inputs": {"s": [0, 2, 1], "x": TO_LAST}, "outputs": {"q": [0, 2, 1]}}
    assert _structure(model) == ["Transpose[0, 2, 1](s)", "Transpose[0, 3, 1, 2](x)", "Conv(%1,w)",
                                 "Relu(%2)", "MatMul(v,m)", "Relu(%0)", "Transpose[0, 2, 1](%5)"]
    _assert_same_in_original_layout(_net(), model, _net_feeds(), {"s": [0, 2, 1], "x": TO_LAST},
                                    {"q": [0, 2, 1]})


def test_rank_5_input_and_output_ncdhw_to_ndhwc() -> None:
    proto = make([h.make_node("Sigmoid", ["x"], ["y"])], [info("x", [1, 2, 3, 4, 5])], [info("y", None)])
    model, result = run_pass(proto, PASS)
    assert result.stats == {"inputs_converted": 1, "outputs_converted": 1}
    assert _structure(model) == ["Transpose[0, 4, 1, 2, 3](x)", "Sigmoid(%0)", "Transpose[0, 2, 3, 4, 1](%1)"]
    assert _interface(model) == {"inputs": {"x": [0, 2, 3, 4, 1]}, "outputs": {"y": [0, 2, 3, 4, 1]}}
    assert _dims(export_model(model).graph.input[0]) == [1, 3, 4, 5, 2]
    _assert_same_in_original_layout(proto, model, {"x": randn(1, 2, 3, 4, 5)}, {"x": [0, 2, 3, 4, 1]},
                                    {"y": [0, 2, 3, 4, 1]})


def test_an_input_read_by_several_ops_gets_one_transpose_for_all_of_them() -> None:
    proto = make([h.make_node("Relu", ["x"], ["a"]), h.make_node("Add", ["x", "x"], ["b"]),
                  h.make_node("Mul", ["a", "x"], ["y"])], [info("x", [2, 3, 4, 5])],
                 [info("y", None), info("b", None)])
    model, result = run_pass(proto, PASS, outputs="none")
    assert result.stats == {"inputs_converted": 1}
    assert _structure(model) == ["Transpose[0, 3, 1, 2](x)", "Relu(%0)", "Add(%0,%0)", "Mul(%1,%0)"]
    _assert_same_in_original_layout(proto, model, {"x": randn(2, 3, 4, 5)}, {"x": TO_LAST}, {})


def test_symbolic_dims_move_with_their_axis() -> None:
    proto = make([h.make_node("Relu", ["x"], ["y"])], [info("x", ["N", 3, "H", 8])],
                 [info("y", ["N", 3, "H", 8])])
    model, _ = run_pass(proto, PASS)
    graph = export_model(model).graph
    assert _dims(graph.input[0]) == ["N", "H", 8, 3]
    assert _dims(graph.output[0]) == ["N", "H", 8, 3]


def test_an_input_that_is_also_an_output_keeps_its_name_and_converts_as_one_tensor() -> None:
    """x is read by Relu and returned as is: the output *is* the input, so it is channels-last too
    (recorded as such), whatever the outputs option says."""
    proto = make([h.make_node("Relu", ["x"], ["a"])], [info("x", [1, 2, 5, 5])],
                 [info("a", None), info("x", [1, 2, 5, 5])])
    feeds = {"x": randn(1, 2, 5, 5)}
    for options, converted in (({}, {"a": TO_LAST, "x": TO_LAST}), ({"outputs": "none"}, {"x": TO_LAST})):
        model, _ = run_pass(proto, PASS, **options)
        assert [v.name for v in model.graph.outputs] == ["a", "x"]
        assert model.graph.outputs[1] is model.graph.inputs[0]
        assert _interface(model) == {"inputs": {"x": TO_LAST}, "outputs": converted}
        _assert_same_in_original_layout(proto, model, feeds, {"x": TO_LAST}, converted)


def test_an_output_that_is_an_unconverted_input_is_left_alone() -> None:
    proto = make([h.make_node("Relu", ["x"], ["a"])], [info("x", [1, 2, 5, 5])],
                 [info("a", None), info("x", [1, 2, 5, 5])])
    model, result = run_pass(proto, PASS, inputs="none")
    assert result.stats == {"outputs_converted": 1}
    assert [v.name for v in model.graph.inputs] == ["x"]
    assert [v.name for v in model.graph.outputs] == ["a", "x"]
    assert _interface(model) == {"inputs": {}, "outputs": {"a": TO_LAST}}
    _assert_same_in_original_layout(proto, model, {"x": randn(1, 2, 5, 5)}, {}, {"a": TO_LAST})


def test_an_output_also_read_inside_stays_channels_first_for_its_readers() -> None:
    """y is an output and read by Sigmoid and Conv: only the output gets the NHWC copy."""
    proto = make([h.make_node("Relu", ["x"], ["y"]), h.make_node("Sigmoid", ["y"], ["z"]),
                  h.make_node("Conv", ["y", "w"], ["c"])], [info("x", [1, 2, 4, 4])],
                 [info("y", None), info("z", None), info("c", None)], [array("w", randn(3, 2, 1, 1))])
    model, result = run_pass(proto, PASS)
    assert result.stats == {"inputs_converted": 1, "outputs_converted": 3}
    assert _structure(model) == ["Transpose[0, 3, 1, 2](x)", "Relu(%0)", "Transpose[0, 2, 3, 1](%1)",
                                 "Sigmoid(%1)", "Transpose[0, 2, 3, 1](%3)", "Conv(%1,w)",
                                 "Transpose[0, 2, 3, 1](%5)"]
    perms = {"c": TO_LAST, "y": TO_LAST, "z": TO_LAST}
    _assert_same_in_original_layout(proto, model, {"x": randn(1, 2, 4, 4)}, {"x": TO_LAST}, perms)


def test_an_overridable_initializer_is_not_an_image_input() -> None:
    """An initializer listed among the inputs (a default the user may override) stays as it is."""
    proto = make([h.make_node("Add", ["x", "b"], ["y"])], [info("x", [1, 2, 3, 3]), info("b", [1, 2, 3, 3])],
                 [info("y", None)], [array("b", randn(1, 2, 3, 3, seed=8))])
    model, result = run_pass(proto, PASS, outputs="none")
    assert result.stats == {"inputs_converted": 1}
    assert _interface(model)["inputs"] == {"x": TO_LAST}


# ---- mistakes ----

@pytest.mark.parametrize("options,message", [
    ({"inputs": "nope"}, "convert-layout: the model has no input named 'nope' (its inputs: s, v, x)"),
    ({"outputs": "x"}, "convert-layout: the model has no output named 'x' (its outputs: q, u, y)"),
    ({"inputs": "v"}, "convert-layout: input 'v' is not a float tensor of rank 3-5"),
    ({"outputs": "u"}, "convert-layout: output 'u' is not a float tensor of rank 3-5"),
    ({"layout": "nchw"}, "convert-layout: unknown layout 'nchw' (supported: nhwc)"),
], ids=["unknown-input", "unknown-output", "matrix-input", "matrix-output", "layout"])
def test_usage_errors_name_the_problem(options: dict[str, Any], message: str) -> None:
    model = import_model(_net())
    with pytest.raises(UsageError) as err:
        run_pass(model, PASS, **options)
    assert str(err.value) == message
    assert INTERFACE_KEY not in model.metadata_props


def test_an_integer_image_by_name_is_refused() -> None:
    proto = make([h.make_node("Cast", ["x"], ["y"], to=T.FLOAT)], [info("x", [1, 2, 3, 3], T.INT64)],
                 [info("y", None)])
    with pytest.raises(UsageError, match="input 'x' is not a float tensor of rank 3-5"):
        run_pass(proto, PASS, inputs="x")
    _, result = run_pass(proto, PASS, inputs="", outputs="none")
    assert not result.changed


# ---- with optimize-transposes and the numeric check ----

def test_boundary_transposes_cancel_through_an_agnostic_body() -> None:
    """x -> Relu -> Sigmoid -> y: after conversion both boundary Transposes move through and cancel."""
    proto = make([h.make_node("Relu", ["x"], ["a"]), h.make_node("Sigmoid", ["a"], ["y"])],
                 [info("x", [1, 3, 4, 5])], [info("y", None)])
    model, _ = run_pass(proto, PASS)
    model, result = run_pass(model, "optimize-transposes")
    assert [n.op_type for n in model.graph] == ["Relu", "Sigmoid"]
    assert result.stats == {"cancelled": 1, "pushed_through_Relu": 1, "pushed_through_Sigmoid": 1}
    _assert_same_in_original_layout(proto, model, {"x": randn(1, 3, 4, 5)}, {"x": TO_LAST}, {"y": TO_LAST})


def _square() -> onnx.ModelProto:
    """A model whose NCHW and NHWC shapes agree ([1, 4, 4, 4]): a wrong perm runs and gives wrong values."""
    return make([h.make_node("Conv", ["x", "w"], ["y"])], [info("x", [1, 4, 4, 4])],
                [info("y", [1, 4, 4, 4])],
                [array("w", randn(4, 4, 1, 1, seed=1))])


def _checker(proto: onnx.ModelProto) -> NumericCheck:
    return prepare_check(import_model(proto))


def test_numeric_check_feeds_and_compares_in_the_original_layout() -> None:
    checker = _checker(_square())
    model, _ = run_pass(_square(), PASS)
    record = PassRecord(PASS)
    assert checker.check(record, model) is None
    numeric = record.checks["numeric"]
    summary = (numeric["ok"], numeric["strength"], numeric["max_abs"], numeric["max_rel"])
    assert summary == (True, "ok", 0.0, 0.0)


@pytest.mark.parametrize("perms", [
    {"inputs": {"x": TO_FIRST}, "outputs": {"y": TO_LAST}},
    {"inputs": {"x": TO_LAST}, "outputs": {}},
    {"inputs": {}, "outputs": {"y": TO_LAST}},
], ids=["wrong-input-perm", "output-not-recorded", "input-not-recorded"])
def test_numeric_check_catches_a_wrong_interface_record(perms: dict[str, Any]) -> None:
    checker = _checker(_square())
    model, _ = run_pass(_square(), PASS)
    model.metadata_props[INTERFACE_KEY] = json.dumps(perms)
    record = PassRecord(PASS)
    reason = checker.check(record, model)
    assert reason is not None and "output 'y'" in reason
    assert record.checks["numeric"]["ok"] is False


def test_optimize_with_layout_runs_convert_layout_first_and_checks_each_pass() -> None:
    result = graphopt.optimize(_net(), layout="nhwc", check="each")
    records = result.report.records
    assert (records[0].name, records[0].status) == (PASS, "changed")
    assert records[0].checks["numeric"]["ok"] is True
    assert result.report.rolled_back == []
    assert _interface(result.model) == {"inputs": {"x": TO_LAST}, "outputs": {"y": TO_LAST}}
    assert [n.op_type for n in result.model.graph].count("Transpose") == 2
    feeds = _net_feeds()
    expected = ort(_net(), feeds)
    got = ort(result.model, {**feeds, "x": np.ascontiguousarray(feeds["x"].transpose(TO_LAST))})
    got["y"] = got["y"].transpose(TO_FIRST)
    assert not compare_outputs(expected, got, (1e-5, 1e-6))


# ---- the command line, end to end ----

def test_cli_layout_nhwc_on_tiny_cnn(tmp_path: Path) -> None:
    """Exit 0; one Transpose (x to NCHW before the first Conv: nothing agnostic to cross); the logits
    (rank 2) are not converted; the optimized model fed x in NHWC matches the original fed NCHW."""
    source = Path(shutil.copy(FIXTURE, tmp_path / "tiny_cnn.onnx"))
    out = tmp_path / "nhwc.onnx"
    assert main(["optimize", str(source), "-o", str(out), "--layout", "nhwc", "-q"]) == 0
    optimized = onnx.load(str(out))
    assert [n.op_type for n in optimized.graph.node] == ["Transpose", "Conv", "Relu", "Conv",
                                                         "GlobalAveragePool", "Reshape", "Gemm"]
    assert list(optimized.graph.node[0].attribute[0].ints) == TO_FIRST
    assert _dims(optimized.graph.input[0]) == ["N", 16, 16, 3]
    props = {p.key: p.value for p in optimized.metadata_props}
    assert json.loads(props[INTERFACE_KEY]) == {"inputs": {"x": TO_LAST}, "outputs": {}}
    x = randn(2, 3, 16, 16, seed=11)
    expected = ort(onnx.load(str(source)), {"x": x})
    got = ort(optimized, {"x": np.ascontiguousarray(x.transpose(TO_LAST))})
    assert list(got) == ["logits"] and got["logits"].shape == (2, 10)
    assert not compare_outputs(expected, got, None)
