"""Tensor sizes and lifetimes of the main graph for one execution order, and the peak they imply.

A step is a node's position in the order. A tensor planned in the arena is a node output of the main
graph (graph inputs and constants live elsewhere); it is live from the step that writes it to the last
step that reads it, where a read from inside an If/Loop/Scan body counts as a read by the node holding
that body. Graph outputs stay live to the end (step ``len(order)``); an output nobody reads is live only
during its own step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
from onnx import helper

from graphopt import Graph, Model, Node, Value, make_feeds, numpy_dtype, observe
from graphopt.analyses.shapes import infer_types
from graphopt.errors import GraphoptError, UnknownSizeError, UsageError


@dataclass(frozen=True)
class Lifetime:
    """Where one planned tensor lives: bytes, first step (its producer) and last step (inclusive)."""

    value: Value
    size: int
    start: int
    end: int


def tensor_bytes(value: Value) -> int | None:
    """Bytes of a tensor with a static shape and a known fixed-width dtype (None otherwise)."""
    shape = value.static_shape
    if shape is None or value.dtype is None or value.type_proto is not None:
        return None
    try:
        itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(value.dtype)).itemsize
    except (KeyError, TypeError, ValueError):
        return None
    if value.dtype in (helper.np_dtype_to_tensor_dtype(np.dtype(object)),):
        return None  # strings have no fixed size
    count = 1
    for dim in shape:
        count *= int(dim)
    return count * itemsize


def planned_values(graph: Graph, order: Sequence[Node]) -> list[Value]:
    """Node outputs of ``graph`` in production order (omitted optional outputs left out)."""
    found: list[Value] = []
    for node in order:
        for out in node.outputs:
            if out.name == "" and not out.num_uses and not out.is_graph_output:
                continue
            found.append(out)
    return found


def last_reads(graph: Graph, order: Sequence[Node], values: Iterable[Value]) -> dict[Value, int]:
    """Step of the last read of each value (reads inside bodies count at their holder's step)."""
    step = {node: i for i, node in enumerate(order)}
    last: dict[Value, int] = {}
    for value in values:
        end = -1
        for user, _ in value.iter_uses():
            holder = user if user.graph is graph else graph.local_holder(user)
            if holder is not None and holder in step:
                end = max(end, step[holder])
        last[value] = end
    return last


def lifetimes(graph: Graph, order: Sequence[Node] | None = None,
              size_of: Callable[[Value], int | None] = tensor_bytes) -> list[Lifetime]:
    """Every planned tensor of ``graph`` with its size and live steps for ``order`` (default: stored).

    Raises UnknownSizeError naming the first tensor whose size is not static.
    """
    order = list(graph) if order is None else list(order)
    produced = {out: i for i, node in enumerate(order) for out in node.outputs}
    values = planned_values(graph, order)
    last = last_reads(graph, order, values)
    outputs = set(graph.outputs)
    result: list[Lifetime] = []
    for value in values:
        size = size_of(value)
        if size is None:
            producer = value.producer
            raise UnknownSizeError(
                f"the size of {value.name or 'an output'} of {producer.op_type if producer else '?'} node "
                f"{producer.name if producer else ''!r} is not static; fix dynamic input dims with "
                "--input-shape NAME=D0,D1,...")
        start = produced[value]
        end = len(order) if value in outputs else max(start, last[value])
        result.append(Lifetime(value, size, start, end))
    return result


def peak_bytes(spans: Iterable[tuple[int, int, int]], steps: int) -> int:
    """The largest total of bytes live at one step, for (size, start, end) spans over 0..steps."""
    delta = [0] * (steps + 2)
    for size, start, end in spans:
        delta[start] += size
        delta[end + 1] -= size
    peak = running = 0
    for change in delta:
        running += change
        peak = max(peak, running)
    return peak


def sizes_at_shapes(model: Model, shapes: dict[str, list[int]]) -> Callable[[Value], int | None]:
    """Byte sizes of the main graph's values when its inputs have ``shapes`` (dynamic dims fixed):
    shape inference runs on a weightless copy, so the model itself keeps its declared shapes."""
    known = {v.name for v in model.graph.inputs if v.name}
    for name in shapes:
        if name not in known:
            raise UsageError(f"--input-shape names {name!r}, which is not an input of the model "
                             f"(inputs: {', '.join(sorted(known)) or 'none'})")
    sizes: dict[Value, int] = {}
    for value, (dtype, shape) in infer_types(model, shapes).items():
        if dtype and shape is not None and all(isinstance(d, int) and d >= 0 for d in shape):
            sizes[value] = int(np.prod(shape, dtype=np.int64)) * int(np.dtype(numpy_dtype(dtype)).itemsize)

    def size_of(value: Value) -> int | None:
        return sizes.get(value)
    return size_of


DATA_DEPENDENT_SIZES = frozenset({"NonZero", "Unique", "Compress", "NonMaxSuppression", "StringSplit"})


def _branches_differ(value: Value, size_of: Callable[[Value], int | None]) -> bool:
    """An If output whose two branches give different static sizes: which one runs is data."""
    node = value.producer
    if node is None or node.op_type != "If" or len(node.subgraphs()) != 2:
        return False
    index = node.outputs.index(value)
    sizes = {(tensor_bytes(body.outputs[index]) or size_of(body.outputs[index]))
             if index < len(body.outputs) else None for body in node.subgraphs()}
    return len(sizes) > 1 or None in sizes


def _inputs_concrete(model: Model, shapes: dict[str, list[int]]) -> bool:
    for value in model.graph.inputs:
        if value.name in shapes:
            continue
        if value.static_shape is None:
            return False
    return True


def observed_sizes(model: Model, values: Sequence[Value], shapes: dict[str, list[int]],
                   given: dict[str, np.ndarray] | None = None) -> dict[Value, int]:
    """Byte sizes of ``values`` seen in one onnxruntime run on ``given`` inputs (the rest seeded random
    of the given shapes): for sizes that shape inference cannot prove (a Resize whose sizes are
    computed, a custom op)."""
    feeds = make_feeds(model, seed=0, shapes={k: tuple(v) for k, v in shapes.items()} or None, given=given)
    try:
        seen = observe(model, values, feeds, what="model (to observe tensor sizes)")
    except GraphoptError as exc:
        raise UnknownSizeError(f"some tensor sizes are not static, and observing them failed: {exc}; give "
                               "real inputs with --inputs FILE.npz") from None
    return {value: int(array.nbytes) for value, array in seen.items() if isinstance(array, np.ndarray)}


def measure_sizes(model: Model, shapes: dict[str, list[int]],
                  given: dict[str, np.ndarray] | None = None) -> Callable[[Value], int | None]:
    """Sizes of the main graph's node outputs: static shapes, else shape inference with the inputs'
    dynamic dims fixed by ``shapes``, else (all input dims known) one onnxruntime run that observes them."""
    size_of = sizes_at_shapes(model, shapes) if shapes else tensor_bytes
    values = planned_values(model.graph, list(model.graph))
    missing = [v for v in values if size_of(v) is None]
    if not missing or not _inputs_concrete(model, shapes):
        return size_of
    for value in missing:  # one run shows these sizes for that run's data only: refuse to plan them
        producer = value.producer
        if producer is not None and (producer.op_type in DATA_DEPENDENT_SIZES
                                     or _branches_differ(value, size_of)):
            raise UnknownSizeError(
                f"the size of {value.name or 'an output'} of {producer.op_type} node {producer.name!r} "
                "depends on the input data (which branch runs, how many elements qualify), so no single "
                "plan holds for every input")
    seen = observed_sizes(model, missing, shapes, given)

    def combined(value: Value) -> int | None:
        size = size_of(value)
        return size if size is not None else seen.get(value)
    return combined
