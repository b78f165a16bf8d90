"""The memory plan as plain data: where every intermediate tensor lives in one arena, for which steps,
and which tensors share bytes on purpose. It travels as JSON (a file, or the model's metadata_props
under ``METADATA_KEY``) and is read back by the verifier, the executor and the plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields

from graphopt.errors import PlanFormatError

METADATA_KEY = "graphopt.memory_plan"
FORMAT = "graphopt.memory-plan/1"




@dataclass(frozen=True)
class Placement:
    """One tensor: ``offset``/``size`` in the arena (None when it aliases memory outside the arena),
    live from step ``start`` to ``end`` inclusive; ``alias_of`` names the tensor whose bytes it reuses
    (a view's input, or the input it was written over when ``in_place``)."""

    name: str
    size: int
    start: int
    end: int
    offset: int | None
    alias_of: str | None = None
    in_place: bool = False


_PLACEMENT_FIELDS = tuple(f.name for f in fields(Placement))


@dataclass
class MemoryPlan:
    """The plan of one model at fixed input shapes: order of nodes (by output names), tensors, totals."""

    alignment: int
    arena_bytes: int
    lower_bound_bytes: int
    lower_bound_unshared_bytes: int
    naive_bytes: int
    steps: int
    order: list[list[str]]  # each step's node, named by its outputs (node names may be empty)
    tensors: list[Placement] = field(default_factory=list)
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    planner: dict[str, object] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.arena_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0

    def to_json(self, indent: int | None = None) -> str:
        data = {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}
        data["tensors"] = [{f: getattr(t, f) for f in _PLACEMENT_FIELDS} for t in self.tensors]
        return json.dumps(data, indent=indent, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> MemoryPlan:
        try:
            data = json.loads(text)
            if data.pop("format", None) != FORMAT:
                raise ValueError(f"not a {FORMAT} document")
            data["tensors"] = [Placement(**t) for t in data.get("tensors", [])]
            return cls(**data)
        except (ValueError, TypeError, KeyError) as exc:
            raise PlanFormatError(f"invalid memory plan: {exc}") from None

    def summary(self) -> str:
        """Naive sum, lower bounds, arena and ratio in a few lines."""
        mb = 1024 * 1024
        shared = self.lower_bound_unshared_bytes - self.lower_bound_bytes
        gain = shared / self.lower_bound_unshared_bytes if self.lower_bound_unshared_bytes else 0.0
        return "\n".join([
            f"tensors planned:        {len(self.tensors)} over {self.steps} steps",
            f"naive (sum of all):     {self.naive_bytes / mb:10.3f} MB",
            f"lower bound, no sharing: {self.lower_bound_unshared_bytes / mb:9.3f} MB",
            f"lower bound, sharing:   {self.lower_bound_bytes / mb:10.3f} MB  (aliases and in-place "
            f"ops save {gain:.1%})",
            f"arena:                  {self.arena_bytes / mb:10.3f} MB  (arena / lower bound = "
            f"{self.ratio:.3f})",
        ])
