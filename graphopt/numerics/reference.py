"""The original model's behaviour on the check inputs, and the comparison of a transformed model with
it: every output, plus every intermediate tensor that kept its name downstream of what changed (a value
keeps its name only if it keeps its value), so a wrong rewrite is caught where it happens even when the
outputs saturate. Intermediates are fetched in batches of bounded size and kept as fingerprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Hashable

from graphopt.errors import RuntimeCheckError
from graphopt.ir.model import Model
from graphopt.ir.value import Value
from graphopt.numerics.compare import Mismatch, compare_outputs, max_errors
from graphopt.numerics.diff import changed_nodes, downstream, graph_signatures, random_dependent
from graphopt.numerics.fingerprint import Fingerprint, compare, fingerprint
from graphopt.numerics.interface import adapt_feeds, adapt_outputs, interface_perms
from graphopt.numerics.run import ModelSession, open_session
from graphopt.numerics.strength import weakness

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

    @property
    def output_weakness(self) -> dict[str, str]:
        """Why each weak output cannot reveal a change (first input set)."""
        found = {n: weakness(self.outputs[0][n], self.tolerance) for n in self.output_names}
        found.update({n: "depends on a random op" for n in self.output_names if n in self.random})
        return {n: r for n, r in found.items() if r is not None}


def capture(model: Model, session: ModelSession, names: dict[Value, str], feeds: list[dict[str, Any]],
            outputs: list[dict[str, Any]], tolerance: tuple[float, float] | None,
            libraries: tuple[str, ...] = ()) -> Reference:
    """Fingerprint the original's intermediates on the first input set; ``outputs`` are its outputs."""
    keep: list[Any] = []
    random_ids = random_dependent(model)
    fetchable = [(v, names[v]) for v in intermediates(model) if names.get(v) == v.name]
    base_in, base_out = interface_perms(model)
    ref = Reference(feeds, outputs, {}, graph_signatures(model.graph, keep), dict(model.opset_imports),
                    list(session.output_names[:len(model.graph.outputs)]),
                    {n for v, n in fetchable if id(v) in random_ids}
                    | {names.get(v, v.name or "") for v in model.graph.outputs if id(v) in random_ids},
                    tolerance, libraries, base_in, base_out, keep)
    wanted = [n for _, n in fetchable if n not in ref.random]
    start, size = 0, FIRST_BATCH
    while start < len(wanted):
        batch = wanted[start:start + size]
        values = session.run(feeds[0], batch)
        for name in batch:
            ref.tensors[name] = fingerprint(values[name], tolerance)
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

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the pass record and the JSON report."""
        return {"ok": self.failure is None, "strength": self.strength if self.failure is None else "failed",
                "max_abs": self.max_abs, "max_rel": self.max_rel, "compared": self.compared,
                "changed_nodes": self.changed, "unproven_nodes": self.unproven, "first_diverging": self.first,
                **({"error": self.failure} if self.failure else {})}


def check(reference: Reference, model: Model, what: str) -> Outcome:
    """Compare ``model`` with the reference: outputs on every input set, intermediates on the first."""
    changed = changed_nodes(model, reference.signatures, model.opset_imports == reference.opsets)
    outputs_same = [v.name for v in model.graph.outputs] == reference.output_names
    if not changed and outputs_same:
        return Outcome(strength="unchanged")
    values, reach = downstream(model, changed)
    shared = [v for v in values if v.name in reference.tensors and not v.is_graph_output]
    try:
        session, names = open_session(model, what, extra_outputs=[v for v in shared if v.const is None],
                                      libraries=reference.libraries)
        outcome = Outcome(changed=len(changed))
        mismatches = _compare_outputs(reference, model, session, outcome)
        diverging, witnesses = _compare_intermediates(reference, model, session, names, shared, outcome)
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
    for feeds, expected in zip(reference.feeds, reference.outputs):
        actual = session.run(adapt_feeds(model, feeds, reference.base_inputs), graph_outputs)
        actual = adapt_outputs(model, actual, reference.base_outputs)
        wanted = {k: v for k, v in expected.items() if k not in reference.random}
        found.extend(m for m in compare_outputs(wanted, actual, reference.tolerance) if m not in found)
        max_abs, max_rel = max_errors(wanted, actual)
        outcome.max_abs, outcome.max_rel = max(outcome.max_abs, max_abs), max(outcome.max_rel, max_rel)
    return found


def _compare_intermediates(reference: Reference, model: Model, session: ModelSession,
                           names: dict[Value, str], shared: list[Value],
                           outcome: Outcome) -> tuple[list[Mismatch], set[int]]:
    """Mismatches in graph order, and the ids of the informative tensors that matched."""
    diverging: list[Mismatch] = []
    witnesses: set[int] = set()
    fetch = [v for v in shared if v.const is None and names.get(v) == v.name]
    feeds = adapt_feeds(model, reference.feeds[0], reference.base_inputs)
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
        mismatch = compare(value.name or "", ref, actual, reference.tolerance)
        if mismatch is not None:
            diverging.append(mismatch)
        elif ref.weak is None:
            witnesses.add(id(value))
    return diverging, witnesses
