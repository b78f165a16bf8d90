"""Symbolic shapes: every dim of a tensor as a canonical expression, and what shape vectors hold.

``dims(value)`` follows each run-time dim back to where it was first read (a graph input, or the
output of an op whose dims it cannot see through), so the sequence length read after a Transpose, a
MatMul and a Reshape is the same ``SymbolicDim`` as the one read from the input. ``vector(value)`` is
the partial value of a 1-D (or scalar) int tensor computed from shapes (Shape, Gather, Concat...): each
element a known int or such a dim. Together they prove a Reshape copies its input's dims or a shape
computation is constant, which onnx's own inference (fresh ``unk__`` names per op) cannot.

Both are memoised for one pass run: build a new ``SymbolicShapes`` after the graph changes.

Graph inputs of the main graph whose dims carry the same ``dim_param`` name share one root: the ONNX IR
says such dims have the same size at run time (TensorRT enforces it). Placeholder names that exporters
write for every unknown dim ("?", "-1", "None", "unk__7"...) are not names and stay apart: Paddle writes
"?" for both the height and the width of an image.
"""

from __future__ import annotations

import re
from typing import Callable

import numpy as np

from graphopt.ir.graph import Graph
from graphopt.ir.node import Node
from graphopt.ir.ops import INDEX_TYPES, is_standard_domain, onnx_slice, shape_slice
from graphopt.ir.value import Value

from .dim_algebra import DimExpr, SymbolicDim, broadcast_shapes, divide, multiply, root
from .shape_rules import DIM_RULES

PLACEHOLDER_NAME = re.compile(r"^(\W*|-?\d+|none|null|unknown|dynamic|unk__\d+|\?.*)$", re.IGNORECASE)
MAX_VECTOR = 64  # longer int vectors are data, not shapes
Vector = tuple  # tuple[DimExpr, ...]; a scalar is a 1-tuple (the caller knows the rank)
Dims = tuple  # tuple[DimExpr | None, ...]


class SymbolicShapes:
    """Memoised symbolic dims of tensors and partial values of shape vectors of one graph state."""

    def __init__(self, opset: int, graph: Graph | None = None) -> None:
        self.opset = opset
        self._graph = graph  # the main graph, whose nodes every successful run executes
        self._dims: dict[Value, Dims | None] = {}
        self._vectors: dict[Value, Vector | None] = {}
        self._named_roots: dict[str, SymbolicDim] = {}
        self._nonzero: set[tuple[Value, int]] | None = None

    # -- facts every successful run satisfies ------------------------------------------------------
    def nonzero(self, dim: DimExpr | None) -> bool:
        """Whether ``dim`` is above 0 in every run that succeeds: a known size above 0, or a product of
        run-time dims each of which a Reshape of the main graph divides by (onnxruntime refuses a -1
        when the other dims multiply to 0, so a run reaching past it had them non-zero)."""
        if isinstance(dim, int):
            return dim > 0
        if dim is None or dim.coefficient <= 0:
            return False
        if self._nonzero is None:
            self._nonzero = self._divisor_dims()
        return all(factor in self._nonzero for factor in dim.factors)

    def _divisor_dims(self) -> set[tuple[Value, int]]:
        found: set[tuple[Value, int]] = set()
        if self._graph is None:
            return found
        for node in self._graph:
            if node.op_type != "Reshape" or len(node.inputs) < 2 or node.attr("allowzero", 0) \
                    or not is_standard_domain(node.domain) \
                    or not (node.outputs[0].num_uses or node.outputs[0].is_graph_output):
                continue  # a Reshape nothing reads may be skipped by a runtime
            target, x_dims = self.vector(node.inputs[1]), self.dims(node.inputs[0])
            if target is None or target.count(-1) != 1:
                continue
            for position, element in enumerate(target):
                if element == 0 and x_dims is not None and position < len(x_dims):
                    element = x_dims[position]
                if isinstance(element, SymbolicDim):
                    found.update(element.factors)
        return found

    # -- dims of tensors ---------------------------------------------------------------------------
    def dims(self, value: Value | None) -> Dims | None:
        """Every dim of ``value`` (an int, a ``SymbolicDim``), or None when its rank is unknown."""
        if value is None:
            return None
        if value not in self._dims:
            self._fill(value)
        return self._dims[value]

    def _fill(self, start: Value) -> None:
        """Compute dims for ``start`` and the ancestors it needs, without deep recursion."""
        stack = [start]
        expanded: set[Value] = set()
        while stack:
            value = stack[-1]
            if value in self._dims:
                stack.pop()
                continue
            node = _visible_producer(value)
            inputs = () if node is None else node.inputs
            pending = [v for v in inputs if v is not None and v not in self._dims]
            if pending and value not in expanded:
                expanded.add(value)
                stack.extend(pending)
                continue
            stack.pop()
            self._dims[value] = self._compute_dims(value, node)

    def _compute_dims(self, value: Value, node: Node | None) -> Dims | None:
        derived: Dims | None = None
        if value.const is not None:
            return tuple(int(d) for d in value.const.shape)
        if node is None and value.shape is not None and value.graph is not None \
                and value.graph.parent is None and value.is_graph_input \
                and value not in value.graph.input_defaults:
            derived = tuple(self._named_root(d, value, axis) for axis, d in enumerate(value.shape))
        if node is not None:
            rule = DIM_RULES.get(_rule_name(node))
            if rule is not None:
                ins = [self._dims.get(v) if v is not None else None for v in node.inputs]
                outs = rule(node, ins, self)
                if outs is not None and value.output_index < len(outs):
                    derived = outs[value.output_index]
        shape = value.shape
        if shape is None and derived is None:
            return None
        if shape is not None and derived is not None and len(shape) != len(derived):
            derived = None  # a rule and inference disagree on the rank: trust neither rule's dims
        rank = len(shape) if shape is not None else len(derived)  # type: ignore[arg-type]
        out: list[DimExpr] = []
        for axis in range(rank):
            known = shape[axis] if shape is not None else None
            if isinstance(known, int):
                out.append(known)
            elif derived is not None and derived[axis] is not None:
                out.append(derived[axis])
            else:
                out.append(root(value, axis))
        return tuple(out)

    def _named_root(self, dim: object, value: Value, axis: int) -> SymbolicDim | None:
        """The shared root of a main-graph input dim named ``dim`` (None for placeholders)."""
        if not isinstance(dim, str) or PLACEHOLDER_NAME.match(dim.strip()):
            return None
        return self._named_roots.setdefault(dim, root(value, axis))

    # -- values of shape vectors -------------------------------------------------------------------
    def vector(self, value: Value | None) -> Vector | None:
        """The elements of a 1-D (or scalar) int tensor computed from shapes, or None."""
        if value is None:
            return None
        if value not in self._vectors:
            self._vectors[value] = None  # cycles (never in valid graphs) end here
            self._vectors[value] = self._compute_vector(value)
        return self._vectors[value]

    def known(self, value: Value) -> np.ndarray | None:
        """The full int64 value when every element is a known int (shaped like ``value``)."""
        vector = self.vector(value)
        if vector is None or value.rank is None or any(isinstance(e, SymbolicDim) for e in vector):
            return None
        arr = np.array(vector, dtype=np.int64)
        return arr.reshape(()) if value.rank == 0 else arr

    def ints(self, value: Value | None) -> list[int] | None:
        """A vector whose elements are all known ints, as a list."""
        vector = self.vector(value)
        if vector is None or any(isinstance(e, SymbolicDim) for e in vector):
            return None
        return list(vector)

    def _compute_vector(self, value: Value) -> Vector | None:
        if value.const is not None:
            tensor = value.const
            if tensor.dtype not in INDEX_TYPES or len(tensor.shape) > 1 or tensor.size > MAX_VECTOR:
                return None
            return tuple(int(v) for v in tensor.numpy().reshape(-1))
        node = _visible_producer(value)
        if node is None or value.output_index != 0 or not node.inputs:
            return None
        handler = _VECTOR_RULES.get(node.op_type)
        return None if handler is None else handler(self, node)


# Ops of other domains whose output dims are documented (onnxruntime's contrib schemas), read by the
# same rule as their standard counterpart.
CONTRIB_RULES = {("com.microsoft", "DynamicQuantizeLSTM"): "LSTM"}


def _visible_producer(value: Value) -> Node | None:
    node = value.producer
    if node is None or node.graph is None:
        return None
    if not is_standard_domain(node.domain) and (node.domain, node.op_type) not in CONTRIB_RULES:
        return None
    return node


def _rule_name(node: Node) -> str:
    return node.op_type if is_standard_domain(node.domain) else CONTRIB_RULES[(node.domain, node.op_type)]


# -- vector rules --------------------------------------------------------------------------------
def _shape(ss: SymbolicShapes, node: Node) -> Vector | None:
    dims = ss.dims(node.inputs[0])
    if dims is None:
        return None
    axes = shape_slice(np.arange(len(dims)), node.attr("start", 0), node.attr("end"))
    return tuple(dims[int(a)] for a in axes)


def _size(ss: SymbolicShapes, node: Node) -> Vector | None:
    dims = ss.dims(node.inputs[0])
    total = None if dims is None else multiply(*dims)
    return None if total is None else (total,)


def _gather(ss: SymbolicShapes, node: Node) -> Vector | None:
    data = ss.vector(node.inputs[0])
    index = node.inputs[1] if len(node.inputs) > 1 else None
    if data is None or index is None or index.rank not in (0, 1) or node.attr("axis", 0) not in (0, -1):
        return None
    positions = ss.ints(index)
    if positions is None or not all(-len(data) <= p < len(data) for p in positions):
        return None
    return tuple(data[p] for p in positions)


def _slice(ss: SymbolicShapes, node: Node) -> Vector | None:
    data = ss.vector(node.inputs[0])
    if data is None or ss.opset < 10 or len(node.inputs) < 3:
        return None
    starts, ends = ss.ints(node.inputs[1]), ss.ints(node.inputs[2])
    axes = ss.ints(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else [0]
    steps = ss.ints(node.inputs[4]) if len(node.inputs) > 4 and node.inputs[4] is not None else [1]
    if starts is None or ends is None or axes is None or steps is None or len(starts) != 1:
        return None
    if axes[0] not in (0, -1) or steps[0] == 0:
        return None
    if steps[0] < 0 and ends[0] in (2**31 - 1, 2**63 - 1):
        return None  # onnxruntime reads this end as "to the first element", the spec as the last one
    # ONNX clamps differently from Python slicing when a negative step starts before the first
    # element (ONNX starts at element 0, Python selects nothing): use the spec's clamping.
    return tuple(data[onnx_slice(len(data), starts[0], ends[0], steps[0])])


def _concat(ss: SymbolicShapes, node: Node) -> Vector | None:
    parts = [ss.vector(v) for v in node.inputs]
    if any(p is None for p in parts) or any(v is not None and v.rank != 1 for v in node.inputs):
        return None
    out = tuple(e for p in parts for e in p)  # type: ignore[union-attr]
    return out if len(out) <= MAX_VECTOR else None


def _pass_through(ss: SymbolicShapes, node: Node) -> Vector | None:
    src, out = node.inputs[0], node.outputs[0]
    if src is None or (out.rank is not None and out.rank > 1):
        return None
    if node.op_type == "Cast":
        if src.dtype not in INDEX_TYPES or node.attr("to") not in INDEX_TYPES:
            return None
        vector = ss.vector(src)
        if vector is None or any(isinstance(e, int) and not -2**31 <= e < 2**31 for e in vector):
            return None  # an int32 cast would wrap; run-time dims always fit in int32 in practice
        return vector
    vector = ss.vector(src)
    if vector is None or (out.rank is None and node.op_type != "Identity"):
        return None
    if out.rank == 0 and len(vector) != 1:
        return None
    return vector


def _arithmetic(combine: Callable[[DimExpr, DimExpr], DimExpr | None]):  # type: ignore[no-untyped-def]
    def rule(ss: SymbolicShapes, node: Node) -> Vector | None:
        a, b = (ss.vector(v) for v in node.inputs[:2])
        if a is None or b is None or len(node.inputs) != 2:
            return None
        if len(a) != len(b) and 1 not in (len(a), len(b)):
            return None
        if node.outputs[0].rank is None or node.outputs[0].rank > 1:
            return None
        n = max(len(a), len(b))
        out = [combine(a[i if len(a) > 1 else 0], b[i if len(b) > 1 else 0]) for i in range(n)]
        return None if any(e is None for e in out) else tuple(out)
    return rule


def _add(x: DimExpr, y: DimExpr) -> DimExpr | None:
    return x + y if isinstance(x, int) and isinstance(y, int) else None


def _sub(x: DimExpr, y: DimExpr) -> DimExpr | None:
    if isinstance(x, int) and isinstance(y, int):
        return x - y
    return 0 if x == y else None


def _div(x: DimExpr, y: DimExpr) -> DimExpr | None:
    if isinstance(x, int) and isinstance(y, int):
        return x // y if x >= 0 and y > 0 else None  # negative operands: C and numpy round apart
    return divide(x, y)  # exact for every run-time value, so integer division agrees


def _mul(x: DimExpr, y: DimExpr) -> DimExpr | None:
    return multiply(x, y)


def _equal(x: DimExpr, y: DimExpr) -> DimExpr | None:
    """1 or 0 when it is sure: a run-time dim is never negative, so it never equals -1."""
    if isinstance(x, int) and isinstance(y, int):
        return int(x == y)
    if x == y:
        return 1
    other = y if isinstance(x, SymbolicDim) else x
    if isinstance(other, int) and other < 0 and all(isinstance(e, int) or e.coefficient > 0 for e in (x, y)):
        return 0
    return None


def _where(ss: SymbolicShapes, node: Node) -> Vector | None:
    parts = [ss.vector(v) for v in node.inputs[:3]]
    if len(node.inputs) != 3 or any(p is None for p in parts) or node.outputs[0].rank not in (0, 1):
        return None
    n = max(len(p) for p in parts)  # type: ignore[arg-type]
    if any(len(p) not in (1, n) for p in parts):  # type: ignore[arg-type]
        return None
    cond, a, b = ([p[i if len(p) > 1 else 0] for i in range(n)] for p in parts)  # type: ignore[index]
    if any(not isinstance(c, int) for c in cond):
        return None
    return tuple(x if c else y for c, x, y in zip(cond, a, b))


_VECTOR_RULES = {
    "Shape": _shape, "Size": _size, "Gather": _gather, "Slice": _slice, "Concat": _concat,
    "Cast": _pass_through, "Identity": _pass_through, "Unsqueeze": _pass_through,
    "Squeeze": _pass_through, "Reshape": _pass_through,
    "Add": _arithmetic(_add), "Sub": _arithmetic(_sub), "Mul": _arithmetic(_mul), "Div": _arithmetic(_div),
    "Equal": _arithmetic(_equal), "Where": _where,
}


def dims_equal(a: Dims | None, b: Dims | None) -> bool:
    """Whether two shapes are provably the same in every run."""
    return a is not None and b is not None and len(a) == len(b) and all(x is not None and x == y
                                                                         for x, y in zip(a, b))


def expands_to_itself(ss: SymbolicShapes, node: Node) -> bool:
    """Whether an Expand's target broadcast with its input's dims gives the input's dims back."""
    x_dims = ss.dims(node.inputs[0])
    target = ss.vector(node.inputs[1]) if len(node.inputs) > 1 else None
    if x_dims is None or target is None or len(target) > len(x_dims):
        return False
    return dims_equal(broadcast_shapes([x_dims, tuple(target)]), x_dims)


__all__ = ["SymbolicShapes", "SymbolicDim", "DimExpr", "dims_equal", "expands_to_itself"]
