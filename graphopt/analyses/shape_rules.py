"""How each op's output dims follow from its input dims, for ``SymbolicShapes``.

A rule gets the node, the dims of its inputs (None where the rank is unknown) and the analysis (for
the values of shape vectors such as a Reshape target) and returns the dims of each output, with None
for a dim it cannot tell; the analysis then gives that dim a root of its own. Every rule states what
holds in every run that succeeds, nothing that only usually holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from graphopt.ir.node import Node
from graphopt.ir.ops import UNARY_ELEMENTWISE

from .dim_algebra import DimExpr, broadcast_shapes, divide, multiply

if TYPE_CHECKING:
    from .symbolic_shapes import SymbolicShapes

Dims = tuple  # tuple[DimExpr | None, ...]
InDims = list  # list[Dims | None]
Outs = list | None  # list[Dims | None]: per output, or None
DimRule = Callable[[Node, InDims, "SymbolicShapes"], Outs]

SAME_SHAPE = UNARY_ELEMENTWISE | {
    "Softmax", "LogSoftmax", "Hardmax", "LayerNormalization", "InstanceNormalization", "LpNormalization",
    "BatchNormalization", "LRN", "Dropout", "CumSum", "Shrink", "Trilu", "MeanVarianceNormalization",
    "Acos", "Asin", "Atan", "Acosh", "Asinh", "Atanh", "Cosh", "Sinh", "Tan", "BitwiseNot", "PRelu",
    "QuantizeLinear", "DequantizeLinear", "CastLike", "GroupNormalization", "ReverseSequence",
}
BROADCASTING = {
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "And", "Or", "Xor", "Equal", "Less", "Greater",
    "LessOrEqual", "GreaterOrEqual", "Max", "Min", "Sum", "Mean", "Where", "BitShift", "BitwiseAnd",
    "BitwiseOr", "BitwiseXor",
}
BATCH_FIRST = {  # NC... ops whose output batch is the input's
    "Conv", "ConvTranspose", "ConvInteger", "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool",
    "GlobalMaxPool", "GlobalLpPool", "DepthToSpace", "SpaceToDepth", "QLinearConv",
}


def _axis(axis: int, rank: int) -> int | None:
    axis = axis + rank if axis < 0 else axis
    return axis if 0 <= axis < rank else None


def _axes_of(node: Node, ss: SymbolicShapes, input_index: int, since: int) -> list[int] | None:
    """Axes from the attribute before opset ``since`` and from input ``input_index`` after."""
    if ss.opset < since:
        return list(node.attr("axes", []))
    if len(node.inputs) <= input_index or node.inputs[input_index] is None:
        return []
    return ss.ints(node.inputs[input_index])


def _same(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    """The first output has the input's dims (Dropout's mask too; BatchNorm's and LayerNorm's
    statistics do not)."""
    if node.op_type == "Dropout":
        return [ins[0]] * len(node.outputs)
    return [ins[0]] + [None] * (len(node.outputs) - 1)


def _broadcasting(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    if any(d is None for d in ins):
        return None
    return [broadcast_shapes(ins)]


def _batch_first(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x = ins[0]
    if x is None or not x:
        return None
    return [(x[0],) + (None,) * (len(x) - 1)]


def _transpose(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x = ins[0]
    if x is None:
        return None
    perm = node.attr("perm")
    perm = list(range(len(x)))[::-1] if perm is None else list(perm)
    if sorted(perm) != list(range(len(x))):
        return None
    return [tuple(x[p] for p in perm)]


def _matmul(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    a, b = ins[0], ins[1]
    if a is None or b is None or not a or not b:
        return None
    if len(a) == 1 and len(b) == 1:
        return [()]
    if len(a) == 1:
        return [broadcast_shapes([b[:-2]]) + (b[-1],)]
    if len(b) == 1:
        return [a[:-1]]
    return [broadcast_shapes([a[:-2], b[:-2]]) + (a[-2], b[-1])]


def _gemm(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    a, b = ins[0], ins[1]
    if a is None or b is None or len(a) != 2 or len(b) != 2:
        return None
    rows = a[1] if node.attr("transA", 0) else a[0]
    cols = b[0] if node.attr("transB", 0) else b[1]
    return [(rows, cols)]


def _reshape(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x = ins[0]
    target = ss.vector(node.inputs[1]) if len(node.inputs) > 1 else None
    if x is None or target is None:
        return None
    allowzero = bool(node.attr("allowzero", 0))
    out: list[DimExpr | None] = []
    wildcard = None
    for position, element in enumerate(target):
        if element == 0 and not allowzero:
            out.append(x[position] if position < len(x) else None)
        elif element == -1:
            if wildcard is not None:
                return None
            wildcard = position
            out.append(None)
        elif isinstance(element, int) and element < 0:
            return None
        else:
            out.append(element)
    if wildcard is not None:  # onnxruntime refuses a -1 when the other dims multiply to 0
        others = multiply(*(d for i, d in enumerate(out) if i != wildcard))
        out[wildcard] = divide(multiply(*x), others)
    return [tuple(out)]


def _flatten(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x = ins[0]
    if x is None:
        return None
    axis = node.attr("axis", 1)
    axis = axis + len(x) if axis < 0 else axis
    if not 0 <= axis <= len(x):
        return None
    return [(multiply(*x[:axis]), multiply(*x[axis:]))]


def _unsqueeze(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x, axes = ins[0], _axes_of(node, ss, 1, 13)
    if x is None or not axes:
        return None
    rank = len(x) + len(axes)
    normal = sorted({_axis(a, rank) for a in axes})  # type: ignore[type-var]
    if None in normal or len(normal) != len(axes):
        return None
    rest = iter(x)
    return [tuple(1 if i in normal else next(rest) for i in range(rank))]


def _squeeze(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x, axes = ins[0], _axes_of(node, ss, 1, 13)
    if x is None or axes is None:
        return None
    if not axes:  # every dim that is 1: only known when each dim is a known int
        return None
    drop = {_axis(a, len(x)) for a in axes}
    if None in drop:
        return None
    return [tuple(d for i, d in enumerate(x) if i not in drop)]


def _keep_except(axes: set[int], x: Dims, size: int | None = None) -> Dims:
    return tuple((None if size is None else size) if i in axes else d for i, d in enumerate(x))


def _concat(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    known = [d for d in ins if d is not None]
    if not known or any(len(d) != len(known[0]) for d in known):
        return None
    axis = _axis(node.attr("axis", 0), len(known[0]))
    if axis is None:
        return None
    out = []
    for i in range(len(known[0])):  # every input has the same dim off the axis: take any known one
        column = [d[i] for d in known]
        out.append(None if i == axis else next((c for c in column if c is not None), None))
    return [tuple(out)]


def _attr_axis(node: Node, x: Dims | None, default: int) -> int | None:
    """The node's ``axis`` attribute normalised for ``x`` (None when x's rank is unknown)."""
    return None if x is None else _axis(node.attr("axis", default), len(x))


def _split(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x, axis = ins[0], _attr_axis(node, ins[0], 0)
    return None if axis is None else [_keep_except({axis}, x)] * len(node.outputs)


def _slice(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x = ins[0]
    if x is None or ss.opset < 10:
        return None
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        axes = ss.ints(node.inputs[3])
    else:
        starts = ss.vector(node.inputs[1]) if len(node.inputs) > 1 else None
        axes = None if starts is None else list(range(len(starts)))
    if axes is None:
        return None
    sliced = {_axis(a, len(x)) for a in axes}
    return None if None in sliced else [_keep_except(sliced, x)]  # type: ignore[arg-type]


def _gather(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    data, index = ins[0], ins[1]
    if data is None or index is None:
        return None
    axis = _axis(node.attr("axis", 0), len(data))
    return None if axis is None else [data[:axis] + index + data[axis + 1:]]


def _expand(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x, target = ins[0], ss.vector(node.inputs[1]) if len(node.inputs) > 1 else None
    return None if x is None or target is None else [broadcast_shapes([x, tuple(target)])]


def _constant_of_shape(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    target = ss.vector(node.inputs[0])
    return None if target is None or any(isinstance(e, int) and e < 0 for e in target) else [tuple(target)]


def _range(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    start, limit, delta = (ss.vector(v) for v in node.inputs[:3])
    if start == (0,) and delta == (1,) and limit is not None and len(limit) == 1:
        size = limit[0]
        if isinstance(size, int):
            return [(max(size, 0),)]
        return [limit] if size.coefficient > 0 else None  # run-time dims are never negative
    return None


def _tile(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x, repeats = ins[0], ss.ints(node.inputs[1]) if len(node.inputs) > 1 else None
    if x is None or repeats is None or len(repeats) != len(x) or any(r < 0 for r in repeats):
        return None
    return [tuple(multiply(d, r) for d, r in zip(x, repeats))]


def _reduce(since: int):  # type: ignore[no-untyped-def]
    def rule(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
        x = ins[0]
        if x is None:
            return None
        axes = _axes_of(node, ss, 1, since)
        if axes is None:
            return None
        if not axes:
            if ss.opset >= since and node.attr("noop_with_empty_axes", 0):
                return [x]
            axes = list(range(len(x)))
        reduced = {_axis(a, len(x)) for a in axes}
        if None in reduced:
            return None
        if node.attr("keepdims", 1):
            return [tuple(1 if i in reduced else d for i, d in enumerate(x))]
        return [tuple(d for i, d in enumerate(x) if i not in reduced)]
    return rule


def _arg_reduce(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x, axis = ins[0], _attr_axis(node, ins[0], 0)
    if axis is None:
        return None
    if node.attr("keepdims", 1):
        return [_keep_except({axis}, x, 1)]
    return [x[:axis] + x[axis + 1:]]


def _topk(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    x, axis = ins[0], _attr_axis(node, ins[0], -1)
    k = ss.vector(node.inputs[1]) if len(node.inputs) > 1 and ss.opset >= 10 else None
    if axis is None:
        return None
    size = k[0] if k is not None and len(k) == 1 else None
    out = tuple(size if i == axis else d for i, d in enumerate(x))
    return [out, out]


def _recurrent(node: Node, ins: InDims, ss: SymbolicShapes) -> Outs:
    """LSTM/GRU/RNN: Y is [seq, directions, batch, hidden], Y_h (and LSTM's Y_c) [directions, batch,
    hidden]; with layout=1 the batch comes first in each."""
    x, hidden = ins[0], node.attr("hidden_size")
    if x is None or len(x) != 3 or hidden is None:
        return None
    direction = node.attr("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    directions = 2 if direction == "bidirectional" else 1
    if node.attr("layout", 0):
        batch, seq = x[0], x[1]
        y, state = (batch, seq, directions, hidden), (batch, directions, hidden)
    else:
        seq, batch = x[0], x[1]
        y, state = (seq, directions, batch, hidden), (directions, batch, hidden)
    return [y] + [state] * (len(node.outputs) - 1)


DIM_RULES: dict[str, DimRule] = {
    **{op: _same for op in SAME_SHAPE}, **{op: _broadcasting for op in BROADCASTING},
    **{op: _batch_first for op in BATCH_FIRST},
    "Transpose": _transpose, "MatMul": _matmul, "Gemm": _gemm, "Reshape": _reshape, "Flatten": _flatten,
    "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Concat": _concat, "Split": _split, "Slice": _slice,
    "Gather": _gather, "Expand": _expand, "ConstantOfShape": _constant_of_shape, "Range": _range,
    "Tile": _tile, "ArgMax": _arg_reduce, "ArgMin": _arg_reduce, "TopK": _topk,
    "LSTM": _recurrent, "GRU": _recurrent, "RNN": _recurrent,
    "ReduceSum": _reduce(13), **{op: _reduce(18) for op in (
        "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
        "ReduceLogSumExp", "ReduceSumSquare")},
}
