"""`graphopt inspect MODEL [--json] [--fix-dims SPEC ...] [--no-color]`, run as a real subprocess: exact
MACs worked out by hand, the dynamic dims that block them and the suggested command line, subgraph ops,
external-data files, custom domains, local functions, parameters by dtype, stable JSON, and the same
one-line errors as optimize."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from cli_kit import run_on_a_terminal
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

CONV_MACS = 1 * 4 * 8 * 8 * 3 * 3 * 3  # y[1,4,8,8], each output reads Cin=3 x 3x3 weights: 6912


def graphopt(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "graphopt", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


def inspect_json(path: Path, *extra: str) -> dict[str, Any]:
    proc = graphopt("inspect", path, "--json", *extra)
    assert (proc.returncode, proc.stderr) == (0, "")
    return json.loads(proc.stdout)


def inspect_text(path: Path, *extra: str) -> list[str]:
    proc = graphopt("inspect", path, *extra)
    assert (proc.returncode, proc.stderr) == (0, "")
    assert "\x1b[" not in proc.stdout  # not a terminal: plain text
    return proc.stdout.splitlines()


def row(lines: list[str], first: str) -> list[str]:
    """The words of the table row starting with ``first``."""
    return next(line.split() for line in lines if line.split()[:1] == [first])


def _conv_graph(batch: object = 1) -> onnx.GraphProto:
    """x[batch,3,8,8] -> Conv(W[4,3,3,3], b[4], pads 1) -> y[batch,4,8,8]."""
    inits = [numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w"),
             numpy_helper.from_array(np.zeros(4, np.float32), "b")]
    return h.make_graph([h.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])], "conv",
                        [h.make_tensor_value_info("x", T.FLOAT, [batch, 3, 8, 8])],
                        [h.make_tensor_value_info("y", T.FLOAT, [batch, 4, 8, 8])], inits)


def save(path: Path, graph: onnx.GraphProto, *, functions: list[onnx.FunctionProto] = (),
         domains: tuple[str, ...] = (), **kwargs: Any) -> Path:
    opsets = [h.make_opsetid("", 18), *(h.make_opsetid(d, 1) for d in domains)]
    model = h.make_model(graph, opset_imports=opsets, functions=list(functions), producer_name="tests",
                         producer_version="0.1")
    onnx.save_model(model, str(path), **kwargs)
    return path


def test_conv_macs_are_exact_in_json_and_readable_in_the_table(tmp_path: Path) -> None:
    path = save(tmp_path / "conv.onnx", _conv_graph())
    data = inspect_json(path)
    assert data["ops"]["Conv"] == {"count": 1, "macs": CONV_MACS, "flops": 2 * CONV_MACS, "unknown": 0}
    assert data["compute"]["macs"] == 6912 and data["compute"]["complete"] is True
    assert data["compute"]["suggestion"] is None
    assert data["inputs"] == [{"name": "x", "dtype": "float32", "shape": [1, 3, 8, 8]}]
    assert (data["ir_version"], data["opsets"], data["producer"]) == \
        (onnx.IR_VERSION, {"": 18}, {"name": "tests", "version": "0.1"})
    lines = inspect_text(path)
    assert row(lines, "Conv") == ["Conv", "1", "6.91", "k", "13.8", "k"]
    assert row(lines, "input") == ["input", "x", "float32", "[1,3,8,8]"]
    assert not any("fix them" in line for line in lines)


def test_batched_matmul_macs_are_output_elements_times_k(tmp_path: Path) -> None:
    """a[2,4,5] @ W[5,6] -> y[2,4,6]: 48 outputs of K=5 MACs each."""
    w = numpy_helper.from_array(np.ones((5, 6), np.float32), "w")
    graph = h.make_graph([h.make_node("MatMul", ["a", "w"], ["y"])], "mm",
                         [h.make_tensor_value_info("a", T.FLOAT, [2, 4, 5])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 4, 6])], [w])
    data = inspect_json(save(tmp_path / "mm.onnx", graph))
    assert data["ops"]["MatMul"] == {"count": 1, "macs": 240, "flops": 480, "unknown": 0}


def test_a_dynamic_batch_is_named_with_the_command_that_fixes_it(tmp_path: Path) -> None:
    path = save(tmp_path / "dyn.onnx", _conv_graph("batch"))
    data = inspect_json(path)
    assert data["ops"]["Conv"] == {"count": 1, "macs": None, "flops": None, "unknown": 1}
    assert data["compute"]["complete"] is False and data["compute"]["dynamic_dims"] == ["batch"]
    assert data["compute"]["suggestion"] == f"graphopt inspect {path} --fix-dims batch=1"
    lines = inspect_text(path)
    assert row(lines, "Conv") == ["Conv", "1", "?", "?"]
    assert "MACs unknown for 1 node: dynamic dims batch" in lines
    assert f"fix them for MACs: graphopt inspect {path} --fix-dims batch=1" in lines
    fixed = inspect_json(path, "--fix-dims", "batch=1")
    assert fixed["ops"]["Conv"]["macs"] == CONV_MACS and fixed["compute"]["complete"] is True
    assert fixed["inputs"][0]["shape"] == [1, 3, 8, 8] and fixed["fix_dims"] == ["batch=1"]


def test_the_suggestion_names_every_blocking_dim_found(tmp_path: Path) -> None:
    """img[batch,3,8,8] -> Conv and tok[batch,sequence,16] @ W[16,32]: fixing batch alone leaves the
    MatMul waiting for sequence; both fixed: 6912 + 1*128*32*16 MACs."""
    conv = _conv_graph("batch")
    w2 = numpy_helper.from_array(np.ones((16, 32), np.float32), "w2")
    conv.node.append(h.make_node("MatMul", ["tok", "w2"], ["z"]))
    conv.initializer.append(w2)
    conv.input.append(h.make_tensor_value_info("tok", T.FLOAT, ["batch", "sequence", 16]))
    conv.output.append(h.make_tensor_value_info("z", T.FLOAT, ["batch", "sequence", 32]))
    path = save(tmp_path / "two.onnx", conv)
    hint = f"fix them for MACs: graphopt inspect {path} --fix-dims batch=1 --fix-dims sequence=128"
    lines = inspect_text(path)
    assert "MACs unknown for 2 nodes: dynamic dims batch, sequence" in lines and hint in lines
    assert hint in inspect_text(path, "--fix-dims", "batch=1")
    data = inspect_json(path, "--fix-dims", "batch=1")
    assert (data["compute"]["macs"], data["compute"]["dynamic_dims"]) == (CONV_MACS, ["sequence"])
    data = inspect_json(path, "--fix-dims", "batch=1", "--fix-dims", "sequence=128")
    assert data["compute"]["macs"] == CONV_MACS + 128 * 32 * 16


def test_ops_inside_if_branches_are_counted_and_listed_per_branch(tmp_path: Path) -> None:
    """then: MatMul(x[2,3], W[3,4]) -> Relu -> Add (3 ops, 24 MACs); else: Identity of a weight."""
    then = h.make_graph([h.make_node("MatMul", ["x", "w"], ["m"]), h.make_node("Relu", ["m"], ["r"]),
                         h.make_node("Add", ["r", "r"], ["t"])], "then", [],
                        [h.make_tensor_value_info("t", T.FLOAT, [2, 4])])
    other = h.make_graph([h.make_node("Identity", ["z"], ["e"])], "else", [],
                         [h.make_tensor_value_info("e", T.FLOAT, [2, 4])])
    holder = h.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=other)
    graph = h.make_graph([holder], "if", [h.make_tensor_value_info("c", T.BOOL, []),
                                          h.make_tensor_value_info("x", T.FLOAT, [2, 3])],
                         [h.make_tensor_value_info("y", T.FLOAT, [2, 4])],
                         [numpy_helper.from_array(np.ones((3, 4), np.float32), "w"),
                          numpy_helper.from_array(np.zeros((2, 4), np.float32), "z")])
    path = save(tmp_path / "if.onnx", graph)
    data = inspect_json(path)
    assert data["ops"]["MatMul"] == {"count": 1, "macs": 2 * 4 * 3, "flops": 48, "unknown": 0}
    assert data["nodes"] == 5 and data["subgraphs"] == [
        {"path": "If 'branch'/else_branch", "nodes": 1, "ops": {"Identity": 1}},
        {"path": "If 'branch'/then_branch", "nodes": 3, "ops": {"Add": 1, "MatMul": 1, "Relu": 1}}]
    lines = inspect_text(path)
    assert "subgraph If 'branch'/then_branch: 3 ops (Add, MatMul, Relu)" in lines
    assert row(lines, "MatMul") == ["MatMul", "1", "24", "48"]


def test_external_data_files_are_listed_with_their_bytes(tmp_path: Path) -> None:
    """W (108 floats) and b (4 floats) in conv.data: 2 tensors, 448 bytes."""
    path = save(tmp_path / "ext.onnx", _conv_graph(), save_as_external_data=True, location="conv.data",
                size_threshold=0)
    assert (tmp_path / "conv.data").stat().st_size == 448
    data = inspect_json(path)
    assert data["external_data"] == [{"file": "conv.data", "tensors": 2, "bytes": 448}]
    assert data["compute"]["macs"] == CONV_MACS
    assert "external data: conv.data: 2 tensors, 448 B (448 bytes)" in inspect_text(path)


def test_custom_domains_and_local_functions_are_listed(tmp_path: Path) -> None:
    """An onnxruntime contrib node and a call of the model-local function mylib::AddRelu (Add, Relu)."""
    function = h.make_function("mylib", "AddRelu", ["a", "b"], ["c"],
                               [h.make_node("Add", ["a", "b"], ["s"]), h.make_node("Relu", ["s"], ["c"])],
                               opset_imports=[h.make_opsetid("", 18)])
    nodes = [h.make_node("AddRelu", ["x", "x"], ["r"], domain="mylib"),
             h.make_node("FusedGelu", ["r"], ["y"], domain="com.microsoft")]
    graph = h.make_graph(nodes, "custom", [h.make_tensor_value_info("x", T.FLOAT, [1, 4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 4])])
    path = save(tmp_path / "custom.onnx", graph, functions=[function], domains=("com.microsoft", "mylib"))
    data = inspect_json(path)
    assert data["custom_domains"] == {"com.microsoft": {"FusedGelu": 1}, "mylib": {"AddRelu": 1}}
    assert data["functions"] == [{"name": "AddRelu", "domain": "mylib", "nodes": 2, "calls": 1}]
    assert data["opsets"] == {"": 18, "com.microsoft": 1, "mylib": 1}
    assert data["ops"]["com.microsoft::FusedGelu"] == {"count": 1, "macs": None, "flops": None, "unknown": 0}
    lines = inspect_text(path)
    assert "custom domain com.microsoft: FusedGelu" in lines
    assert "function mylib::AddRelu: 2 nodes, 1 call" in lines


def test_parameters_count_every_constant_by_dtype(tmp_path: Path) -> None:
    """Conv W[4,3,3,3] + b[4] float32 (112, 448 B), a float16 W2[256,2] (512, 1024 B) cast for a MatMul,
    and a Constant node's int64 Reshape target [1,-1] (2, 16 B)."""
    graph = _conv_graph()
    graph.output.pop()
    graph.node.extend([
        h.make_node("Constant", [], ["target"], value=numpy_helper.from_array(np.array([1, -1], np.int64))),
        h.make_node("Reshape", ["y", "target"], ["flat"]),
        h.make_node("Cast", ["w2"], ["w2f"], to=T.FLOAT),
        h.make_node("MatMul", ["flat", "w2f"], ["out"])])
    graph.initializer.append(numpy_helper.from_array(np.ones((256, 2), np.float16), "w2"))
    graph.output.append(h.make_tensor_value_info("out", T.FLOAT, [1, 2]))
    path = save(tmp_path / "params.onnx", graph)
    data = inspect_json(path)
    assert data["parameters"] == {"count": 626, "bytes": 1488, "by_dtype": {
        "float16": {"count": 512, "bytes": 1024}, "float32": {"count": 112, "bytes": 448},
        "int64": {"count": 2, "bytes": 16}}}
    assert data["compute"]["macs"] == CONV_MACS + 256 * 2
    assert data["ops"]["Constant"]["count"] == 1 and data["nodes"] == 5
    assert "parameters: 626 (1.5 KB): float16 512 (1.0 KB), float32 112 (448 B), int64 2 (16 B)" \
        in inspect_text(path)


def test_tiny_cnn_fixture_macs_with_n_fixed(tiny_cnn: Path) -> None:
    """55296 + 147456 (the two convs) + 80 (the head) + 4096 (a dead MatMul of weights) MACs."""
    data = inspect_json(tiny_cnn, "--fix-dims", "N=1")
    assert data["compute"]["macs"] == 206928 and data["compute"]["complete"] is True
    lines = inspect_text(tiny_cnn, "--fix-dims", "N=1")
    assert row(lines, "total") == ["total", "16", "207", "k", "418", "k"]


def test_json_is_one_deterministic_object_with_stable_keys(tiny_cnn: Path) -> None:
    first, second = graphopt("inspect", tiny_cnn, "--json"), graphopt("inspect", tiny_cnn, "--json")
    assert first.stdout == second.stdout and first.returncode == 0
    data = json.loads(first.stdout)
    assert list(data) == ["model", "ir_version", "producer", "opsets", "inputs", "outputs", "nodes", "ops",
                          "subgraphs", "compute", "parameters", "external_data", "custom_domains",
                          "functions", "fix_dims"]
    assert list(data["ops"]) == sorted(data["ops"], key=lambda op: (-data["ops"][op]["count"], op))
    assert "op " not in first.stdout  # no table


@pytest.mark.parametrize("name,content", [("missing.onnx", None), ("empty.onnx", b""),
                                          ("noise.onnx", bytes(range(256)) * 8),
                                          ("model.pt", b"PK\x03\x04" + b"\0" * 60)])
def test_an_unreadable_file_gives_the_one_line_error_of_optimize(tmp_path: Path, name: str,
                                                                 content: bytes | None) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    proc = graphopt("inspect", path)
    expected = graphopt("optimize", path, "-o", tmp_path / "out.onnx")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("graphopt: error: ")
    assert proc.stderr == expected.stderr


def test_a_bad_fix_dims_is_a_usage_error(tiny_cnn: Path) -> None:
    proc = graphopt("inspect", tiny_cnn, "--fix-dims", "batch=1")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines() == [
        "graphopt: error: --fix-dims batch: no input or dim of that name (inputs: x [N,3,16,16])"]


def _on_terminal(*args: object) -> str:
    """What ``graphopt`` prints when its stdout is a pseudo-terminal (colours allowed)."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    env.update(TERM="xterm-256color", COLUMNS="120")
    code, text = run_on_a_terminal([str(a) for a in args], env, with_stderr=False)
    assert code == 0
    return text


def test_a_terminal_gets_styled_tables_unless_no_color(tiny_cnn: Path) -> None:
    assert "\x1b[" in _on_terminal("inspect", tiny_cnn)
    plain = _on_terminal("inspect", tiny_cnn, "--no-color")
    assert "\x1b[" not in plain and "fix them for MACs:" in plain


def test_help_documents_every_option_and_the_exit_codes() -> None:
    proc = graphopt("inspect", "--help")
    text = " ".join(proc.stdout.split())
    for flag in ("--json", "--fix-dims SPEC", "--no-color"):
        assert flag in text
    assert "exit codes: 0 success 2 usage error" in text
