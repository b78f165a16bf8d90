"""How a Transpose moves through a layout-agnostic op: which ops, their remapped attributes, and the
constants permuted at compile time.

A Transpose with ``perm`` p gives ``out[i] = in[p[i]]``: axis ``a`` of its output is axis ``p[a]`` of
its input. An op C reading such outputs computes ``C(T_p(x), ...) = T_q(C'(x, ...))``, where C' has
its axes remapped through p and ``q`` is the perm of C's output (p itself unless C drops axes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from graphopt import UNARY_ELEMENTWISE as UNARY
from graphopt import Node, Value

BROADCAST = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", "Where", "Mod", "PRelu",
    "QuantizeLinear", "DequantizeLinear",
})
AXIS_OPS = frozenset({"Concat", "Softmax", "LogSoftmax", "Hardmax"})
REDUCE = frozenset({"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                    "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
# Inputs that are data (permuted with the tensor) rather than parameters, per op; None: all inputs.
# A Reduce's axes input (opset 13/18) is remapped by the plan, not permuted like data.
DATA_INPUTS: dict[str, tuple[int, ...]] = {"Clip": (0,), "QuantizeLinear": (0,), "DequantizeLinear": (0,),
                                           "Slice": (0,), "Pad": (0,), "Split": (0,), "Gather": (0,),
                                           **{op: (0,) for op in REDUCE}}


@dataclass
class PushPlan:
    """The rewritten node's attributes and per-input treatment, and its output perm."""

    attrs: dict[str, Any]
    out_perm: list[int]
    replace_consts: dict[int, np.ndarray] = field(default_factory=dict)  # input index -> new constant


def inverse(perm: list[int]) -> list[int]:
    """The perm that undoes ``perm``."""
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return inv


def data_inputs(node: Node) -> list[int]:
    """Indices of the inputs that carry the transposed tensor (others are parameters)."""
    fixed = DATA_INPUTS.get(node.op_type)
    indices = range(len(node.inputs)) if fixed is None else fixed
    return [i for i in indices if i < len(node.inputs) and node.inputs[i] is not None]


def permuted_constant(value: Value, perm: list[int]) -> np.ndarray:
    """A constant broadcast-operand for C' such that ``T_perm(c') `` broadcasts like ``c``."""
    arr = value.const.numpy()  # type: ignore[union-attr]
    rank = len(perm)
    full = arr.reshape((1,) * (rank - arr.ndim) + arr.shape)
    return np.transpose(full, inverse(perm))


def plan_push(node: Node, perm: list[int], opset: int) -> PushPlan | None:
    """How ``node`` is rewritten when its data inputs are un-transposed by ``perm``; None if it cannot."""
    rank = len(perm)
    attrs = dict(node.attrs)
    op = node.op_type
    if op in UNARY or op in BROADCAST:
        if op in ("QuantizeLinear", "DequantizeLinear"):
            scale = node.inputs[1]
            if scale is None or scale.rank is None or scale.rank > 1:
                return None  # rank > 1: blocked quantization (opset 21), scale laid out like the data
            if scale.rank == 1 and (scale.static_shape or (0,))[0] != 1:
                axis = int(node.attr("axis", 1)) % rank
                attrs["axis"] = perm[axis]
        return PushPlan(attrs, perm)
    if op in AXIS_OPS:
        if op != "Concat" and opset < 13:
            return None  # Softmax before 13 flattens from axis on: not a per-axis op
        axis = int(node.attr("axis", -1 if op != "Concat" else 0)) % rank
        attrs["axis"] = perm[axis]
        return PushPlan(attrs, perm)
    if op in REDUCE:
        return _plan_reduce(node, perm, opset, attrs)
    if op in ("ArgMax", "ArgMin"):
        axis = int(node.attr("axis", 0)) % rank
        attrs["axis"] = perm[axis]
        if node.attr("keepdims", 1):
            return PushPlan(attrs, perm)
        kept = [i for i in range(rank) if i != axis]
        remaining = [k for k in range(rank) if k != perm[axis]]
        position = {a: j for j, a in enumerate(remaining)}
        return PushPlan(attrs, [position[perm[i]] for i in kept])
    if op == "Gather":
        indices = node.inputs[1]
        if indices is None or indices.rank not in (0, 1):
            return None  # higher-rank indices insert several axes: not a permutation any more
        axis = int(node.attr("axis", 0)) % rank
        attrs["axis"] = perm[axis]
        if indices.rank == 1:
            return PushPlan(attrs, perm)
        kept = [i for i in range(rank) if i != axis]
        remaining = [k for k in range(rank) if k != perm[axis]]
        position = {a: j for j, a in enumerate(remaining)}
        return PushPlan(attrs, [position[perm[i]] for i in kept])
    if op == "Split":
        attrs["axis"] = perm[int(node.attr("axis", 0)) % rank]
        return PushPlan(attrs, perm)
    if op == "Slice" and opset >= 10:
        axes = _const_input(node, 3)
        if axes is None:
            return None  # default axes would need a new input
        return PushPlan(attrs, perm, {3: np.array([perm[int(a) % rank] for a in axes], dtype=np.int64)})
    if op == "Pad" and opset >= 11 and (len(node.inputs) < 4 or node.inputs[3] is None):
        pads = _const_input(node, 1)
        if pads is None or len(pads) != 2 * rank:
            return None
        inv = inverse(perm)  # pads of C' axis k are those of C's axis inv[k]
        new = [int(pads[inv[k]]) for k in range(rank)] + [int(pads[rank + inv[k]]) for k in range(rank)]
        return PushPlan(attrs, perm, {1: np.array(new, dtype=np.int64)})
    return None


def _const_input(node: Node, index: int) -> list[int] | None:
    value = node.inputs[index] if index < len(node.inputs) else None
    if value is None or value.const is None:
        return None
    return [int(v) for v in value.const.numpy().reshape(-1)]


def _reduce_axes(node: Node, opset: int) -> tuple[list[int] | None, bool]:
    """(axes, given as input) of a Reduce node; axes None means all axes."""
    as_input = opset >= 18 or (node.op_type == "ReduceSum" and opset >= 13)
    if as_input:
        if len(node.inputs) < 2 or node.inputs[1] is None:
            return None, True
        value = node.inputs[1]
        if value.const is None:
            raise ValueError("axes not constant")
        return [int(a) for a in value.const.numpy().reshape(-1)], True
    axes = node.attr("axes")
    return (None if axes is None else [int(a) for a in axes]), False


def _plan_reduce(node: Node, perm: list[int], opset: int, attrs: dict[str, Any]) -> PushPlan | None:
    rank = len(perm)
    try:
        axes, as_input = _reduce_axes(node, opset)
    except ValueError:
        return None
    if axes is None:
        if node.attr("noop_with_empty_axes", 0):
            return None
        reduced = list(range(rank))
    else:
        reduced = sorted(a % rank for a in axes)
    new_axes = sorted(perm[a] for a in reduced)
    plan = PushPlan(attrs, perm)
    if axes is not None:
        if as_input:
            plan.replace_consts[1] = np.array(new_axes, dtype=np.int64)
        else:
            attrs["axes"] = new_axes
    if node.attr("keepdims", 1):
        return plan
    kept_out = [i for i in range(rank) if i not in reduced]  # output axes of C, in order
    remaining = [k for k in range(rank) if k not in new_axes]  # axes of C'(x) in order
    position = {axis: j for j, axis in enumerate(remaining)}
    plan.out_perm = [position[perm[i]] for i in kept_out]
    return plan
