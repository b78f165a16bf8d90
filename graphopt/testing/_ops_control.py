"""Op table, control-flow part: If whose branches compute on values captured from the outer graph."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from graphopt.testing._ops_core import ALL, BOOL, Ctx, OpSpec, T, fill

MAX_BRANCH_NODES = 3


def _branch_specs(ctx: Ctx) -> list[OpSpec]:
    """Allowed ops that keep their input's shape and dtype (so both branches agree)."""
    return [s for s in ctx.cfg.specs if s.preserves]


def _if_ok(ctx: Ctx, x: T) -> bool:
    """Only in the main graph (no nesting), and some branch op applies to x."""
    return ctx.root is None and any(s.applies(ctx, x) for s in _branch_specs(ctx))


def _branch(ctx: Ctx, x: T) -> tuple[onnx.GraphProto, float]:
    """One branch graph: 1-3 shape-preserving nodes reading outer tensors of x's shape and dtype."""
    sub = ctx.child(ctx.integer(1, MAX_BRANCH_NODES))
    sub.keep = x.shape
    fill(sub, _branch_specs(ctx), 1, lambda t: t.shape == x.shape and t.dtype == x.dtype)
    out = sub.last
    if out is None:
        raise RuntimeError("graphopt.testing bug: an If branch without a live output")
    info = helper.make_tensor_value_info(out.name, out.dtype, out.shape)
    return helper.make_graph(sub.nodes, ctx.fresh(), [], [info], sub.inits), out.bound


def _if(ctx: Ctx, x: T) -> None:
    """If on a graph-input or constant condition; each branch captures x (and maybe more)."""
    if ctx.flag():
        cond = ctx.new_input(BOOL, [])
    else:
        cond = ctx.const(np.array(ctx.flag()))
    then_graph, then_bound = _branch(ctx, x)
    else_graph, else_bound = _branch(ctx, x)
    ctx.emit("If", [cond], x.dtype, x.shape, max(then_bound, else_bound),
             then_branch=then_graph, else_branch=else_graph)


SPECS: tuple[OpSpec, ...] = (
    OpSpec("If", _if, ALL, accepts=_if_ok, flag="if_subgraphs"),
)
