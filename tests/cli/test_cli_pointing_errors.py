"""Errors that point the right way (issue 18): files that are not ONNX, `check` of models with other
interfaces, a text file for `--inputs`, a misspelled pass; and the external-data layout kept."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import graphopt
from graphopt.errors import ModelLoadError


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphopt", *argv], capture_output=True, text=True, timeout=120
    )


def _torch_zip(path: Path) -> Path:
    """What torch.save writes today: a zip archive with ``archive/data.pkl``."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weight": [1.0, 2.0]}, protocol=2))
        archive.writestr("archive/version", "3\n")
    return path


def _legacy_pickle(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": {}}, protocol=2))
    return path


def _tflite(path: Path) -> Path:
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(64))
    return path


PYTORCH = "this is a PyTorch file, export it to ONNX first (torch.onnx.export)"


@pytest.mark.parametrize(
    "make, name, hint",
    [
        (_torch_zip, "model.pt", PYTORCH),
        (_torch_zip, "weights.bin", PYTORCH),  # recognised by content, whatever its name
        (_legacy_pickle, "model.pth", PYTORCH),
        (
            _tflite,
            "model.tflite",
            "this is a TensorFlow Lite model; convert it to ONNX first (python -m tf2onnx.convert --tflite)",
        ),
    ],
)
def test_files_that_are_not_onnx_say_what_they_are(tmp_path: Path, make, name: str, hint: str) -> None:  # noqa: ANN001
    path = make(tmp_path / name)
    for command in ("optimize", "inspect", "check") if name != "weights.bin" else ("optimize",):
        argv = [command, str(path)] + ([str(path)] if command == "check" else [])
        proc = _run(*argv)
        assert proc.returncode == 2, (command, proc.stderr)
        assert proc.stderr.count("\n") == 1 and hint in proc.stderr, (command, proc.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


def test_a_missing_model_is_an_ordinary_file_not_found_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    with pytest.raises(FileNotFoundError) as caught:
        graphopt.optimize(missing)
    assert isinstance(caught.value, ModelLoadError) and isinstance(caught.value, OSError)
    assert str(caught.value) == f"{missing}: no such file"
    proc = _run("optimize", str(missing))
    assert (proc.returncode, proc.stderr) == (2, f"graphopt: error: {missing}: no such file\n")


def _model(path: Path, shape: list, dtype: int = T.FLOAT, extra_input: bool = False) -> Path:
    inputs = [h.make_tensor_value_info("x", dtype, shape)]
    nodes = [h.make_node("Relu", ["x"], ["y"])]
    if extra_input:
        inputs.append(h.make_tensor_value_info("z", dtype, shape))
        nodes = [h.make_node("Add", ["x", "z"], ["s"]), h.make_node("Relu", ["s"], ["y"])]
    graph = h.make_graph(nodes, "g", inputs, [h.make_tensor_value_info("y", dtype, shape)])
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8), path)
    return path


@pytest.mark.parametrize(
    "candidate, expected",
    [
        (
            {"shape": [1, 8], "dtype": T.DOUBLE},
            "input 'x' is float32[batch,8] in the reference, float64[1,8] in the candidate",
        ),
        ({"shape": [2, 9]}, "input 'x' is float32[batch,8] in the reference, float32[2,9] in the candidate"),
        ({"shape": ["batch", 8], "extra_input": True}, "input 'z' only in the candidate"),
    ],
)
def test_check_of_models_with_other_interfaces_says_which_inputs_differ(
    tmp_path: Path, candidate: dict, expected: str
) -> None:
    ref = _model(tmp_path / "ref.onnx", ["batch", 8])
    cand = _model(tmp_path / "cand.onnx", **candidate)
    proc = _run("check", str(ref), str(cand))
    assert proc.returncode == 1
    assert proc.stdout == f"NOT equivalent: the interfaces differ: {expected}\n"


def test_check_runs_at_the_dims_the_candidate_fixed(tmp_path: Path) -> None:
    ref = _model(tmp_path / "ref.onnx", ["batch", 8])
    fixed = tmp_path / "fixed.onnx"
    assert _run("optimize", str(ref), "-o", str(fixed), "--fix-dims", "batch=3", "-q").returncode == 0
    proc = _run("check", str(ref), str(fixed))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x: float32[3,8]" in proc.stdout and "equivalent: 1 outputs" in proc.stdout


def test_a_text_file_for_inputs_is_not_an_npz(tiny_cnn: Path) -> None:
    text = tiny_cnn.with_name("inputs.npz")
    text.write_text("x = 1, 2, 3\n")
    proc = _run("optimize", str(tiny_cnn), "--inputs", str(text))
    assert proc.returncode == 2
    assert proc.stderr == (
        f"graphopt: error: --inputs {text}: a text file, not an .npz; save the inputs with "
        "numpy.savez(PATH, NAME=array, ...) (an .npz by input name) or numpy.save for one "
        "input\n"
    )


def test_a_misspelled_pass_name_offers_the_right_one(tiny_cnn: Path) -> None:
    proc = _run("optimize", str(tiny_cnn), "--pipeline", "fold-constant")
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        "graphopt: error: unknown pass 'fold-constant'; did you mean 'fold-constants'?"
    )


def _external_model(folder: Path) -> Path:
    """y = MatMul(x, W) + b with W (16 KB) and b stored in model.data beside model.onnx."""
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((64, 64)).astype(np.float32), rng.standard_normal(64).astype(np.float32)
    graph = h.make_graph(
        [
            h.make_node("MatMul", ["x", "W"], ["m"]),
            h.make_node("Add", ["m", "b"], ["a"]),
            h.make_node("Identity", ["a"], ["y"]),
        ],
        "g",
        [h.make_tensor_value_info("x", T.FLOAT, [2, 64])],
        [h.make_tensor_value_info("y", T.FLOAT, [2, 64])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")],
    )
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)], ir_version=8)
    path = folder / "model.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="model.data", size_threshold=0)
    return path


def test_an_input_with_external_data_keeps_that_layout(tmp_path: Path) -> None:
    src = _external_model(tmp_path)
    out = tmp_path / "out" / "model.opt.onnx"
    out.parent.mkdir()
    proc = _run("optimize", str(src), "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    written = onnx.load(str(out), load_external_data=False)
    locations = {
        entry.value for t in written.graph.initializer for entry in t.external_data if entry.key == "location"
    }
    assert locations == {"model.opt.onnx.data"}
    assert (out.parent / "model.opt.onnx.data").stat().st_size >= 64 * 64 * 4
    assert out.stat().st_size < 4096  # the weights are not inline
    assert [n.op_type for n in written.graph.node] == ["Gemm"]
    x = np.random.default_rng(1).standard_normal((2, 64)).astype(np.float32)
    want = ort.InferenceSession(str(src)).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(out)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_an_inline_input_stays_inline(tiny_cnn: Path) -> None:
    out = tiny_cnn.with_name("o.onnx")
    assert _run("optimize", str(tiny_cnn), "-o", str(out), "-q").returncode == 0
    assert not out.with_name("o.onnx.data").exists()
    assert all(not t.external_data for t in onnx.load(str(out), load_external_data=False).graph.initializer)
