"""convert-precision: float32 to float16 or bfloat16, never silently wrong.

It runs after the default pipeline (``optimize --precision fp16``), so BatchNormalizations are already
folded into their Convs and decomposed norms fused: a running variance of 9.8e7, which other converters
clamp to 65504, no longer exists by then. Nodes, constants and Cast targets switch to the lower type
where the op's schema admits it; shape arithmetic, selections and out-of-range tensors keep float32
behind the fewest Casts (see _plan), and the float32 weights that die are dropped. The check that
follows holds the outputs to a drift budget against the float32 original (``PassResult.drift_budget``)
and reports the drift per output and where it grows.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import ClassVar

from onnx import TensorProto

from graphopt import Model, PassResult, make_feeds, observe, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.errors import GraphoptError, UsageError

from ._auto import choose_kept
from ._lower import lowered_copy
from ._plan import make_plan, observe_ranges

DTYPES = {"fp16": TensorProto.FLOAT16, "float16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16,
          "bfloat16": TensorProto.BFLOAT16}
BUDGETS = {TensorProto.FLOAT16: (1e-2, 1e-5), TensorProto.BFLOAT16: (5e-2, 1e-4)}  # (rtol, atol)
NO_KERNEL = re.compile(r"Could not find an implementation for (\w+)\(\d+\)")
LOG = logging.getLogger(__name__)
PROBES = 12  # session probes for ops onnxruntime has no kernel of in the lower type


@register_pass
@dataclass
class ConvertPrecision:
    """Lower float32 to ``dtype`` (fp16 | bf16) within a drift budget; see the module docstring."""

    name: ClassVar[str] = "convert-precision"
    may_grow: ClassVar[bool] = True  # boundary Casts are what keeping float32 where it must costs
    dtype: str = "fp16"
    keep_io_types: bool = False  # True: inputs and outputs stay float32 (Casts at the interface)
    keep_fp32: str = ""  # node names or op types that keep float32, separated by '+'
    rtol: float = 0.0  # drift budget relative to each output's magnitude (0: 1e-2 fp16, 5e-2 bf16)
    atol: float = 0.0
    auto: bool = False  # mixed precision: keep the most drift-sensitive nodes float32 (see _auto)
    observe: bool = True  # one seeded run of the original to find activations out of range
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"convert-precision: dtype must be fp16 or bf16, not {self.dtype!r}")
        if self.rtol < 0 or self.atol < 0:
            raise UsageError("convert-precision: rtol and atol must be at least 0")

    def run(self, model: Model) -> PassResult:
        low = DTYPES[self.dtype]
        refresh_types(model)  # every node output's dtype decides what converts
        keep = frozenset(k for k in self.keep_fp32.split("+") if k)
        observed = observe_ranges(model, self.seed) if self.observe else None
        no_kernel: set[str] = set()
        for _ in range(PROBES):
            plan = make_plan(model, low, keep | no_kernel, observed)
            if not plan.low:
                return PassResult(False, {"kept_fp32": len(plan.kept)})
            candidate, _, done = lowered_copy(model, plan, low, self.keep_io_types)
            missing = _missing_kernel(candidate, self.seed)
            if missing is None or missing in no_kernel:
                break
            no_kernel.add(missing)
        default = BUDGETS[low]
        budget = (self.rtol or default[0], self.atol or default[1])
        auto_runs = 0
        if self.auto:
            blocked = keep | no_kernel
            chosen = choose_kept(model, lambda nodes: make_plan(model, low, blocked, observed, nodes),
                                 low, self.keep_io_types, budget[0], self.seed)
            auto_runs = chosen.runs
            plan = make_plan(model, low, keep | no_kernel, observed, frozenset(chosen.kept))
            if not plan.low:
                return PassResult(False, {"kept_fp32": len(plan.kept), "auto_runs": auto_runs})
            candidate, _, done = lowered_copy(model, plan, low, self.keep_io_types)
        model.__dict__.update(candidate.__dict__)
        stats: dict[str, float] = {
            "nodes_lowered": len(plan.low), "kept_fp32": len(plan.kept), "casts": done.casts,
            "constants_lowered": done.constants, "interface_lowered": done.interface,
            "flushed_to_zero": plan.flushed, **({"auto_runs": auto_runs} if self.auto else {})}
        for op in sorted(no_kernel):
            stats[f"kept_no_{self.dtype}_kernel_{op}"] = 1
        for node, reason in plan.kept.items():
            stats[f"kept_{_category(reason)}"] = stats.get(f"kept_{_category(reason)}", 0) + 1
            LOG.info("convert-precision: %s %r keeps float32: %s", node.op_type, node.name, reason)
        return PassResult(True, stats, drift_budget=budget)



def _category(reason: str) -> str:
    """A short key for a kept-float32 reason (the full reason is logged with -v)."""
    for key, words in (("on_request", "on request"), ("out_of_range", "beyond"), ("custom_domain", "custom"),
                       ("subgraph", "subgraph"), ("selection_or_index_op", "rounding changes"),
                       ("schema", "schema"), ("auto_sensitive", "--auto")):
        if words in reason:
            return key
    return "other"


def _missing_kernel(model: Model, seed: int) -> str | None:
    """The op onnxruntime cannot run in the lower type, when loading the lowered model fails so."""
    try:
        observe(model, [], make_feeds(model, seed=seed), "lowered model")
    except GraphoptError as exc:
        found = NO_KERNEL.search(str(exc))
        return found.group(1) if found else None
    return None
