"""fuse-normalization: recognise decomposed LayerNormalization (opset >= 17) and Gelu (opset >= 20)."""

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


RULES = [*_layernorm_rules(), *_gelu_rules()]


@register_pass
@dataclass
class FuseNormalization:
    """Recognise decomposed LayerNormalization (opset >= 17) and exact Gelu (opset >= 20).

    LayerNorm: ``(x - mean(x)) / sqrt(mean((x - mean(x))^2) + eps)`` over trailing axes, optionally
    times a scale and plus a bias that broadcast over the normalized dims. Gelu:
    ``0.5 * x * (1 + erf(x / sqrt(2)))`` in the association orders exporters write. Below those
    opsets, or when any intermediate is read elsewhere, the nodes stay as they are.
    """

    name: ClassVar[str] = "fuse-normalization"

    def run(self, model: Model) -> PassResult:
        if model.opset < 17:
            return PassResult(False, {})
        refresh_types(model)  # the input's rank and trailing dims decide the axis
        stats = apply_rules(model, RULES)
        return rules_result(stats, "fused")
