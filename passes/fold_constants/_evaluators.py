"""Per-op numpy evaluators for constant folding; ops not listed fall back to onnx.reference.

Each evaluator takes the node, its input arrays (None for omitted inputs) and the opset, and returns
the output arrays with exactly the dtypes ONNX specifies. ``Unfoldable`` means the node fails (or is
implementation-defined) at run time: never fold it; ``FoldDeclined`` leaves the case to onnx.reference;
any other exception is either invalid inputs (the reference fails too) or a bug (it does not).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from graphopt import Node, Tensor, numpy_dtype, onnx_slice, shape_slice
from graphopt.errors import FoldDeclined, Unfoldable

Arrays = list[np.ndarray | None]
Evaluator = Callable[[Node, Arrays, int], list[np.ndarray]]



EVALUATORS: dict[str, Evaluator] = {}


def evaluator(*op_types: str) -> Callable[[Evaluator], Evaluator]:
    """Register a function as the evaluator of ``op_types``."""
    def wrap(fn: Evaluator) -> Evaluator:
        for op in op_types:
            EVALUATORS[op] = fn
        return fn
    return wrap


def _axes(node: Node, xs: Arrays, opset: int, since: int, index: int = 1) -> list[int] | None:
    """Axes given as an attribute before opset ``since`` and as input ``index`` from it on."""
    if opset >= since:
        arr = xs[index] if len(xs) > index else None
        return None if arr is None else [int(a) for a in arr.reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else list(axes)


@evaluator("Identity")
def _identity(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [xs[0]]


@evaluator("Shape")
def _shape(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    dims = np.array(xs[0].shape, dtype=np.int64)
    return [shape_slice(dims, node.attr("start", 0), node.attr("end"))]


@evaluator("Size")
def _size(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [np.array(xs[0].size, dtype=np.int64)]


@evaluator("Gather")
def _gather(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    data, idx = xs[0], xs[1]
    axis = node.attr("axis", 0)
    dim = data.shape[axis]
    if np.any(idx >= dim) or np.any(idx < -dim):
        raise Unfoldable("Gather index out of range")
    return [np.take(data, idx.astype(np.int64), axis=axis)]


@evaluator("Concat")
def _concat(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [np.concatenate(xs, axis=node.attr("axis"))]


@evaluator("Unsqueeze")
def _unsqueeze(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    axes = _axes(node, xs, opset, 13)
    assert axes is not None
    rank = xs[0].ndim + len(axes)
    out = xs[0]
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        out = np.expand_dims(out, axis)
    return [out]


@evaluator("Squeeze")
def _squeeze(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    axes = _axes(node, xs, opset, 13)
    if axes is None:
        return [np.squeeze(xs[0])]
    return [np.squeeze(xs[0], axis=tuple(a + xs[0].ndim if a < 0 else a for a in axes))]


_PLAIN = {np.dtype(t) for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                                np.uint32, np.uint64, np.float16, np.float32, np.float64)}


@evaluator("Cast")
def _cast(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:

    target = np.dtype(numpy_dtype(node.attr("to")))
    x = xs[0]
    if x.dtype not in _PLAIN or target not in _PLAIN:
        raise FoldDeclined("exotic cast: left to the reference evaluator")
    if x.dtype.kind == "f" and target.kind in "iu":
        info = np.iinfo(target)
        if not np.all(np.isfinite(x)) or np.any(x < info.min) or np.any(x > info.max):
            raise Unfoldable("out-of-range float to int cast is implementation defined")
    return [x.astype(target)]


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def run(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
        a, b = xs[0], xs[1]
        if a.dtype != b.dtype:
            raise FoldDeclined("mixed dtypes")
        return [np.asarray(fn(a, b)).astype(a.dtype, copy=False)]
    return run


EVALUATORS["Add"] = _binary(np.add)
EVALUATORS["Sub"] = _binary(np.subtract)
EVALUATORS["Mul"] = _binary(np.multiply)


@evaluator("Div")
def _div(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    a, b = xs[0], xs[1]
    if a.dtype != b.dtype:
        raise FoldDeclined("mixed dtypes")
    if a.dtype.kind in "iu":
        if np.any(b == 0):
            raise Unfoldable("integer division by zero")
        q = np.floor_divide(a, b)
        fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))  # ONNX truncates toward zero
        return [(q + fix).astype(a.dtype)]
    with np.errstate(all="ignore"):
        return [np.divide(a, b).astype(a.dtype)]


def _compare(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def run(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
        return [np.asarray(fn(xs[0], xs[1]), dtype=np.bool_)]
    return run


for _op, _fn in (("Equal", np.equal), ("Less", np.less), ("Greater", np.greater),
                 ("LessOrEqual", np.less_equal), ("GreaterOrEqual", np.greater_equal),
                 ("And", np.logical_and), ("Or", np.logical_or), ("Xor", np.logical_xor)):
    EVALUATORS[_op] = _compare(_fn)


@evaluator("Not")
def _not(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [np.logical_not(xs[0])]


@evaluator("Neg")
def _neg(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [np.negative(xs[0])]


@evaluator("Abs")
def _abs(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [np.abs(xs[0])]


@evaluator("Where")
def _where(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [np.where(xs[0], xs[1], xs[2]).astype(xs[1].dtype, copy=False)]


@evaluator("Reshape")
def _reshape(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    x = xs[0]
    target = [int(d) for d in (xs[1] if opset >= 5 else np.array(node.attr("shape")))]
    if not node.attr("allowzero", 0):
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return [x.reshape(target)]


@evaluator("Flatten")
def _flatten(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    x, axis = xs[0], node.attr("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return [x.reshape(outer, -1) if x.size else x.reshape(outer, int(np.prod(x.shape[axis:])))]


@evaluator("Transpose")
def _transpose(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    perm = node.attr("perm")
    return [np.transpose(xs[0], perm)]


@evaluator("Expand")
def _expand(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    shape = np.broadcast_shapes(xs[0].shape, tuple(int(d) for d in xs[1]))
    return [np.array(np.broadcast_to(xs[0], shape))]


@evaluator("Range")
def _range(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    start, limit, delta = (x.item() for x in xs[:3])
    if delta == 0:
        raise Unfoldable("Range delta is 0")
    count = max(int(np.ceil((limit - start) / delta)), 0)
    return [(start + delta * np.arange(count)).astype(xs[0].dtype)]


@evaluator("ConstantOfShape")
def _constant_of_shape(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    value = node.attr("value")
    fill = value.numpy().reshape(-1) if isinstance(value, Tensor) else np.zeros(1, np.float32)
    return [np.full(tuple(int(d) for d in xs[0]), fill[0], dtype=fill.dtype)]


@evaluator("Slice")
def _slice(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    x = xs[0]
    if opset >= 10:
        starts, ends = xs[1].tolist(), xs[2].tolist()
        axes = xs[3].tolist() if len(xs) > 3 and xs[3] is not None else list(range(len(starts)))
        steps = xs[4].tolist() if len(xs) > 4 and xs[4] is not None else [1] * len(starts)
    else:
        starts, ends = node.attr("starts"), node.attr("ends")
        axes = node.attr("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    index = [slice(None)] * x.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        if step == 0:
            raise Unfoldable("Slice step 0")
        if step < 0 and end in (2**31 - 1, 2**63 - 1):  # onnxruntime: "to the first element"; spec: empty
            raise Unfoldable("Slice with a negative step and an INT_MAX end: runtimes disagree")
        index[axis + x.ndim if axis < 0 else axis] = onnx_slice(x.shape[axis], start, end, step)
    return [x[tuple(index)]]


@evaluator("Tile")
def _tile(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    return [np.tile(xs[0], tuple(int(r) for r in xs[1]))]


def _variadic(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Evaluator:
    def run(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
        out = xs[0]
        for x in xs[1:]:
            out = fn(out, x)
        return [np.asarray(out).astype(xs[0].dtype, copy=False)]
    return run


EVALUATORS["Max"] = _variadic(np.maximum)
EVALUATORS["Min"] = _variadic(np.minimum)
EVALUATORS["Sum"] = _variadic(np.add)


@evaluator("MatMul")
def _matmul(node: Node, xs: Arrays, opset: int) -> list[np.ndarray]:
    a, b = xs[0], xs[1]
    if a.dtype != b.dtype or a.dtype.kind not in "fiu":
        raise FoldDeclined("MatMul evaluator handles plain numeric types")
    return [np.matmul(a, b).astype(a.dtype, copy=False)]
