"""The pass manager: runs a parsed pipeline with instruments, fixed points and rollback."""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from graphopt.errors import ModelLoadError, PassFailedError, UsageError
from graphopt.ir.clone import clone_model
from graphopt.ir.model import Model
from graphopt.pass_infra.base import PassResult
from graphopt.pass_infra.budget import SLACK_BYTES, allowed_growth, worse
from graphopt.pass_infra.pipeline import Fixpoint, PassStep, Step
from graphopt.pass_infra.registry import DEFAULT_REGISTRY, PassRegistry

log = logging.getLogger(__name__)


@dataclass
class PassRecord:
    """What one run of one pass did."""

    name: str
    step: str = ""  # the pipeline text of this step, options included
    status: str = "unchanged"  # changed | unchanged | rolled-back | disabled
    seconds: float = 0.0
    nodes_before: int = 0
    nodes_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    stats: dict[str, float] = field(default_factory=dict)
    failure: str | None = None
    cause: str | None = None  # why it was rolled back: never-worse | raised | check | verifier | ...
    checks: dict[str, Any] = field(default_factory=dict)
    history: list[str] = field(default_factory=list)  # passes that changed the model before this one
    rules: dict[str, dict] = field(default_factory=dict)  # per rewrite rule, for passes built on rules
    warnings: list[str] = field(default_factory=list)  # problems the pass recovered from (PassResult)
    round: int = 0  # iteration of the innermost fixed point this run is part of (from 1); 0 outside one
    drift_budget: tuple[float, float] | None = None  # a pass that lowered precision: its (rtol, atol)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON reports."""
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class PipelineReport:
    """Every pass record plus warnings such as a fixed point that did not converge."""

    pipeline: str
    records: list[PassRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def rolled_back(self) -> list[PassRecord]:
        """Records of passes whose changes were undone."""
        return [r for r in self.records if r.status == "rolled-back"]


class Instrument(Protocol):
    """Hooks around each pass. ``after_pass`` returns a failure reason to roll the pass back (the
    instruments after a failing one are not asked); ``on_failure`` sees the failing model, before the
    rollback, whatever failed it (the pass raising, the never-worse rule or an instrument)."""

    def before_pass(self, record: PassRecord, model: Model) -> None: ...

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None: ...

    def on_failure(self, record: PassRecord, model: Model, failure: str) -> None: ...


@dataclass
class _RunState:
    """What one ``PassManager.run`` tracks: local to the run, so a manager can run many models."""

    generation: int = 0  # bumped by every pass that changes the model
    idle_at: dict[str, int] = field(default_factory=dict)  # pass text -> generation it found idle
    measured: tuple[int, int, int] = (-1, 0, 0)  # (generation, nodes, bytes)
    snapshot: tuple[int, Model] | None = None  # (generation, copy): still exact while nothing changed
    round: int = 0  # iteration of the innermost running fixed point, copied into each record


@dataclass
class PassManager:
    """Runs pipeline steps on a model in place.

    ``on_failure`` is ``"rollback"`` (undo the failing pass, record it, go on) or ``"raise"``.
    With ``never_worse`` a pass that adds nodes, or grows the weights by more than its removed nodes
    are worth (``budget.BYTES_PER_NODE`` each, plus ``SLACK_BYTES``), fails like any other (rolled back,
    or raised) unless it declares ``may_grow = True`` (e.g. a layout conversion that must add boundary
    Transposes). A fixed point is judged as a whole without the slack: a fold that grows the weights by
    a few bytes is kept when the dead-code pass after it removes what it freed, and a fixed point that
    ends worse than it started is undone.
    Passes are deterministic functions of the model, so a pass that found nothing to do is not run
    again until another pass has changed the model (this is what makes fixed points cheap).
    """

    steps: list[Step]
    instruments: list[Instrument] = field(default_factory=list)
    disabled: frozenset[str] = frozenset()
    on_failure: str = "rollback"
    registry: PassRegistry = DEFAULT_REGISTRY
    progress: Callable[[PassRecord], None] | None = None
    pipeline_text: str = ""
    never_worse: bool = True

    def run(self, model: Model) -> PipelineReport:
        """Run every step; returns the report (the model is changed in place)."""
        report = PipelineReport(self.pipeline_text)
        self._run_steps(self.steps, model, report, [], _RunState())
        return report

    def _run_steps(self, steps: list[Step], model: Model, report: PipelineReport,
                   history: list[str], state: _RunState) -> bool:
        changed = False
        for step in steps:
            if isinstance(step, Fixpoint):
                changed |= self._run_fixpoint(step, model, report, history, state)
            else:
                changed |= self._run_pass(step, model, report, history, state)
        return changed

    def _run_fixpoint(self, step: Fixpoint, model: Model, report: PipelineReport,
                      history: list[str], state: _RunState) -> bool:
        guard = self.never_worse and self.on_failure == "rollback"
        start = (*self._measure(model, state), clone_model(model)) if guard else None
        first_record = len(report.records)
        any_change, outer_round = False, state.round
        for iteration in range(step.max_iterations):
            state.round = iteration + 1
            if not self._run_steps(step.steps, model, report, history, state):
                break
            any_change = True
        else:
            report.warnings.append(f"{step} did not converge within {step.max_iterations} iterations")
        state.round = outer_round
        if start is not None and any_change:
            nodes, weights = self._measure(model, state)
            if worse(start[0], start[1], nodes, weights, slack=0) \
                    and not self._grew_on_purpose(report.records[first_record:]):
                report.warnings.append(f"{step} undone: it ended worse than it started (nodes {start[0]} "
                                       f"-> {nodes}, weight bytes {start[1]} -> {weights})")
                model.__dict__.update(start[2].__dict__)
                state.generation += 1
                state.snapshot = None
                return False
        return any_change

    def _grew_on_purpose(self, records: list[PassRecord]) -> bool:
        """A pass that declares ``may_grow`` changed the model (its growth is what was asked for)."""
        return any(r.status == "changed" and getattr(self.registry.get(r.name), "may_grow", False)
                   for r in records)

    def _run_pass(self, step: PassStep, model: Model, report: PipelineReport,
                  history: list[str], state: _RunState) -> bool:
        key = str(step)
        if state.idle_at.get(key) == state.generation:
            return False
        record = PassRecord(step.name, key, history=list(history), round=state.round)
        report.records.append(record)
        if step.name in self.disabled:
            record.status = "disabled"
            state.idle_at[key] = state.generation
            return False
        pass_ = self.registry.create(step.name, step.options)
        record.nodes_before, record.bytes_before = self._measure(model, state)
        snapshot = self._take_snapshot(model, state) if self.on_failure == "rollback" else None
        for inst in self.instruments:
            inst.before_pass(record, model)
        start = time.perf_counter()
        failure, result = self._invoke(pass_, model, step)
        record.seconds = time.perf_counter() - start
        if result is not None:
            record.stats = dict(result.stats)
            record.rules = dict(result.rules)
            record.warnings = list(result.warnings)
            record.drift_budget = result.drift_budget
            report.warnings.extend(f"pass {step.name!r}: {w}" for w in result.warnings)
            record.status = "changed" if result.changed else "unchanged"
            if result.changed and self.never_worse \
                    and not getattr(pass_, "may_grow", False):
                failure = _worse(record, model)
                record.cause = "never-worse" if failure is not None else None
            for inst in self.instruments:
                if failure is None:
                    failure = inst.after_pass(record, model, result)
                    if failure is not None:
                        record.cause = getattr(inst, "cause", type(inst).__name__)
        elif failure is not None:
            record.cause = "raised"
        if failure is not None:
            for inst in self.instruments:
                inst.on_failure(record, model, failure)
            self._fail(record, model, snapshot, failure, state)
            state.idle_at[key] = state.generation
            return False
        if record.status == "changed":
            state.generation += 1
        else:
            state.idle_at[key] = state.generation
        record.nodes_after, record.bytes_after = self._measure(model, state)
        if self.progress is not None:
            self.progress(record)
        if record.status == "changed":
            history.append(key)
            return True
        return False

    @staticmethod
    def _take_snapshot(model: Model, state: _RunState) -> Model:
        """A copy of the model to roll back to; the last one is reused while no pass changed anything."""
        if state.snapshot is None or state.snapshot[0] != state.generation:
            state.snapshot = (state.generation, clone_model(model))
        return state.snapshot[1]

    @staticmethod
    def _measure(model: Model, state: _RunState) -> tuple[int, int]:
        """Node count and weight bytes, recomputed only after the model changed."""
        if state.measured[0] != state.generation:
            state.measured = (state.generation, model.node_count(), model.const_bytes())
        return state.measured[1], state.measured[2]

    def _invoke(self, pass_: Any, model: Model, step: PassStep) -> tuple[str | None, PassResult | None]:
        try:
            result = pass_.run(model)
        except (UsageError, ModelLoadError):
            raise  # a pass option that does not fit, or a broken input found late: exit 2
        except Exception as exc:
            if self.on_failure == "raise":  # a user-facing error (exit code 4), the cause chained
                raise PassFailedError(f"pass {step.name!r} raised {type(exc).__name__}: {exc}") from exc
            log.debug("pass %s raised:\n%s", step.name, traceback.format_exc())
            return f"raised {type(exc).__name__}: {exc}", None
        if not isinstance(result, PassResult):
            raise TypeError(f"pass {step.name!r} returned {type(result).__name__}, expected PassResult")
        return None, result

    def _fail(self, record: PassRecord, model: Model, snapshot: Model | None, failure: str,
              state: _RunState) -> None:
        record.failure = failure
        if snapshot is None:
            raise PassFailedError(f"pass {record.name!r} failed: {failure}")
        model.__dict__.update(snapshot.__dict__)
        state.snapshot = None  # the model now owns the snapshot's graph
        record.status = "rolled-back"
        record.nodes_after, record.bytes_after = record.nodes_before, record.bytes_before
        log.warning("pass %s rolled back: %s", record.name, failure)
        if self.progress is not None:
            self.progress(record)


def _worse(record: PassRecord, model: Model) -> str | None:
    """Why the model got worse in this pass (more nodes, or weights grown beyond what the removed
    nodes are worth), or None."""
    nodes, weights = model.node_count(), model.const_bytes()
    if not worse(record.nodes_before, record.bytes_before, nodes, weights):
        return None
    removed = record.nodes_before - nodes
    allowance = "" if removed < 0 else f" (allowed: +{allowed_growth(removed, SLACK_BYTES)})"
    return (f"made the model worse (never-worse rule): nodes {record.nodes_before} -> {nodes}, "
            f"weight bytes {record.bytes_before} -> {weights}{allowance}")
