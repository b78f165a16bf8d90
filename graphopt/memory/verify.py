"""An independent check of a memory plan against the saved model: it recomputes every lifetime from the
ONNX graph itself (not from the planner's analyses) and proves that no two tensors live at the same
step share bytes unless the sharing is declared and legal (a view of its input, or an op written over
an input that nothing reads afterwards)."""

from __future__ import annotations

from collections import defaultdict

import onnx

from graphopt.memory.plan import MemoryPlan

VIEW_OPS = frozenset({"Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})


def _names_read(node: onnx.NodeProto) -> set[str]:
    """Inputs of ``node`` and every name read inside its subgraphs (captures included)."""
    found = {name for name in node.input if name}
    for attr in node.attribute:
        graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for graph in graphs:
            for inner in graph.node:
                found |= _names_read(inner)
    return found


def check_plan(model: onnx.ModelProto, plan: MemoryPlan) -> list[str]:
    """Every problem found (empty: the plan is sound for this model's node order)."""
    graph = model.graph
    problems: list[str] = []
    if len(graph.node) != plan.steps or [list(n.output) for n in graph.node] != plan.order:
        return ["the model's node order is not the plan's order"]
    produced: dict[str, int] = {}
    producer: dict[str, onnx.NodeProto] = {}
    last: dict[str, int] = defaultdict(lambda: -1)
    for step, node in enumerate(graph.node):
        for name in _names_read(node):
            last[name] = step
        for name in node.output:
            if name:
                produced[name], producer[name] = step, node
    outputs = {o.name for o in graph.output}
    by_name = {t.name: t for t in plan.tensors}
    for name, step in produced.items():
        if name not in by_name and (name in last or name in outputs):
            problems.append(f"{name}: produced at step {step} and read, but not in the plan")
    for t in plan.tensors:
        if t.name not in produced:
            problems.append(f"{t.name}: in the plan but produced by no node")
            continue
        end = plan.steps if t.name in outputs else max(produced[t.name], last[t.name])
        if t.start != produced[t.name] or t.end < end:
            problems.append(f"{t.name}: planned live {t.start}..{t.end}, but it is live "
                            f"{produced[t.name]}..{end}")
        if t.offset is not None and (t.offset < 0 or t.offset + t.size > plan.arena_bytes):
            problems.append(f"{t.name}: bytes {t.offset}..{t.offset + t.size} outside the arena")
        if t.offset is not None and plan.alignment > 1 and t.offset % plan.alignment:
            problems.append(f"{t.name}: offset {t.offset} is not aligned to {plan.alignment}")
    root = {t.name: _root(t.name, by_name) for t in plan.tensors}
    problems += _check_declared_sharing(plan, by_name, producer, produced, last, root, outputs)
    problems += _check_overlaps(plan, root)
    return problems


def _root(name: str, by_name: dict) -> str:
    seen = set()
    while by_name.get(name) is not None and by_name[name].alias_of and name not in seen:
        seen.add(name)
        name = by_name[name].alias_of
    return name


def _check_declared_sharing(plan: MemoryPlan, by_name: dict, producer: dict, produced: dict,
                            last: dict, root: dict, outputs: set) -> list[str]:
    problems = []
    members: dict[str, list[str]] = defaultdict(list)
    for t in plan.tensors:
        members[root[t.name]].append(t.name)
    for t in plan.tensors:
        if not t.alias_of:
            continue
        host = by_name.get(t.alias_of)
        host_offset = host.offset if host is not None else None
        if t.offset != host_offset:
            problems.append(f"{t.name}: declared to share the bytes of {t.alias_of} but placed at "
                            f"{t.offset}, not at {host_offset}")
        node = producer.get(t.name)
        if node is None or t.alias_of not in node.input:
            problems.append(f"{t.name}: declared to share the bytes of {t.alias_of}, which its node does "
                            "not read")
            continue
        if t.name in outputs:
            problems.append(f"{t.name}: a graph output shares the bytes of {t.alias_of}")
        if not t.in_place:
            if node.op_type not in VIEW_OPS or node.input[0] != t.alias_of:
                problems.append(f"{t.name}: {node.op_type} is not a view of {t.alias_of}")
            continue
        step = produced[t.name]
        for other in members[root[t.name]]:
            needed = plan.steps if other in outputs else last[other]
            if other != t.name and produced.get(other, -1) < step and needed > step:
                problems.append(f"{t.name}: written in place at step {step} over bytes that {other} "
                                f"still needs at step {needed}")
    return problems


def _check_overlaps(plan: MemoryPlan, root: dict) -> list[str]:
    """At each step, live tensors of different roots must not share a byte."""
    live_at: dict[int, list] = defaultdict(list)
    for t in plan.tensors:
        if t.offset is None or t.size == 0:
            continue
        for step in range(t.start, t.end + 1):
            live_at[step].append(t)
    problems: list[str] = []
    reported: set[tuple[str, str]] = set()
    for step in sorted(live_at):
        ranges = sorted(live_at[step], key=lambda t: (t.offset, t.name))
        open_ranges: list = []
        for t in ranges:
            open_ranges = [o for o in open_ranges if o.offset + o.size > t.offset]
            for o in open_ranges:
                pair = (o.name, t.name)
                if root[o.name] != root[t.name] and pair not in reported:
                    reported.add(pair)
                    problems.append(f"{o.name} and {t.name} are both live at step {step} and share bytes "
                                    f"{t.offset}..{min(o.offset + o.size, t.offset + t.size)}")
            open_ranges.append(t)
        if len(problems) > 50:
            break
    return problems
