"""Compute cost per node: multiply-accumulates (MACs) and floating-point operations (FLOPs) from shapes.

The convention, stated once (the README repeats it):

* Conv, ConvInteger, QLinearConv: ``MACs = prod(Y.shape) * prod(W.shape[1:])``, that is
  N * Cout * prod(output spatial) * (Cin / group) * prod(kernel); grouped and depthwise convolutions
  follow from W's second dim being Cin / group. ConvTranspose: ``prod(X.shape) * prod(W.shape[1:])``.
* MatMul, MatMulInteger, QLinearMatMul (batched, broadcasting): ``prod(Y.shape) * K`` with K the last
  dim of A. Gemm: ``M * N * K`` (K read from A according to transA).
* For those ops FLOPs = 2 * MACs (one multiply and one add; the bias add is not counted).
* Elementwise, activation, normalisation, softmax and pooling ops: 0 MACs, FLOPs = output elements.
* Every other op (data movement, shape arithmetic, control flow, custom domains, function calls)
  is not counted. A Loop or Scan body counts once, not once per iteration.

A node is counted only when the shapes it needs are static; otherwise ``node_cost`` returns None
and ``dynamic_dims`` says which dims were not known.
"""

from __future__ import annotations

import math
from typing import Iterable, NamedTuple

from graphopt.analyses.symbolic_shapes import PLACEHOLDER_NAME
from graphopt.ir.model import Model
from graphopt.ir.node import Node
from graphopt.ir.ops import UNARY_ELEMENTWISE, is_standard_domain
from graphopt.ir.value import Value

CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}  # op -> index of W
MATMUL_OPS = frozenset({"MatMul", "MatMulInteger", "QLinearMatMul"})
MAC_OPS = frozenset({*CONV_WEIGHT, "ConvTranspose", *MATMUL_OPS, "Gemm"})
ELEMENT_OPS = frozenset({
    *(UNARY_ELEMENTWISE - {"Identity", "Cast", "Not"}),
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "PRelu", "Where",
    "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "BitShift",
    "BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization",
    "LpNormalization", "MeanVarianceNormalization", "Softmax", "LogSoftmax", "Hardmax",
    "AveragePool", "MaxPool", "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool",
})
UNNAMED = "?"  # stands for a dynamic dim without a usable name (None, unk__3, ...)
# sizes suggested for dims by name (guesses the user edits): a batch of 1, 128 tokens, 224-pixel sides
SIZE_GUESSES = (("batch", 1), ("seq", 128), ("len", 128), ("token", 128), ("height", 224), ("width", 224))


class Cost(NamedTuple):
    """MACs and FLOPs of one node (or a sum of nodes)."""

    macs: int
    flops: int


def is_counted(node: Node) -> bool:
    """True for the ops the convention gives a cost to (see the module docstring)."""
    return is_standard_domain(node.domain) and (node.op_type in MAC_OPS or node.op_type in ELEMENT_OPS)


def node_cost(node: Node) -> Cost | None:
    """The node's cost, ``Cost(0, 0)`` for an op that is not counted, None when shapes are not static."""
    if not is_counted(node):
        return Cost(0, 0)
    out = _static(node.outputs[0] if node.outputs else None)
    if out is None:
        return None
    if node.op_type in ELEMENT_OPS:
        return Cost(0, math.prod(out))
    macs = _macs(node, out)
    return None if macs is None else Cost(macs, 2 * macs)


def _macs(node: Node, out: tuple[int, ...]) -> int | None:
    """MACs of a MAC op whose output shape ``out`` is static (None when an input's shape is not)."""
    op = node.op_type
    if op in CONV_WEIGHT or op == "ConvTranspose":
        weight = _static(_input(node, CONV_WEIGHT.get(op, 1)))
        if weight is None or len(weight) < 2:
            return None
        if op == "ConvTranspose":
            x = _static(_input(node, 0))
            return None if x is None else math.prod(x) * math.prod(weight[1:])
        return math.prod(out) * math.prod(weight[1:])
    a = _input(node, 0)
    if a is None or not a.shape or not isinstance(a.shape[-1], int):
        return None
    if op == "Gemm":
        if len(a.shape) != 2:
            return None
        k = a.shape[0] if node.attr("transA", 0) else a.shape[1]
        return math.prod(out) * k if isinstance(k, int) else None
    return math.prod(out) * a.shape[-1]


def dynamic_dims(node: Node) -> set[str]:
    """The dims that kept ``node``'s cost unknown: dim names, and ``UNNAMED`` for dims without one."""
    found: set[str] = set()
    for value in (*node.inputs, *node.outputs[:1]):
        if value is None or value.const is not None:
            continue
        if value.shape is None:
            found.add(UNNAMED)
            continue
        for dim in value.shape:
            if not isinstance(dim, int):
                found.add(dim if is_named(dim) else UNNAMED)
    return found


def is_named(dim: object) -> bool:
    """True for a dim name a user can fix with ``--fix-dims NAME=N`` (not ``unk__3``, ``?``, None)."""
    return isinstance(dim, str) and not PLACEHOLDER_NAME.match(dim.strip())


def suggest_fix_dims(model: Model, blocking: Iterable[str]) -> list[str]:
    """``--fix-dims`` specs that would make ``blocking`` dims static: ``NAME=N`` for the dim names the
    main graph's inputs use, and ``INPUT:AXIS=1`` for unnamed dynamic input axes when ``UNNAMED`` blocks."""
    blocking = list(blocking)
    inputs = [v for v in model.graph.inputs if v not in model.graph.input_defaults and v.shape]
    names = {d for v in inputs for d in v.shape or () if is_named(d)}
    specs = [f"{name}={_guess(name)}" for name in blocking if name in names]
    if UNNAMED in blocking:
        specs += [f"{v.name}:{axis}=1" for v in inputs for axis, d in enumerate(v.shape or ())
                  if not isinstance(d, int) and not is_named(d)]
    return specs


def _guess(name: str) -> int:
    lower = name.lower()
    return next((size for key, size in SIZE_GUESSES if key in lower), 1)


def _input(node: Node, index: int) -> Value | None:
    return node.inputs[index] if index < len(node.inputs) else None


def _static(value: Value | None) -> tuple[int, ...] | None:
    return None if value is None else value.static_shape
