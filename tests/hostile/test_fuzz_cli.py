"""Hostile inputs through ``graphopt optimize``: a clean one-line error and a documented code, or a correct
output; never a traceback, a hang, a partial output or a modified input. The rules a run must obey, and
the known bugs, are in fuzz_kit.py; the cases in hostile_corpus.py and external_corpus.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from external_corpus import EXTERNAL
from fuzz_kit import (
    KNOWN_BUGS,
    KNOWN_SIGNATURES,
    LIMIT,
    Outcome,
    assert_clean,
    params,
    run_case,
    run_problems,
    time_limit,
)
from hostile_corpus import BASES, Case, bit_flipped, corpus, place, snapshot, truncated
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from graphopt.cli import main

CORPUS = corpus(truncations=8, flips=8, randoms=6, seed=0)


@pytest.mark.parametrize("case", params(c for c in CORPUS if c.in_process))
def test_hostile_input_ends_in_one_error_line_or_a_correct_output(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_clean(case, run_case(case, tmp_path, capsys))


@pytest.mark.parametrize("case", params(c for c in CORPUS if not c.in_process))
def test_input_that_crashes_onnxruntime_ends_clean_in_a_subprocess(case: Case, tmp_path: Path) -> None:
    """Cases that kill the interpreter running them: ``python -m graphopt optimize``, 60 s timeout (an
    output is not run here: onnxruntime on the input is what crashes)."""
    model = place(case, tmp_path)
    (tmp_path / "out").mkdir()
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "graphopt", "optimize", str(model), "-o",
                           str(tmp_path / "out" / "out.onnx")], capture_output=True, text=True, timeout=60)
    problems = run_problems(proc.returncode, proc.stdout, proc.stderr, tmp_path, before)
    assert_clean(case, Outcome(proc.returncode, proc.stdout, proc.stderr, problems))


@pytest.mark.parametrize("case", params(c for c in CORPUS if c.in_process and c.family not in (
    "truncate", "bitflip", "random", "text")))
def test_in_place_run_replaces_the_input_only_when_it_succeeds(
        case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--in-place`` writes over the input: a failed run must leave it (and its folder) untouched."""
    model = place(case, tmp_path)
    (tmp_path / "out").mkdir()
    before = snapshot(tmp_path)
    with time_limit(LIMIT):
        code = main(["optimize", str(model), "--in-place"])
    stdout, stderr = capsys.readouterr()
    if code != 0:
        assert run_problems(code, stdout, stderr, tmp_path, before) == []
        return
    assert set(snapshot(tmp_path)) <= set(before) | {"model/m.onnx.data"}, "files left beside the model"
    replaced = onnx.load(str(model))
    if _checker_accepts(case.data):
        onnx.checker.check_model(replaced)


def _checker_accepts(data: bytes) -> bool:
    try:
        onnx.checker.check_model(onnx.load_from_string(data))
        return True
    except Exception:
        return False


def test_corpus_is_deterministic_and_covers_every_family_of_the_issue() -> None:
    again = corpus(truncations=8, flips=8, randoms=6, seed=0)
    assert [(c.name, c.data, c.files) for c in again] == [(c.name, c.data, c.files) for c in CORPUS]
    families = {c.family for c in CORPUS}
    assert {"truncate", "bitflip", "random", "empty", "text", "proto", "graph", "attr", "init", "shape",
            "opset", "op", "fold", "sub", "sparse", "string"} <= families
    names = {c.name for c in CORPUS}
    assert {"graph-cycle", "graph-self-loop", "graph-dangling-input", "graph-duplicate-outputs",
            "graph-duplicate-node-outputs", "attr-strides-floats", "attr-concat-axis-string",
            "attr-cast-missing-to", "init-missing", "init-raw-short", "init-dtype-99",
            "op-unknown-default-domain", "op-unknown-domain-no-import", "opset-0", "opset-9999", "opset-ir-0",
            "opset-ir-99", "graph-empty", "graph-no-outputs", "graph-output-is-input", "shape-huge-dim-input",
            "shape-negative-dim-input", "shape-zero-dim-input", "sparse-valid", "sub-dangling-body",
            "string-initializer-identity"} <= names


def test_every_known_bug_names_a_case() -> None:
    assert set(KNOWN_BUGS) <= {c.name for c in CORPUS} | {c.name for c in EXTERNAL}


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(base=st.sampled_from(BASES), kind=st.sampled_from(["flip", "truncate"]),
       seed=st.integers(0, 2**32 - 1))
def test_seeded_bit_flips_and_truncations_of_a_valid_model_end_clean(
        tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str], base: str, kind: str,
        seed: int) -> None:
    """Damage that hits a bug already pinned above (KNOWN_SIGNATURES) is rejected, not reported again."""
    case = bit_flipped(base, seed) if kind == "flip" else truncated(base, seed)
    outcome = run_case(case, tmp_path_factory.mktemp("case"), capsys)
    if outcome.problems and KNOWN_SIGNATURES and KNOWN_SIGNATURES.search(outcome.stderr):
        reject()
    assert_clean(case, outcome)
