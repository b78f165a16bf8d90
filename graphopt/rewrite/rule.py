"""Rewrite rules (pattern + check + rewrite) and the driver that applies them to a fixed point."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.mutate import replace_all_uses_with
from graphopt.ir.node import Node
from graphopt.ir.tensor import Tensor
from graphopt.ir.value import Value
from graphopt.pass_infra.base import PassResult
from graphopt.pass_infra.budget import allowed_growth
from graphopt.rewrite.pattern import Match, Op, match

PROVENANCE_KEY = "graphopt.rewrite"


class RewriteContext:
    """What a rule's rewrite builds with: new nodes (recorded with provenance) and constants."""

    def __init__(self, model: Model, graph: Graph, rule: str) -> None:
        self.model, self.graph, self.rule = model, graph, rule
        self.new_nodes: list[Node] = []
        self.new_consts: list[Value] = []

    def node(self, op_type: str, inputs: Sequence[Value | None], attrs: dict[str, Any] | None = None, *,
             num_outputs: int = 1, domain: str = "") -> Node:
        """Create a node that will be inserted before the match's root."""
        node = Node(op_type, inputs, attrs, num_outputs=num_outputs, domain=domain)
        node.metadata_props[PROVENANCE_KEY] = self.rule
        self.new_nodes.append(node)
        return node

    def const(self, array: Any, dtype: int | None = None) -> Value:
        """A new constant of the graph being rewritten (dropped again if the rewrite declines)."""
        value = self.graph.add_const(Tensor.from_array(np.asarray(array), dtype))
        self.new_consts.append(value)
        return value

    def discard(self) -> None:
        """Undo what a declined rewrite created (its nodes were never inserted)."""
        for node in self.new_nodes:
            node.set_inputs(())
        for value in self.new_consts:
            if not value.num_uses:
                self.graph.remove_const(value)


Check = Callable[[Match, Model], "str | None"]
Rewrite = Callable[[Match, RewriteContext], "Sequence[Value] | None"]


def _accept(match: Match, model: Model) -> str | None:
    return None


@dataclass
class Rule:
    """``pattern`` finds candidates, ``check`` returns a rejection reason (None accepts) and
    ``rewrite`` returns the values that replace the root's outputs (None declines)."""

    name: str
    pattern: Op
    rewrite: Rewrite
    check: Check = _accept


@dataclass
class RuleStats:
    """Per-rule statistics: attempts, matches, rejections by reason, time."""

    attempts: int = 0
    matches: int = 0
    rejections: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Plain data for reports."""
        return {"attempts": self.attempts, "matches": self.matches,
                "rejections": dict(sorted(self.rejections.items())), "seconds": round(self.seconds, 6)}


def rules_result(stats: dict[str, RuleStats], verb: str) -> PassResult:
    """A pass's result from its rules' statistics: ``<verb>_<rule>`` match counts and
    ``rejected_<rule>:<reason>`` counts; changed when any rule matched."""
    done = {f"{verb}_{name}": s.matches for name, s in stats.items() if s.matches}
    rejected = {f"rejected_{name}:{reason}": n for name, s in stats.items()
                for reason, n in s.rejections.items()}
    return PassResult(bool(done), {**done, **rejected},
                      rules={name: s.as_dict() for name, s in stats.items()})


def escapes(found: Match) -> str | None:
    """The framework's own check: no intermediate value may be read outside the match."""
    inside = set(found.matched)
    for node in found.matched[1:]:
        for out in node.outputs:
            if out.is_graph_output:
                return "intermediate value is a graph output"
            if any(user not in inside for user, _ in out.iter_uses()):
                return "intermediate value is used outside the match"
    return None


def apply_rules(model: Model, rules: Sequence[Rule], *, max_iterations: int = 10,
                stats: dict[str, RuleStats] | None = None) -> dict[str, RuleStats]:
    """Apply ``rules`` consumers-first (largest pattern wins) in every graph until nothing matches.

    Returns statistics per rule name. Matched nodes that become unused are removed, with the
    constants only they read.
    """
    stats = stats if stats is not None else {}
    for rule in rules:
        stats.setdefault(rule.name, RuleStats())
    for _ in range(max_iterations):
        if not sum(_sweep(model, graph, rules, stats) for graph in list(model.graph.all_graphs())):
            break
    return stats


def _sweep(model: Model, graph: Graph, rules: Sequence[Rule], stats: dict[str, RuleStats]) -> int:
    applied = 0
    for node in graph.reversed():
        if node.graph is not graph:
            continue
        for rule in rules:
            if _try(model, graph, node, rule, stats[rule.name]):
                applied += 1
                break
    return applied


def _try(model: Model, graph: Graph, node: Node, rule: Rule, stat: RuleStats) -> bool:
    if node.op_type != rule.pattern.op_type:
        return False  # not an attempt: the root op differs
    start = time.perf_counter()
    try:
        stat.attempts += 1
        found = match(rule.pattern, node)
        if found is None:
            return False
        reason = escapes(found) or rule.check(found, model)
        if reason is not None:
            stat.rejections[reason] += 1
            return False
        ctx = RewriteContext(model, graph, rule.name)
        replacements = rule.rewrite(found, ctx)
        if replacements is None:
            stat.rejections["rewrite declined"] += 1
            ctx.discard()
            return False
        growth, removed = _cost(found, ctx, replacements)
        if growth > allowed_growth(removed, slack=0):
            stat.rejections["would copy a shared weight"] += 1
            ctx.discard()
            return False
        _splice(graph, found, ctx, replacements)
        stat.matches += 1
        return True
    finally:
        stat.seconds += time.perf_counter() - start


def _doomed(found: Match, replacements: Sequence[Value]) -> list[Node]:
    """The matched nodes the rewrite removes (a rewrite may keep part of the match)."""
    kept = set(replacements)
    return [n for n in found.matched if not any(o in kept for o in n.outputs)]


def _cost(found: Match, ctx: RewriteContext, replacements: Sequence[Value]) -> tuple[int, int]:
    """(weight bytes the rewrite adds, nodes it removes): new constants minus the constants that only
    the removed nodes read. A fused copy of a weight that other nodes still read costs its size."""
    doomed = _doomed(found, replacements)
    inside = set(doomed)
    read = {id(v): v for n in doomed for v in n.inputs if v is not None and v.const is not None}
    freed = sum(v.const.nbytes for v in read.values()  # type: ignore[union-attr]
                if not v.is_graph_output and all(user in inside for user, _ in v.iter_uses()))
    added = sum(v.const.nbytes for v in ctx.new_consts if v.const is not None)  # type: ignore[union-attr]
    return added - freed, len(doomed) - len(ctx.new_nodes)


def _splice(graph: Graph, found: Match, ctx: RewriteContext, replacements: Sequence[Value]) -> None:
    root = found.root
    graph.insert_before(root, ctx.new_nodes)
    for old, new in zip(root.outputs, replacements):
        replace_all_uses_with(old, new, outputs=True)
    # a rewrite may keep part of the match (Relu(Relu(x))); constants only the rest read go with it
    graph.remove_with_constants(_doomed(found, replacements))
