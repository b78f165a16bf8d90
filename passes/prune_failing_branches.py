"""prune-failing-branches: an If whose one branch makes the run fail for certain becomes its other branch."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

from graphopt.passes.fold_constants import FoldConstants

from graphopt import Graph, Model, Node, PassResult, Value, clone_model, is_standard_domain, register_pass
from graphopt.analyses.certain_failures import certain_failure
from graphopt.analyses.shapes import refresh_types
from graphopt.rewrite import constant_condition, inline_branch

log = logging.getLogger(__name__)

STAMP_KEY = "prune-failing-branches"
LOOP_OPS = frozenset({"Loop", "Scan"})
Step = tuple[int, str, int]  # (holder node's position, attribute name, index in a GRAPHS attribute)


@register_pass
@dataclass
class PruneFailingBranches:
    """Replace an If by one branch when taking the other makes the run fail, whatever the inputs.

    Exported models dispatch on ranks at run time (``squeeze(-1)`` becomes ``If(dim == 1) Squeeze else
    Identity``), and downstream code often works for one rank only. For each If whose branches give
    outputs of different ranks, shapes or constants, the pass folds a copy of the model as if one
    branch were always taken; when that copy holds a node that certainly fails (an LSTM fed rank 5, a
    Concat of ranks 2 and 3: ``graphopt.analyses.certain_failures``) on the way to every output the If
    feeds, no successful run takes that branch, and the If is replaced by the other one.

    Every run that succeeds keeps its outputs; a run that fails may fail at another node, or (when the
    kept branch accepts what the pruned one did not) no longer fail. Disable the pass to keep every
    failure exactly where it was. If nodes inside Loop/Scan bodies are left alone.
    """

    name: ClassVar[str] = "prune-failing-branches"
    max_trials: int = 32  # folded copies per run: bounds the cost on models with many Ifs
    max_work: int = 500_000  # and copies x nodes per run: large models try fewer (counted, not timed)
    fold_rounds: int = 4

    def run(self, model: Model) -> PassResult:
        stats: Counter = Counter()
        tried: dict[Node, int] = model.analysis_stamps.setdefault(STAMP_KEY, {})
        changed: set[Graph] = set()
        if any(_candidate_if(node) for node in model.graph.all_nodes()):
            refresh_types(model)  # branch outputs need their types for the candidate test
        size = model.node_count()
        for graph in list(model.graph.all_graphs()):
            if not _decidable(graph) or any(g in changed for g in graph.ancestors()):
                continue  # a graph inside one just changed waits for the fold that follows
            for node in graph.nodes:
                if stats["trials"] >= self.max_trials or (stats["trials"] + 2) * size > self.max_work:
                    break
                if node.graph is not graph or not _candidate(node) or tried.get(node) == size:
                    continue
                tried[node] = size
                if self._prune(model, node, graph, stats):
                    changed.add(graph)  # its facts change with the fold that follows: the next run goes on
                    size = model.node_count()
                    break
        if stats["pruned_If"]:
            tried.clear()
        return PassResult(stats["pruned_If"] > 0, {k: v for k, v in sorted(stats.items()) if v})

    def _prune(self, model: Model, node: Node, graph: Graph, stats: Counter) -> bool:
        for taken in (True, False):
            stats["trials"] += 1
            reason = self.failure_when(model, node, taken)
            if reason is None:
                continue
            # If both branches fail the If always fails, and keeping either branch is as good
            if inline_branch(node, graph, not taken) is None:
                return False
            log.info("If %r: every run taking its %s branch fails (%s); kept the %s branch", node.name,
                     _branch(taken), reason, _branch(not taken))
            stats["pruned_If"] += 1
            return True
        return False

    def failure_when(self, model: Model, node: Node, taken: bool) -> str | None:
        """Why every run in which If ``node`` takes branch ``taken`` fails, or None if not known."""
        copy = clone_model(model)
        twin = _follow(copy, _path(node))
        scope = twin.graph
        assert scope is not None
        watched = _dependent_outputs(twin, scope)
        if not watched or inline_branch(twin, scope, taken) is None:
            return None
        fold = FoldConstants()
        for _ in range(self.fold_rounds):
            if not fold.run(copy).changed:
                break
        refresh_types(copy)
        if not _attached(scope, copy):
            return None
        needed = [_ancestors(scope.outputs[i], scope) for i in watched]  # the values folding left there
        for candidate in scope:
            reason = certain_failure(candidate, copy.opset)
            if reason is not None and all(candidate in group for group in needed):
                return f"{candidate.op_type} {candidate.name!r}: {reason}"
        return None


def _branch(taken: bool) -> str:
    return "then" if taken else "else"


def _decidable(graph: Graph) -> bool:
    """Graphs that run whole each time they run: the main graph and If branches, not loop bodies
    (whose inputs may change rank from one iteration to the next)."""
    return all(g.parent is None or g.parent.op_type not in LOOP_OPS for g in graph.ancestors())


def _candidate_if(node: Node) -> bool:
    return node.op_type == "If" and is_standard_domain(node.domain) and constant_condition(node) is None


def _candidate(node: Node) -> bool:
    """An If with an unknown condition whose branches differ in what downstream code can learn."""
    if not _candidate_if(node):
        return False
    then, other = node.attr("then_branch"), node.attr("else_branch")
    if not isinstance(then, Graph) or not isinstance(other, Graph):
        return False
    return any(_facts(a) != _facts(b) for a, b in zip(then.outputs, other.outputs))


def _facts(value: Value) -> tuple:
    return (value.const is not None, value.rank, value.static_shape)


def _path(node: Node) -> list[Step]:
    """Positions leading from the main graph to ``node``: per graph, the position of the node (or of the
    holder of the next graph) and the attribute holding that graph (none for the main graph)."""
    steps: list[Step] = []
    graph, target = node.graph, node
    while graph is not None:
        position = graph.nodes.index(target)
        holder = graph.parent
        if holder is None:
            steps.append((position, "", 0))
            break
        name, index = _slot(holder, graph)
        steps.append((position, name, index))
        graph, target = holder.graph, holder
    return list(reversed(steps))


def _slot(holder: Node, graph: Graph) -> tuple[str, int]:
    for name, attr in holder.attrs.items():
        if attr.value is graph:
            return name, 0
        if isinstance(attr.value, list) and any(g is graph for g in attr.value):
            return name, next(i for i, g in enumerate(attr.value) if g is graph)
    raise ValueError(f"{holder} does not hold graph {graph.name!r}")


def _follow(model: Model, steps: list[Step]) -> Node:
    """The node at ``steps`` in ``model`` (a structural copy of the model the steps were taken in)."""
    node = model.graph.nodes[steps[0][0]]
    for position, name, index in steps[1:]:
        held = node.attr(name)
        graph = held[index] if isinstance(held, list) else held
        node = graph.nodes[position]
    return node


def _dependent_outputs(node: Node, scope: Graph) -> list[int]:
    """Positions of ``scope``'s outputs that read (through any path) an output of ``node``."""
    reached: set[Value] = set(node.outputs)
    for later in scope.nodes[scope.nodes.index(node) + 1:]:
        if any(value in reached for value in later.reads()):
            reached.update(later.outputs)
    return [i for i, value in enumerate(scope.outputs) if value in reached]


def _ancestors(value: Value, scope: Graph) -> set[Node]:
    """Nodes of ``scope`` that must run to compute ``value`` (reads inside subgraphs included)."""
    found: set[Node] = set()
    stack = [value]
    while stack:
        producer = scope.local_producer(stack.pop())
        if producer is None or producer in found:
            continue
        found.add(producer)
        stack.extend(producer.reads())
    return found


def _attached(scope: Graph, model: Model) -> bool:
    """Whether ``scope`` is still part of ``model`` (folding may have inlined the If holding it)."""
    return any(g is scope for g in model.graph.all_graphs())
