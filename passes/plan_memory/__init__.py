"""plan-memory: choose an execution order, share buffers where operator semantics allow, assign arena
offsets, reorder the graph to the chosen schedule and record the plan in the model's metadata."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Sequence

from graphopt import Model, Node, PassResult, Value, load_arrays, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.errors import UsageError
from graphopt.memory import METADATA_KEY, MemoryPlan, Placement

from ._lifetimes import Lifetime, lifetimes, measure_sizes, peak_bytes
from ._offsets import Block, align, assign_offsets, lower_bound
from ._schedule import memory_greedy_order
from ._sharing import Sharing, share_buffers

IN_PLACE_MODES = ("none", "unary", "binary")


def parse_shapes(text: str) -> dict[str, list[int]]:
    """``name=1,3,224,224+mask=1,128`` (the pipeline-text form of --input-shape)."""
    shapes: dict[str, list[int]] = {}
    for item in filter(None, text.split("+")):
        name, _, dims = item.partition("=")
        try:
            shape = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            shape = [-1]
        if not name.strip() or any(d < 0 for d in shape):
            raise UsageError(f"plan-memory: bad input shape {item!r}; expected NAME=D0xD1x... with dims >= 0")
        shapes[name.strip()] = shape
    return shapes


@dataclass
class Candidate:
    """One execution order with its tensors, buffers and aligned lower bound."""

    order: list[Node]
    spans: list[Lifetime]
    sharing: Sharing
    bound: int


@register_pass
@dataclass
class PlanMemory:
    """Plan activation memory: execution order, shared buffers and arena offsets, kept in metadata.

    Order: ``order=auto`` tries a memory-aware list schedule and keeps the stored order unless the
    schedule lowers the peak; ``keep`` never reorders. Sharing: ``inplace`` =
    none, unary or binary elementwise ops), offsets aligned to ``alignment`` bytes. ``shapes`` fixes
    dynamic input dims (``x=1,3,224,224+y=...``); the model's declared shapes are not changed."""

    name: ClassVar[str] = "plan-memory"
    alignment: int = 64
    inplace: str = "unary"
    order: str = "auto"
    shapes: str = ""
    inputs: str = ""  # an .npz of inputs, for sizes only a run can show (data-dependent branches)

    def __post_init__(self) -> None:
        self.alignment = int(self.alignment)
        if self.alignment < 1:
            raise UsageError(f"plan-memory: alignment must be >= 1, not {self.alignment}")
        if self.inplace not in IN_PLACE_MODES:
            raise UsageError(f"plan-memory: inplace must be one of {', '.join(IN_PLACE_MODES)}")
        if self.order not in ("auto", "keep"):
            raise UsageError("plan-memory: order must be auto or keep")
        self._shapes = parse_shapes(self.shapes)

    def run(self, model: Model) -> PassResult:
        graph = self._graph = model.graph
        refresh_types(model)
        given = load_arrays(self.inputs) if self.inputs else None
        measure = measure_sizes(model, self._shapes, given)
        sizes: dict[Value, int | None] = {}

        def size_of(value: Value) -> int | None:
            if value not in sizes:
                sizes[value] = measure(value)
            return sizes[value]
        stored = list(graph)
        best = self._candidate(stored, size_of)
        if self.order == "auto" and len(stored) > 1:
            greedy = memory_greedy_order(graph, lambda v: size_of(v) or 0)
            if greedy != stored:
                other = self._candidate(greedy, size_of)
                if other.bound < best.bound:
                    best = other
        plan, buffer_offsets = self._plan(best, len(stored))
        _name_values(model, [span.value for span in best.spans])
        plan_text = _fill_tensors(plan, best, buffer_offsets, self._shapes).to_json()
        reordered = best.order != stored
        if reordered:
            graph.reorder(best.order)
        changed = reordered or model.metadata_props.get(METADATA_KEY) != plan_text
        model.metadata_props[METADATA_KEY] = plan_text
        stats = {"arena_bytes": plan.arena_bytes, "lower_bound_bytes": plan.lower_bound_bytes,
                 "lower_bound_unshared_bytes": plan.lower_bound_unshared_bytes,
                 "naive_bytes": plan.naive_bytes, "reordered": int(reordered),
                 "aliases": len(best.sharing.alias_of) - len(best.sharing.in_place),
                 "in_place": len(best.sharing.in_place), "tensors": len(best.spans)}
        return PassResult(changed, stats)

    def _candidate(self, order: list[Node], size_of: Callable[[Value], int | None]) -> Candidate:
        spans = lifetimes(self._graph, order, size_of)
        sharing = share_buffers(order, spans, self.inplace)
        blocks = [Block(align(b.size, self.alignment), b.start, b.end) for b in sharing.buffers]
        return Candidate(order, spans, sharing, lower_bound(blocks, len(order)))

    def _plan(self, best: Candidate, steps: int) -> tuple[MemoryPlan, dict[int, int]]:
        buffers = best.sharing.buffers
        blocks = [Block(align(b.size, self.alignment), b.start, b.end) for b in buffers]
        offsets, arena = assign_offsets(blocks, steps)
        unshared = peak_bytes(((align(s.size, self.alignment), s.start, s.end) for s in best.spans), steps)
        plan = MemoryPlan(alignment=self.alignment, arena_bytes=arena, lower_bound_bytes=best.bound,
                          lower_bound_unshared_bytes=unshared,
                          naive_bytes=sum(align(s.size, self.alignment) for s in best.spans),
                          steps=steps, order=[])
        plan.planner = {"inplace": self.inplace, "order": self.order}
        return plan, {id(b): o for b, o in zip(buffers, offsets)}


def _name_values(model: Model, values: Sequence[Value]) -> None:
    """Give unnamed planned values unique names, so the plan can refer to them in the saved model."""
    taken = {v.name for g in model.graph.all_graphs()
             for v in [*g.inputs, *g.outputs, *g.consts, *(o for n in g for o in n.outputs)] if v.name}
    counter = 0
    for value in values:
        if value.name:
            continue
        stem = (value.producer.op_type.lower() if value.producer is not None else "value") + "_out"
        while f"{stem}_{counter}" in taken:
            counter += 1
        value.name = f"{stem}_{counter}"
        taken.add(value.name)


def _fill_tensors(plan: MemoryPlan, best: Candidate, buffer_offsets: dict[int, int],
                  shapes: dict[str, list[int]]) -> MemoryPlan:
    """The per-tensor placements and the step order, by value names."""
    sharing = best.sharing

    def offset(value: Value) -> int | None:
        buffer = sharing.buffer_of.get(value)
        return None if buffer is None else buffer_offsets[id(buffer)]
    plan.order = [[o.name for o in node.outputs] for node in best.order]
    plan.tensors = [
        Placement(name=span.value.name, size=span.size, start=span.start, end=span.end,
                  offset=offset(span.value),
                  alias_of=sharing.alias_of[span.value].name if span.value in sharing.alias_of else None,
                  in_place=span.value in sharing.in_place)
        for span in best.spans]
    plan.input_shapes = shapes
    return plan
