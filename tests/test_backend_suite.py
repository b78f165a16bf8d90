"""Every backend node-test model that onnxruntime runs correctly still does after graphopt:
after import+export (bit-exact), after the default pipeline, and with its inputs baked in."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import backend_suite  # noqa: E402

CASES = [c.name for c in backend_suite.all_cases()]


@pytest.mark.parametrize("mode", ["roundtrip", "optimize", "baked"])
@pytest.mark.parametrize("name", CASES)
def test_backend_case_survives(name: str, mode: str) -> None:
    """The case passes, or is skipped because onnxruntime cannot run the original correctly."""
    outcome = backend_suite.evaluate(backend_suite.by_name()[name], mode)
    if outcome.startswith("skip"):
        pytest.skip(outcome)
    assert outcome == "pass", outcome


def test_backend_suite_is_not_mostly_skipped() -> None:
    """Guard against a harness that skips everything: most cases must be runnable."""
    runnable = sum(backend_suite.ort_correct(n) is not None for n in CASES)
    assert len(CASES) > 1500
    assert runnable > 0.75 * len(CASES)
