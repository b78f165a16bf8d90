"""`optimize --fix-dims`, `--fold-size-limit` and `--skip-shape-inference`, end to end through the CLI:
the output model's interface, what folding then removes, values equal to the original's, the refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from graphopt.cli import main


def _dims(info: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]


def _flatten_by_shape(path: Path) -> Path:
    """y = Reshape(x + bias, [Shape(x)[0], -1]) over x ['batch', 3, 'h', 'w'], and a second input m
    ['batch', 5] added to a Sum over y: the Reshape target is computed at run time from the batch dim."""
    nodes = [
        h.make_node("Add", ["x", "bias"], ["xb"]),
        h.make_node("Shape", ["xb"], ["shape"]),
        h.make_node("Gather", ["shape", "zero"], ["batch"], axis=0),
        h.make_node("Unsqueeze", ["batch", "axes"], ["batch1"]),
        h.make_node("Concat", ["batch1", "minus_one"], ["target"], axis=0),
        h.make_node("Reshape", ["xb", "target"], ["flat"]),
        h.make_node("ReduceSum", ["flat", "axes1"], ["total"], keepdims=1),
        h.make_node("Add", ["total", "m"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.linspace(-1, 1, 3, dtype=np.float32).reshape(1, 3, 1, 1), "bias"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array([0], np.int64), "axes"),
             numpy_helper.from_array(np.array([1], np.int64), "axes1"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, ["batch", 3, "h", "w"]),
                                      h.make_tensor_value_info("m", T.FLOAT, ["batch", 5])],
                         [h.make_tensor_value_info("y", T.FLOAT, ["batch", 5])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return path


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_fix_whole_shape_folds_the_shape_arithmetic_and_keeps_values(tmp_path: Path) -> None:
    src = _flatten_by_shape(tmp_path / "m.onnx")
    before = src.read_bytes()
    out = tmp_path / "fixed.onnx"
    assert main(["optimize", str(src), "-o", str(out), "--fix-dims", "x=2,3,4,?", "-q"]) == 0
    model = onnx.load(out)
    assert [_dims(i) for i in model.graph.input] == [[2, 3, 4, "w"], [2, 5]]  # batch is one size
    assert _dims(model.graph.output[0]) == [2, 5]
    ops = [n.op_type for n in model.graph.node]
    assert "Shape" not in ops and "Concat" not in ops
    reshape = next(n for n in model.graph.node if n.op_type == "Reshape")
    target = next(i for i in model.graph.initializer if i.name == reshape.input[1])
    assert numpy_helper.to_array(target).tolist() == [2, -1]
    rng = np.random.default_rng(0)
    feeds = {"x": rng.standard_normal((2, 3, 4, 7)).astype(np.float32),
             "m": rng.standard_normal((2, 5)).astype(np.float32)}
    np.testing.assert_allclose(_run(out, feeds)[0], _run(src, feeds)[0], rtol=1e-6)
    assert src.read_bytes() == before


def test_fix_a_dim_name_everywhere_and_an_axis_form(tmp_path: Path) -> None:
    src = _flatten_by_shape(tmp_path / "m.onnx")
    by_name, by_axis = tmp_path / "a.onnx", tmp_path / "b.onnx"
    assert main(["optimize", str(src), "-o", str(by_name), "--fix-dims", "batch=3", "-q"]) == 0
    assert main(["optimize", str(src), "-o", str(by_axis), "--fix-dims", "x:-1=8", "-q"]) == 0
    fixed = onnx.load(by_name)
    assert [_dims(i) for i in fixed.graph.input] == [[3, 3, "h", "w"], [3, 5]]
    assert "Shape" not in [n.op_type for n in fixed.graph.node]
    assert [_dims(i) for i in onnx.load(by_axis).graph.input] == [["batch", 3, "h", 8], ["batch", 5]]


def test_placeholder_names_are_not_shared(tmp_path: Path) -> None:
    """Paddle writes '?' for height and width alike: fixing one leaves the other dynamic."""
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [1, 3, "?", "?"])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 3, "?", "?"])])
    src, out = tmp_path / "p.onnx", tmp_path / "q.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8), src)
    assert main(["optimize", str(src), "-o", str(out), "--fix-dims", "x:2=48", "-q"]) == 0
    model = onnx.load(out)
    assert _dims(model.graph.input[0]) == [1, 3, 48, "?"]


@pytest.mark.parametrize(("spec", "message"), [
    ("batchh=1", "--fix-dims batchh: no input or dim of that name; did you mean 'batch'?"),
    ("x:1=4", "--fix-dims x:1=4: that dim is 3 in the model (x [batch,3,h,w]); "
              "only dynamic dims can be fixed"),
    ("x:4=1", "--fix-dims x:4: axis 4 is out of range for 4 dims"),
    ("x=1,3,4", "--fix-dims x: the input has 4 dims ([batch,3,h,w]), 3 given"),
    ("batch=0", "--fix-dims batch: sizes must be at least 1, not 0"),
    ("x=1,3,a,b", "--fix-dims 'x=1,3,a,b': sizes must be integers or '?' (keep dynamic)"),
])
def test_refusals_name_the_problem_and_write_nothing(tmp_path: Path, spec: str, message: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    src = _flatten_by_shape(tmp_path / "m.onnx")
    out = tmp_path / "never.onnx"
    assert main(["optimize", str(src), "-o", str(out), "--fix-dims", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"graphopt: error: {message}"), err
    assert len(err.splitlines()) == 1
    assert not out.exists()


def _constant_of_shape_model(path: Path) -> Path:
    """y = x + ConstantOfShape([32, 32]) of 0.5: folding makes a 4 KB constant from 16 bytes."""
    nodes = [h.make_node("ConstantOfShape", ["shape"], ["half"],
                         value=h.make_tensor("v", T.FLOAT, [1], [0.5])),
             h.make_node("Add", ["x", "half"], ["y"])]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [32, 32])],
                         [h.make_tensor_value_info("y", T.FLOAT, [32, 32])],
                         [numpy_helper.from_array(np.array([32, 32], np.int64), "shape")])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8), path)
    return path


def test_fold_size_limit_trades_bytes_for_nodes_only_when_asked(tmp_path: Path) -> None:
    src = _constant_of_shape_model(tmp_path / "c.onnx")
    default, big, small = tmp_path / "d.onnx", tmp_path / "big.onnx", tmp_path / "small.onnx"
    assert main(["optimize", str(src), "-o", str(default), "-q"]) == 0
    assert main(["optimize", str(src), "-o", str(big), "--fold-size-limit", "4096", "-q"]) == 0
    assert main(["optimize", str(src), "-o", str(small), "--fold-size-limit", "4095", "-q"]) == 0
    assert [n.op_type for n in onnx.load(default).graph.node] == ["ConstantOfShape", "Add"]
    assert [n.op_type for n in onnx.load(small).graph.node] == ["ConstantOfShape", "Add"]
    folded = onnx.load(big)
    assert [n.op_type for n in folded.graph.node] == ["Add"]
    assert [numpy_helper.to_array(i).nbytes for i in folded.graph.initializer] == [4096]
    x = np.random.default_rng(1).standard_normal((32, 32)).astype(np.float32)
    np.testing.assert_array_equal(_run(big, {"x": x})[0], _run(src, {"x": x})[0])


def test_skip_shape_inference_never_calls_onnx_inference(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = onnx.shape_inference.infer_shapes

    def counting(*args: object, **kwargs: object) -> onnx.ModelProto:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", counting)
    src = _flatten_by_shape(tmp_path / "m.onnx")
    assert main(["optimize", str(src), "-o", str(tmp_path / "a.onnx"), "-q"]) == 0
    assert calls, "the default run infers shapes (else this test proves nothing)"
    calls.clear()
    assert main(["optimize", str(src), "-o", str(tmp_path / "b.onnx"), "--skip-shape-inference", "-q"]) == 0
    assert calls == []
    rng = np.random.default_rng(2)
    feeds = {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32),
             "m": rng.standard_normal((2, 5)).astype(np.float32)}
    np.testing.assert_allclose(_run(tmp_path / "b.onnx", feeds)[0], _run(src, feeds)[0], rtol=1e-6)


def test_fix_dims_in_a_real_subprocess(tmp_path: Path) -> None:
    src = _flatten_by_shape(tmp_path / "m.onnx")
    out = tmp_path / "s.onnx"
    done = subprocess.run([sys.executable, "-m", "graphopt", "optimize", str(src), "-o", str(out),
                           "--fix-dims", "batch=1", "--fix-dims", "x=1,3,4,4"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert [_dims(i) for i in onnx.load(out).graph.input] == [[1, 3, 4, 4], [1, 5]]
    assert f"wrote {out}" in done.stdout
