"""Op table, data-movement part: Concat (also of a Focus stem's strided Slices), Split, Slice, Pad,
ReduceMean and ReduceSum."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from graphopt.testing._ops_core import (
    ALL,
    ANY_RANK,
    FLOATS,
    INT64_MAX,
    INT64_MIN,
    MAX_DIM,
    MAX_ELEMENTS,
    Builder,
    Ctx,
    OpSpec,
    T,
    max_abs,
    numel,
)


def _axis(ctx: Ctx, x: T, a: int) -> int:
    """Axis ``a`` as written: sometimes negative."""
    return a - x.rank if ctx.rarely() else a


def _focus_blocks(ctx: Ctx, x: T) -> list[int]:
    """Block sizes b for which x[:, :, i::b, j::b] re-joined on the channels fits the limits."""
    if x.rank != 4 or not ctx.cfg.allows("Slice"):
        return []
    return [b for b in (2, 3) if x.shape[2] % b == 0 and x.shape[3] % b == 0 and x.shape[1] * b * b <= MAX_DIM
            and ctx.extra(b * b + 1)]


def _focus(ctx: Ctx, x: T, block: int) -> None:
    """A YOLOv5-style Focus stem: the b*b pieces x[:, :, i::b, j::b] in a drawn order, each one Slice
    over both axes or two (rows first or columns first; a first Slice is sometimes shared by the
    pieces that start alike, as exporters write it), joined by a Concat on the channels."""
    order = ctx.draw(st.permutations([(i, j) for i in range(block) for j in range(block)]))
    room = ctx.budget - ctx.reserve - 1 - len(order)  # nodes left for first Slices
    ctx.reserve += len(order) + 1
    end = np.array([INT64_MAX], np.int64)
    pieces, shared = [], {}
    share = ctx.flag()
    for i, j in order:
        if ((2, i) in shared and share) or (room > 0 and ctx.flag()):
            first, second = ((2, i), (3, j)) if share or ctx.flag() else ((3, j), (2, i))
            half = shared.get(first) if share else None
            if half is None:
                room -= 1
                ctx.reserve += 1
                rows = [ctx.ints([first[1]]), ctx.const(end), ctx.ints([first[0]]), ctx.ints([block])]
                half = ctx.helper_node("Slice", [x.name, *rows])
                shared[first] = half
            cols = [ctx.ints([second[1]]), ctx.const(end), ctx.ints([second[0]]), ctx.ints([block])]
            pieces.append(ctx.helper_node("Slice", [half, *cols]))
        else:
            both = [ctx.ints([i, j]), ctx.const(np.repeat(end, 2)), ctx.ints([2, 3]),
                    ctx.ints([block, block])]
            pieces.append(ctx.helper_node("Slice", [x.name, *both]))
    ctx.reserve -= 1
    shape = (x.shape[0], x.shape[1] * block * block, x.shape[2] // block, x.shape[3] // block)
    ctx.emit("Concat", pieces, x.dtype, shape, x.bound, axis=_axis(ctx, x, 1))


def _concat(ctx: Ctx, x: T) -> None:
    """Concat x with itself, pool tensors or weights along an axis (sometimes a lone input), or the
    strided pieces of a Focus stem."""
    blocks = _focus_blocks(ctx, x)
    if blocks and ctx.flag():
        _focus(ctx, x, ctx.choice(blocks))
        return
    axes = [a for a, d in enumerate(x.shape) if d < MAX_DIM]
    if not axes or ctx.rarely():
        ctx.emit("Concat", [x.name], x.dtype, x.shape, x.bound, axis=_axis(ctx, x, 0))
        return
    a = ctx.choice(axes)
    rest = numel(x.shape) // x.shape[a]
    size, inputs, bound = x.shape[a], [x.name], x.bound
    for _ in range(ctx.integer(1, 3)):
        room = min(MAX_DIM, MAX_ELEMENTS // rest) - size
        if room < 1:
            break
        pool = [y for y in ctx.operands(x.dtype) if y.rank == x.rank and y.shape[a] <= room
                and all(d == e for i, (d, e) in enumerate(zip(y.shape, x.shape)) if i != a)]
        if pool and ctx.flag():
            y = ctx.choice(pool)
            name, extent, y_bound = y.name, y.shape[a], y.bound
        else:
            extent = ctx.integer(1, room)
            name, w = ctx.weight(x.shape[:a] + (extent,) + x.shape[a + 1:], x.dtype)
            y_bound = max_abs(w, ctx.feed_bound(x.dtype))
        inputs.insert(ctx.integer(0, len(inputs)), name)
        size, bound = size + extent, max(bound, y_bound)
    ctx.emit("Concat", inputs, x.dtype, x.shape[:a] + (size,) + x.shape[a + 1:], bound,
             axis=_axis(ctx, x, a))


def _split_sizes(ctx: Ctx, d: int) -> tuple[list[int], str]:
    """Sizes of a split of d and how they are written: "input", "equal" (implicit) or "num_outputs"."""
    n = ctx.integer(2, min(d, 4)) if not ctx.rarely() else 1
    if ctx.cfg.opset >= 18 and ctx.rarely():
        chunk = -(-d // n)
        if (n - 1) * chunk < d:  # every output non-empty
            return [chunk] * (n - 1) + [d - chunk * (n - 1)], "num_outputs"
    if d % n == 0 and ctx.cfg.opset < 18 and ctx.flag():
        return [d // n] * n, "equal"
    cuts = sorted(ctx.subset(list(range(1, d)), n - 1, n - 1))
    return [b - a for a, b in zip([0] + cuts, cuts + [d])], "input"


def _split(ctx: Ctx, x: T) -> None:
    """Split along an axis of size >= 2 into 1-4 outputs; every output goes to the pool."""
    a = ctx.choice([a for a, d in enumerate(x.shape) if d >= 2])
    sizes, form = _split_sizes(ctx, x.shape[a])
    inputs = [x.name] + ([ctx.ints(sizes)] if form == "input" else [])
    outs = ctx.node("Split", inputs, len(sizes), axis=_axis(ctx, x, a) if a or ctx.flag() else None,
                    num_outputs=len(sizes) if form == "num_outputs" else None)
    for name, size in zip(outs, sizes):
        ctx.add(name, x.dtype, x.shape[:a] + (size,) + x.shape[a + 1:], x.bound)


def _slice_axis(ctx: Ctx, d: int) -> tuple[int, int, int, int]:
    """(start, end, step, length) on a dim of size d: real indices drawn, then written in ONNX forms."""
    step = ctx.choice((1, -1, 2, -2, 3)) if d > 1 else ctx.choice((1, -1))
    first = ctx.integer(0, d - 1)
    reach = (d - 1 - first) if step > 0 else first
    length = ctx.integer(1, reach // abs(step) + 1)
    end = first + step * (length - 1) + (1 if step > 0 else -1)  # exclusive, in [-1, d]
    start = first - d if ctx.rarely() else first
    if end >= d and ctx.rarely():
        end = INT64_MAX
    elif end == -1:  # "before index 0": any value <= -d - 1 clamps there
        end = INT64_MIN if ctx.flag() else -d - 1
    elif 0 <= end < d and ctx.rarely():
        end -= d
    return start, end, step, length


def _slice(ctx: Ctx, x: T) -> None:
    """Slice some axes with negative indices, clamped ends and negative steps (lengths >= 1)."""
    axes = ctx.subset(list(range(x.rank)), 1, x.rank) if ctx.flag() else list(range(x.rank))
    out = list(x.shape)
    params = []
    for a in axes:
        *written, out[a] = _slice_axis(ctx, x.shape[a])
        params.append(written)
    starts, ends, steps = (list(p) for p in zip(*params))
    index = np.int32 if ctx.rarely() and max(map(abs, ends + starts)) < 2**31 else np.int64
    inputs = [x.name, ctx.const(np.array(starts, index)), ctx.const(np.array(ends, index))]
    if axes != list(range(x.rank)) or any(s != 1 for s in steps) or ctx.rarely():
        inputs.append(ctx.const(np.array([_axis(ctx, x, a) for a in axes], index)))
        if any(s != 1 for s in steps) or ctx.rarely():
            inputs.append(ctx.const(np.array(steps, index)))
    ctx.emit("Slice", inputs, x.dtype, out, x.bound)


def _pad(ctx: Ctx, x: T) -> None:
    """Pad in constant, reflect or edge mode (wrap from opset 19) with pads that keep the limits."""
    modes = ["constant", "reflect", "edge"] + (["wrap"] if ctx.cfg.opset >= 19 else [])
    mode = ctx.choice(modes)
    some = ctx.cfg.opset >= 18 and ctx.rarely()
    axes = sorted(ctx.subset(list(range(x.rank)), 1, x.rank)) if some else list(range(x.rank))
    out, begin, end = list(x.shape), [], []
    for a in axes:
        d = x.shape[a]
        most = d - 1 if mode in ("reflect", "wrap") else 2  # reflect needs pads < d
        for side in (begin, end):
            others = numel(out) // out[a]
            room = min(MAX_DIM, MAX_ELEMENTS // others) - out[a]
            p = ctx.integer(0, max(0, min(most, 2, room)))
            side.append(p)
            out[a] += p
    inputs = [x.name, ctx.ints(begin + end)]
    bound = x.bound
    if mode == "constant" and ctx.flag():
        value = float(ctx.choice((0.0, 1.0, -0.5)))
        inputs.append(ctx.scalar(value, x.dtype))
        bound = max(bound, abs(value))
    if some:
        inputs += [""] * (3 - len(inputs)) + [ctx.ints([_axis(ctx, x, a) for a in axes])]
    ctx.emit("Pad", inputs, x.dtype, out, bound, mode=None if mode == "constant" else mode)


def _reduce(op: str) -> Builder:
    """ReduceMean/ReduceSum over some axes (or all), keepdims either way; axes input or attribute."""
    def build(ctx: Ctx, x: T) -> None:
        """Emit the reduction; its output rank stays >= 1."""
        keep = ctx.flag() or x.rank == 1
        if keep and ctx.rarely():
            axes = list(range(x.rank))
            written: list[int] | None = None
        else:
            axes = sorted(ctx.subset(list(range(x.rank)), 1, x.rank if keep else x.rank - 1))
            written = [_axis(ctx, x, a) for a in axes]
        if keep:
            out = [1 if i in axes else d for i, d in enumerate(x.shape)]
        else:
            out = [d for i, d in enumerate(x.shape) if i not in axes]
        count = numel([x.shape[a] for a in axes])
        bound = x.bound * (count if op == "ReduceSum" else 1)
        as_input = op == "ReduceSum" or ctx.cfg.opset >= 18
        inputs = [x.name] + ([ctx.ints(written)] if as_input and written is not None else [])
        ctx.emit(op, inputs, x.dtype, out, bound, keepdims=None if keep else 0,
                 axes=written if not as_input else None)
    return build


def _sum_ok(ctx: Ctx, x: T) -> bool:
    """Summing every element stays within bounds."""
    return ctx.within(x.dtype, x.bound * numel(x.shape))


SPECS: tuple[OpSpec, ...] = (
    OpSpec("Slice", _slice, ALL, total_ranks=ANY_RANK),
    OpSpec("Concat", _concat, ALL, total_ranks=ANY_RANK),
    OpSpec("Split", _split, ALL, accepts=lambda ctx, x: max(x.shape) >= 2),
    OpSpec("Pad", _pad, ALL, total_ranks=ANY_RANK),
    OpSpec("ReduceMean", _reduce("ReduceMean"), FLOATS, total_ranks=ANY_RANK),
    OpSpec("ReduceSum", _reduce("ReduceSum"), ALL, accepts=_sum_ok),
)
