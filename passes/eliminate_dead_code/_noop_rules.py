"""Which nodes are provably no-ops: their first output always equals one of their inputs."""

from __future__ import annotations

from typing import Callable

import numpy as np

from graphopt import Node, const_ints, is_standard_domain

INT64_MAX_HALF = 2**62

NoopRule = Callable[[Node, int], "int | None"]



def _identity(node: Node, opset: int) -> int | None:
    return 0


def _dropout(node: Node, opset: int) -> int | None:
    if any(out.num_uses or out.is_graph_output for out in node.outputs[1:]):
        return None
    if opset < 7 and not node.attr("is_test", 0):
        return None
    if opset >= 12:
        if len(node.inputs) > 2 and node.inputs[2] is not None:
            mode = const_ints(node, 2)
            if mode is None or any(mode):
                return None
    return 0


def _cast(node: Node, opset: int) -> int | None:
    src = node.inputs[0]
    return 0 if src is not None and src.dtype is not None and src.dtype == node.attr("to") else None


def _cast_like(node: Node, opset: int) -> int | None:
    src, like = node.inputs[0], node.inputs[1]
    if src is None or like is None or src.dtype is None:
        return None
    return 0 if src.dtype == like.dtype else None


def _transpose(node: Node, opset: int) -> int | None:
    perm = node.attr("perm")
    src = node.inputs[0]
    if perm is None:
        return 0 if src is not None and src.rank is not None and src.rank <= 1 else None
    return 0 if list(perm) == list(range(len(perm))) else None


def _reshape(node: Node, opset: int) -> int | None:
    src = node.inputs[0]
    target = const_ints(node, 1) if opset >= 5 else node.attr("shape")
    if src is None or src.shape is None or target is None or len(target) != len(src.shape):
        return None
    allowzero = bool(node.attr("allowzero", 0))
    wildcard = 0
    for want, have in zip(target, src.shape):
        if want == -1:
            wildcard += 1
        elif want == 0 and not allowzero:
            continue
        elif want != have:
            return None
    return 0 if wildcard <= 1 else None


def _pad(node: Node, opset: int) -> int | None:
    pads = const_ints(node, 1) if opset >= 11 else node.attr("pads", node.attr("paddings"))
    return 0 if pads is not None and not any(pads) else None


def _expand(node: Node, opset: int) -> int | None:
    src, shape = node.inputs[0], const_ints(node, 1)
    if src is None or src.shape is None or shape is None or len(shape) > len(src.shape):
        return None
    for want, have in zip(reversed(shape), reversed(src.shape)):
        if want != 1 and want != have:
            return None
    return 0


def _slice(node: Node, opset: int) -> int | None:
    src = node.inputs[0]
    if src is None or src.shape is None:
        return None
    if opset >= 10:
        starts, ends = const_ints(node, 1), const_ints(node, 2)
        axes = const_ints(node, 3) if len(node.inputs) > 3 and node.inputs[3] is not None else None
        steps = const_ints(node, 4) if len(node.inputs) > 4 and node.inputs[4] is not None else None
        if (len(node.inputs) > 3 and node.inputs[3] is not None and axes is None) or \
                (len(node.inputs) > 4 and node.inputs[4] is not None and steps is None):
            return None
    else:
        starts, ends, axes, steps = node.attr("starts"), node.attr("ends"), node.attr("axes"), None
    if starts is None or ends is None:
        return None
    axes = axes if axes is not None else list(range(len(starts)))
    steps = steps if steps is not None else [1] * len(starts)
    rank = len(src.shape)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim = src.shape[axis + rank if axis < 0 else axis]
        if step != 1:
            return None
        full_start = start == 0 or (isinstance(dim, int) and start <= -dim)
        full_end = end >= INT64_MAX_HALF or (isinstance(dim, int) and end >= dim)
        if not (full_start and full_end):
            return None
    return 0


def _neutral_operand(node: Node, opset: int) -> int | None:
    """x + 0, 0 + x, x - 0, x * 1, 1 * x, x / 1, x ** 1: the index of x, when the constant's
    broadcast cannot change x's shape (rank and every dim of x known where the constant has one)."""
    if len(node.inputs) != 2 or any(v is None for v in node.inputs):
        return None
    neutral = 0 if node.op_type in ("Add", "Sub") else 1
    sides = (0, 1) if node.op_type in ("Add", "Mul") else (0,)
    for index in sides:
        x, c = node.inputs[index], node.inputs[1 - index]
        assert x is not None and c is not None
        if c.const is None or x.shape is None or c.const.dtype != x.dtype or c.const.size > 1 << 16:
            continue
        if len(c.const.shape) > len(x.shape):
            continue
        fits = all(d == 1 or d == have for d, have in zip(reversed(c.const.shape), reversed(x.shape)))
        if fits and np.all(c.const.numpy() == neutral):
            return index
    return None


def _split(node: Node, opset: int) -> int | None:
    """A Split into one piece is the whole tensor (its sizes, when given, must add up to the dim)."""
    return 0 if len(node.outputs) == 1 else None


def _tile(node: Node, opset: int) -> int | None:
    repeats = const_ints(node, 1)
    return 0 if repeats is not None and all(r == 1 for r in repeats) else None


def _no_axes(node: Node, opset: int) -> int | None:
    """Squeeze/Unsqueeze with an empty constant axes list (Squeeze: only when no dim may be 1)."""
    axes = const_ints(node, 1) if opset >= 13 and len(node.inputs) > 1 else node.attr("axes")
    if axes is not None:
        return 0 if len(axes) == 0 and node.op_type == "Unsqueeze" else None
    src = node.inputs[0]
    if node.op_type == "Squeeze" and src is not None and src.shape is not None \
            and all(isinstance(d, int) and d != 1 for d in src.shape):
        return 0
    return None


def _single_input(node: Node, opset: int) -> int | None:
    return 0 if len(node.inputs) == 1 and node.inputs[0] is not None else None


NOOP_RULES: dict[str, NoopRule] = {
    "Identity": _identity,
    "Dropout": _dropout,
    "Cast": _cast,
    "CastLike": _cast_like,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Pad": _pad,
    "Expand": _expand,
    "Slice": _slice,
    "Add": _neutral_operand,
    "Sub": _neutral_operand,
    "Mul": _neutral_operand,
    "Div": _neutral_operand,
    "Pow": _neutral_operand,
    "Split": _split,
    "Tile": _tile,
    "Squeeze": _no_axes,
    "Unsqueeze": _no_axes,
    "Concat": _single_input,
    "Sum": _single_input,
    "Max": _single_input,
    "Min": _single_input,
    "Mean": _single_input,
}


def noop_source(node: Node, opset: int) -> int | None:
    """Index of the input that the node's first output always equals, or None."""
    if not is_standard_domain(node.domain):
        return None
    rule = NOOP_RULES.get(node.op_type)
    if rule is None or not node.inputs or node.inputs[0] is None:
        return None
    if any(out.num_uses or out.is_graph_output for out in node.outputs[1:]):
        return None
    out, src_index = node.outputs[0], rule(node, opset)
    if src_index is None:
        return None
    src = node.inputs[src_index]
    if src is None or (out.dtype is not None and src.dtype is not None and out.dtype != src.dtype):
        return None
    return src_index
