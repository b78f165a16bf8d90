"""--check final finds the guilty pass by bisection and rolls back only it; --strict exits 4 on any
rollback a check caused; custom-op models are checked with their op library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import graphopt
from graphopt.cli import main
from graphopt.numerics.run import run_proto

BROKEN_PIPELINE = "eliminate-dead-code,fold-constants,swap-add-for-sub,fuse-batchnorm,fuse-matmul-add"


def test_final_check_bisects_to_the_guilty_pass_and_keeps_the_others(
        tiny_cnn: Path, builtin_registry: object, swap_plugin: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The final check fails; bisection names swap-add-for-sub, rolls it back, the passes after it are
    re-run with per-pass checks, and the output is the good optimized model (exit 0)."""
    out, report = tiny_cnn.with_name("out.onnx"), tiny_cnn.with_name("r.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--plugin", str(swap_plugin),
                 "--pipeline", BROKEN_PIPELINE, "--check", "final", "--report", str(report)]) == 0
    stdout = capsys.readouterr().out
    assert "rolled back: swap-add-for-sub: numeric check failed: " in stdout
    assert "(found by bisecting the 4 changing passes after the final check failed)" in stdout
    assert ("reproduce: graphopt optimize " in stdout
            and "--pipeline 'eliminate-dead-code,fold-constants,swap-add-for-sub'" in stdout)
    data = json.loads(report.read_text())
    assert [(p["name"], p["status"]) for p in data["passes"]] == [
        ("eliminate-dead-code", "changed"), ("fold-constants", "changed"),
        ("swap-add-for-sub", "rolled-back"),  # found by the bisection, reported once
        ("fuse-batchnorm", "changed"), ("fuse-matmul-add", "changed")]  # re-run from there, checked
    assert data["final_check"]["ok"] is False
    assert data["warnings"][0].startswith("final check failed: numeric check failed: ")
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert "Sub" not in ops and "BatchNormalization" not in ops and "Gemm" in ops
    feeds = {"x": np.random.default_rng(3).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    np.testing.assert_allclose(run_proto(onnx.load(str(out)), feeds)["logits"],
                               run_proto(onnx.load(str(tiny_cnn)), feeds)["logits"], rtol=1e-5, atol=1e-5)


def test_final_check_that_passes_needs_no_bisection(tiny_cnn: Path) -> None:
    """The default pipeline under --check final: one final session, no rollback."""
    result = graphopt.optimize(str(tiny_cnn), check="final")
    assert result.final_check is not None and result.final_check["failure"] is None
    assert result.final_check["strength"] == "ok"
    assert (result.report.rolled_back, result.check_sessions) == ([], 1)


def test_strict_exits_4_when_a_check_rolled_a_pass_back(
        tiny_cnn: Path, builtin_registry: object, swap_plugin: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The output is still written (the good model); stderr has one line naming the problem."""
    out = tiny_cnn.with_name("out.onnx")
    args = ["optimize", str(tiny_cnn), "-o", str(out), "--plugin", str(swap_plugin),
            "--pipeline", BROKEN_PIPELINE, "-q"]
    assert main([*args, "--strict"]) == 4
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        "graphopt: strict: 1 problem(s): pass 'swap-add-for-sub' rolled back (check): numeric check failed: ")
    assert out.exists()
    assert main([*args, "--strict", "--check", "final"]) == 4
    assert main(args) == 0


def test_strict_accepts_a_clean_run_and_ignores_the_never_worse_rule(tiny_cnn: Path,
                                                                     builtin_registry: object) -> None:
    """The default pipeline passes --strict; a pass rolled back only for adding a node does not count."""
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--strict", "-q"]) == 0
    grow = tiny_cnn.parent / "grow.py"
    grow.write_text('''
from graphopt import Node, PassResult, pass_from_function

@pass_from_function("add-identity")
def add_identity(model):
    """Adds an Identity before a Relu (more nodes: refused by the never-worse rule)."""
    relu = next(n for n in model.graph if n.op_type == "Relu")
    identity = Node("Identity", [relu.inputs[0]])
    model.graph.insert_before(relu, identity)
    relu.replace_input(0, identity.outputs[0])
    return PassResult(True)
''')
    report = tiny_cnn.with_name("r.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--plugin", str(grow), "--pipeline",
                 "add-identity", "--strict", "-q", "--report", str(report)]) == 0
    data = json.loads(report.read_text())
    assert [(p["status"], p["cause"]) for p in data["passes"]] == [("rolled-back", "never-worse")]
    assert data["strict_problems"] == []


def _contrib_model() -> onnx.ModelProto:
    """Inverse (onnxruntime-extensions' ai.onnx.contrib domain) after a foldable Identity chain."""
    graph = h.make_graph([h.make_node("Identity", ["x"], ["i"]),
                          h.make_node("Inverse", ["i"], ["inv"], domain="ai.onnx.contrib"),
                          h.make_node("Tanh", ["inv"], ["y"])], "contrib",
                         [h.make_tensor_value_info("x", T.FLOAT, [3, 3])],
                         [h.make_tensor_value_info("y", T.FLOAT, [3, 3])])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.onnx.contrib", 1)])
    proto.ir_version = 8
    return proto


def test_a_custom_domain_op_without_its_library_names_the_op_and_both_ways_out(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    graph = h.make_graph([h.make_node("Frobnicate", ["x"], ["y"], domain="my.ops", name="f1")], "custom",
                         [h.make_tensor_value_info("x", T.FLOAT, [2])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2])])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("my.ops", 1)])
    proto.ir_version = 8
    path = tmp_path / "custom.onnx"
    onnx.save(proto, str(path))
    assert main(["optimize", str(path), "-o", str(tmp_path / "o.onnx")]) == 5
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(
        "graphopt: error: onnxruntime has no kernel for custom op my.ops::Frobnicate (node 'f1'), so the "
        "original model cannot be checked: give its library with --custom-op-library PATH, or skip checks "
        "with --check off")
    assert main(["optimize", str(path), "-o", str(tmp_path / "o.onnx"), "--check", "off", "-q"]) == 0


def test_onnxruntime_extensions_ops_are_checked_with_its_library(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Loaded by itself when installed, or given with --custom-op-library; the checks then run."""
    import onnxruntime_extensions as extensions  # in the test extra (pyproject.toml) for this test
    path = tmp_path / "contrib.onnx"
    onnx.save(_contrib_model(), str(path))
    result = graphopt.optimize(str(path))
    checked = [r for r in result.report.records if r.checks.get("numeric")]
    assert checked and all(r.checks["numeric"]["ok"] for r in checked)
    monkeypatch.setattr("graphopt.numerics.session.extension_libraries", lambda ops: ())
    with pytest.raises(graphopt.errors.RuntimeCheckError, match="install onnxruntime-extensions"):
        graphopt.optimize(str(path))
    result = graphopt.optimize(str(path), custom_op_libraries=(extensions.get_library_path(),))
    assert all(r.checks["numeric"]["ok"] for r in result.report.records if r.checks.get("numeric"))
