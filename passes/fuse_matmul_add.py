"""fuse-matmul-add: MatMul(A, B) + bias -> Gemm(A, B, bias) for a 2-D A and a 2-D constant B."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from graphopt import NUMPY_FLOATS, Model, PassResult, Value, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.rewrite import Const, Match, Op, RewriteContext, Rule, Var, apply_rules, rules_result

FLOATS = frozenset(NUMPY_FLOATS)  # float, float16, double: what Gemm and MatMul share in every opset >= 7


def _check(found: Match, model: Model) -> str | None:
    """A is 2-D, B a 2-D float constant, the bias a per-column row ([N] or [1, N]) of the same dtype."""
    if model.opset < 7:
        return "opset < 7 (Gemm has no unidirectional broadcasting)"
    if found["a"].rank != 2:
        return "A is not known to be 2-D"
    weight = found["b"].const
    if len(weight.shape) != 2:
        return "B is not 2-D"
    if weight.dtype not in FLOATS:
        return "B is not floating point"
    bias = found["c"]
    if bias is found["mm"].outputs[0]:
        return "bias is the MatMul output itself"  # Add(m, m): the Gemm would read the removed MatMul
    if bias.dtype != weight.dtype or (found["a"].dtype not in (None, weight.dtype)):
        return "dtypes differ or are unknown"
    n = weight.shape[1]
    if bias.static_shape not in ((n,), (1, n)):
        return "bias is not a per-column row [N] or [1, N]"
    return None


def _fuse(found: Match, ctx: RewriteContext) -> list[Value]:
    node = ctx.node("Gemm", [found["a"], found["b"], found["c"]])
    node.name = found["mm"].name
    out, old = node.outputs[0], found["add"].outputs[0]
    out.dtype, out.shape = old.dtype, old.shape  # the same tensor: its known type stays true
    return [out]


RULES = [
    Rule("matmul-add", Op("Add", Op("MatMul", Var("a"), Const("b"), capture="mm"), Var("c"), capture="add"),
         _fuse, _check),
]


@register_pass
@dataclass
class FuseMatMulAdd:
    """Fuse MatMul followed by a per-column bias Add into one Gemm.

    Only for a 2-D A (rank known), a 2-D constant float B and a bias of shape [N] or [1, N] (on either
    side of the Add): then Gemm's unidirectional broadcasting of C gives the Add's exact result. A MatMul
    whose output is read elsewhere (or is a graph output) is left alone by the rewrite framework.
    """

    name: ClassVar[str] = "fuse-matmul-add"

    def run(self, model: Model) -> PassResult:
        refresh_types(model)  # ranks and dtypes of A and the bias decide the match
        stats = apply_rules(model, RULES)
        return rules_result(stats, "fused")
