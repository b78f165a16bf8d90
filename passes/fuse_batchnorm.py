"""fuse-batchnorm: fold inference BatchNormalization into the Conv, ConvTranspose or Gemm before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import NUMPY_FLOATS, Model, PassResult, Value, register_pass
from graphopt.rewrite import Const, Match, Op, Opt, RewriteContext, Rule, Var, apply_rules, rules_result

BN_PARAMS = (Const("scale"), Const("bias"), Const("mean"), Const("var"))


def _bn(producer: Op) -> Op:
    return Op("BatchNormalization", producer, *BN_PARAMS, capture="bn")


def _bn_check(found: Match, model: Model) -> str | None:
    """Inference-mode, per-channel BN with a single used output and float constants."""
    bn = found["bn"]
    if bn.attr("training_mode", 0) or (model.opset < 7 and not bn.attr("is_test", 0)):
        return "BatchNormalization in training mode"
    if bn.attr("spatial", 1) != 1:
        return "BatchNormalization with spatial=0"
    if any(out.num_uses or out.is_graph_output for out in bn.outputs[1:]):
        return "BatchNormalization statistics outputs are used"
    weight = found["w"].const
    if weight.dtype not in NUMPY_FLOATS:
        return "weights are not floating point"
    return None


def _folded_scale(found: Match) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, offset) of the BN, in float64."""
    bn = found["bn"]
    eps = float(bn.attr("epsilon", 1e-5))
    gamma, beta, mean, var = (found[k].const.numpy().astype(np.float64)
                              for k in ("scale", "bias", "mean", "var"))
    mult = gamma / np.sqrt(var + eps)
    return mult, beta - mean * mult


def _bias(found: Match, channels: int) -> np.ndarray:
    b = found.get("b")
    return np.zeros(channels) if b is None else b.const.numpy().astype(np.float64).reshape(-1)


def _conv_check(found: Match, model: Model) -> str | None:
    reason = _bn_check(found, model)
    if reason is None and found["w"].const.shape[0] != found["scale"].const.size:
        return "channel counts differ"
    return reason


def _fold_conv(found: Match, ctx: RewriteContext) -> list[Value] | None:
    w = found["w"].const
    mult, offset = _folded_scale(found)
    weight = w.numpy().astype(np.float64) * mult.reshape((-1,) + (1,) * (len(w.shape) - 1))
    bias = _bias(found, w.shape[0]) * mult + offset
    return _emit(found, ctx, "Conv", weight, bias, w.dtype)


def _conv_transpose_check(found: Match, model: Model) -> str | None:
    reason = _bn_check(found, model)
    conv = found["conv"]
    w = found["w"].const
    group = int(conv.attr("group", 1))
    if reason is None and (w.shape[0] % group or w.shape[1] * group != found["scale"].const.size):
        return "channel counts differ"
    return reason


def _fold_conv_transpose(found: Match, ctx: RewriteContext) -> list[Value] | None:
    w = found["w"].const
    group = int(found["conv"].attr("group", 1))
    mult, offset = _folded_scale(found)
    c_in, per_group = w.shape[0], w.shape[1]
    channel = (np.arange(c_in)[:, None] // (c_in // group)) * per_group + np.arange(per_group)[None, :]
    weight = w.numpy().astype(np.float64) * mult[channel].reshape(c_in, per_group, *(1,) * (len(w.shape) - 2))
    bias = _bias(found, mult.size) * mult + offset
    return _emit(found, ctx, "ConvTranspose", weight, bias, w.dtype)


def _gemm_check(found: Match, model: Model) -> str | None:
    reason = _bn_check(found, model)
    gemm = found["conv"]
    if reason is None and gemm.op_type == "Gemm":
        c = found.get("b")
        columns = found["w"].const.shape[0 if gemm.attr("transB", 0) else 1]
        if columns != found["scale"].const.size:
            return "channel counts differ"
        if c is not None and c.const.size not in (1, columns):
            return "Gemm bias is not per column"
    return reason


def _fold_gemm(found: Match, ctx: RewriteContext) -> list[Value] | None:
    gemm = found["conv"]
    w = found["w"].const
    mult, offset = _folded_scale(found)
    trans_b = bool(gemm.attr("transB", 0))
    alpha, beta = float(gemm.attr("alpha", 1.0)), float(gemm.attr("beta", 1.0))
    weight = w.numpy().astype(np.float64) * (mult[:, None] if trans_b else mult[None, :]) * alpha
    c = found.get("b")
    bias_in = np.zeros(mult.size) if c is None else \
        np.broadcast_to(c.const.numpy().astype(np.float64).reshape(-1), (mult.size,)) * beta
    bias = bias_in * mult + offset
    node = ctx.node("Gemm", [found["x"], ctx.const(weight.astype(_np(w.dtype)), w.dtype),
                             ctx.const(bias.astype(_np(w.dtype)), w.dtype)],
                    {"transA": int(gemm.attr("transA", 0)), "transB": int(trans_b)})
    return [node.outputs[0]]


def _np(dtype: int) -> type:
    return NUMPY_FLOATS[dtype]


def _emit(found: Match, ctx: RewriteContext, op: str, weight: np.ndarray, bias: np.ndarray,
          dtype: int) -> list[Value]:
    conv = found["conv"]
    attrs = {k: a for k, a in conv.attrs.items()}
    node = ctx.node(op, [found["x"], ctx.const(weight.astype(_np(dtype)), dtype),
                         ctx.const(bias.astype(_np(dtype)), dtype)], attrs)
    node.name = conv.name
    return [node.outputs[0]]


RULES = [
    Rule("conv-batchnorm", _bn(Op("Conv", Var("x"), Const("w"), Opt(Const("b")), capture="conv")),
         _fold_conv, _conv_check),
    Rule("convtranspose-batchnorm",
         _bn(Op("ConvTranspose", Var("x"), Const("w"), Opt(Const("b")), capture="conv")),
         _fold_conv_transpose, _conv_transpose_check),
    Rule("gemm-batchnorm", _bn(Op("Gemm", Var("x", lambda v: v.rank == 2), Const("w"), Opt(Const("b")),
                                  capture="conv")), _fold_gemm, _gemm_check),
]


@register_pass
@dataclass
class FuseBatchNorm:
    """Fold BatchNormalization (inference mode) into the Conv, ConvTranspose or Gemm feeding it.

    The BN's per-channel affine map is multiplied into the weights and added to the bias (computed in
    float64, stored in the weights' dtype); grouped and depthwise convolutions included. A BN whose
    producer is shared, or whose statistics outputs are used, is left alone.
    """

    name: ClassVar[str] = "fuse-batchnorm"

    def run(self, model: Model) -> PassResult:
        stats = apply_rules(model, RULES)
        return rules_result(stats, "fused")
