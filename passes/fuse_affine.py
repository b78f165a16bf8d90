"""fuse-affine: fold Mul/Add/Sub/Div by a per-channel constant into the linear op before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from graphopt import NUMPY_FLOATS, Model, Node, PassResult, Value, is_standard_domain, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.rewrite import Const, Match, Op, Opt, RewriteContext, Rule, Var, apply_rules, rules_result

FLOATS = NUMPY_FLOATS
ELEMENTWISE = ("Mul", "Add", "Sub", "Div")


def channel_vector(c: np.ndarray, rank: int | None, axis: int, channels: int) -> np.ndarray | None:
    """``c`` as a length-``channels`` float64 vector when broadcasting it against a rank-``rank``
    tensor varies only along ``axis`` (and never enlarges that tensor); else None."""
    if rank is None or c.ndim > rank:
        return None
    shape = (1,) * (rank - c.ndim) + c.shape
    if any(d != 1 for i, d in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(c.astype(np.float64).reshape(-1), (channels,)).copy()


def affine_of(op: str, c: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The (scale, shift) that ``y op c`` applies to y, elementwise; None for a Div by zero."""
    if op == "Mul":
        return c, np.zeros_like(c)
    if op == "Div":
        return (None if np.any(c == 0) else 1.0 / c), np.zeros_like(c)  # type: ignore[return-value]
    if op == "Add":
        return np.ones_like(c), c
    return np.ones_like(c), -c  # Sub(y, c)


def _pattern(producer: Op) -> list[Op]:
    return [Op(op, producer, Const("c"), capture="ew", commutative=op in ("Mul", "Add"))
            for op in ELEMENTWISE]


# ---- per producer: (output rank, channel axis, channel count) and how to apply (scale, shift) ----

def _conv_layout(found: Match) -> tuple[int | None, int, int]:
    w = found["w"].const
    if found["lin"].op_type == "ConvTranspose":
        return len(w.shape), 1, w.shape[1] * int(found["lin"].attr("group", 1))
    return len(w.shape), 1, w.shape[0]


def _conv_apply(found: Match, ctx: RewriteContext, scale: np.ndarray, shift: np.ndarray) -> Node:
    lin, w = found["lin"], found["w"].const
    weight_value = found["w"]
    if np.any(scale != 1):  # a pure offset keeps the weights as they are (never decoded)
        weight = w.numpy().astype(np.float64)
        if lin.op_type == "ConvTranspose":
            group = int(lin.attr("group", 1))
            c_in, per_group = w.shape[0], w.shape[1]
            channel = (np.arange(c_in)[:, None] // (c_in // group)) * per_group \
                + np.arange(per_group)[None, :]
            weight = weight * scale[channel].reshape(c_in, per_group, *(1,) * (len(w.shape) - 2))
        else:
            weight = weight * scale.reshape((-1,) + (1,) * (len(w.shape) - 1))
        weight_value = ctx.const(weight.astype(FLOATS[w.dtype]), w.dtype)
    b = found.get("b")
    inputs = [found["x"], weight_value]
    if b is not None or np.any(shift):  # no bias before and no offset: still no bias
        bias = np.zeros(scale.size) if b is None else b.const.numpy().astype(np.float64).reshape(-1)
        inputs.append(ctx.const((bias * scale + shift).astype(FLOATS[w.dtype]), w.dtype))
    return ctx.node(lin.op_type, inputs, dict(lin.attrs))


def _gemm_layout(found: Match) -> tuple[int | None, int, int]:
    w = found["w"].const
    return 2, 1, w.shape[0 if found["lin"].attr("transB", 0) else 1]


def _gemm_apply(found: Match, ctx: RewriteContext, scale: np.ndarray, shift: np.ndarray) -> Node | None:
    lin, w = found["lin"], found["w"].const
    trans_b = bool(lin.attr("transB", 0))
    weight_value = found["w"]
    if np.any(scale != 1):
        weight = w.numpy().astype(np.float64) * (scale[:, None] if trans_b else scale[None, :])
        weight_value = ctx.const(weight.astype(FLOATS[w.dtype]), w.dtype)
    c = found.get("b")
    beta = float(lin.attr("beta", 1.0))
    attrs = {k: a for k, a in lin.attrs.items() if k != "beta"}
    if c is None and not np.any(shift):  # no C before and no offset: still no C
        return ctx.node("Gemm", [found["x"], weight_value], attrs)
    old = np.zeros(scale.size) if c is None else c.const.numpy().astype(np.float64) * beta
    if old.ndim > 2:
        return None
    bias = old * scale + shift  # broadcasting keeps a full [M, N] C full
    return ctx.node("Gemm", [found["x"], weight_value, ctx.const(bias.astype(FLOATS[w.dtype]), w.dtype)],
                    attrs)


def _matmul_layout(found: Match) -> tuple[int | None, int, int]:
    x, w = found["x"], found["w"].const
    rank = None if x.rank is None else (x.rank if x.rank >= 2 else 1)  # a 1-D x gives a 1-D result
    return rank, (rank or 1) - 1, w.shape[1]


def _matmul_apply(found: Match, ctx: RewriteContext, scale: np.ndarray, shift: np.ndarray) -> Node | None:
    w = found["w"].const
    weight = w.numpy().astype(np.float64) * scale[None, :]
    return ctx.node("MatMul", [found["x"], ctx.const(weight.astype(FLOATS[w.dtype]), w.dtype)])


def _bn_layout(found: Match) -> tuple[int | None, int, int]:
    return found["x"].rank, 1, found["scale"].const.size


def _bn_apply(found: Match, ctx: RewriteContext, scale: np.ndarray, shift: np.ndarray) -> Node:
    # s * BN(x) + t is BN with gamma * s and beta * s + t: mean and variance stay untouched.
    bn = found["lin"]
    gamma, beta = (found[k].const.numpy().astype(np.float64) for k in ("scale", "bias"))
    dtype = found["scale"].const.dtype
    inputs = [found["x"], ctx.const((gamma * scale).astype(FLOATS[dtype]), dtype),
              ctx.const((beta * scale + shift).astype(FLOATS[dtype]), dtype), found["mean"], found["var"]]
    return ctx.node("BatchNormalization", inputs, dict(bn.attrs))


Layout = Callable[[Match], "tuple[int | None, int, int]"]
Apply = Callable[[Match, RewriteContext, np.ndarray, np.ndarray], "Node | None"]


def _make_rule(name: str, producer: Op, layout: Layout, apply: Apply,
               extra_check: Callable[[Match, Model], str | None]) -> list[Rule]:
    def check(found: Match, model: Model) -> str | None:
        reason = extra_check(found, model)
        if reason is not None:
            return reason
        c = found["c"]
        if c.const.dtype != found["w"].const.dtype or c.const.dtype not in FLOATS:
            return "constant is not of the weights' float dtype"
        rank, axis, channels = layout(found)
        vector = channel_vector(c.const.numpy(), rank, axis, channels)
        if vector is None:
            return "constant is not per output channel (or rank unknown)"
        scale, shift = affine_of(found["ew"].op_type, vector)
        if scale is None:
            return "division by zero"
        if found["lin"].op_type == "MatMul" and np.any(shift):
            return "MatMul has no bias to take an offset"
        return None

    def rewrite(found: Match, ctx: RewriteContext) -> list[Value] | None:
        rank, axis, channels = layout(found)
        vector = channel_vector(found["c"].const.numpy(), rank, axis, channels)
        scale, shift = affine_of(found["ew"].op_type, vector)  # type: ignore[arg-type,misc]
        node = apply(found, ctx, scale, shift)
        if node is None:
            return None
        node.name = found["lin"].name
        out, old = node.outputs[0], found["ew"].outputs[0]
        out.dtype, out.shape = old.dtype, old.shape
        return [out]

    return [Rule(f"{name}-{p.op_type.lower()}", p, rewrite, check) for p in _pattern(producer)]


def _linear_ok(found: Match, model: Model) -> str | None:
    if found["w"].const.dtype not in FLOATS:
        return "weights are not floating point"
    return None


def _bn_ok(found: Match, model: Model) -> str | None:
    bn = found["lin"]
    if bn.attr("training_mode", 0) or (model.opset < 7 and not bn.attr("is_test", 0)):
        return "BatchNormalization in training mode"
    if any(out.num_uses or out.is_graph_output for out in bn.outputs[1:]):
        return "BatchNormalization statistics outputs are used"
    if model.opset < 9 and bn.attr("spatial", 1) != 1:
        return "BatchNormalization with spatial=0"
    return None


def _bn_weights(found: Match) -> Match:
    found.values.setdefault("w", found["scale"])  # the shared check compares dtypes with "w"
    return found


def is_zero_fill(value: Value) -> bool:
    """Whether ``value`` is all zeros: a zero constant, or an Expand of a zero scalar constant."""
    if value.const is not None:
        return value.const.size <= 1 << 16 and not np.any(value.const.numpy())
    producer = value.producer
    if producer is None or producer.op_type != "Expand" or not is_standard_domain(producer.domain):
        return False
    src = producer.inputs[0]
    return src is not None and src.const is not None and src.const.size == 1 and not np.any(src.const.numpy())


def _zero_bias_check(found: Match, model: Model) -> str | None:
    return None if is_zero_fill(found["b"]) else "bias is not known to be zero"


def _drop_bias(found: Match, ctx: RewriteContext) -> list[Value]:
    lin = found["lin"]
    node = ctx.node(lin.op_type, [found["x"], found["w"]], dict(lin.attrs))
    node.name = lin.name
    out, old = node.outputs[0], lin.outputs[0]
    out.dtype, out.shape = old.dtype, old.shape
    return [out]


def _zero_bias(op: str) -> Rule:
    return Rule(f"{op.lower()}-zero-bias", Op(op, Var("x"), Var("w"), Var("b"), capture="lin"), _drop_bias,
                _zero_bias_check)


_BN = Op("BatchNormalization", Var("x"), Const("scale"), Const("bias"), Const("mean"), Const("var"),
         capture="lin")

RULES = [
    _zero_bias("Conv"), _zero_bias("ConvTranspose"),
    *_make_rule("conv", Op("Conv", Var("x"), Const("w"), Opt(Const("b")), capture="lin"),
                _conv_layout, _conv_apply, _linear_ok),
    *_make_rule("convtranspose", Op("ConvTranspose", Var("x"), Const("w"), Opt(Const("b")), capture="lin"),
                _conv_layout, _conv_apply, _linear_ok),
    *_make_rule("gemm", Op("Gemm", Var("x"), Const("w"), Opt(Const("b")), capture="lin"),
                _gemm_layout, _gemm_apply, _linear_ok),
    *_make_rule("matmul", Op("MatMul", Var("x"), Const("w", lambda v: len(v.const.shape) == 2),
                             capture="lin"), _matmul_layout, _matmul_apply, _linear_ok),
    *_make_rule("batchnorm", _BN, _bn_layout, _bn_apply,
                lambda found, model: _bn_ok(_bn_weights(found), model)),
]


@register_pass
@dataclass
class FuseAffine:
    """Fold Mul/Add/Sub/Div by a per-channel constant into the Conv/Gemm/MatMul/BN before it.

    The constant must be, by broadcasting, exactly one value per output channel (columns for
    Gemm/MatMul) of the Conv, ConvTranspose, Gemm, MatMul or inference BatchNormalization producing the
    other operand. A bias of zeros (constant, or an Expand of a zero scalar) is dropped.

    A multiplier scales the weights and bias, an offset goes into the bias (MatMul, having no bias,
    takes only multipliers; BatchNormalization takes both into gamma and beta). Computed in float64
    and stored in the weights' dtype. Left alone: a constant on the left of Sub/Div, a division by
    zero, a constant that would broadcast the result to a larger shape, a producer read elsewhere.
    """

    name: ClassVar[str] = "fuse-affine"

    def run(self, model: Model) -> PassResult:
        refresh_types(model)  # a MatMul's or BatchNormalization's rank decides where channels are
        stats = apply_rules(model, RULES)
        return rules_result(stats, "fused")
