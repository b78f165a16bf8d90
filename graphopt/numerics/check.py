"""The per-pass numeric equivalence check: the product's promise, as a pass-manager instrument.

``prepare_check`` chooses inputs that exercise the original (see graphopt.numerics.choose) and captures
its outputs and intermediate tensors once; each check then costs one onnxruntime session on the changed
model, comparing outputs on every input set and the tensors that kept their names downstream of what
the pass changed (see graphopt.numerics.reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from graphopt.ir.model import Model
from graphopt.numerics.choose import CheckInputs, choose_inputs
from graphopt.numerics.reference import Outcome, Reference, capture, check, intermediates
from graphopt.numerics.run import open_session
from graphopt.numerics.synthesize import Request
from graphopt.pass_infra.base import PassResult
from graphopt.pass_infra.manager import PassRecord


@dataclass
class NumericCheck:
    """Compares each changed model with the original's reference; a failure rolls the pass back."""

    reference: Reference
    inputs: CheckInputs
    sessions: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    cause: str = "check"  # how the pass manager labels the rollbacks this instrument causes

    def before_pass(self, record: PassRecord, model: Model) -> None:
        """Nothing to do before a pass."""

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None:
        """Return a failure reason when the changed model no longer matches the reference."""
        if not result.changed:
            return None
        budget = result.drift_budget
        failure = self.check(record, model, budget=budget)
        if failure is None and budget is not None:  # later passes are judged against the lowered model
            previous = self.reference.budget
            self.reference.budget = budget if previous is None else max(previous, budget)
        return failure

    def on_failure(self, record: PassRecord, model: Model, failure: str) -> None:
        """Nothing to do when a pass fails."""

    def check(self, record: PassRecord, model: Model, what: str | None = None,
              budget: tuple[float, float] | None = None) -> str | None:
        """Compare ``model`` with the reference; the outcome goes to ``record.checks['numeric']``."""
        outcome = self.outcome(model, what or f"model after pass {record.name!r}", budget)
        record.checks["numeric"] = outcome.as_dict()
        if outcome.failure is not None:
            self.failures.append((record.name, outcome.failure))
        return outcome.failure

    def outcome(self, model: Model, what: str, budget: tuple[float, float] | None = None) -> Outcome:
        """The comparison itself (one session unless nothing numeric changed)."""
        outcome = check(self.reference, model, what, budget)
        if outcome.strength != "unchanged":
            self.sessions += 1
        return outcome


def prepare_check(model: Model, request: Request | None = None, *, seed: int = 0, iterations: int = 1,
                  tolerance: tuple[float, float] | None = None,
                  libraries: Sequence[str] = ()) -> NumericCheck:
    """Choose check inputs on the original and capture its reference (one session, a few runs)."""
    session, names = open_session(model, "original model", extra_outputs=intermediates(model),
                                  libraries=libraries)
    inputs = choose_inputs(model, session, request, seed=seed, iterations=iterations, tolerance=tolerance)
    reference = capture(model, session, names, inputs.feeds, inputs.outputs, tolerance,
                        tuple(session.libraries))
    return NumericCheck(reference, inputs)  # ``sessions`` counts the checks' own, on changed models


def describe_inputs(inputs: CheckInputs) -> dict[str, Any]:
    """What the check inputs are and why, as plain data (report and terminal)."""
    return {"inputs": dict(inputs.notes), "dims": dict(inputs.dims), "sets": len(inputs.feeds),
            "trials": inputs.trials, "other_sets": [dict(s) for s in inputs.other_sets],
            "weak_outputs": dict(inputs.weak), "skipped_sets": list(inputs.skipped)}
