"""Op table, shape part: Transpose, Reshape (constant or Shape->Gather->Concat targets), Flatten,
Squeeze, Unsqueeze, Shape and Gather."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from graphopt.testing._ops_core import (
    ALL,
    ANY_RANK,
    INT64,
    MAX_DIM,
    MAX_ELEMENTS,
    MAX_RANK,
    Ctx,
    OpSpec,
    T,
    divisors,
    numel,
)


def _transpose(ctx: Ctx, x: T) -> None:
    """Transpose by a drawn permutation (or the default reversal)."""
    if x.rank > 1 and ctx.rarely():
        ctx.emit("Transpose", [x.name], x.dtype, x.shape[::-1], x.bound)
        return
    perm = ctx.draw(st.permutations(list(range(x.rank))))  # shrinks towards the identity
    ctx.emit("Transpose", [x.name], x.dtype, [x.shape[p] for p in perm], x.bound, perm=perm)


def _moves(dims: list[int]) -> list[tuple[str, int, int]]:
    """Shape edits that keep the element count and the size limits."""
    moves = [("merge", i, 0) for i in range(len(dims) - 1) if dims[i] * dims[i + 1] <= MAX_DIM]
    if len(dims) < MAX_RANK:
        moves += [("split", i, f) for i, d in enumerate(dims) for f in divisors(d)[1:-1]]
        moves += [("one", i, 0) for i in range(len(dims) + 1)]
    moves += [("drop", i, 0) for i, d in enumerate(dims) if d == 1 and len(dims) > 1]
    moves += [("swap", i, j) for i in range(len(dims)) for j in range(i + 1, len(dims))]
    return moves


def reshape_target(ctx: Ctx, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A new shape with the same element count: a few merges, splits, swaps, inserted/dropped 1s."""
    dims = list(shape)
    for _ in range(ctx.integer(0, 3)):
        kind, i, j = ctx.choice(_moves(dims))
        if kind == "merge":
            dims[i: i + 2] = [dims[i] * dims[i + 1]]
        elif kind == "split":
            dims[i: i + 1] = [j, dims[i] // j]
        elif kind == "one":
            dims.insert(i, 1)
        elif kind == "drop":
            del dims[i]
        else:
            dims[i], dims[j] = dims[j], dims[i]
    return tuple(dims)


def _encode(ctx: Ctx, x: T, target: tuple[int, ...]) -> list[int]:
    """The Reshape target as written: maybe 0 wherever it copies the input dim, maybe one -1."""
    zeros, infer = ctx.choice(((False, False), (True, False), (False, True), (True, True)))
    enc = [0 if zeros and i < x.rank and d == x.shape[i] else d for i, d in enumerate(target)]
    if infer:
        enc[ctx.integer(0, len(enc) - 1)] = -1
    return enc


def _dim_pieces(ctx: Ctx, src: T, target: tuple[int, ...]) -> tuple[list[tuple[str, list[int]]], int]:
    """Plan a Shape(src)-based target and its node count.

    ("dim", [j, scalar]) gathers dim j of src (with a 0-d index when ``scalar``, then Unsqueeze);
    ("lit", dims) is a constant run. Needs at least one target dim that is a src dim.
    """
    scalar_ok = ctx.cfg.allows("Unsqueeze")
    matches = [[j for j, d in enumerate(src.shape) if d == t] for t in target]
    first = next(i for i, m in enumerate(matches) if m)
    cost, pieces = 2, []  # Shape and Concat
    for i, t in enumerate(target):
        want = bool(matches[i]) and (i == first or ctx.flag())
        if want and ctx.extra(cost + 1):
            scalar = scalar_ok and ctx.extra(cost + 2) and ctx.flag()
            j = ctx.choice(matches[i])
            pieces.append(("dim", [j - src.rank if ctx.rarely() else j, int(scalar)]))
            cost += 1 + scalar
        elif pieces and pieces[-1][0] == "lit":
            pieces[-1][1].append(t)
        else:
            pieces.append(("lit", [t]))
    return pieces, cost


def shape_target(ctx: Ctx, src: T, target: tuple[int, ...]) -> str | None:
    """An int64 tensor equal to ``target`` computed as Shape(src) -> Gather (-> Unsqueeze) -> Concat.

    None when the ops are not allowed, no target dim is a dim of src, or the budget is too small.
    """
    if not ctx.cfg.allows("Shape", "Gather", "Concat"):
        return None
    if target == src.shape and ctx.extra(1) and ctx.flag():
        return ctx.node("Shape", [src.name])[0]
    if not any(d in src.shape for d in target) or not ctx.extra(3):
        return None
    pieces, cost = _dim_pieces(ctx, src, target)
    ctx.reserve += cost  # constants made below must leave room for these nodes
    shape = ctx.helper_node("Shape", [src.name])
    names = []
    for kind, vals in pieces:
        if kind == "lit":
            names.append(ctx.ints(vals))
        elif vals[1]:  # a 0-d index gives a 0-d dim, made 1-D again by Unsqueeze
            dim = ctx.helper_node("Gather", [shape, ctx.const(np.array(vals[0], np.int64))])
            names.append(ctx.helper_node("Unsqueeze", [dim, ctx.ints([0])]))
        else:
            names.append(ctx.helper_node("Gather", [shape, ctx.ints(vals[:1])]))
    return ctx.helper_node("Concat", names, axis=0)


def _reshape(ctx: Ctx, x: T) -> None:
    """Reshape to a drawn target: a constant (with 0 and -1) or computed from a Shape subgraph."""
    target = reshape_target(ctx, x.shape)
    shape = None
    if ctx.cfg.shape_subgraphs and ctx.flag():
        sources = [x] + [t for t in reversed(ctx.pool) if t is not x and (ctx.dead or not t.dead)]
        shape = shape_target(ctx, ctx.choice(sources), target)
    if shape is None:
        shape = ctx.ints(_encode(ctx, x, target))
    allowzero = 0 if ctx.cfg.opset >= 14 and ctx.rarely() else None
    ctx.emit("Reshape", [x.name, shape], x.dtype, target, x.bound, allowzero=allowzero)


def _flatten_axes(x: T) -> list[int]:
    """Axes whose 2-D result keeps both dims within MAX_DIM."""
    return [a for a in range(x.rank + 1)
            if numel(x.shape[:a]) <= MAX_DIM and numel(x.shape[a:]) <= MAX_DIM]


def _flatten(ctx: Ctx, x: T) -> None:
    """Flatten at a feasible axis (written negative sometimes, left out when it is 1)."""
    a = ctx.choice(_flatten_axes(x))
    axis = a - x.rank if a < x.rank and ctx.rarely() else a
    ctx.emit("Flatten", [x.name], x.dtype, (numel(x.shape[:a]), numel(x.shape[a:])), x.bound,
             axis=None if a == 1 else axis)


def _squeeze(ctx: Ctx, x: T) -> None:
    """Squeeze some size-1 axes (or, with no axes input, all of them) keeping rank >= 1."""
    ones = [i for i, d in enumerate(x.shape) if d == 1]
    if len(ones) < x.rank and ctx.rarely():
        ctx.emit("Squeeze", [x.name], x.dtype, [d for d in x.shape if d != 1], x.bound)
        return
    axes = ctx.subset(ones, 1, min(len(ones), x.rank - 1))
    written = [a - x.rank if ctx.rarely() else a for a in axes]
    out = [d for i, d in enumerate(x.shape) if i not in axes]
    ctx.emit("Squeeze", [x.name, ctx.ints(written)], x.dtype, out, x.bound)


def _unsqueeze(ctx: Ctx, x: T) -> None:
    """Unsqueeze new axes (positions in the output, in any order, sometimes negative)."""
    rank = x.rank + ctx.integer(1, MAX_RANK - x.rank)
    axes = ctx.subset(list(range(rank)), rank - x.rank, rank - x.rank)
    dims = iter(x.shape)
    out = [1 if i in axes else next(dims) for i in range(rank)]
    written = [a - rank if ctx.rarely() else a for a in axes]
    ctx.emit("Unsqueeze", [x.name, ctx.ints(written)], x.dtype, out, x.bound)


def _shape(ctx: Ctx, x: T) -> None:
    """Shape of x (a slice of it via start/end from opset 15): an int64 vector in the pool."""
    start, end = 0, x.rank
    if ctx.cfg.opset >= 15 and ctx.rarely():
        start = ctx.integer(0, x.rank - 1)
        end = ctx.integer(start + 1, x.rank)
    dims = x.shape[start:end]
    ctx.emit("Shape", [x.name], INT64, [len(dims)], max(dims), start=start or None,
             end=end - x.rank if end < x.rank else None)


def _gather(ctx: Ctx, x: T) -> None:
    """Gather along an axis with constant indices (scalar or 1-D, negative ones included)."""
    axis = ctx.integer(0, x.rank - 1)
    d, rest = x.shape[axis], numel(x.shape) // x.shape[axis]
    scalar = x.rank > 1 and ctx.rarely()
    count = 1 if scalar else ctx.integer(1, min(MAX_DIM, MAX_ELEMENTS // rest))
    idx = [ctx.integer(-d, d - 1) for _ in range(count)]
    indices = np.array(idx[0] if scalar else idx, dtype=np.int64)
    out = x.shape[:axis] + (() if scalar else (count,)) + x.shape[axis + 1:]
    ctx.emit("Gather", [x.name, ctx.const(indices)], x.dtype, out, x.bound,
             axis=axis - x.rank if ctx.rarely() else (axis or None))


SPECS: tuple[OpSpec, ...] = (
    OpSpec("Transpose", _transpose, ALL, total_ranks=ANY_RANK),
    OpSpec("Reshape", _reshape, ALL, total_ranks=ANY_RANK),
    OpSpec("Flatten", _flatten, ALL, accepts=lambda ctx, x: bool(_flatten_axes(x))),
    OpSpec("Squeeze", _squeeze, ALL,
           accepts=lambda ctx, x: x.rank > 1 and 1 in x.shape),
    OpSpec("Unsqueeze", _unsqueeze, ALL, accepts=lambda ctx, x: x.rank < MAX_RANK,
           total_ranks=(1, 2, 3)),
    OpSpec("Shape", _shape, ALL, total_ranks=ANY_RANK),
    OpSpec("Gather", _gather, ALL, total_ranks=ANY_RANK),
)
