"""Models whose declared sizes are absurd must end quickly and cleanly, never in an allocation of
terabytes: huge input dims (check inputs), Range/Expand/ConstantOfShape to 10^12 elements (folding and
shape inference), and a MemoryError anywhere (exit 7, one line, nothing written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt.api
from graphopt.cli import main


def _save(tmp_path: Path, nodes: list, inputs: list, outputs: list, inits: list) -> Path:
    path = tmp_path / "hostile.onnx"
    onnx.save(h.make_model(h.make_graph(nodes, "g", inputs, outputs, inits),
                           opset_imports=[h.make_opsetid("", 17)]), str(path))
    return path


def _run(path: Path, *extra: str) -> tuple[int, Path]:
    out = path.with_name("out.onnx")
    return main(["optimize", str(path), "-o", str(out), "-q", *extra]), out


def test_huge_declared_input_dims_are_a_usage_error_before_any_allocation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = [1_000_000, 1_000_000]
    path = _save(tmp_path, [h.make_node("Relu", ["x"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, big)],
                 [h.make_tensor_value_info("y", T.FLOAT, big)], [])
    code, out = _run(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and not out.exists()
    assert len(err) == 1 and "input 'x' has shape [1000000, 1000000]" in err[0] and "--input-shape" in err[0]
    code, out = _run(path, "--check", "off")  # without checks nothing needs the inputs
    assert code == 0 and onnx.load(str(out)).graph.node[0].op_type == "Relu"


@pytest.mark.parametrize("op", ["Range", "Expand", "ConstantOfShape", "Tile"])
def test_constant_generators_of_10_to_the_12_elements_are_not_folded(tmp_path: Path, op: str) -> None:
    """fold-constants predicts the output size from the constant inputs and leaves the node; shape
    inference runs without data propagation when a Range would materialise that many values."""
    inits = {"Range": [nh.from_array(np.array(0, np.int64), "a"),
                       nh.from_array(np.array(10**12, np.int64), "b"),
                       nh.from_array(np.array(1, np.int64), "c")],
             "Expand": [nh.from_array(np.ones(1, np.float32), "a"),
                        nh.from_array(np.array([10**6, 10**6], np.int64), "b")],
             "ConstantOfShape": [nh.from_array(np.array([10**6, 10**6], np.int64), "a")],
             "Tile": [nh.from_array(np.ones(2, np.float32), "a"),
                      nh.from_array(np.array([10**12], np.int64), "b")]}[op]
    node = h.make_node(op, [i.name for i in inits], ["big"])
    shape = h.make_node("Shape", ["big"], ["y"])
    path = _save(tmp_path, [node, shape], [], [h.make_tensor_value_info("y", T.INT64, None)], inits)
    code, out = _run(path, "--check", "off")
    assert code == 0 and out.stat().st_size < 10_000  # nothing of that size was materialised
    expected = {"Range": [10**12], "Expand": [10**6, 10**6], "ConstantOfShape": [10**6, 10**6],
                "Tile": [2 * 10**12]}[op]
    # the shape is known without computing the tensor: Shape folds, the generator is dead code
    (constant,) = onnx.load(str(out)).graph.node
    assert constant.op_type == "Constant" and nh.to_array(constant.attribute[0].t).tolist() == expected


@pytest.mark.parametrize("op", ["Range", "ConstantOfShape"])
def test_huge_constant_generators_feeding_arithmetic_are_left_alone(tmp_path: Path, op: str) -> None:
    """When the big tensor itself is needed (ReduceSum of it), the node is kept, not evaluated."""
    inits = {"Range": [nh.from_array(np.array(0, np.int64), "a"),
                       nh.from_array(np.array(10**12, np.int64), "b"),
                       nh.from_array(np.array(1, np.int64), "c")],
             "ConstantOfShape": [nh.from_array(np.array([10**6, 10**6], np.int64), "a")]}[op]
    nodes = [h.make_node(op, [i.name for i in inits], ["big"]), h.make_node("ReduceSum", ["big"], ["y"])]
    path = _save(tmp_path, nodes, [], [h.make_tensor_value_info("y", T.INT64 if op == "Range" else T.FLOAT,
                                                                 None)], inits)
    code, out = _run(path, "--check", "off")
    assert code == 0
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == [op, "ReduceSum"]


def test_out_of_memory_anywhere_is_exit_7_with_one_line_and_no_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = _save(tmp_path, [h.make_node("Relu", ["x"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, [2])],
                 [h.make_tensor_value_info("y", T.FLOAT, [2])], [])

    def exhausted(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise MemoryError
    monkeypatch.setattr(graphopt.api, "optimize", exhausted)
    code, out = _run(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 7 and not out.exists() and list(tmp_path.iterdir()) == [path]
    assert len(err) == 1 and err[0].startswith("graphopt: error: out of memory")
