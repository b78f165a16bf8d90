"""Hostile external data through ``graphopt optimize``: a file missing, too short, a directory, a FIFO,
bad offsets and lengths, locations outside the model's folder, wherever the tensor sits (the cases are in
external_corpus.py).

Every case must end clean (the rules of fuzz_kit.py); on top of that, data outside the model's folder
must be refused with exit 2 wherever the tensor sits, and a valid model's output must run from its own
folder (it may not keep pointing at the input's data).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from external_corpus import EXTERNAL
from fuzz_kit import assert_clean, params, run_case
from hostile_corpus import Case, place, snapshot

from graphopt.cli import main

VALID_BUGS = {f"ext-{where}-valid": "not supported: graphopt keeps sparse initializers and model-local "
              "functions verbatim, so it refuses external data in them (exit 2) rather than leave the output "
              "pointing at the input's folder" for where in ("sparse", "function")}
OUTSIDE = [c for c in EXTERNAL if "escape" in c.name or "absolute" in c.name]
VALID = [c for c in EXTERNAL if c.name.endswith("valid") or c.name.endswith("-inside")]
MISFIT = [c for c in EXTERNAL if c.name[4:] in ("missing-file", "directory", "fifo", "offset-beyond-file",
                                                 "length-beyond-file", "length-short", "offset-negative",
                                                 "offset-not-int", "file-short", "no-location")]



@pytest.mark.parametrize("case", params(EXTERNAL))
def test_hostile_external_data_ends_in_one_error_line_or_a_correct_output(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_clean(case, run_case(case, tmp_path, capsys))


@pytest.mark.parametrize("case", params(OUTSIDE))
def test_data_outside_the_model_folder_is_refused_wherever_the_tensor_sits(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = run_case(case, tmp_path, capsys)
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    # sparse initializers and function tensors are refused before any location is even resolved
    pattern = "(escapes|resolves outside) the model folder|keeps its data in an external file"
    assert re.search(pattern, outcome.stderr), outcome.stderr


@pytest.mark.parametrize("case", params(MISFIT))
def test_external_data_that_does_not_fit_the_tensor_is_refused_on_load(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Missing, unreadable, too short, or entries that contradict the tensor: exit 2 naming the tensor."""
    outcome = run_case(case, tmp_path, capsys)
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    assert outcome.stderr.startswith("graphopt: error: tensor 'w'"), outcome.stderr


@pytest.mark.parametrize("checks", ["each", "off"])
@pytest.mark.parametrize("case", params(VALID, VALID_BUGS))
def test_valid_external_data_gives_an_output_that_runs_from_its_own_folder(
        case: Case, checks: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """run_case writes to ``out/``, away from the input's data: onnx.checker and onnxruntime load it there."""
    outcome = run_case(case, tmp_path, capsys, "--check", checks)
    assert outcome.code == 0, (outcome.code, outcome.stderr)
    assert_clean(case, outcome)


def test_an_output_over_the_input_external_data_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = place(next(c for c in EXTERNAL if c.name == "ext-valid"), tmp_path)
    before = snapshot(tmp_path)
    code = main(["optimize", str(model), "-o", str(model.parent / "w.bin")])
    stderr = capsys.readouterr().err
    assert (code, snapshot(tmp_path)) == (2, before), stderr
