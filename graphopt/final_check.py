"""``--check final``: check the optimized model once; on a failure, bisect the changing passes to the
first one whose output diverges, roll back only that one and resume with per-pass checks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from graphopt.errors import NumericMismatchError
from graphopt.ir.clone import clone_model
from graphopt.ir.model import Model
from graphopt.numerics.check import NumericCheck
from graphopt.pass_infra.changes import ChangeLog
from graphopt.pass_infra.instruments import VerifyIR
from graphopt.pass_infra.manager import PassManager, PassRecord
from graphopt.pass_infra.pipeline import format_pipeline, parse_pipeline, pass_steps
from graphopt.pass_infra.registry import DEFAULT_REGISTRY

if TYPE_CHECKING:
    from graphopt.api import OptimizeOptions, OptimizeResult


def final_check(result: OptimizeResult, checker: NumericCheck, original: Model, opts: OptimizeOptions,
                 steps: list[Any], progress: Callable[[PassRecord], None] | None,
                 change_log: ChangeLog | None = None) -> None:
    """Check the result once; on a failure, bisect the changing passes to the first one whose output
    diverges, roll back only that one and resume from the model before it with per-pass checks."""
    record = PassRecord("final-check")
    budgets = [r.drift_budget for r in result.report.records if r.status == "changed" and r.drift_budget]
    failure = checker.check(record, result.model, what="optimized model",
                            budget=max(budgets) if budgets else None)
    result.final_check = dict(record.checks.get("numeric", {}), failure=failure)
    if failure is None:
        return
    if opts.on_failure == "raise":
        raise NumericMismatchError(f"the optimized model is not equivalent: {failure}")
    changed = [r for r in result.report.records if r.status == "changed"]
    good, culprit, outcome = _bisect(original, changed, checker)
    records = result.report.records
    if culprit is not None:
        culprit.status, culprit.cause = "rolled-back", "check"
        culprit.failure = (f"{outcome} (found by bisecting the {len(changed)} changing passes after the "
                           "final check failed)")
        culprit.checks["numeric"] = {**culprit.checks.get("numeric", {}), "ok": False, "strength": "failed",
                                     "error": outcome}
        kept = records[:records.index(culprit) + 1]
        how = f"bisected to pass {culprit.name!r}, rolled back"
    else:
        kept = []
        how = "the failure did not reproduce pass by pass, so every pass was re-run from the original"
    result.report.warnings.append(f"final check failed: {failure}; {how}; the passes after it were re-run "
                                  "with per-pass checks")
    instruments: list[Any] = [VerifyIR()] if opts.verify else []
    log = [change_log] if change_log is not None else []
    manager = PassManager(steps, [*instruments, checker, *log], frozenset(opts.disable), "rollback",
                          progress=progress, pipeline_text=format_pipeline(steps),
                          never_worse=opts.never_worse)
    resumed = manager.run(good)
    for rec in resumed.records:
        rec.history = [*(r.step or r.name for r in kept if r.status == "changed"), *rec.history]
    result.report.records = kept + _after_replayed(kept, resumed.records)
    result.report.warnings.extend(resumed.warnings)
    result.model = good


def _after_replayed(kept: list[PassRecord], resumed: list[PassRecord]) -> list[PassRecord]:
    """The resumed run's records without its leading re-runs of ``kept`` passes that changed nothing
    (already applied, or the culprit rolled back again): each pass is reported once."""
    skip = 0
    for before, again in zip(kept, resumed):
        if before.name != again.name or again.status == "changed":
            break
        skip += 1
    return resumed[skip:]


def _bisect(original: Model, changed: list[PassRecord],
            checker: NumericCheck) -> tuple[Model, PassRecord | None, str | None]:
    """The model before the first changing pass whose replayed output fails the check, that pass and
    its failure; (original, None, None) when replaying every pass does not reproduce the failure."""
    if not changed:
        return clone_model(original), None, None
    good_index, good = 0, clone_model(original)
    bad_index, failure = len(changed), None
    while bad_index - good_index > 1:
        middle = (good_index + bad_index) // 2
        model = _replay(good, changed[good_index:middle])
        found = checker.outcome(model, "model replayed for bisection").failure
        if found is None:
            good_index, good = middle, model
        else:
            bad_index, failure = middle, found
    if failure is None:  # the whole sequence has not been replayed yet: confirm the failure
        model = _replay(good, changed[good_index:bad_index])
        failure = checker.outcome(model, "model replayed for bisection").failure
    if failure is None:
        return clone_model(original), None, None
    return good, changed[bad_index - 1], failure


def _replay(model: Model, records: list[PassRecord]) -> Model:
    """A copy of ``model`` with the passes of ``records`` applied in order (their options included)."""
    copy = clone_model(model)
    for record in records:
        for step in pass_steps(parse_pipeline(record.step or record.name)):
            DEFAULT_REGISTRY.create(step.name, step.options).run(copy)
    return copy
