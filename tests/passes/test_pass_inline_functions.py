"""inline-functions and `optimize --inline-functions`: nested calls, attribute references, default
attribute values (which onnx 1.23's inliner drops on its own), calls inside an If body and a function
at another opset are all inlined; the result is checked and equals the original under onnxruntime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from graphopt import import_model
from graphopt.cli import main
from graphopt.pass_infra.registry import DEFAULT_REGISTRY


def functions_model(function_opset: int = 18) -> onnx.ModelProto:
    """Scale(x){alpha=3.0 by default} = x * alpha (a Constant reading the attribute); Outer(x) =
    Relu(Scale(x){alpha=2}); the graph calls Outer, Scale without alpha, and Outer inside an If body."""
    ref = onnx.AttributeProto(name="value_float", type=onnx.AttributeProto.FLOAT, ref_attr_name="alpha")
    constant = h.make_node("Constant", [], ["k"])
    constant.attribute.append(ref)
    scale = h.make_function("local", "Scale", ["x"], ["y"], [constant, h.make_node("Mul", ["x", "k"], ["y"])],
                            [h.make_opsetid("", function_opset)])
    scale.attribute_proto.append(h.make_attribute("alpha", 3.0))
    outer = h.make_function("local", "Outer", ["x"], ["y"],
                            [h.make_node("Scale", ["x"], ["t"], domain="local", alpha=2.0),
                             h.make_node("Relu", ["t"], ["y"])],
                            [h.make_opsetid("", function_opset), h.make_opsetid("local", 1)])
    then_body = h.make_graph([h.make_node("Outer", ["X"], ["r"], domain="local")], "then", [],
                             [h.make_tensor_value_info("r", T.FLOAT, [4])])
    else_body = h.make_graph([h.make_node("Neg", ["X"], ["n"])], "else", [],
                             [h.make_tensor_value_info("n", T.FLOAT, [4])])
    graph = h.make_graph(
        [h.make_node("Outer", ["X"], ["A"], domain="local", name="call_outer"),
         h.make_node("Scale", ["X"], ["B"], domain="local", name="call_scale"),
         h.make_node("ReduceSum", ["X"], ["s"], keepdims=0),
         h.make_node("Greater", ["s", "zero"], ["c"]),
         h.make_node("If", ["c"], ["C"], then_branch=then_body, else_branch=else_body)],
        "g", [h.make_tensor_value_info("X", T.FLOAT, [4])],
        [h.make_tensor_value_info(n, T.FLOAT, [4]) for n in "ABC"],
        initializer=[onnx.numpy_helper.from_array(np.array(0, np.float32), "zero")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18), h.make_opsetid("local", 1)],
                         functions=[scale, outer])
    onnx.checker.check_model(model)
    return model


def run(model: onnx.ModelProto | str, x: np.ndarray) -> list[np.ndarray]:
    data = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, {"X": x})


X_POS, X_NEG = np.array([1, -2, 3, 0.5], np.float32), np.array([-1, -2, 3, -4], np.float32)


def local_nodes(graph: onnx.GraphProto) -> list[str]:
    found = [n.op_type for n in graph.node if n.domain == "local"]
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found += local_nodes(attr.g)
    return found


@pytest.mark.parametrize("function_opset", [18, 17])
def test_pass_inlines_nested_calls_defaults_and_body_calls(function_opset: int) -> None:
    proto = functions_model(function_opset)
    model = import_model(proto)
    result = DEFAULT_REGISTRY.create("inline-functions", {}).run(model)
    assert result.changed and result.stats == {"functions": 2, "calls": 4}
    assert model.functions == []
    assert not [n for n in model.graph.all_nodes() if n.domain == "local"]
    from graphopt import export_model

    inlined = export_model(model)
    onnx.checker.check_model(inlined, full_check=True)
    for x in (X_POS, X_NEG):  # X_POS takes the then-body (the inlined Outer), X_NEG the else-body
        for got, want in zip(run(inlined, x), run(proto, x)):
            np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(run(inlined, X_POS)[1], X_POS * 3)  # the default alpha, not lost


def test_pass_leaves_a_model_without_functions_unchanged() -> None:
    model = import_model(h.make_model(h.make_graph(
        [h.make_node("Relu", ["X"], ["Y"])], "g", [h.make_tensor_value_info("X", T.FLOAT, [4])],
        [h.make_tensor_value_info("Y", T.FLOAT, [4])]), opset_imports=[h.make_opsetid("", 18)]))
    assert not DEFAULT_REGISTRY.create("inline-functions", {}).run(model).changed


def test_optimize_inline_functions_checks_the_inlined_model(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, out, report = tmp_path / "f.onnx", tmp_path / "f.opt.onnx", tmp_path / "r.json"
    onnx.save(functions_model(), str(path))
    before = path.read_bytes()
    assert main(["optimize", str(path), "--inline-functions", "-o", str(out), "--report", str(report)]) == 0
    capsys.readouterr()
    written = onnx.load(str(out))
    assert list(written.functions) == [] and local_nodes(written.graph) == []
    assert [n.op_type for n in written.graph.node] == ["Mul", "Relu", "Mul", "ReduceSum", "Greater", "If"]
    records = json.loads(report.read_text())["passes"]
    assert records[0]["name"] == "inline-functions" and records[0]["status"] == "changed"
    assert records[0]["checks"]["numeric"]["ok"]
    for x in (X_POS, X_NEG):
        for got, want in zip(run(str(out), x), run(str(path), x)):
            np.testing.assert_allclose(got, want, rtol=1e-6)
    assert path.read_bytes() == before


def test_without_the_flag_functions_stay_opaque(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, out = tmp_path / "f.onnx", tmp_path / "f.opt.onnx"
    onnx.save(functions_model(), str(path))
    assert main(["optimize", str(path), "-o", str(out), "-q"]) == 0
    written = onnx.load(str(out))
    assert len(written.functions) == 2 and local_nodes(written.graph) == ["Outer", "Scale", "Outer"]


def test_python_dash_m_graphopt_optimize_inline_functions(tmp_path: Path) -> None:
    path, out = tmp_path / "f.onnx", tmp_path / "f.opt.onnx"
    onnx.save(functions_model(17), str(path))
    proc = subprocess.run([sys.executable, "-m", "graphopt", "optimize", str(path), "--inline-functions",
                           "-o", str(out), "-q"], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    written = onnx.load(str(out))
    assert list(written.functions) == [] and local_nodes(written.graph) == []
    np.testing.assert_array_equal(run(str(out), X_POS)[1], X_POS * 3)
