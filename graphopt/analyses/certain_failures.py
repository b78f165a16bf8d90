"""Nodes that fail in every run: an input whose known rank (or static dim) breaks the op's contract.

Only facts that hold in every run are used (ranks and dims from graph inputs, constants and
inference, never declared value_info), and only contracts onnxruntime's CPU kernels enforce at run
time, empty tensors included (each one is pinned by a test that runs the failing node, also with an
empty input where a dim is not static). A node this analysis names cannot
succeed; one it does not name may still fail, it is simply not known to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from graphopt.ir.node import Node
from graphopt.ir.ops import is_standard_domain
from graphopt.ir.value import Value

RECURRENT = frozenset({"LSTM", "GRU", "RNN"})
CONVOLUTIONS = frozenset({"Conv", "ConvTranspose"})
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool",
                   "GlobalLpPool"})
AXIS_OPS = frozenset({"Softmax", "LogSoftmax", "Hardmax", "Gather", "Split"})  # axis in [-r, r-1]
SOFTMAX_OPS = frozenset({"Softmax", "LogSoftmax", "Hardmax"})


def certain_failure(node: Node, opset: int) -> str | None:
    """Why ``node`` fails whenever it runs, or None when that is not known."""
    if not is_standard_domain(node.domain):
        return None
    check = _CHECKS.get(node.op_type)
    if check is None and node.op_type in AXIS_OPS:
        check = _axis_in_range
    return check(node, opset) if check is not None else None


def _rank(node: Node, index: int) -> int | None:
    value = node.inputs[index] if index < len(node.inputs) else None
    return value.rank if value is not None else None


def _ints(value: Value | None) -> list[int] | None:
    if value is None or value.const is None or value.const.size > 64:
        return None
    return [int(x) for x in np.asarray(value.const.numpy()).reshape(-1)]


def _recurrent(node: Node, opset: int) -> str | None:
    rank = _rank(node, 0)
    if rank is not None and rank != 3:
        return f"{node.op_type} input X has rank {rank}, needs 3"
    return None


def _pool(node: Node, opset: int) -> str | None:
    x = _rank(node, 0)
    if x is not None and x < 3:
        return f"{node.op_type} input X has rank {x}, needs at least 3"
    return None


def _convolution(node: Node, opset: int) -> str | None:
    x, w = _rank(node, 0), _rank(node, 1)
    if x is not None and w is not None and x >= 3 and x != w:
        return f"{node.op_type} input X has rank {x} but W has rank {w}"
    return _pool(node, opset)  # the same rank-3 floor


def _matmul(node: Node, opset: int) -> str | None:
    for index in (0, 1):
        if _rank(node, index) == 0:
            return "MatMul operand has rank 0"
    return None


def _transpose(node: Node, opset: int) -> str | None:
    perm, rank = node.attr("perm"), _rank(node, 0)
    if perm is not None and rank is not None and len(perm) != rank:
        return f"Transpose perm has {len(perm)} entries for an input of rank {rank}"
    return None


def _non_empty(value: Value | None) -> bool:
    """Known to hold at least one element in every run (every dim static and positive)."""
    shape = value.static_shape if value is not None else None
    return shape is not None and all(d > 0 for d in shape)


def _concat(node: Node, opset: int) -> str | None:
    # onnxruntime skips an empty input of a higher rank: only non-empty inputs are compared
    ranks = {v.rank for v in node.inputs if _non_empty(v)}
    if len(ranks) > 1:
        return f"Concat inputs have ranks {sorted(ranks)}"
    return None


def _squeeze_axes(node: Node, opset: int) -> list[int] | None:
    if opset >= 13:
        return _ints(node.inputs[1]) if len(node.inputs) > 1 else None
    axes = node.attr("axes")
    return list(axes) if axes is not None else None


def _squeeze(node: Node, opset: int) -> str | None:
    axes, source = _squeeze_axes(node, opset), node.inputs[0] if node.inputs else None
    if axes is None or source is None or source.shape is None:
        return None
    rank = len(source.shape)
    for axis in axes:
        if not -rank <= axis < rank:
            return f"Squeeze axis {axis} is out of range for rank {rank}"
        dim = source.shape[axis]
        if isinstance(dim, int) and dim != 1:
            return f"Squeeze axis {axis} has size {dim}, not 1"
    return None


def _unsqueeze(node: Node, opset: int) -> str | None:
    axes, rank = _squeeze_axes(node, opset), _rank(node, 0)
    if axes is None or rank is None:
        return None
    out_rank = rank + len(axes)
    bad = [a for a in axes if not -out_rank <= a < out_rank]
    return f"Unsqueeze axis {bad[0]} is out of range for output rank {out_rank}" if bad else None


def _flatten(node: Node, opset: int) -> str | None:
    axis, rank = node.attr("axis", 1), _rank(node, 0)
    if rank is not None and not -rank <= axis <= rank:
        return f"Flatten axis {axis} is out of range for rank {rank}"
    return None


def _axis_in_range(node: Node, opset: int) -> str | None:
    axis, rank = node.attr("axis"), _rank(node, 0)
    if axis is None or rank is None or rank == 0:
        return None  # defaults differ across versions; only an explicit axis is judged
    if node.op_type in SOFTMAX_OPS and not _non_empty(node.inputs[0]):
        return None  # onnxruntime returns an empty input before it looks at the axis
    if not -rank <= axis < rank:
        return f"{node.op_type} axis {axis} is out of range for rank {rank}"
    return None


_CHECKS: dict[str, Callable[[Node, int], str | None]] = {
    **{op: _recurrent for op in RECURRENT},
    **{op: _convolution for op in CONVOLUTIONS},
    **{op: _pool for op in POOLS},
    "MatMul": _matmul,
    "Transpose": _transpose,
    "Concat": _concat,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Flatten": _flatten,
}
