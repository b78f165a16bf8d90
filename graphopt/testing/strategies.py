"""Hypothesis strategies for random, valid ONNX models: property tests for passes over random graphs.

Models are valid *by construction* (nothing is generated and then filtered): every op is drawn among
those whose preconditions some available tensor meets, its parameters among feasible values, and its
output shape is computed as it is built. Every model passes ``onnx.checker.check_model(full_check=True)``
and runs in onnxruntime (CPU) on :func:`feeds`, with finite outputs of the declared static shapes.

Guarantees and limits:

- Tensors have rank 1-4, every dim <= 8 and at most 512 elements, so a model runs in milliseconds.
- Magnitudes stay bounded for feeds in [-1, 1]: each op checks a bound on its inputs' magnitudes before
  it applies (below 1e5 for float32, 100 for float16), weights are drawn in [-1, 1] and scaled by
  1/sqrt(fan_in), BatchNormalization variances in [0.5, 2], divisors are at least 0.5 in magnitude.
- Casts never truncate: float <-> float64, int32 <-> int64 and ints -> floats (exact for the bounded
  values), never floats -> ints; float16 appears only when it is listed in ``dtypes`` (compare such
  outputs with float16 tolerances, e.g. rtol 1e-2, atol 1e-3). Int64 tensors also come from Shape.
- ``min_nodes``/``max_nodes`` count the nodes of the main graph (Constant nodes and helper nodes
  included, If branch bodies excluded).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Sequence

import numpy as np
import onnx
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from onnx import TensorProto, helper

from graphopt.ir.model import Model
from graphopt.onnx_io.importer import import_model
from graphopt.testing import _ops_control, _ops_data, _ops_elementwise, _ops_linear, _ops_shape
from graphopt.testing._ops_core import (
    ALL,
    BOOL,
    INT_FEED_MAX,
    INTS,
    MAX_DIM,
    MAX_ELEMENTS,
    MAX_RANK,
    Config,
    Ctx,
    OpSpec,
    T,
    fill,
    fits,
    np_dtype,
    numel,
)

__all__ = ["BATCH_METADATA_KEY", "MAX_OPSET", "MIN_OPSET", "SUPPORTED_OPS", "feeds", "graphs", "models"]

# Order matters for shrinking: a failing example shrinks towards the ops listed first.
_TABLE: tuple[OpSpec, ...] = (*_ops_elementwise.SPECS, *_ops_shape.SPECS, *_ops_data.SPECS,
                              *_ops_linear.SPECS, *_ops_control.SPECS)
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted({s.op for s in _TABLE} | {"Constant"}))
"""Every op type ``models`` can emit (``Constant`` nodes hold some constants)."""
MIN_OPSET, MAX_OPSET = 13, 23  # the ai.onnx opsets ``models`` writes (all run in onnxruntime 1.32)
IR_VERSION = 8
BATCH_METADATA_KEY = "graphopt.testing.N"
"""metadata_props key holding the concrete size of the symbolic batch dimension "N"."""


def models(*, ops: Sequence[str] | None = None, min_nodes: int = 1, max_nodes: int = 12, opset: int = 17,
           input_shapes: Sequence[tuple[int, ...]] | None = None,
           dtypes: Sequence[int] = (TensorProto.FLOAT,), constants: bool = True,
           dead_branches: bool = True, shape_subgraphs: bool = True, if_subgraphs: bool = False,
           dynamic_batch: bool = False) -> st.SearchStrategy[onnx.ModelProto]:
    """Random valid ONNX models.

    Args:
        ops: op types that may appear (a subset of ``SUPPORTED_OPS``; default all). Helper nodes obey
            it too: a Reshape target comes from Shape/Gather/Concat only if those are allowed.
        min_nodes: fewest nodes in the main graph.
        max_nodes: most nodes in the main graph.
        opset: the ai.onnx opset (13 to 23); ops are written in that opset's form (axes as inputs or
            attributes, Split's num_outputs, Pad's axes...); LayerNormalization needs 17.
        input_shapes: static shapes of the graph inputs (rank 1-4, dims 1-8, <= 512 elements);
            default: 1-3 drawn inputs.
        dtypes: element types of the data inputs, among float32, float64, float16, int32, int64.
        constants: weights are constants (initializers, sometimes Constant nodes when "Constant" is
            allowed) and second operands are constants or other tensors; if False, weights and
            constant operands become graph inputs instead. Values that must stay in a range
            (variances, divisors, Clip bounds, shapes, axes, pads...) are always initializers.
        dead_branches: sometimes add nodes whose outputs nothing uses.
        shape_subgraphs: sometimes compute Reshape targets with Shape -> Gather -> Unsqueeze -> Concat.
        if_subgraphs: sometimes wrap a few nodes in an If whose branches read outer values; the
            condition is a bool graph input or a constant.
        dynamic_batch: dim 0 of the data inputs is the symbol "N" (its size is in the model's
            ``metadata_props[BATCH_METADATA_KEY]``; :func:`feeds` uses it).

    Returns:
        A strategy of ``onnx.ModelProto`` (ir_version 8) whose graph outputs (the last tensor computed
        plus up to two others) declare static shapes.

    Example::

        from hypothesis import given, strategies as st
        from graphopt.testing.strategies import feeds, models

        @given(data=st.data())
        def test_my_pass_keeps_outputs(data):
            model = data.draw(models(ops=["Conv", "Relu", "Add"], max_nodes=6))
            inputs = data.draw(feeds(model))
            ...  # run the model before and after the pass on ``inputs``
    """
    cfg = _config(ops, min_nodes, max_nodes, opset, input_shapes, dtypes, constants, dead_branches,
                  shape_subgraphs, if_subgraphs, dynamic_batch)
    return _model(cfg)


def graphs(**kwargs: Any) -> st.SearchStrategy[Model]:
    """The models of :func:`models` (same keyword arguments) imported as graphopt IR."""
    return models(**kwargs).map(import_model)


def feeds(model: onnx.ModelProto | Model, *, low: float = -1.0,
          high: float = 1.0) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Inputs for a model: floats uniform in [low, high], bools, integers in [0, 3].

    Symbolic dims take the size recorded under ``BATCH_METADATA_KEY`` (1 if none). The values come from
    a drawn seed (numpy's default_rng), so drawing is cheap and shrinks to seed 0.
    """
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise InvalidArgument(f"feeds needs finite low < high, got low={low!r} high={high!r}")
    specs = _input_specs(model)
    return st.integers(0, 2**32 - 1).map(lambda seed: _make_feeds(specs, seed, low, high))


# ----- validation --------------------------------------------------------------------------------
def _config(ops: Sequence[str] | None, min_nodes: int, max_nodes: int, opset: int,
            input_shapes: Sequence[tuple[int, ...]] | None, dtypes: Sequence[int], constants: bool,
            dead_branches: bool, shape_subgraphs: bool, if_subgraphs: bool, dynamic_batch: bool) -> Config:
    """Check the arguments of ``models`` and resolve the op table."""
    allowed = frozenset(SUPPORTED_OPS if ops is None else ops)
    unknown = sorted(allowed - set(SUPPORTED_OPS))
    if unknown or not allowed or isinstance(ops, str):
        raise InvalidArgument(f"ops must be a non-empty list from SUPPORTED_OPS; unknown: {unknown or ops!r}"
                              f" (supported: {', '.join(SUPPORTED_OPS)})")
    if not 1 <= min_nodes <= max_nodes:
        raise InvalidArgument(f"need 1 <= min_nodes <= max_nodes, got {min_nodes} and {max_nodes}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidArgument(f"opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET}")
    if not dtypes or any(d not in ALL for d in dtypes):
        raise InvalidArgument(f"dtypes {list(dtypes)!r} must be among float32, float64, float16, int32, "
                              "int64 (TensorProto values)")
    shapes = None if input_shapes is None else tuple(tuple(int(d) for d in s) for s in input_shapes)
    for shape in shapes or ():
        if not fits(shape):
            raise InvalidArgument(f"input shape {shape} must have rank 1-{MAX_RANK}, dims 1-{MAX_DIM} "
                                  f"and at most {MAX_ELEMENTS} elements")
    if shapes is not None and (not shapes or (dynamic_batch and len({s[0] for s in shapes}) > 1)):
        raise InvalidArgument("input_shapes must be non-empty (with dynamic_batch, all of the same dim 0)")
    flags = {"if_subgraphs": if_subgraphs}
    specs = tuple(s for s in _TABLE if s.op in allowed and opset >= s.min_opset
                  and (not s.flag or flags[s.flag]))
    cfg = Config(allowed, specs, min_nodes, max_nodes, opset, shapes, tuple(dict.fromkeys(dtypes)),
                 constants, dead_branches, shape_subgraphs, if_subgraphs, dynamic_batch)
    if not _starts(cfg) or (shapes is not None and _first_start(cfg) is None):
        raise InvalidArgument(
            f"none of ops {sorted(allowed)} applies to every {_dtype_names(cfg.dtypes)} tensor of "
            f"{'the given input shapes' if shapes else 'some rank'} at opset {opset}; add an op such as "
            "Relu or Identity")
    return cfg


def _dtype_names(dtypes: Sequence[int]) -> str:
    """'float / int64' style names."""
    return " / ".join(TensorProto.DataType.Name(d).lower() for d in dtypes)


def _starts(cfg: Config) -> list[tuple[int, int]]:
    """(dtype, rank) pairs some allowed op applies to whatever the shape: valid first inputs."""
    pairs = {(d, r) for s in cfg.specs for d in cfg.dtypes if d in s.dtypes for r in s.total_ranks}
    return sorted(pairs, key=lambda p: (cfg.dtypes.index(p[0]), p[1]))


def _first_start(cfg: Config) -> int | None:
    """Index of the first given input shape some allowed op always applies to (for some dtype)."""
    ranks = {r for _, r in _starts(cfg)}
    return next((i for i, s in enumerate(cfg.input_shapes or ()) if len(s) in ranks), None)


# ----- drawing -----------------------------------------------------------------------------------
@st.composite
def _model(draw: Any, cfg: Config) -> onnx.ModelProto:
    """Draw the node count first, then a seed for constant values, the inputs, the nodes, the outputs."""
    budget = draw(st.integers(cfg.min_nodes, cfg.max_nodes))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ctx = Ctx(draw, cfg, rng, itertools.count(), budget)
    _inputs(ctx)
    fill(ctx, cfg.specs, cfg.min_nodes)
    graph = helper.make_graph(ctx.nodes, "graphopt_testing", ctx.inputs, _outputs(ctx), ctx.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", cfg.opset)],
                              ir_version=IR_VERSION, producer_name="graphopt.testing")
    if ctx.batch is not None:
        helper.set_model_props(model, {BATCH_METADATA_KEY: str(ctx.batch)})
    return model


def _draw_shape(ctx: Ctx, rank: int, head: int | None) -> tuple[int, ...]:
    """A shape of ``rank`` within the limits (dim 0 fixed to ``head`` if given)."""
    dims: list[int] = [] if head is None else [head]
    while len(dims) < rank:
        dims.append(ctx.integer(1, min(MAX_DIM, MAX_ELEMENTS // numel(dims))))
    return tuple(dims)


def _add_input(ctx: Ctx, dtype: int, shape: tuple[int, ...]) -> None:
    """Declare a data input and put it into the pool."""
    name = ctx.new_input(dtype, shape, batch=True)
    bound = float(INT_FEED_MAX) if dtype in INTS else 1.0
    ctx.pool.append(T(name, dtype, shape, bound, produced=False))


def _inputs(ctx: Ctx) -> None:
    """The data inputs; the first one has a (dtype, rank) some allowed op applies to in any case."""
    cfg, starts = ctx.cfg, _starts(ctx.cfg)
    if cfg.input_shapes is not None:
        first = _first_start(cfg)
        ctx.batch = cfg.input_shapes[0][0] if cfg.dynamic_batch else None
        for i, shape in enumerate(cfg.input_shapes):
            options = [d for d, r in starts if r == len(shape)] if i == first else list(cfg.dtypes)
            _add_input(ctx, ctx.choice(options), shape)
        return
    dtype, rank = ctx.choice(starts)
    first = _draw_shape(ctx, rank, None)
    ctx.batch = first[0] if cfg.dynamic_batch else None
    _add_input(ctx, dtype, first)
    for _ in range(ctx.integer(0, 2)):
        kind = ctx.choice(("same", "suffix", "other"))
        if kind == "same":
            shape = first
        elif kind == "suffix" and ctx.batch is None:
            shape = first[ctx.integer(0, len(first) - 1):]
        else:
            shape = _draw_shape(ctx, ctx.integer(1, MAX_RANK), ctx.batch)
        _add_input(ctx, ctx.choice(cfg.dtypes), shape)


def _outputs(ctx: Ctx) -> list[onnx.ValueInfoProto]:
    """The last tensor computed plus up to two other node outputs, with their static shapes."""
    last = ctx.last
    if last is None:
        raise RuntimeError("graphopt.testing bug: no live node output")
    chosen = [last]
    others = [t for t in ctx.pool if t.produced and not t.dead and t is not last]
    for _ in range(ctx.integer(0, min(2, len(others)))):
        pick = ctx.choice([t for t in others if all(t is not c for c in chosen)])
        chosen.append(pick)
    return [helper.make_tensor_value_info(t.name, t.dtype, t.shape) for t in chosen]


# ----- feeds -------------------------------------------------------------------------------------
def _input_specs(model: onnx.ModelProto | Model) -> list[tuple[str, int, tuple[int, ...]]]:
    """(name, elem_type, concrete shape) of every input that must be fed."""
    if isinstance(model, Model):
        size = int(model.metadata_props.get(BATCH_METADATA_KEY, 1))
        raw = [(v.name or "", v.dtype if v.type_proto is None and v.dtype else -1, list(v.shape or ()))
               for v in model.graph.inputs if v not in model.graph.input_defaults]
    elif isinstance(model, onnx.ModelProto):
        size = int({p.key: p.value for p in model.metadata_props}.get(BATCH_METADATA_KEY, 1))
        inits = {t.name for t in model.graph.initializer}
        raw = [(i.name, i.type.tensor_type.elem_type if i.type.HasField("tensor_type") else -1,
                [d.dim_value if d.HasField("dim_value") else d.dim_param for d in
                 i.type.tensor_type.shape.dim]) for i in model.graph.input if i.name not in inits]
    else:
        raise InvalidArgument(f"feeds needs an onnx.ModelProto or a graphopt.Model, got {type(model)}")
    specs = []
    for name, elem, dims in raw:
        if elem <= 0:
            raise InvalidArgument(f"feeds cannot make input {name!r}: it is not a typed tensor")
        specs.append((name, elem, tuple(d if isinstance(d, int) else size for d in dims)))
    return specs


def _make_feeds(specs: list[tuple[str, int, tuple[int, ...]]], seed: int, low: float,
                high: float) -> dict[str, np.ndarray]:
    """Arrays for ``specs`` from one seed."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, elem, shape in specs:
        dtype = np_dtype(elem)
        if elem == BOOL:
            out[name] = rng.integers(0, 2, size=shape).astype(bool)
        elif np.issubdtype(dtype, np.integer):
            out[name] = rng.integers(0, INT_FEED_MAX + 1, size=shape).astype(dtype)
        else:
            out[name] = rng.uniform(low, high, size=shape).astype(dtype)
    return out
