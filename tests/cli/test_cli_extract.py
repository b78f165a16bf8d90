"""`graphopt extract MODEL --inputs ... --outputs ... -o SUB`: a closed cut between named tensors is
written, checked and equal to the original's tensors; an open cut, an unknown name, an untypable tensor
and a missing output folder are refused with exit 2 and nothing written; the input never changes."""

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

from graphopt.cli import main

W = np.arange(6, dtype=np.float32).reshape(2, 3) / 4


def cut_model() -> onnx.ModelProto:
    """X -> Relu = a -> Mul(a, W) = b -> Add(b, X) = c (a skip from X) -> Sigmoid = Z; and
    Y = If(sum(c) > 0) with a then-body that reads the outer ``a`` and an else-body reading ``b``."""
    then_body = h.make_graph([h.make_node("Neg", ["a"], ["t"])], "then", [],
                             [h.make_tensor_value_info("t", T.FLOAT, [2, 3])])
    else_body = h.make_graph([h.make_node("Identity", ["b"], ["e"])], "else", [],
                             [h.make_tensor_value_info("e", T.FLOAT, [2, 3])])
    nodes = [h.make_node("Relu", ["X"], ["a"], name="relu"),
             h.make_node("Mul", ["a", "W"], ["b"], name="mul"),
             h.make_node("Add", ["b", "X"], ["c"], name="add"),
             h.make_node("Sigmoid", ["c"], ["Z"], name="sig"),
             h.make_node("ReduceSum", ["c"], ["s"], name="sum", keepdims=0),
             h.make_node("Greater", ["s", "zero"], ["cond"], name="gt"),
             h.make_node("If", ["cond"], ["Y"], name="if", then_branch=then_body, else_branch=else_body)]
    graph = h.make_graph(nodes, "cut", [h.make_tensor_value_info("X", T.FLOAT, [2, 3])],
                         [h.make_tensor_value_info("Z", T.FLOAT, [2, 3]),
                          h.make_tensor_value_info("Y", T.FLOAT, [2, 3])],
                         initializer=[onnx.numpy_helper.from_array(W, "W"),
                                      onnx.numpy_helper.from_array(np.array(0, np.float32), "zero")])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(cut_model(), str(path))
    return path


def original_tensors(path: Path, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """What the original holds at ``names`` (intermediates fetched as extra outputs)."""
    proto = onnx.load(str(path))
    present = {o.name for o in proto.graph.output}
    proto.graph.output.extend(onnx.ValueInfoProto(name=n) for n in names if n not in present)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"X": x})))


def run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_extract_writes_the_closed_cut_with_intermediates_as_inputs(
        model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = model_path.read_bytes()
    out = model_path.with_name("sub.onnx")
    assert main(["extract", str(model_path), "--inputs", "a,X", "--outputs", "Z", "-o", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "kept 3 of 7 nodes (4 removed)" in stdout
    assert "max abs err 0)" in stdout and stdout.endswith(f"wrote {out}\n")
    sub = onnx.load(str(out))
    onnx.checker.check_model(sub, full_check=True)
    assert [i.name for i in sub.graph.input] == ["a", "X"]
    assert [o.name for o in sub.graph.output] == ["Z"]
    assert [n.op_type for n in sub.graph.node] == ["Mul", "Add", "Sigmoid"]
    assert [i.name for i in sub.graph.initializer] == ["W"]  # 'zero' is not needed
    a_type = sub.graph.input[0].type.tensor_type
    assert (a_type.elem_type, [d.dim_value for d in a_type.shape.dim]) == (T.FLOAT, [2, 3])
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    held = original_tensors(model_path, x, ["a"])
    np.testing.assert_array_equal(run(out, {"a": held["a"], "X": x})["Z"], held["Z"])
    assert model_path.read_bytes() == before


def test_extract_keeps_a_body_whole_with_its_outer_reads(model_path: Path) -> None:
    """The If's then-body reads the outer ``a``: with ``a`` an input, the If comes whole."""
    out = model_path.with_name("sub.onnx")
    assert main(["extract", str(model_path), "--inputs", "a,X", "--outputs", "Y", "-o", str(out)]) == 0
    sub = onnx.load(str(out))
    assert [n.op_type for n in sub.graph.node] == ["Mul", "Add", "ReduceSum", "Greater", "If"]
    assert [o.name for o in sub.graph.output] == ["Y"]
    for x in (np.ones((2, 3), np.float32), -np.ones((2, 3), np.float32) * 9):  # both branches
        held = original_tensors(model_path, x, ["a"])
        np.testing.assert_array_equal(run(out, {"a": held["a"], "X": x})["Y"], held["Y"])


def test_extract_counts_a_kept_bodys_outer_reads_as_needed(
        model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only the If's then-body reads ``a``: from b and X it pulls in ``Relu(X)``; from b and c (no X)
    the cut is open at ``a``, read by the If."""
    out = model_path.with_name("sub.onnx")
    assert main(["extract", str(model_path), "--inputs", "b,X", "--outputs", "Y", "-o", str(out)]) == 0
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops == ["Relu", "Add", "ReduceSum", "Greater", "If"]
    capsys.readouterr()
    out.unlink()
    assert main(["extract", str(model_path), "--inputs", "b,c", "--outputs", "Y", "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        "graphopt: error: the cut is open: tensor 'a' (read by If node 'if') is needed but neither produced "
        "inside the cut, a weight, nor in --inputs; add it to --inputs (--inputs b,c,a)\n")
    assert not out.exists()


def test_extract_refuses_an_open_cut_naming_the_nearest_missing_tensor(
        model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``c = Add(b, X)`` needs X: the skip connection is named, with the node that reads it."""
    before = model_path.read_bytes()
    out = model_path.with_name("sub.onnx")
    assert main(["extract", str(model_path), "--inputs", "b", "--outputs", "Z", "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        "graphopt: error: the cut is open: tensor 'X' (read by Add node 'add') is needed but neither "
        "produced inside the cut, a weight, nor in --inputs; add it to --inputs (--inputs b,X)\n")
    assert not out.exists() and model_path.read_bytes() == before


def test_extract_refuses_an_unknown_name_listing_close_ones(
        model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = model_path.with_name("sub.onnx")
    assert main(["extract", str(model_path), "--inputs", "X", "--outputs", "cond2", "-o", str(out)]) == 2
    assert capsys.readouterr().err == ("graphopt: error: --outputs: the model has no tensor 'cond2'; "
                                       "close names: cond\n")
    assert main(["extract", str(model_path), "--inputs", "X", "--outputs", "t", "-o", str(out)]) == 2
    assert "tensor 't' lives inside the body of If node 'if'" in capsys.readouterr().err
    assert main(["extract", str(model_path), "--inputs", "W", "--outputs", "Z", "-o", str(out)]) == 2
    assert "'W' is a weight (initializer)" in capsys.readouterr().err
    assert not out.exists()


def test_extract_validates_the_output_folder_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.onnx"  # the model does not even exist: the folder is checked first
    assert main(["extract", str(missing), "--inputs", "X", "--outputs", "Z",
                 "-o", str(tmp_path / "no" / "sub.onnx")]) == 2
    assert capsys.readouterr().err == f"graphopt: error: output folder {tmp_path / 'no'} does not exist\n"


def test_extract_refuses_a_tensor_whose_type_nothing_can_tell(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A custom op's output: shape inference cannot type it, and --no-check allows no run."""
    graph = h.make_graph([h.make_node("Mystery", ["X"], ["m"], domain="my.ops"),
                          h.make_node("Relu", ["m"], ["R"])], "g",
                         [h.make_tensor_value_info("X", T.FLOAT, [2])],
                         [h.make_tensor_value_info("R", T.FLOAT, [2])])
    path = tmp_path / "custom.onnx"
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 18), h.make_opsetid("my.ops", 1)]),
              str(path))
    out = tmp_path / "sub.onnx"
    assert main(["extract", str(path), "--inputs", "m", "--outputs", "R", "-o", str(out), "--no-check"]) == 2
    assert capsys.readouterr().err == (
        "graphopt: error: --inputs: the type of 'm' is unknown: shape inference cannot tell it; add a "
        "value_info for it to the model or let a run tell it (drop --check off / --no-check)\n")
    assert not out.exists()


def test_python_dash_m_graphopt_extract(model_path: Path) -> None:
    out = model_path.with_name("sub.onnx")
    proc = subprocess.run([sys.executable, "-m", "graphopt", "extract", str(model_path), "--inputs", "X",
                           "--outputs", "c", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    sub = onnx.load(str(out))
    assert [n.op_type for n in sub.graph.node] == ["Relu", "Mul", "Add"]
    assert [o.name for o in sub.graph.output] == ["c"]
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    np.testing.assert_array_equal(run(out, {"X": x})["c"], original_tensors(model_path, x, ["c"])["c"])
    proc = subprocess.run([sys.executable, "-m", "graphopt", "extract", str(model_path), "--inputs", "b",
                           "--outputs", "Z", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "tensor 'X' (read by Add node 'add')" in proc.stderr


def test_a_new_input_typed_without_a_shape_takes_the_rank_of_the_run() -> None:
    """Inference may give a dtype but no shape (ppocr-rec's transpose_43.tmp_0); onnx.checker needs a
    shape on a graph input, so the rank comes from the run (dims unknown), and without a run it is
    refused."""
    from graphopt import Value, import_model
    from graphopt.errors import UnknownTypeError
    from graphopt.extract import ensure_types

    model = import_model(cut_model())
    value = Value("v", dtype=T.FLOAT)
    ensure_types(model, [value], "--outputs")  # an output needs only its dtype
    with pytest.raises(UnknownTypeError, match="the type of 'v' is unknown"):
        ensure_types(model, [value], "--inputs", rank=True)
    ensure_types(model, [value], "--inputs", {value: np.zeros((2, 5, 1), np.float32)}, rank=True)
    assert (value.dtype, value.shape) == (T.FLOAT, (None, None, None))
