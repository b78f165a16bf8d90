"""Check inputs from a dim assignment and the model's value hints: one array (or sequence) per graph
input, each with a line saying what it holds and why."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from graphopt.errors import UsageError
from graphopt.ir.tensor import numpy_dtype
from graphopt.numerics.hints import ModelHints, ValueHint, dim_key

FEED_BYTES_LIMIT = 4 * 2**30  # generated check inputs larger than this are refused (a hostile dim)
SEQUENCE_LENGTH = 2  # elements of a generated sequence input


@dataclass(frozen=True)
class FeedSpec:
    """A graph input to feed: its element type (-1: not a tensor), declared dims and full type."""

    name: str
    elem_type: int
    dims: tuple[Any, ...]
    type_proto: onnx.TypeProto | None = None


@dataclass
class Request:
    """What the user fixed: shapes, whole arrays, fill values and value ranges, by input name."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


def feed_specs(model: Any) -> list[FeedSpec]:
    """Every graph input that must be fed (no initializer default), in order."""
    specs = []
    for value in model.graph.inputs:
        if value in model.graph.input_defaults:
            continue
        if value.type_proto is not None or value.dtype is None:
            specs.append(FeedSpec(value.name or "", -1, (), value.type_proto))
        else:
            specs.append(FeedSpec(value.name or "", value.dtype, tuple(value.shape or ())))
    return specs


def concrete_shape(spec: FeedSpec, assign: dict[str, int], request: Request) -> tuple[int, ...]:
    """The shape fed for ``spec`` under a dim assignment (user shapes first)."""
    if spec.name in request.shapes:
        return request.shapes[spec.name]
    return tuple(d if isinstance(d, int) and d >= 0 else assign.get(dim_key(spec.name, i, d), 1)
                 for i, d in enumerate(spec.dims))


def synthesize(specs: list[FeedSpec], hints: ModelHints, assign: dict[str, int], request: Request,
               seed: int, variant: int = 0) -> tuple[dict[str, Any], dict[str, str]]:
    """Feeds and a description per input; ``variant`` rotates through compared constants."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, Any] = {}
    notes: dict[str, str] = {}
    total = 0
    for spec in specs:
        if spec.name in request.arrays:
            feeds[spec.name] = request.arrays[spec.name]
            notes[spec.name] = f"{_describe(feeds[spec.name])} from --inputs"
            continue
        if spec.elem_type <= 0:
            feeds[spec.name], notes[spec.name] = _non_tensor(spec, rng, assign, request)
            continue
        shape = concrete_shape(spec, assign, request)
        total += math.prod(shape) * max(numpy_dtype(spec.elem_type).itemsize, 1)
        if total > FEED_BYTES_LIMIT:
            raise UsageError(f"input {spec.name!r} has shape {list(shape)}: the check inputs would take "
                             f"{total / 2**30:.1f} GiB; give smaller dims with --input-shape, real inputs "
                             "with --inputs, or skip checks with --check off")
        hint = hints.values.get(spec.name, ValueHint())
        feeds[spec.name], how = fill(spec.elem_type, shape, hint, rng, variant, request, spec.name)
        notes[spec.name] = f"{_describe(feeds[spec.name])} {how}"
    return feeds, notes


def fill(elem_type: int, shape: tuple[int, ...], hint: ValueHint, rng: np.random.Generator, variant: int,
         request: Request, name: str) -> tuple[np.ndarray, str]:
    """One input array and how it was chosen."""
    dtype = numpy_dtype(elem_type)
    why = f" ({hint.reasons[0]})" if hint.reasons else ""
    if name in request.values:
        return np.broadcast_to(request.values[name].astype(dtype), shape).copy(), "= --input-value"
    if name in request.ranges:
        low, high = request.ranges[name]
        if np.issubdtype(dtype, np.integer):
            return rng.integers(int(low), int(high) + 1, size=shape).astype(dtype), \
                f"in [{low:g}, {high:g}] (--input-range)"
        return rng.uniform(low, high, size=shape).astype(dtype), f"in [{low:g}, {high:g}] (--input-range)"
    if elem_type == onnx.TensorProto.STRING:
        return rng.choice(np.array(["a", "b", "c"], dtype=object), size=shape), "strings"
    if hint.structural:
        return _structural(hint.structural, shape, dtype), f"= {hint.structural} value{why}"
    size = math.prod(shape)
    if hint.choices and (size == 1 or hint.high is None):
        if size == 1:
            choice = hint.choices[variant % len(hint.choices)]
            return np.full(shape, choice).astype(dtype), f"= {choice:g}{why}"
        pool = np.array(sorted(set(hint.choices) | {0.0, 1.0}))
        return rng.choice(pool, size=shape).astype(dtype), f"among {', '.join(f'{v:g}' for v in pool)}{why}"
    if elem_type == onnx.TensorProto.BOOL:
        return rng.integers(0, 2, size=shape).astype(bool), "random booleans"
    if np.issubdtype(dtype, np.integer):
        default = (1, 3) if hint.nonzero else (0, 2)
        low, high = (hint.low or 0, hint.high) if hint.high is not None else default
        return rng.integers(low, high, size=shape).astype(dtype), f"in [{low}, {high}){why}"
    if hint.domain == "positive":
        return (np.abs(rng.standard_normal(size=shape)) + 1e-2).astype(np.float32).astype(dtype), \
            f"|N(0,1)| + 0.01{why}"
    if hint.domain == "unit":
        return rng.uniform(-0.9, 0.9, size=shape).astype(np.float32).astype(dtype), "in (-0.9, 0.9)"
    if (hint.center, hint.spread) != (0.0, 1.0):
        data = hint.center + hint.spread * rng.standard_normal(size=shape)
        return data.astype(np.float32).astype(dtype), f"~N({hint.center:.3g}, {hint.spread:.3g}){why}"
    return rng.standard_normal(size=shape).astype(np.float32).astype(dtype), "~N(0,1)"


def _structural(rule: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A value every run accepts for an input that holds a shape, an axis list or a count."""
    scalar = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "half": 0.5, "minus-half": -0.5,
              "false": 0, "true": 1, "big": 2**31 - 1, "ones": 1}
    if rule in scalar:
        return np.full(shape, scalar[rule]).astype(dtype)
    count = math.prod(shape)
    if rule == "reshape":
        values = np.ones(count, np.int64)
        if count:
            values[-1] = -1
        return values.reshape(shape).astype(dtype)
    return np.arange(count).reshape(shape).astype(dtype)  # arange / unit-axes: distinct leading axes


def _non_tensor(spec: FeedSpec, rng: np.random.Generator, assign: dict[str, int],
                request: Request) -> tuple[Any, str]:
    """A sequence of tensors, or an optional's content, from the input's full type."""
    kind = spec.type_proto.WhichOneof("value") if spec.type_proto is not None else None
    if kind == "sequence_type":
        elem = spec.type_proto.sequence_type.elem_type  # type: ignore[union-attr]
        tensor = _tensor_of(elem, spec.name, rng, assign, request)
        if tensor is not None:
            items = [tensor() for _ in range(SEQUENCE_LENGTH)]
            return items, f"a sequence of {len(items)} x {_describe(items[0])}"
    if kind == "optional_type":
        elem = spec.type_proto.optional_type.elem_type  # type: ignore[union-attr]
        tensor = _tensor_of(elem, spec.name, rng, assign, request)
        if tensor is not None:
            value = tensor()
            return value, f"{_describe(value)} (optional, present)"
    raise UsageError(f"input {spec.name!r} has a type graphopt cannot generate values for "
                     f"({kind or 'unknown'}); provide it with --inputs file.npz or use --check off")


def _tensor_of(elem: onnx.TypeProto, name: str, rng: np.random.Generator, assign: dict[str, int],
               request: Request) -> Any:
    if elem.WhichOneof("value") != "tensor_type":
        return None
    tt = elem.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim)
    spec = FeedSpec(name, tt.elem_type, dims)
    shape = tuple(d if isinstance(d, int) and d > 0 else assign.get(dim_key(name, i, d), 2)
                  for i, d in enumerate(dims))
    return lambda: fill(spec.elem_type, shape, ValueHint(), rng, 0, Request(), name)[0]


def _describe(value: Any) -> str:
    if isinstance(value, list):
        return f"sequence[{len(value)}]"
    array = np.asarray(value)
    return f"{array.dtype}[{','.join(str(d) for d in array.shape)}]"
