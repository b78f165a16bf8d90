"""fuse-normalization: recognise decomposed LayerNormalization (opset >= 17), Gelu (opset >= 20) and
HardSwish / HardSigmoid (the ReLU6 forms Paddle and older exporters write)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import FLOAT_TYPES, NUMPY_FLOATS, Model, Node, PassResult, Value, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.rewrite import Const, Match, Op, Opt, RewriteContext, Rule, Var, apply_rules, rules_result

FLOATS = FLOAT_TYPES


def _mean(capture: str) -> Op:
    return Op("ReduceMean", Var("x"), Opt(Const(f"{capture}_axes")), capture=capture)


def _mean_of(inner: Op, capture: str) -> Op:
    return Op("ReduceMean", inner, Opt(Const(f"{capture}_axes")), capture=capture)


_CENTERED = Op("Sub", Var("x"), _mean("mean"), capture="d")
_SQUARE_POW = Op("Pow", _CENTERED, Const("two"), capture="square")
_SQUARE_MUL = Op("Mul", _CENTERED, _CENTERED, capture="square")


def _normalized(square: Op) -> Op:
    var = _mean_of(square, "var")
    std = Op("Sqrt", Op("Add", var, Const("eps"), capture="add_eps"), capture="sqrt")
    return Op("Div", _CENTERED, std, capture="div")


def _reduce_axes(node: Node, opset: int) -> list[int] | None:
    if opset >= 18:
        if len(node.inputs) < 2 or node.inputs[1] is None or node.inputs[1].const is None:
            return None
        return [int(a) for a in node.inputs[1].const.numpy().reshape(-1)]
    axes = node.attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _normalized_axis(found: Match, model: Model) -> int | None:
    """The LayerNormalization axis when both means reduce the same trailing axes, keeping dims."""
    rank = found["x"].rank
    if rank is None:
        return None
    spans = []
    for key in ("mean", "var"):
        node = found[key]
        axes = _reduce_axes(node, model.opset)
        if axes is None or not node.attr("keepdims", 1) or node.attr("noop_with_empty_axes", 0):
            return None
        spans.append(sorted(a % rank for a in axes))
    if spans[0] != spans[1] or not spans[0] or spans[0] != list(range(spans[0][0], rank)):
        return None
    return spans[0][0] - rank  # negative, as exporters write it


def _affine_fits(value: Value | None, x: Value, axis: int) -> bool:
    """Whether a scale/bias broadcasts over the normalized dims only, without enlarging x."""
    if value is None:
        return True
    shape, xs = value.const.shape, x.shape
    if xs is None or len(shape) > -axis:
        return False
    trailing = xs[len(xs) + axis:]
    return all(d == 1 or (isinstance(t, int) and d == t)
               for d, t in zip(shape[::-1], trailing[::-1]))


def _keeps_shape(value: Value, x: Value) -> bool:
    """Whether a constant broadcast against x leaves x's shape as it is (no new axis, no larger dim):
    a size-1 constant of higher rank than x would still change the output's shape."""
    shape, xs = value.const.shape, x.shape
    if xs is None:
        return len(shape) == 0
    return len(shape) <= len(xs) and all(d == 1 or (isinstance(t, int) and d == t)
                                          for d, t in zip(shape[::-1], xs[::-1]))


def _one_centered_value(found: Match) -> bool:
    """The numerator and the square read one ``x - mean`` value. The pattern names the Sub three
    times, but a repeated node capture is not checked for identity: two Subs from different means
    would otherwise match and be replaced by a LayerNormalization that computes something else."""
    d = found["div"].inputs[0]
    square = found["square"]
    return all(v is d for v in square.inputs[:1 if square.op_type == "Pow" else 2])


def _layernorm_check(found: Match, model: Model) -> str | None:
    if model.opset < 17:
        return "opset < 17 (no LayerNormalization)"
    x = found["x"]
    if x.dtype not in FLOATS:
        return "input is not floating point"
    if not _one_centered_value(found):
        return "numerator and square read different centered values"
    if found.get("two") is not None and not np.all(found["two"].const.numpy() == 2):
        return "Pow exponent is not 2"
    if found["eps"].const.size != 1:
        return "epsilon is not a scalar"
    if not all(_keeps_shape(c, x) for c in (found.get("two"), found["eps"]) if c is not None):
        return "a constant would broadcast x to a larger shape"
    axis = _normalized_axis(found, model)
    if axis is None:
        return "means are not over the same trailing axes with keepdims"
    for key in ("gamma", "beta"):
        if not _affine_fits(found.get(key), x, axis):
            return f"{key} does not broadcast over the normalized dims only"
        if found.get(key) is not None and found[key].const.dtype != x.dtype:
            return f"{key} dtype differs"
    if found.get("gamma") is None:
        if x.shape is None or not all(isinstance(d, int) for d in x.shape[len(x.shape) + axis:]):
            return "no scale and the normalized dims are not static"
    return None


def _layernorm(found: Match, ctx: RewriteContext) -> list[Value]:
    x = found["x"]
    axis = _normalized_axis(found, ctx.model)
    assert axis is not None and x.shape is not None
    normalized = tuple(x.shape[len(x.shape) + axis:])
    dtype = x.dtype
    np_type = NUMPY_FLOATS.get(dtype, np.float32)  # type: ignore[arg-type]

    def full(key: str, fill: float) -> Value:
        value = found.get(key)
        if value is not None and value.const.shape == normalized:
            return value
        base = np.full(normalized, fill) if value is None else value.const.numpy()
        return ctx.const(np.broadcast_to(base, normalized).astype(np_type), dtype)

    eps = float(found["eps"].const.numpy().reshape(-1)[0])
    node = ctx.node("LayerNormalization", [x, full("gamma", 1.0), full("beta", 0.0)],
                    {"axis": axis, "epsilon": eps})
    node.name = found["div"].name
    return [node.outputs[0]]


def _layernorm_rules() -> list[Rule]:
    rules = []
    for square_name, square in (("pow", _SQUARE_POW), ("mul", _SQUARE_MUL)):
        norm = _normalized(square)
        scaled = Op("Mul", norm, Const("gamma"), capture="scale")
        rules += [
            Rule(f"layernorm-{square_name}-affine", Op("Add", scaled, Const("beta"), capture="shift"),
                 _layernorm, _layernorm_check),
            Rule(f"layernorm-{square_name}-scale", scaled, _layernorm, _layernorm_check),
            Rule(f"layernorm-{square_name}", norm, _layernorm, _layernorm_check),
        ]
    return rules


# Gelu(x) = 0.5 * x * (1 + erf(x / sqrt(2)));  tanh form: 0.5 * x * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))

def _scalar_near(value: Value | None, target: float, rel: float = 1e-3) -> bool:
    if value is None or value.const is None or value.const.size != 1:
        return False
    v = float(value.const.numpy().reshape(-1)[0])
    return abs(v - target) <= rel * abs(target)


_ERF_ARG = (Op("Div", Var("x"), Const("k"), capture="scale_in"),
            Op("Mul", Var("x"), Const("k"), capture="scale_in"))


def _gelu_check(found: Match, model: Model) -> str | None:
    if model.opset < 20:
        return "opset < 20 (no Gelu)"
    if found["x"].dtype not in FLOATS:
        return "input is not floating point"
    k_ok = _scalar_near(found["k"], math.sqrt(2.0)) if found["scale_in"].op_type == "Div" else \
        _scalar_near(found["k"], 1 / math.sqrt(2.0))
    if not k_ok:
        return "erf argument is not x / sqrt(2)"
    if not _scalar_near(found["one"], 1.0, 1e-6) or not _scalar_near(found["half"], 0.5, 1e-6):
        return "constants are not 1 and 0.5"
    if not all(_keeps_shape(found[key], found["x"]) for key in ("k", "one", "half")):
        return "a constant would broadcast x to a larger shape"
    return None


def _gelu(found: Match, ctx: RewriteContext) -> list[Value]:
    node = ctx.node("Gelu", [found["x"]])
    node.name = found.root.name
    return [node.outputs[0]]


def _gelu_rules() -> list[Rule]:
    rules = []
    for i, arg in enumerate(_ERF_ARG):
        one_plus_erf = Op("Add", Op("Erf", arg, capture="erf"), Const("one"), capture="plus_one")
        rules += [
            Rule(f"gelu-erf-{i}a", Op("Mul", Op("Mul", Var("x"), one_plus_erf, capture="m1"), Const("half")),
                 _gelu, _gelu_check),
            Rule(f"gelu-erf-{i}b", Op("Mul", Op("Mul", Var("x"), Const("half"), capture="m1"), one_plus_erf),
                 _gelu, _gelu_check),
            Rule(f"gelu-erf-{i}c", Op("Mul", Var("x"), Op("Mul", one_plus_erf, Const("half"), capture="m1")),
                 _gelu, _gelu_check),
        ]
    return rules


# HardSwish(x) = x * relu6(x + 3) / 6;  HardSigmoid(x, 1/6, 1/2) = relu6(x + 3) / 6

def _clip_bounds(found: Match) -> tuple[float, float] | None:
    clip = found["clip"]
    if found.get("lo") is None and found.get("hi") is None and len(clip.inputs) == 1:
        return float(clip.attr("min", -np.inf)), float(clip.attr("max", np.inf))
    bounds = []
    for key in ("lo", "hi"):
        value = found.get(key)
        if value is None or value.const.size != 1:
            return None
        bounds.append(float(value.const.numpy().reshape(-1)[0]))
    return bounds[0], bounds[1]


def _relu6_check(found: Match, model: Model) -> str | None:
    if found["x"].dtype not in FLOATS:
        return "input is not floating point"
    if _clip_bounds(found) != (0.0, 6.0):
        return "Clip is not to [0, 6]"
    six = 6.0 if found["scale"].op_type == "Div" else 1 / 6
    if not _scalar_near(found["three"], 3.0, 1e-6) or not _scalar_near(found["six"], six, 1e-6):
        return "constants are not 3 and 6 (or 1/6)"
    if not all(_keeps_shape(found[key], found["x"]) for key in ("three", "six")):
        return "a constant would broadcast x to a larger shape"
    return None


def _hard_sigmoid(ctx: RewriteContext, x: Value) -> Node:
    return ctx.node("HardSigmoid", [x], {"alpha": 1 / 6, "beta": 0.5})


def _hardswish(found: Match, ctx: RewriteContext) -> list[Value]:
    x = found["x"]
    if ctx.model.opset >= 14:
        node = ctx.node("HardSwish", [x])
    else:  # no HardSwish before opset 14: x * HardSigmoid(x)
        node = ctx.node("Mul", [x, _hard_sigmoid(ctx, x).outputs[0]])
    node.name = found.root.name
    return [node.outputs[0]]


def _hardsigmoid(found: Match, ctx: RewriteContext) -> list[Value]:
    node = _hard_sigmoid(ctx, found["x"])
    node.name = found.root.name
    return [node.outputs[0]]


def _relu6_rules() -> list[Rule]:
    relu6 = Op("Clip", Op("Add", Var("x"), Const("three"), capture="add"), Opt(Const("lo")), Opt(Const("hi")),
               capture="clip")
    rules = []
    for scale in ("Div", "Mul"):
        rules += [
            Rule(f"hardswish-{scale.lower()}-outer",
                 Op(scale, Op("Mul", Var("x"), relu6, capture="mul"), Const("six"), capture="scale"),
                 _hardswish, _relu6_check),
            Rule(f"hardswish-{scale.lower()}-inner",
                 Op("Mul", Var("x"), Op(scale, relu6, Const("six"), capture="scale"), capture="mul"),
                 _hardswish, _relu6_check),
            Rule(f"hardsigmoid-{scale.lower()}", Op(scale, relu6, Const("six"), capture="scale"),
                 _hardsigmoid, _relu6_check),
        ]
    return rules


LAYERNORM_AND_GELU = [*_layernorm_rules(), *_gelu_rules()]
RELU6_RULES = _relu6_rules()
RULES = [*LAYERNORM_AND_GELU, *RELU6_RULES]


@register_pass
@dataclass
class FuseNormalization:
    """Recognise decomposed LayerNormalization, exact Gelu, HardSwish and HardSigmoid.

    LayerNormalization from opset 17, Gelu from 20, HardSwish from 14 (before, x * HardSigmoid(x)).

    LayerNorm: ``(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)`` over trailing axes, optionally
    times a scale and plus a bias that broadcast over the normalized dims. Gelu:
    ``0.5 * x * (1 + erf(x / sqrt(2)))`` in the association orders exporters write. HardSwish:
    ``x * clip(x + 3, 0, 6) / 6`` (or ``* (1/6)``, either association); HardSigmoid the same without
    the ``x *``. Below those opsets, or when any intermediate is read elsewhere, the nodes stay.
    """

    name: ClassVar[str] = "fuse-normalization"

    def run(self, model: Model) -> PassResult:
        if model.opset < 6:
            return PassResult(False, {})
        refresh_types(model)  # the input's rank and trailing dims decide the axis
        stats = apply_rules(model, RULES if model.opset >= 17 else RELU6_RULES)
        return rules_result(stats, "fused")
