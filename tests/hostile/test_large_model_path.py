"""The path a model over 2 GB takes, run on a small model: with the size limits lowered, `graphopt
optimize` (no --external-data flag) checks the model with its weights fed in place as inputs (no copy
written or held twice) and writes its output with a data file, atomically, without touching the
input's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import graphopt.numerics.run as run_module
import graphopt.numerics.session as session_module
import graphopt.onnx_io.save as save_module
from graphopt.cli import main


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model(folder: Path) -> Path:
    """MatMul-Relu-MatMul with 2 x 64 KiB of weights stored as external data, plus a neutral Mul."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((64, 256), dtype=np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((256, 64), dtype=np.float32), "w2"),
             numpy_helper.from_array(np.ones(64, np.float32), "one")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["o"]), helper.make_node("Mul", ["o", "one"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = folder / "big.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="big.onnx.data",
                    size_threshold=0)
    return path


def test_a_model_over_the_limits_is_checked_and_written_with_external_data(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    source = _model(tmp_path)
    data = tmp_path / "big.onnx.data"
    digests = (_digest(source), _digest(data))
    monkeypatch.setattr(save_module, "AUTO_EXTERNAL_BYTES", 1000)
    monkeypatch.setattr(run_module, "INLINE_LIMIT", 1000)
    fed: list[set[str]] = []
    real_run = session_module.ModelSession.run

    def spy(self, feeds, outputs=None):  # type: ignore[no-untyped-def]
        fed.append(set(feeds) | set(self.prepared.fixed_feeds or {}))
        return real_run(self, feeds, outputs)
    monkeypatch.setattr(session_module.ModelSession, "run", spy)
    out = tmp_path / "out" / "big.opt.onnx"
    out.parent.mkdir()
    assert main(["optimize", str(source), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    # every numeric check fed the weights in place (graph inputs backed by the IR's mapped arrays)
    assert fed and all({"x", "w1", "w2"} <= names for names in fed)
    # the output has its own data file beside it, nothing else is left there
    assert sorted(p.name for p in out.parent.iterdir()) == ["big.opt.onnx", "big.opt.onnx.data"]
    proto = onnx.load(str(out), load_external_data=False)
    locations = {e.value for t in proto.graph.initializer for e in t.external_data if e.key == "location"}
    assert locations == {"big.opt.onnx.data"}
    assert [n.op_type for n in proto.graph.node] == ["MatMul", "Relu", "MatMul"]  # x * 1 removed
    onnx.checker.check_model(str(out))
    x = {"x": np.random.default_rng(1).standard_normal((2, 64), dtype=np.float32)}
    before = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).run(None, x)[0]
    after = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, x)[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
    # the input and its data file are byte-identical
    assert (_digest(source), _digest(data)) == digests


def test_an_interrupted_write_of_the_data_file_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C while the external data is being written: exit 130, no output, no data file, no temp."""
    source = _model(tmp_path)
    monkeypatch.setattr(save_module, "AUTO_EXTERNAL_BYTES", 1000)

    def interrupted(plan, path):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt
    monkeypatch.setattr(save_module, "_write_data", interrupted)
    out = tmp_path / "out" / "big.opt.onnx"
    out.parent.mkdir()
    assert main(["optimize", str(source), "-o", str(out), "--check", "off"]) == 130
    assert "interrupted; no output was written" in capsys.readouterr().err
    assert list(out.parent.iterdir()) == []
