"""`graphopt optimize M --outputs a,b`: only these outputs are kept (an intermediate becomes one, typed),
the dead code goes in the pipeline, the checks compare the kept outputs; an unknown name is exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_cli_extract import cut_model, original_tensors, run

from graphopt import OptimizeOptions, optimize
from graphopt.cli import main
from graphopt.errors import UnknownTensorError


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(cut_model(), str(path))
    return path


def test_outputs_keeps_an_intermediate_and_the_pipeline_drops_the_rest(
        model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = model_path.read_bytes()
    out, report = model_path.with_name("o.onnx"), model_path.with_name("r.json")
    assert main(["optimize", str(model_path), "--outputs", "b,Z", "-o", str(out),
                 "--report", str(report)]) == 0
    capsys.readouterr()
    written = onnx.load(str(out))
    assert [o.name for o in written.graph.output] == ["b", "Z"]
    b_type = written.graph.output[0].type.tensor_type
    assert (b_type.elem_type, [d.dim_value for d in b_type.shape.dim]) == (onnx.TensorProto.FLOAT, [2, 3])
    assert [n.op_type for n in written.graph.node] == ["Relu", "Mul", "Add", "Sigmoid"]  # If chain gone
    x = np.array([[1, -2, 3], [-4, 5, -6]], np.float32)
    held, got = original_tensors(model_path, x, ["b"]), run(out, {"X": x})
    np.testing.assert_allclose(got["b"], held["b"], rtol=1e-6)
    np.testing.assert_allclose(got["Z"], held["Z"], rtol=1e-6)
    dce = next(p for p in json.loads(report.read_text())["passes"] if p["name"] == "eliminate-dead-code")
    assert dce["status"] == "changed" and dce["checks"]["numeric"]["ok"]  # checked on the kept outputs
    assert model_path.read_bytes() == before


def test_outputs_refuses_an_unknown_name_listing_close_ones(
        model_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = model_path.with_name("o.onnx")
    assert main(["optimize", str(model_path), "--outputs", "Z,Yy", "-o", str(out)]) == 2
    assert capsys.readouterr().err == \
        "graphopt: error: --outputs: the model has no tensor 'Yy'; close names: Y\n"
    assert main(["optimize", str(model_path), "--outputs", "Z,Z", "-o", str(out)]) == 2
    assert capsys.readouterr().err == "graphopt: error: --outputs: tensor 'Z' is named twice\n"
    assert not out.exists()


def test_outputs_option_of_the_api_sets_the_checked_outputs(model_path: Path) -> None:
    result = optimize(str(model_path), OptimizeOptions(outputs=("c",)))
    assert [v.name for v in result.model.graph.outputs] == ["c"]
    assert [n.op_type for n in result.model.graph] == ["Relu", "Mul", "Add"]
    with pytest.raises(UnknownTensorError, match="no tensor 'nope'"):
        optimize(str(model_path), OptimizeOptions(outputs=("nope",)))


def test_python_dash_m_graphopt_optimize_outputs(model_path: Path) -> None:
    out = model_path.with_name("o.onnx")
    proc = subprocess.run([sys.executable, "-m", "graphopt", "optimize", str(model_path), "--outputs", "Y",
                           "-o", str(out), "-q"], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
    written = onnx.load(str(out))
    assert [o.name for o in written.graph.output] == ["Y"]
    assert "Sigmoid" not in [n.op_type for n in written.graph.node]
