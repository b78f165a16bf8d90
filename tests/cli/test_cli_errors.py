"""Every user mistake: exactly one stderr line 'graphopt: error: ...', a non-zero code, no output file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from graphopt.cli import main

Setup = Callable[[Path], list[str]]  # given the folder holding tiny_cnn.onnx, returns the argv


def _random_bytes(folder: Path) -> list[str]:
    path = folder / "noise.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return ["optimize", str(path), "-o", str(folder / "out.onnx")]


def _truncated(folder: Path) -> list[str]:
    data = (folder / "tiny_cnn.onnx").read_bytes()
    path = folder / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return ["optimize", str(path), "-o", str(folder / "out.onnx")]


def _empty(folder: Path) -> list[str]:
    (folder / "empty.onnx").write_bytes(b"")
    return ["optimize", str(folder / "empty.onnx"), "-o", str(folder / "out.onnx")]


def _opt(*extra: str) -> Setup:
    return lambda folder: ["optimize", str(folder / "tiny_cnn.onnx"), "-o", str(folder / "out.onnx"), *extra]


CASES: dict[str, tuple[Setup, int, str]] = {
    "missing_file": (lambda f: ["optimize", str(f / "missing.onnx"), "-o", str(f / "out.onnx")], 2,
                     "missing.onnx: no such file"),
    "directory_as_input": (lambda f: ["optimize", str(f), "-o", str(f / "out.onnx")], 2,
                           "is a directory, expected an .onnx file"),
    "empty_file": (_empty, 2, "empty.onnx: file is empty"),
    "random_bytes": (_random_bytes, 2, "noise.onnx: not "),
    "truncated_model": (_truncated, 2, "truncated.onnx: not "),
    "unknown_pass": (_opt("--pipeline", "eliminate-dead-code,fold-constant"), 2,
                     "unknown pass 'fold-constant'; did you mean 'fold-constants'? "),
    "unknown_disabled_pass": (_opt("--disable", "nope"), 2, "unknown pass 'nope'"),
    "pipeline_syntax": (_opt("--pipeline", "fixpoint(fold-constants"), 2,
                        "pipeline 'fixpoint(fold-constants', column 24: expected ')' closing fixpoint("),
    "bad_option_value": (_opt("--pipeline", "fold-constants{growth_allowance=lots}"), 2,
                         "option growth_allowance='lots' of pass 'fold-constants' is not a valid int"),
    "private_option": (_opt("--pipeline", "fold-constants{_inferred=1}"), 2,
                       "pass 'fold-constants' has no option '_inferred'"),
    "bad_input_shape_syntax": (_opt("--input-shape", "x=a,b"), 2,
                               "--input-shape 'x=a,b': expected NAME=D0,D1,... with integers"),
    "bad_input_shape_rank": (_opt("--input-shape", "x=1,3"), 2,
                             "--input-shape x: shape [1, 3] has rank 2, the model declares "
                             "x float32[N,3,16,16] (rank 4)"),
    "missing_plugin": (lambda f: _opt("--plugin", str(f / "nope.py"))(f), 2, "nope.py' not found"),
    "missing_inputs_npz": (lambda f: _opt("--inputs", str(f / "feeds.npz"))(f), 2,
                           "feeds.npz: cannot read as .npz"),
}


@pytest.mark.parametrize("setup,code,message", CASES.values(), ids=CASES.keys())
def test_bad_input_gives_one_error_line_a_nonzero_code_and_no_output(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str], setup: Setup, code: int, message: str) -> None:
    """The line starts with 'graphopt: error:' and names the problem; the folder gains nothing."""
    folder = tiny_cnn.parent
    argv = setup(folder)
    before = sorted(os.listdir(folder))
    assert main(argv) == code
    stdout, stderr = capsys.readouterr()
    assert stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("graphopt: error: ")
    assert message in lines[0]
    assert sorted(os.listdir(folder)) == before


def test_missing_output_folder_is_a_usage_error_and_nothing_is_written(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o into a folder that does not exist: exit 2, the folder is not created."""
    target = tiny_cnn.parent / "no_such_dir" / "out.onnx"
    assert main(["optimize", str(tiny_cnn), "-o", str(target)]) == 2
    assert capsys.readouterr().err == f"graphopt: error: output folder {target.parent} does not exist\n"
    assert not target.parent.exists()


def test_check_of_a_missing_model_is_a_load_error(tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """graphopt check with a missing candidate: exit 2, one line."""
    missing = tiny_cnn.parent / "missing.onnx"
    assert main(["check", str(tiny_cnn), str(missing)]) == 2
    assert capsys.readouterr() == ("", f"graphopt: error: {missing}: no such file\n")
