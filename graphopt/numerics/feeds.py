"""Seeded input feeds that respect each graph input's dtype and shape."""

from __future__ import annotations

import math

import numpy as np
import onnx

from graphopt.errors import UsageError
from graphopt.ir.model import Model
from graphopt.ir.tensor import numpy_dtype
from graphopt.numerics.synthesize import FEED_BYTES_LIMIT

DEFAULT_DIM = 1  # value for an unknown batch-like dimension (axis 0)
DEFAULT_INNER_DIM = 32  # value for other unknown dimensions (sequence length, image size...)


def input_specs(model: Model) -> list[tuple[str, int, list[int | str | None]]]:
    """``(name, elem_type, dims)`` of every graph input that must be fed (no initializer default).

    elem_type is -1 for non-tensor inputs; dims is empty when the rank is unknown.
    """
    specs = []
    for value in model.graph.inputs:
        if value in model.graph.input_defaults:
            continue
        if value.type_proto is not None or value.dtype is None:
            specs.append((value.name or "", -1, []))
        else:
            specs.append((value.name or "", value.dtype, list(value.shape or ())))
    return specs


def make_feeds(model: Model, *, seed: int = 0,
               shapes: dict[str, tuple[int, ...]] | None = None,
               given: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Random inputs: floats ~ N(0, 1), ints in {0, 1} (safe as indices, masks, token types), bools.

    ``shapes`` fixes input shapes by name (for dynamic dims); ``given`` supplies arrays verbatim.
    A symbolic dimension shared by several inputs gets the same value everywhere.
    """
    rng = np.random.default_rng(seed)
    shapes, given = shapes or {}, given or {}
    symbols: dict[str, int] = {}
    for name, _, dims in input_specs(model):
        if name in shapes:
            for d, v in zip(dims, shapes[name]):
                if isinstance(d, str):
                    symbols.setdefault(d, v)
    feeds: dict[str, np.ndarray] = {}
    total = 0
    for name, elem_type, dims in input_specs(model):
        if name in given:
            feeds[name] = given[name]
            continue
        if elem_type <= 0:
            raise UsageError(f"input {name!r} is not a tensor; provide it with --inputs file.npz")
        shape = shapes.get(name) or tuple(_concrete(d, i, symbols) for i, d in enumerate(dims))
        if name in shapes and len(shapes[name]) != len(dims) and dims:
            raise UsageError(f"--input-shape {name} has rank {len(shapes[name])}, "
                             f"the model declares rank {len(dims)}")
        total += math.prod(int(d) for d in shape) * max(numpy_dtype(elem_type).itemsize, 1)
        if total > FEED_BYTES_LIMIT:
            raise UsageError(f"input {name!r} has shape {list(shape)}: the check inputs would take "
                             f"{total / 2**30:.1f} GiB; give smaller dims with --input-shape, real inputs "
                             "with --inputs, or skip checks with --check off")
        feeds[name] = random_array(rng, elem_type, tuple(shape))
    return feeds


def _concrete(dim: int | str | None, axis: int, symbols: dict[str, int]) -> int:
    if isinstance(dim, int) and dim >= 0:
        return dim
    default = DEFAULT_DIM if axis == 0 else DEFAULT_INNER_DIM
    if isinstance(dim, str) and dim:
        return symbols.setdefault(dim, default)
    return default


def random_array(rng: np.random.Generator, elem_type: int, shape: tuple[int, ...]) -> np.ndarray:
    """One random array of an ONNX element type."""
    dtype = numpy_dtype(elem_type)
    if elem_type == onnx.TensorProto.BOOL:
        return rng.integers(0, 2, size=shape).astype(bool)
    if elem_type == onnx.TensorProto.STRING:
        return rng.choice(np.array(["a", "b", "c"], dtype=object), size=shape)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(0, 2, size=shape).astype(dtype)
    return rng.standard_normal(size=shape).astype(np.float32).astype(dtype)
