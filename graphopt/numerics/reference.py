"""The original model's behaviour on the check inputs, and the comparison of a transformed model with
it: every output, plus every intermediate tensor that kept its name downstream of what changed (a value
keeps its name only if it keeps its value), so a wrong rewrite is caught where it happens even when the
outputs saturate. Intermediates are fetched in batches of bounded size and kept as fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable

import numpy as np
from onnx import TensorProto

from graphopt.errors import RuntimeCheckError
from graphopt.ir.model import Model
from graphopt.ir.value import Value
from graphopt.numerics.compare import (
    DEFAULT_TOLERANCES,
    LOW_PRECISION,
    Mismatch,
    compare_outputs,
    is_float_dtype,
    max_errors,
    tolerance_for,
)
from graphopt.numerics.diff import (
    changed_nodes,
    downstream,
    graph_signatures,
    random_dependent,
    selection_gates,
)
from graphopt.numerics.drift import Drift, as_reference_dtypes, feeds_as_inputs
from graphopt.numerics.fingerprint import Fingerprint, compare, fingerprint
from graphopt.numerics.interface import adapt_feeds, adapt_outputs, interface_perms
from graphopt.numerics.run import ModelSession, open_session
from graphopt.numerics.strength import weakness

FLOAT_NAMES = {TensorProto.DOUBLE: "float64", TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16",
               TensorProto.BFLOAT16: "bfloat16"}  # other float types (float8, float4) get LOW_PRECISION
LOW_FLOATS = ("FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "FLOAT4E2M1")
FLOAT_NAMES.update({getattr(TensorProto, n): "float8" for n in LOW_FLOATS if hasattr(TensorProto, n)})
# Intermediate tensors are compared at 10x the outputs' tolerance: legitimate reassociation (a folded
# BatchNormalization) moves a deep ResNet's inner activations by ~1.2e-4 of their scale while the
# logits move by 7e-6; a wrong rewrite moves the tensor it touches by far more (1e-2 and up).
INTERMEDIATE_SLACK = 10.0
BATCH_BYTES = 512 * 2**20  # intermediates fetched by one run at most (about)
FIRST_BATCH = 256  # names fetched by the reference's first run; later batches adapt to BATCH_BYTES


def intermediates(model: Model) -> list[Value]:
    """Named node outputs of the main graph that are not graph outputs: the tensors a check can fetch."""
    return [v for node in model.graph for v in node.outputs if v.name and not v.is_graph_output]


@dataclass
class Reference:
    """Reference outputs per input set, fingerprints of intermediates (first set), node signatures."""

    feeds: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    tensors: dict[str, Fingerprint]
    signatures: set[Hashable]
    opsets: dict[str, int]
    output_names: list[str]
    random: set[str] = field(default_factory=set)  # tensors that depend on a random op
    tolerance: tuple[float, float] | None = None
    libraries: tuple[str, ...] = ()
    base_inputs: dict[str, list[int]] = field(default_factory=dict)
    base_outputs: dict[str, list[int]] = field(default_factory=dict)
    keep: list[Any] = field(default_factory=list)  # constants the signatures name by id
    floors: dict[str, tuple[float, float]] = field(default_factory=dict)  # see precision_floors
    # tensors downstream of a selection: the selections' integer outputs that must agree exactly with
    # the original's before the tensor is compared (see diff.selection_gates)
    gates: dict[str, frozenset[str]] = field(default_factory=dict)
    gate_values: dict[str, Any] = field(default_factory=dict)  # those integer outputs, whole
    # the drift budget of a kept reduced-precision pass: every later check compares with it, casting the
    # candidate's lower-precision tensors to the reference's dtype (see graphopt.numerics.drift)
    budget: tuple[float, float] | None = None

    def tolerance_of(self, name: str) -> tuple[float, float] | None:
        """The tolerance a tensor is compared with: the drift budget once precision was reduced, the
        user's, else its precision floor's (None: its own dtype's)."""
        if self.budget is not None:
            return self.budget
        return self.tolerance if self.tolerance is not None else self.floors.get(name)

    @property
    def output_weakness(self) -> dict[str, str]:
        """Why each weak output cannot reveal a change (first input set)."""
        found = {n: weakness(self.outputs[0][n], self.tolerance) for n in self.output_names}
        found.update({n: "depends on a random op" for n in self.output_names if n in self.random})
        return {n: r for n, r in found.items() if r is not None}


def precision_floors(model: Model) -> dict[str, tuple[float, float]]:
    """Tensors computed from lower-precision floats than their own dtype (a float32 Softmax of float16
    scores), by name, with that precision's tolerance: a legitimate rewrite upstream moves them by the
    lower precision's rounding, which their own dtype's tolerance would call a failure."""
    from graphopt.analyses.shapes import refresh_types

    if any(v.dtype is None for node in model.graph for v in node.outputs):
        refresh_types(model)  # usually known already; inference is cached between passes
    loosest: dict[int, tuple[float, float]] = {}
    floors: dict[str, tuple[float, float]] = {}

    def own(value: Value) -> tuple[float, float] | None:
        name = FLOAT_NAMES.get(value.dtype) if value.dtype is not None else None
        return None if name is None else DEFAULT_TOLERANCES.get(name, LOW_PRECISION)

    for value in [*model.graph.inputs, *model.graph.consts]:
        if (tol := own(value)) is not None:
            loosest[id(value)] = tol
    for node in model.graph:
        upstream = [loosest[id(v)] for v in node.reads() if id(v) in loosest]
        for out in node.outputs:
            tol = own(out)
            candidates = [*upstream, *([tol] if tol is not None else [])]
            if not candidates:
                continue
            worst = max(candidates)
            loosest[id(out)] = worst
            if tol is not None and worst > tol and out.name:
                floors[out.name] = worst
    return floors


def capture(model: Model, session: ModelSession, names: dict[Value, str], feeds: list[dict[str, Any]],
            outputs: list[dict[str, Any]], tolerance: tuple[float, float] | None,
            libraries: tuple[str, ...] = ()) -> Reference:
    """Fingerprint the original's intermediates on the first input set; ``outputs`` are its outputs."""
    keep: list[Any] = []
    random_ids = random_dependent(model)
    floors = precision_floors(model)  # also makes sure dtypes are known
    gates = selection_gates(model)
    fetchable = [(v, names[v]) for v in intermediates(model)
                 if names.get(v) == v.name and gates.get(id(v), frozenset()) is not None]
    base_in, base_out = interface_perms(model)
    ref = Reference(feeds, outputs, {}, graph_signatures(model.graph, keep), dict(model.opset_imports),
                    list(session.output_names[:len(model.graph.outputs)]),
                    {n for v, n in fetchable if id(v) in random_ids}
                    | {names.get(v, v.name or "") for v in model.graph.outputs if id(v) in random_ids},
                    tolerance, libraries, base_in, base_out, keep, floors,
                    {n: gate for v, n in fetchable if (gate := gates.get(id(v)))})
    wanted = [n for _, n in fetchable if n not in ref.random]
    gate_names = set().union(*ref.gates.values()) if ref.gates else set()
    ref.gate_values = {n: outputs[0][n] for n in gate_names if n in outputs[0]}
    start, size = 0, FIRST_BATCH
    while start < len(wanted):
        batch = wanted[start:start + size]
        values = session.run(feeds[0], batch)
        for name in batch:
            ref.tensors[name] = fingerprint(values[name], tolerance)
            if name in gate_names:
                ref.gate_values[name] = values[name]
        fetched = sum(ref.tensors[n].nbytes for n in batch) or 1
        start += len(batch)
        size = max(1, min(4 * size, int(size * BATCH_BYTES / fetched)))
    return ref


@dataclass
class Outcome:
    """The result of comparing one transformed model with the reference."""

    failure: str | None = None
    strength: str = "ok"  # ok | weak | unchanged (nothing numeric changed: no run needed)
    max_abs: float = 0.0
    max_rel: float = 0.0
    compared: int = 0  # intermediates compared
    changed: int = 0  # nodes computing something new
    unproven: int = 0  # changed nodes from which no informative tensor was compared
    first: str | None = None  # the first diverging tensor
    drift: Drift | None = None  # a reduced-precision pass: measured drift against its budget

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the pass record and the JSON report."""
        return {"ok": self.failure is None, "strength": self.strength if self.failure is None else "failed",
                "max_abs": self.max_abs, "max_rel": self.max_rel, "compared": self.compared,
                "changed_nodes": self.changed, "unproven_nodes": self.unproven, "first_diverging": self.first,
                **({"error": self.failure} if self.failure else {}),
                **({"drift": self.drift.as_dict()} if self.drift is not None else {})}


def check(reference: Reference, model: Model, what: str,
          budget: tuple[float, float] | None = None) -> Outcome:
    """Compare ``model`` with the reference: outputs on every input set, intermediates on the first.

    With ``budget`` (a pass that reduced precision) the outputs are held to that budget and the
    intermediates are measured, not judged: the drift report says where it grows."""
    changed = changed_nodes(model, reference.signatures, model.opset_imports == reference.opsets)
    outputs_same = [v.name for v in model.graph.outputs] == reference.output_names
    if not changed and outputs_same:
        return Outcome(strength="unchanged")
    values, reach = downstream(model, changed)
    shared = [v for v in values if v.name in reference.tensors and not v.is_graph_output]
    gates = _gate_values(model, reference, shared)
    try:
        extra = [v for v in shared if v.const is None] + [v for v in gates if v not in shared]
        session, names = open_session(model, what, extra_outputs=extra, libraries=reference.libraries)
        outcome = Outcome(changed=len(changed), drift=Drift(budget) if budget is not None else None)
        mismatches = _compare_outputs(reference, model, session, outcome)
        diverging, witnesses = _compare_intermediates(reference, model, session, names, shared, gates,
                                                      outcome)
    except RuntimeCheckError as exc:
        return Outcome(failure=str(exc), changed=len(changed))
    if diverging or mismatches:
        first = diverging[0] if diverging else mismatches[0]
        outcome.first = first.output
        producer = next((v.producer for v in model.graph.outputs + shared if v.name == first.output
                         and v.producer is not None), None)
        where = f" (output of {producer.op_type} {producer.name!r})" if producer is not None else ""
        kind = "first diverging tensor" if diverging else "output"
        outcome.failure = (f"numeric check failed: {kind} {first.output!r}{where}: {first.reason} (max abs "
                           f"err {first.max_abs:.3g}, max rel err {first.max_rel:.3g})") + (
            f"; {len(mismatches)} output(s) differ" if diverging and mismatches else
            "; outputs still match" if diverging else "")
        return outcome
    witnesses |= {id(v) for v in model.graph.outputs
                  if v.name in reference.output_names and v.name not in reference.output_weakness}
    outcome.unproven = sum(1 for node in changed if not reach.get(node, set()) & witnesses)
    outcome.strength = "weak" if outcome.unproven else "ok"
    return outcome


def _compare_outputs(reference: Reference, model: Model, session: ModelSession,
                     outcome: Outcome) -> list[Mismatch]:
    found: list[Mismatch] = []
    graph_outputs = session.output_names[:len(model.graph.outputs)]
    lowered = outcome.drift is not None or reference.budget is not None
    for feeds, expected in zip(reference.feeds, reference.outputs):
        adapted = adapt_feeds(model, feeds, reference.base_inputs)
        actual = session.run(feeds_as_inputs(model, adapted) if lowered else adapted, graph_outputs)
        actual = adapt_outputs(model, actual, reference.base_outputs)
        wanted = {k: v for k, v in expected.items() if k not in reference.random}
        budget = outcome.drift.budget if outcome.drift is not None else None
        if lowered:
            actual = as_reference_dtypes(actual, wanted)
        for name, value in wanted.items():
            tolerance = budget if budget is not None else reference.tolerance_of(name)
            found.extend(m for m in compare_outputs({name: value}, actual, tolerance) if m not in found)
            if outcome.drift is not None:
                outcome.drift.output(name, value, actual.get(name))
        max_abs, max_rel = max_errors(wanted, actual)
        outcome.max_abs, outcome.max_rel = max(outcome.max_abs, max_abs), max(outcome.max_rel, max_rel)
    return found


def _gate_values(model: Model, reference: Reference, shared: list[Value]) -> list[Value]:
    """The candidate's values for the selections' integer outputs that the gated tensors in ``shared``
    wait on (only those still computed under their original name)."""
    wanted = set().union(*[reference.gates[v.name] for v in shared if v.name in reference.gates])
    if not wanted:
        return []
    found = [v for node in model.graph for v in node.outputs if v.name in wanted]
    return found + [v for v in model.graph.outputs if v.name in wanted and v not in found]


def _open_gates(reference: Reference, session: ModelSession, names: dict[Value, str],
                gates: list[Value], feeds: dict[str, Any]) -> set[str]:
    """The gate tensors whose candidate values equal the original's exactly."""
    fetchable = [v.name for v in gates if v.name and names.get(v, v.name) == v.name]
    if not fetchable:
        return set()
    got = session.run(feeds, fetchable)
    return {n for n in fetchable if n in reference.gate_values and n in got
            and np.array_equal(np.asarray(got[n]), np.asarray(reference.gate_values[n]))
            and np.shape(got[n]) == np.shape(reference.gate_values[n])}


def _compare_intermediates(reference: Reference, model: Model, session: ModelSession,
                           names: dict[Value, str], shared: list[Value], gates: list[Value],
                           outcome: Outcome) -> tuple[list[Mismatch], set[int]]:
    """Mismatches in graph order, and the ids of the informative tensors that matched; a tensor
    downstream of a selection is compared only when the selection came out as in the original."""
    diverging: list[Mismatch] = []
    witnesses: set[int] = set()
    feeds = adapt_feeds(model, reference.feeds[0], reference.base_inputs)
    if outcome.drift is not None or reference.budget is not None:
        feeds = feeds_as_inputs(model, feeds)
    opened = _open_gates(reference, session, names, gates, feeds)
    shared = [v for v in shared if reference.gates.get(v.name or "", frozenset()) <= opened]
    fetch = [v for v in shared if v.const is None and names.get(v) == v.name]
    fetched: dict[str, Any] = {}
    batch: list[str] = []
    size = 0
    for i, value in enumerate(fetch):
        batch.append(value.name or "")
        size += reference.tensors[value.name or ""].nbytes
        if size >= BATCH_BYTES or i == len(fetch) - 1:
            fetched.update(session.run(feeds, batch))
            batch, size = [], 0
    for value in shared:
        ref = reference.tensors[value.name or ""]
        if value.const is not None:
            actual = value.const.numpy()
        elif value.name in fetched:
            actual = fetched.pop(value.name)
        else:
            continue
        outcome.compared += 1
        if outcome.drift is not None or reference.budget is not None:
            actual = as_reference_dtypes({"t": actual}, {"t": ref})["t"]
        if outcome.drift is not None:  # measured, not judged
            outcome.drift.intermediate(value.name or "", compare(value.name or "", ref, actual, (0.0, 0.0)))
            if ref.weak is None:
                witnesses.add(id(value))
            continue
        slack = None
        if is_float_dtype(ref.dtype):
            rtol, atol = tolerance_for(ref.dtype, reference.tolerance_of(value.name or ""))
            slack = (rtol * INTERMEDIATE_SLACK, atol * INTERMEDIATE_SLACK)
        mismatch = compare(value.name or "", ref, actual, slack)
        if mismatch is not None:
            diverging.append(mismatch)
        elif ref.weak is None:
            witnesses.add(id(value))
    return diverging, witnesses
