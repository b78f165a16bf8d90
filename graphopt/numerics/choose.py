"""Choosing check inputs that exercise the model: every dynamic dim and input value comes from the
model itself (hints), confirmed by trial runs of the original on one reused session. A set the original
cannot run is replaced by another; a set whose outputs cannot reveal a change (weak) is escalated to
larger sizes, other seeds and other compared constants. The number of trials is bounded by a count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphopt.errors import RuntimeCheckError
from graphopt.ir.model import Model
from graphopt.numerics.diff import input_dependent
from graphopt.numerics.hints import ModelHints, analyze, dim_key
from graphopt.numerics.run import ModelSession
from graphopt.numerics.strength import weakness
from graphopt.numerics.synthesize import FeedSpec, Request, feed_specs, synthesize

CANDIDATES: dict[str, list[int]] = {
    "batch": [1, 2],
    "spatial": [224, 320, 640, 128, 64, 32, 256, 48, 512, 96, 160],
    "length": [16, 128, 512, 64, 32, 8, 256, 1024, 4, 2, 1],
    "inner": [1, 2, 16],
}
ESCALATE: dict[str, list[int]] = {"spatial": [320, 640], "length": [128, 512]}
MAX_TRIALS = 24  # runs of the original to find inputs it accepts
MAX_ESCALATIONS = 6  # further runs to find inputs whose outputs are informative
MAX_BRANCH_SETS = 4  # input sets by default, one per constant a scalar input is compared with


@dataclass
class CheckInputs:
    """The chosen input sets, what each input holds, and what the original gives on them."""

    feeds: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    notes: dict[str, str]
    dims: dict[str, int]
    trials: int = 0
    weak: dict[str, str] = field(default_factory=dict)  # input-dependent output -> why it is weak
    skipped: list[str] = field(default_factory=list)  # input sets the original could not run
    other_sets: list[dict[str, str]] = field(default_factory=list)  # later sets: notes that differ


@dataclass
class _Trial:
    assign: dict[str, int]
    seed: int
    variant: int
    feeds: dict[str, Any] | None = None
    notes: dict[str, str] | None = None
    outputs: dict[str, Any] | None = None
    error: str | None = None
    weak: dict[str, str] = field(default_factory=dict)


def choose_inputs(model: Model, session: ModelSession, request: Request | None = None, *, seed: int = 0,
                  iterations: int = 1, tolerance: tuple[float, float] | None = None) -> CheckInputs:
    """Input sets for the checks (the first chosen by trials, the others by seed and constant variant)."""
    request = request or Request()
    specs, hints = feed_specs(model), analyze(model)
    variables = _variables(specs, hints, request)
    graph_outputs = session.output_names[:len(model.graph.outputs)]
    judged = _judged_outputs(model, graph_outputs)
    search = _Search(specs, hints, request, session, graph_outputs, judged, tolerance)
    best = search.find({k: CANDIDATES[_role(r)][0] if not r.startswith("fixed") else int(r.split(":")[1])
                        for k, r in variables.items()}, variables, seed)
    feeds, outputs, skipped = [best.feeds], [best.outputs], []
    other_sets: list[dict[str, str]] = []
    for i in range(1, max(iterations, _branch_sets(specs, hints, request))):
        trial = search.run(_Trial(best.assign, seed + i, i))
        if trial.outputs is None:  # other sizes may fit the other branch (silero: 8 kHz takes 256 samples)
            trial = search.repair(trial, variables, budget=MAX_TRIALS // 2) or trial
        if trial.outputs is None:
            skipped.append(f"input set {i + 1}: {_shorten(trial.error or '')}")
            continue
        feeds.append(trial.feeds)
        outputs.append(trial.outputs)
        other_sets.append({k: v for k, v in (trial.notes or {}).items() if (best.notes or {}).get(k) != v})
    return CheckInputs(feeds, outputs, best.notes or {}, best.assign, search.count, best.weak, skipped,
                       other_sets)


def _shorten(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _branch_sets(specs: list[FeedSpec], hints: ModelHints, request: Request) -> int:
    """Input sets needed to feed each constant a scalar input is compared with (both sides of an If)."""
    counts = [len(hints.values[s.name].choices) for s in specs if s.dims == () and s.name in hints.values
              and s.name not in request.values and s.name not in request.arrays]
    return min(MAX_BRANCH_SETS, max(counts, default=1))


def _role(role: str) -> str:
    return role.split(":")[0] if role in CANDIDATES or role.startswith("fixed") else role


def _variables(specs: list[FeedSpec], hints: ModelHints, request: Request) -> dict[str, str]:
    """Dim keys still to choose (not given by the user) and their roles."""
    fixed: set[str] = set()
    for spec in specs:
        given = request.shapes.get(spec.name)
        if given is None and spec.name in request.arrays and not isinstance(request.arrays[spec.name], list):
            given = tuple(getattr(request.arrays[spec.name], "shape", ()))
        if given is not None:
            fixed.update(dim_key(spec.name, i, d) for i, d in enumerate(spec.dims))
    return {k: r for k, r in hints.roles.items() if k not in fixed}


def _judged_outputs(model: Model, names: list[str]) -> list[str]:
    """Outputs that depend on an input (a constant output is compared, but says nothing of inputs)."""
    live = input_dependent(model)
    return [n for n, v in zip(names, model.graph.outputs) if id(v) in live]


class _Search:
    """Trial runs of the original, counted."""

    def __init__(self, specs: list[FeedSpec], hints: ModelHints, request: Request, session: ModelSession,
                 graph_outputs: list[str], judged: list[str], tolerance: tuple[float, float] | None) -> None:
        self.specs, self.hints, self.request, self.session = specs, hints, request, session
        self.judged, self.tolerance, self.count = judged, tolerance, 0
        self.graph_outputs = graph_outputs

    def run(self, trial: _Trial) -> _Trial:
        """Run the original on the inputs of ``trial``; fills in its outputs or error."""
        self.count += 1
        trial.feeds, trial.notes = synthesize(self.specs, self.hints, trial.assign, self.request, trial.seed,
                                              trial.variant)
        try:
            outputs = self.session.run(trial.feeds, self.graph_outputs)
        except RuntimeCheckError as exc:
            trial.error = str(exc)
            return trial
        trial.outputs = outputs
        trial.weak = {n: r for n in self.judged if (r := weakness(outputs[n], self.tolerance)) is not None}
        return trial

    def find(self, start: dict[str, int], variables: dict[str, str], seed: int) -> _Trial:
        """A trial the original runs, as informative as the escalation budget allows."""
        first = self.run(_Trial(dict(start), seed, 0))
        found = first if first.outputs is not None else self.repair(first, variables, MAX_TRIALS)
        if found is None:
            raise RuntimeCheckError(self._failure(first))
        return self._escalate(found, variables) if found.weak else found

    def repair(self, first: _Trial, variables: dict[str, str], budget: int) -> _Trial | None:
        """Change one dim (or, for the first set, the compared constant) at a time, then all dims
        together, within ``budget`` more runs."""
        limit = self.count + budget
        order = sorted(variables, key=lambda k: ("spatial", "length", "inner", "batch").index(_role(
            variables[k])) if _role(variables[k]) in CANDIDATES else 9)
        moves: list[dict[str, int] | int] = [1] if first.variant == 0 and any(
            h.choices for h in self.hints.values.values()) else []
        for key in order:
            moves.extend({key: c} for c in CANDIDATES.get(_role(variables[key]), [])[1:])
        for step in range(1, max((len(v) for v in CANDIDATES.values()), default=1)):
            joint = {k: CANDIDATES[_role(r)][min(step, len(CANDIDATES[_role(r)]) - 1)]
                     for k, r in variables.items() if _role(r) in CANDIDATES}
            if joint:
                moves.append(joint)
        for move in moves:
            if self.count >= limit:
                return None
            trial = _Trial(dict(first.assign), first.seed, move) if isinstance(move, int) else \
                _Trial({**first.assign, **move}, first.seed, first.variant)
            if self.run(trial).outputs is not None:
                return trial
        return None

    def _escalate(self, found: _Trial, variables: dict[str, str]) -> _Trial:
        """Larger sizes, other seeds, other compared constants, while outputs stay weak."""
        options: list[_Trial] = []
        for level in range(2):
            bigger = {k: ESCALATE[_role(r)][level] for k, r in variables.items() if _role(r) in ESCALATE}
            bigger = {k: v for k, v in bigger.items() if v > found.assign.get(k, 0)}
            if bigger:
                options.append(_Trial({**found.assign, **bigger}, found.seed, found.variant))
        options += [_Trial(found.assign, found.seed + s, found.variant) for s in (1, 2)]
        options += [_Trial(found.assign, found.seed, found.variant + 1)]
        best = found
        for trial in options[:MAX_ESCALATIONS]:
            self.run(trial)
            if trial.outputs is not None and len(trial.weak) < len(best.weak):
                best = trial
                if not best.weak:
                    break
        return best

    def _failure(self, first: _Trial) -> str:
        shapes = ", ".join(f"{k}={list(getattr(v, 'shape', []))}" for k, v in (first.feeds or {}).items())
        unknown = [f"{name} ({hint.reasons[0]})" for name, hint in self.hints.values.items()
                   if hint.structural == "unit-axes" and name not in self.request.values]
        advice = (f"; give the values of {', '.join(unknown)} with --input-value NAME=V" if unknown else "")
        return (f"{first.error} [on every generated check input set: {self.count} tried, the first: {shapes}]"
                f"{advice}; give realistic inputs with --input-shape, --input-value, --input-range or "
                "--inputs FILE.npz, or use --check off")
