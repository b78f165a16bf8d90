"""graphopt.optimize with numeric checks: a pass that breaks numerics is named, measured and undone. Also
the one test that pins the default pipeline's text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pass_infra_kit import add_model, messy_model, op_types

import graphopt
from graphopt import import_model, optimize
from graphopt.errors import NumericMismatchError, PassFailedError, UnknownPassError, UsageError
from graphopt.numerics.check import prepare_check
from graphopt.pass_infra.registry import PassRegistry


@pytest.fixture
def swap_pass(default_registry: PassRegistry, swap_plugin: Path) -> str:
    """The wrong-on-purpose ``swap-add-for-sub`` plugin (tests/conftest.py), loaded for one test."""
    default_registry.load_plugin(str(swap_plugin))
    return "swap-add-for-sub"


def _expected_errors() -> tuple[float, float]:
    """Max abs and scale-relative error of a - b against a + b on the check's (seed-0) inputs."""
    feeds = prepare_check(import_model(add_model())).reference.feeds[0]
    a, b = feeds["a"], feeds["b"]
    expected, actual = (a + b).astype(np.float64), (a - b).astype(np.float64)
    max_abs = float(np.max(np.abs(expected - actual)))
    return max_abs, max_abs / float(np.max(np.abs(expected)))


def test_roll_back_a_pass_that_breaks_numerics_and_name_the_output_and_errors(swap_pass: str) -> None:
    """The record is rolled back with the output name and max abs/rel error; the model keeps its Add."""
    result = optimize(add_model(), pipeline=swap_pass)
    (record,) = result.report.records
    max_abs, max_rel = _expected_errors()
    assert (record.name, record.status, record.stats) == (swap_pass, "rolled-back", {"swapped": 1})
    assert record.failure == ("numeric check failed: output 'y' (output of Sub ''): values differ beyond "
                              f"rtol=0.0001, atol=1e-05 (max abs err {max_abs:.3g}, "
                              f"max rel err {max_rel:.3g})")
    numeric = record.checks["numeric"]
    assert (numeric["ok"], numeric["strength"], numeric["first_diverging"]) == (False, "failed", "y")
    assert (numeric["max_abs"], numeric["max_rel"]) == (pytest.approx(max_abs), pytest.approx(max_rel))
    assert record.cause == "check"
    assert result.report.rolled_back == [record]
    assert op_types(result.model) == ["Add"]
    assert result.check_sessions == 1


def test_on_failure_raise_names_the_pass_the_output_and_the_errors(swap_pass: str) -> None:
    """PassFailedError carries everything needed to find the bug."""
    max_abs, max_rel = _expected_errors()
    with pytest.raises(PassFailedError) as info:
        optimize(add_model(), pipeline=swap_pass, on_failure="raise")
    assert str(info.value) == (f"pass '{swap_pass}' failed: numeric check failed: output 'y' (output of "
                               "Sub ''): values differ "
                               f"beyond rtol=0.0001, atol=1e-05 (max abs err {max_abs:.3g}, "
                               f"max rel err {max_rel:.3g})")


def test_final_check_that_fails_names_and_rolls_back_the_guilty_pass(swap_pass: str) -> None:
    """check='final' runs one session at the end; on a failure the bisection names the pass, rolls it back,
    and the pipeline is re-run from the model before it with per-pass checks; the pass is reported once."""
    result = optimize(add_model(), pipeline=swap_pass, check="final")
    assert [(r.name, r.status, r.cause) for r in result.report.records] == [
        (swap_pass, "rolled-back", "check")]  # the re-run's second rollback is not reported again
    assert result.report.records[0].failure.endswith(
        "(found by bisecting the 1 changing passes after the final check failed)")
    assert op_types(result.model) == ["Add"]
    assert result.final_check is not None and result.final_check["ok"] is False
    assert result.report.warnings[0].startswith("final check failed: numeric check failed: output 'y'")
    assert f"bisected to pass '{swap_pass}', rolled back" in result.report.warnings[0]


def test_final_check_with_on_failure_raise_raises_numeric_mismatch_error(swap_pass: str) -> None:
    """NumericMismatchError is a PassFailedError (exit code 4)."""
    with pytest.raises(NumericMismatchError, match="^the optimized model is not equivalent: numeric check "
                       "failed: output 'y'"):
        optimize(add_model(), pipeline=swap_pass, check="final", on_failure="raise")


def test_checks_off_runs_no_session_and_keeps_the_wrong_change(swap_pass: str) -> None:
    """check='off' trusts the passes: the Sub stays."""
    result = optimize(add_model(), pipeline=swap_pass, check="off")
    assert (op_types(result.model), result.check_sessions) == (["Sub"], 0)


def test_the_default_pipeline_is_exactly() -> None:
    """The one place the default pipeline's text is pinned: every other test derives the pipeline and its
    pass names from ``graphopt.DEFAULT_PIPELINE``, so changing it means changing this test on purpose."""
    assert graphopt.DEFAULT_PIPELINE == (
        "fixpoint(eliminate-dead-code,fold-constants,prune-failing-branches,eliminate-common-subexpressions,"
        "fuse-space-to-depth,fuse-pad,fuse-batchnorm,fuse-conv-branches,fuse-normalization,fuse-affine,"
        "eliminate-dead-channels,fuse-horizontal,"
        "fuse-matmul-add,simplify-chains,optimize-transposes){max=8},topological-sort")


def test_default_pipeline_on_a_messy_model_passes_every_check() -> None:
    """DCE and folding are accepted by the checks; the model shrinks to Relu, Mul."""
    result = optimize(messy_model())
    assert result.report.rolled_back == []
    assert op_types(result.model) == ["Relu", "Mul"]
    assert all(r.checks["numeric"]["ok"] for r in result.report.records if r.status == "changed")


def test_unknown_pass_fails_before_any_work() -> None:
    """The pipeline and --disable names are checked first."""
    with pytest.raises(UnknownPassError):
        optimize(add_model(), pipeline="eliminate-dead-code,nope")
    with pytest.raises(UnknownPassError):
        optimize(add_model(), disable=("nope",))


@pytest.mark.parametrize("override", [{"check": "sometimes"}, {"on_failure": "ignore"}])
def test_bad_mode_is_a_usage_error(override: dict[str, str]) -> None:
    """check and on_failure take only their documented values."""
    with pytest.raises(UsageError):
        optimize(add_model(), **override)
