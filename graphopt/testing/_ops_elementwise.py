"""Op table, elementwise part: activations, Clip, Softmax, Cast, broadcasting arithmetic, normalizations."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from graphopt.testing._ops_core import (
    ALL,
    ANY_RANK,
    DOUBLE,
    FLOAT,
    FLOAT16,
    FLOATS,
    INT32,
    INT64,
    INT_FEED_MAX,
    INTS,
    NO_DOUBLE,
    Builder,
    Ctx,
    OpSpec,
    T,
    broadcast,
    fits,
    max_abs,
    np_dtype,
    numel,
)


def _same(op: str, bound: float | None = None, **attrs: object) -> Builder:
    """An op whose output has the input's shape; ``bound`` None keeps the input's bound."""
    def build(ctx: Ctx, x: T) -> None:
        """Emit the op on x."""
        drawn = {k: (ctx.choice(v) if isinstance(v, tuple) else v) for k, v in attrs.items()}
        ctx.emit(op, [x.name], x.dtype, x.shape, x.bound if bound is None else bound, **drawn)
    return build


def _clip(ctx: Ctx, x: T) -> None:
    """Clip with optional min/max inputs (scalars of x's dtype)."""
    ints = x.dtype in INTS
    lo = -float(ctx.choice((1, 2) if ints else (0.5, 1.0, 0.0, 0.25))) if ctx.flag() else None
    hi = float(ctx.choice((1, 2) if ints else (0.5, 1.0, 0.0, 0.25))) if ctx.flag() else None
    if lo is not None and hi is not None:
        bound = max(-lo, hi)
    else:
        bound = max([x.bound] + [abs(v) for v in (lo, hi) if v is not None])
    inputs = [x.name, "" if lo is None else ctx.scalar(lo, x.dtype)]
    if hi is not None:
        inputs.append(ctx.scalar(hi, x.dtype))
    ctx.emit("Clip", inputs if inputs[-1] else inputs[:1], x.dtype, x.shape, bound)


def _softmax(ctx: Ctx, x: T) -> None:
    """Softmax along any axis (default -1 when left out)."""
    axis = None if ctx.flag() else ctx.integer(-x.rank, x.rank - 1)
    ctx.emit("Softmax", [x.name], x.dtype, x.shape, 1.0, axis=axis)


def _cast_targets(ctx: Ctx, x: T) -> list[int]:
    """Types x casts to exactly: the same, float64, float<->float16 (if allowed), ints <-> floats."""
    if x.dtype in INTS:
        targets = [x.dtype, INT64 if x.dtype == INT32 else INT32, FLOAT, DOUBLE]
    else:
        targets = [x.dtype, DOUBLE, FLOAT] + ([FLOAT16] if FLOAT16 in ctx.cfg.dtypes else [])
    return [d for d in dict.fromkeys(targets) if ctx.within(d, x.bound)]


def _cast(ctx: Ctx, x: T) -> None:
    """Cast to an exactly representable type (never float to int)."""
    to = ctx.choice(_cast_targets(ctx, x))
    ctx.emit("Cast", [x.name], to, x.shape, x.bound, to=to)


def _operand_shapes(ctx: Ctx, x: T) -> list[tuple[int, ...]]:
    """Shapes a constant second operand may take: broadcast into x, or (not in If branches) beyond it."""
    shapes = [(), (1,), x.shape, x.shape[1:], tuple(1 if i % 2 else d for i, d in enumerate(x.shape)),
              x.shape[:-1] + (1,)]
    if ctx.keep is None and x.rank < 4:
        shapes += [(2,) + x.shape, (3, 1) + x.shape[-1:]]
    return [s for s in dict.fromkeys(shapes) if _out(ctx, x.shape, s) is not None]


def _out(ctx: Ctx, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    """The broadcast output shape if it fits (and keeps the branch shape inside If branches)."""
    out = broadcast(a, b)
    if out is None or not fits(out) or (ctx.keep is not None and out != ctx.keep):
        return None
    return out


def _binary(op: str) -> Builder:
    """Add/Sub/Mul: the other operand is a broadcast constant (weight) or a pool tensor."""
    def build(ctx: Ctx, x: T) -> None:
        """Emit x op y (or y op x) and the bound of the result."""
        combine = (lambda a, b: a * b) if op == "Mul" else (lambda a, b: a + b)
        pool = [y for y in ctx.operands(x.dtype) if _out(ctx, x.shape, y.shape) is not None
                and ctx.within(x.dtype, combine(x.bound, y.bound))]
        if pool and ctx.flag():
            y = ctx.choice(pool)
            name, shape, bound = y.name, y.shape, y.bound
        else:
            shape = ctx.choice(_operand_shapes(ctx, x))
            name, array = ctx.weight(shape, x.dtype)
            bound = max_abs(array, ctx.feed_bound(x.dtype))
        inputs = [name, x.name] if ctx.flag() else [x.name, name]
        ctx.emit(op, inputs, x.dtype, _out(ctx, x.shape, shape), combine(x.bound, bound))
    return build


def _binary_ok(op: str) -> Callable[[Ctx, T], bool]:
    """Whether x op (a weight: |w| <= 1 for floats, <= 3 for integers) stays within the limit."""
    def accepts(ctx: Ctx, x: T) -> bool:
        """Worst case of a weight operand."""
        w = float(INT_FEED_MAX) if x.dtype in INTS else 1.0
        return ctx.within(x.dtype, x.bound * w if op == "Mul" else x.bound + w)
    return accepts


def _div(ctx: Ctx, x: T) -> None:
    """x / d with |d| >= 0.5: a constant away from zero, or |y| + 0.5 for a pool tensor y."""
    pool = [y for y in ctx.operands(x.dtype) if _out(ctx, x.shape, y.shape) is not None]
    if ctx.cfg.allows("Abs", "Add") and ctx.extra(2) and (not ctx.cfg.constants or ctx.flag()):
        y = ctx.choice(pool)
        ctx.reserve += 2
        absolute = ctx.helper_node("Abs", [y.name])
        divisor = ctx.helper_node("Add", [absolute, ctx.scalar(0.5, x.dtype)])
        shape = y.shape
    else:
        shape = ctx.choice(_operand_shapes(ctx, x))
        magnitude = ctx.rng.uniform(0.5, 1.0, size=shape) * ctx.rng.choice([-1.0, 1.0], size=shape)
        divisor = ctx.const(np.asarray(magnitude, dtype=np_dtype(x.dtype)))
    ctx.emit("Div", [x.name, divisor], x.dtype, _out(ctx, x.shape, shape), x.bound / 0.5)


def _batchnorm(ctx: Ctx, x: T) -> None:
    """Inference BatchNormalization; variances are constants in [0.5, 2]."""
    c, dt = x.shape[1], x.dtype
    scale, s = ctx.weight((c,), dt)
    bias, b = ctx.weight((c,), dt)
    mean, m = ctx.weight((c,), dt)
    var = ctx.rng.uniform(0.5, 2.0, size=(c,)).astype(np_dtype(dt))
    eps = ctx.choice((None, 1e-3))
    gain = max_abs(s, 1.0) / np.sqrt(float(var.min()) + (eps or 1e-5))
    bound = gain * (x.bound + max_abs(m, 1.0)) + max_abs(b, 1.0)
    ctx.emit("BatchNormalization", [x.name, scale, bias, mean, ctx.const(var)], dt, x.shape, bound,
             epsilon=eps)


def _layernorm(ctx: Ctx, x: T) -> None:
    """LayerNormalization over the trailing axes from ``axis`` on; optional bias."""
    axis = ctx.integer(-x.rank, x.rank - 1)
    normalized = x.shape[axis:]
    scale, s = ctx.weight(normalized, x.dtype)
    inputs = [x.name, scale]
    bias_bound = 0.0
    if ctx.flag():
        bias, b = ctx.weight(normalized, x.dtype)
        inputs.append(bias)
        bias_bound = max_abs(b, 1.0)
    bound = np.sqrt(numel(normalized)) * max_abs(s, 1.0) + bias_bound
    ctx.emit("LayerNormalization", inputs, x.dtype, x.shape, bound,
             axis=None if axis == -1 else axis, epsilon=ctx.choice((None, 1e-3)))


def _bn_ok(ctx: Ctx, x: T) -> bool:
    """Rank >= 2 and the worst BatchNormalization gain stays in bounds."""
    return x.rank >= 2 and ctx.within(x.dtype, (x.bound + 1.0) * 1.5 + 1.0)


def _ln_ok(ctx: Ctx, x: T) -> bool:
    """The worst LayerNormalization output stays in bounds."""
    return ctx.within(x.dtype, np.sqrt(numel(x.shape)) + 1.0)


def _spec(op: str, build: Builder, dtypes: frozenset[int] = FLOATS, **kw: Any) -> OpSpec:
    """An elementwise spec: total on every rank and shape-preserving unless told otherwise."""
    kw.setdefault("total_ranks", ANY_RANK)
    kw.setdefault("preserves", True)
    return OpSpec(op, build, dtypes, **kw)


# dtypes are what onnxruntime 1.32's CPU kernels run at every opset 13-23: float64 LeakyRelu,
# HardSigmoid and HardSwish and integer Relu only run at some opsets, so they are left out.
SPECS: tuple[OpSpec, ...] = (
    _spec("Identity", _same("Identity"), ALL),
    _spec("Relu", _same("Relu")),
    _spec("Add", _binary("Add"), ALL, accepts=_binary_ok("Add")),
    _spec("Mul", _binary("Mul"), ALL, accepts=_binary_ok("Mul")),
    _spec("Sub", _binary("Sub"), ALL, accepts=_binary_ok("Add")),
    _spec("Div", _div, accepts=lambda ctx, x: ctx.within(x.dtype, 2 * x.bound)),
    _spec("Abs", _same("Abs"), ALL),
    _spec("Sigmoid", _same("Sigmoid", 1.0)),
    _spec("LeakyRelu", _same("LeakyRelu", alpha=(None, 0.1, 0.5, 1.0)), NO_DOUBLE),
    _spec("HardSigmoid", _same("HardSigmoid", 1.0, alpha=(None, 0.1, 0.5), beta=(None, 0.3, 0.7)),
          NO_DOUBLE),
    _spec("HardSwish", _same("HardSwish"), NO_DOUBLE, min_opset=14),
    _spec("Clip", _clip, ALL),
    _spec("Softmax", _softmax),
    _spec("Cast", _cast, ALL, preserves=False),
    _spec("BatchNormalization", _batchnorm, accepts=_bn_ok, total_ranks=(2, 3, 4)),
    _spec("LayerNormalization", _layernorm, accepts=_ln_ok, min_opset=17),
)
