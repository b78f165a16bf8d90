"""How many elements a node about to be folded would produce, predicted from its constant inputs before
evaluating it, so that a model declaring a Range to 10^12 or an Expand to a huge shape cannot make the
folder allocate terabytes (shape inference does not always know these sizes)."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from graphopt import Node

Arrays = Sequence[np.ndarray | None]


def _prod(values: Sequence[int]) -> int:
    return math.prod(max(0, int(v)) for v in values)


def _broadcast(shapes: Sequence[Sequence[int]]) -> int | None:
    try:
        return _prod(np.broadcast_shapes(*[tuple(int(d) for d in s) for s in shapes]))
    except ValueError:
        return None


def _range(node: Node, a: Arrays) -> int | None:
    start, limit, delta = (float(np.asarray(x).reshape(-1)[0]) for x in a[:3])  # type: ignore[arg-type]
    if delta == 0 or not all(map(math.isfinite, (start, limit, delta))):
        return None
    return max(0, math.ceil((limit - start) / delta))


def _expand(node: Node, a: Arrays) -> int | None:
    return _broadcast([a[0].shape, np.asarray(a[1]).reshape(-1)])  # type: ignore[union-attr]


def _tile(node: Node, a: Arrays) -> int | None:
    return a[0].size * _prod(np.asarray(a[1]).reshape(-1))  # type: ignore[union-attr]


def _one_hot(node: Node, a: Arrays) -> int | None:
    return a[0].size * max(0, int(np.asarray(a[1]).reshape(-1)[0]))  # type: ignore[union-attr]


def _pad(node: Node, a: Arrays) -> int | None:
    pads = np.asarray(a[1] if len(a) > 1 and a[1] is not None else node.attr("pads", [])).reshape(-1)
    shape = list(a[0].shape)  # type: ignore[union-attr]
    if len(pads) != 2 * len(shape):
        return None
    return _prod([d + int(pads[i]) + int(pads[i + len(shape)]) for i, d in enumerate(shape)])


def _resize(node: Node, a: Arrays) -> int | None:
    shape = a[0].shape  # type: ignore[union-attr]
    sizes = a[3] if len(a) > 3 else None
    if sizes is not None and np.asarray(sizes).size:
        return _prod(np.asarray(sizes).reshape(-1))
    scales = a[2] if len(a) > 2 else (a[1] if len(a) > 1 else None)
    if scales is None or np.asarray(scales).size != len(shape):
        return None
    return _prod([math.floor(d * float(s)) for d, s in zip(shape, np.asarray(scales).reshape(-1))])


GENERATORS: dict[str, Callable[[Node, Arrays], int | None]] = {
    "ConstantOfShape": lambda node, a: _prod(np.asarray(a[0]).reshape(-1)) if a and a[0] is not None else 1,
    "Range": _range, "Expand": _expand, "Tile": _tile, "OneHot": _one_hot, "Pad": _pad,
    "Resize": _resize, "Upsample": _resize,
}


def predicted_elements(node: Node, inputs: Arrays) -> int | None:
    """Elements of the largest output (None: no prediction for this op)."""
    try:
        generator = GENERATORS.get(node.op_type)
        if generator is not None:
            return generator(node, inputs)
        present = [x for x in inputs if x is not None]
        if present and all(isinstance(x, np.ndarray) for x in present):
            return _broadcast([x.shape for x in present])  # elementwise ops: the broadcast shape
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return None
