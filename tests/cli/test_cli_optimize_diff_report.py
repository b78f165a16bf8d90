"""`optimize --diff`, `--report -` and the output paths checked before any work, through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from graphopt.cli import main

DIFF = """\
diff (nodes removed -, added +, changed ~; by pass):
  eliminate-dead-code (round 1): -4 +0 ~2 nodes, -5 +0 values
    - Cast 1, Dropout 1, Identity 1, MatMul 1: noop_cast, dropout, identity, dead_matmul
    ~ Conv 1, GlobalAveragePool 1: conv2, gap
  fold-constants (round 1): -4 +0 ~1 nodes, -7 +0 values
    - Concat 1, Gather 1, Shape 1, Unsqueeze 1: concat_shape, gather_batch, shape, unsqueeze_batch
    ~ Reshape 1: flatten
  fuse-batchnorm (round 1): -2 +1 ~1 nodes, -8 +0 values
    - BatchNormalization 1, Conv 1: bn1, conv1
    + Conv 1: conv1
    ~ Relu 1: relu1
  fuse-matmul-add (round 1): -2 +1 ~0 nodes, -1 +0 values
    - Add 1, MatMul 1: fc_add, fc_matmul
    + Gemm 1: fc_matmul"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphopt", *argv], capture_output=True, text=True, timeout=120
    )


def test_diff_lists_what_each_changing_pass_did(tiny_cnn: Path) -> None:
    proc = _run("optimize", str(tiny_cnn), "-o", str(tiny_cnn.with_name("o.onnx")), "--diff")
    assert proc.returncode == 0, proc.stderr
    assert DIFF + "\n\nsize " in proc.stdout  # after the pass table, before the summary
    ops = [n.op_type for n in onnx.load(str(tiny_cnn.with_name("o.onnx"))).graph.node]
    assert ops == ["Conv", "Relu", "Conv", "GlobalAveragePool", "Reshape", "Gemm"]


def test_diff_goes_into_the_json_report_in_full(tiny_cnn: Path) -> None:
    report = tiny_cnn.with_name("r.json")
    assert main(["optimize", str(tiny_cnn), "-q", "--diff", "--report", str(report)]) == 0
    diff = json.loads(report.read_text())["diff"]
    assert [(d["pass"], d["round"]) for d in diff] == [
        ("eliminate-dead-code", 1),
        ("fold-constants", 1),
        ("fuse-batchnorm", 1),
        ("fuse-matmul-add", 1),
    ]
    assert diff[3]["removed"] == [{"op": "Add", "node": "fc_add"}, {"op": "MatMul", "node": "fc_matmul"}]
    assert diff[3]["added"] == [{"op": "Gemm", "node": "fc_matmul"}]
    assert (
        sorted(diff[0]["values_removed"]) == diff[0]["values_removed"] and len(diff[0]["values_removed"]) == 5
    )


def test_no_diff_key_without_the_flag(tiny_cnn: Path) -> None:
    report = tiny_cnn.with_name("r.json")
    assert main(["optimize", str(tiny_cnn), "-q", "--report", str(report)]) == 0
    assert "diff" not in json.loads(report.read_text())


def test_report_dash_writes_only_json_to_stdout(tiny_cnn: Path) -> None:
    out = tiny_cnn.with_name("o.onnx")
    proc = _run("optimize", str(tiny_cnn), "-o", str(out), "--report", "-")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    data = json.loads(proc.stdout)  # the whole of stdout is one JSON document: no tables
    assert (data["nodes_before"], data["nodes_after"], data["output"]) == (16, 6, str(out))
    assert [n.op_type for n in onnx.load(str(out)).graph.node][-1] == "Gemm"


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--report", "{missing}/r.json", "--report folder {missing} does not exist"),
        ("--report", "{folder}", "--report {folder} is a folder; give a file name"),
        ("--plot", "{missing}/p.svg", "--plot folder {missing} does not exist"),
        ("--dump-ir", "{model}", "--dump-ir {model} is a file; give a folder (it is created if missing)"),
        ("-o", "{missing}/o.onnx", "output folder {missing} does not exist"),
    ],
)
def test_output_paths_are_checked_before_any_work(
    tiny_cnn: Path, flag: str, value: str, message: str
) -> None:
    names = {"missing": str(tiny_cnn.parent / "nope"), "folder": str(tiny_cnn.parent), "model": str(tiny_cnn)}
    before = sorted(p.name for p in tiny_cnn.parent.iterdir())
    proc = _run("optimize", str(tiny_cnn), flag, value.format(**names))
    assert proc.returncode == 2
    assert proc.stderr == f"graphopt: error: {message.format(**names)}\n"
    assert proc.stdout == ""
    assert sorted(p.name for p in tiny_cnn.parent.iterdir()) == before  # nothing written, not even -o


def test_dump_ir_folder_is_created_with_its_parents(tiny_cnn: Path) -> None:
    dump = tiny_cnn.parent / "a" / "b"
    assert main(["optimize", str(tiny_cnn), "-q", "--dump-ir", str(dump)]) == 0
    assert sorted(p.name for p in dump.iterdir())[0] == "001-eliminate-dead-code.onnx"
