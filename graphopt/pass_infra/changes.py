"""``optimize --diff``: which nodes and values each kept pass removed, added or changed.

Nodes are matched by identity within a run and shown by their name (or first output's name); a node
counts as changed when it stays but its op, inputs or attributes differ. Values are the named
tensors of the main graph and subgraphs (what a user can look up in the original file).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from graphopt.ir.model import Model
from graphopt.ir.node import Node
from graphopt.pass_infra.base import PassResult
from graphopt.pass_infra.manager import PassRecord

Signature = tuple[str, str, tuple[int, ...], tuple[tuple[str, int], ...]]


@dataclass
class PassChanges:
    """What one kept pass run did to the model."""

    name: str
    round: int
    record: PassRecord | None = field(default=None, repr=False, compare=False)
    removed: list[tuple[str, str]] = field(default_factory=list)  # (op type, node label)
    added: list[tuple[str, str]] = field(default_factory=list)
    changed: list[tuple[str, str]] = field(default_factory=list)
    values_removed: list[str] = field(default_factory=list)
    values_added: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the report's ``diff`` entries)."""
        return {"pass": self.name, "round": self.round,
                "removed": [{"op": op, "node": label} for op, label in self.removed],
                "added": [{"op": op, "node": label} for op, label in self.added],
                "changed": [{"op": op, "node": label} for op, label in self.changed],
                "values_removed": self.values_removed, "values_added": self.values_added}


class ChangeLog:
    """An instrument recording each kept pass's node and value changes. Put it last: it then sees only
    passes every other instrument accepted, and drops what a later rollback undoes."""

    cause = "change-log"

    def __init__(self) -> None:
        self.passes: list[PassChanges] = []
        self._before: dict[Node, Signature] = {}
        self._values: set[str] = set()

    def before_pass(self, record: PassRecord, model: Model) -> None:
        """Remember every node's signature and every named value."""
        self._before = {node: _signature(node) for node in model.graph.all_nodes()}
        self._values = _value_names(model)

    def after_pass(self, record: PassRecord, model: Model, result: PassResult) -> str | None:
        """Record what changed; never fails the pass."""
        if not result.changed:
            return None
        after = {node: _signature(node) for node in model.graph.all_nodes()}
        changes = PassChanges(record.name, record.round, record)
        changes.removed = sorted((_op(n), _label(n)) for n in self._before if n not in after)
        changes.added = sorted((_op(n), _label(n)) for n in after if n not in self._before)
        changes.changed = sorted((_op(n), _label(n)) for n, sig in after.items()
                                 if n in self._before and self._before[n] != sig)
        values = _value_names(model)
        changes.values_removed = sorted(self._values - values)
        changes.values_added = sorted(values - self._values)
        self.passes.append(changes)
        return None

    def on_failure(self, record: PassRecord, model: Model, failure: str) -> None:
        """A pass rolled back after this log saw it leaves no trace."""
        if self.passes and self.passes[-1].record is record:
            self.passes.pop()

    def kept(self, records: list[PassRecord]) -> list[PassChanges]:
        """The changes of the runs still in ``records`` (a final-check rollback replaces some)."""
        alive = {id(r) for r in records if r.status == "changed"}
        return [ch for ch in self.passes if ch.record is not None and id(ch.record) in alive]


def _signature(node: Node) -> Signature:
    return (node.domain, node.op_type, tuple(id(v) for v in node.inputs),
            tuple((k, id(a)) for k, a in sorted(node.attrs.items())))


def _op(node: Node) -> str:
    return node.qualified_type


def _label(node: Node) -> str:
    if node.name:
        return node.name
    named = next((out.name for out in node.outputs if out.name), None)
    return f"-> {named}" if named else "(new)"


def _value_names(model: Model) -> set[str]:
    names = set()
    for graph in model.graph.all_graphs():
        names.update(v.name for v in graph.inputs if v.name)
        names.update(v.name for v in graph.consts if v.name)
        for node in graph:
            names.update(out.name for out in node.outputs if out.name)
    return names


def diff_text(changes: list[PassChanges], shown: int = 6) -> str:
    """Per pass: counts by op type, then a few node names of each kind (all of them in --report)."""
    lines = ["diff (nodes removed -, added +, changed ~; by pass):"]
    if not changes:
        lines.append("  no pass changed the model")
    for ch in changes:
        where = f" (round {ch.round})" if ch.round else ""
        lines.append(f"  {ch.name}{where}: -{len(ch.removed)} +{len(ch.added)} ~{len(ch.changed)} nodes, "
                     f"-{len(ch.values_removed)} +{len(ch.values_added)} values")
        for mark, items in (("-", ch.removed), ("+", ch.added), ("~", ch.changed)):
            if not items:
                continue
            by_op = Counter(op for op, _ in items)
            ops = ", ".join(f"{op} {n}" for op, n in sorted(by_op.items(), key=lambda kv: (-kv[1], kv[0])))
            names = ", ".join(label for _, label in items[:shown])
            more = f", ... {len(items) - shown} more" if len(items) > shown else ""
            lines.append(f"    {mark} {ops}: {names}{more}")
    return "\n".join(lines)
