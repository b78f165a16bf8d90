"""fuse-conv-branches: structural re-parameterization. Parallel convolutions of one input summed by an Add
(RepVGG's 3x3 + 1x1 + identity-BN blocks, MobileOne's over-parameterized branches, DAMO-YOLO's RepGFPN)
are one convolution: every branch is linear in the input, so the kernels add up once the smaller ones are
zero-padded to the largest, centred, and an identity branch (the input itself, or a BatchNormalization
of it) is a centred one-hot kernel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import NUMPY_FLOATS, Model, PassResult, Value, register_pass
from graphopt.rewrite import Const, Match, Op, Opt, RewriteContext, Rule, Var, apply_rules, rules_result


@dataclass
class _Branch:
    """One summand as a convolution: kernel [O, I/g, *k], bias [O], pads [begins..., ends...]."""

    weight: np.ndarray
    bias: np.ndarray
    pads: list[int]


def _conv(n: str) -> Op:
    return Op("Conv", Var("x"), Const(f"w{n}"), Opt(Const(f"b{n}")), capture=f"c{n}")


def _layout(conv, rank: int) -> tuple[int, tuple[int, ...], list[int]] | None:  # type: ignore[no-untyped-def]
    """(group, strides, pads) of a Conv this pass can merge, or None (dilated, auto_pad, odd kernels)."""
    if conv.attr("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        return None
    if any(int(d) != 1 for d in conv.attr("dilations", [1] * rank)):
        return None
    strides = tuple(int(s) for s in conv.attr("strides", [1] * rank))
    pads = [int(p) for p in conv.attr("pads", [0] * (2 * rank))]
    return int(conv.attr("group", 1)), strides, pads


def _as_branch(found: Match, n: str) -> _Branch:
    w = found[f"w{n}"].const.numpy().astype(np.float64)
    b = found.get(f"b{n}")
    bias = np.zeros(w.shape[0]) if b is None else b.const.numpy().astype(np.float64).reshape(-1)
    rank = w.ndim - 2
    pads = [int(p) for p in found[f"c{n}"].attr("pads", [0] * (2 * rank))]
    return _Branch(w, bias, pads)


def _identity(template: _Branch, group: int, mult: np.ndarray, offset: np.ndarray) -> _Branch:
    """``mult * x + offset`` per channel as a centred kernel shaped like ``template``'s."""
    out, per_group = template.weight.shape[:2]
    kernel = template.weight.shape[2:]
    centre = tuple(k // 2 for k in kernel)
    weight = np.zeros((out, per_group, *kernel))
    for c in range(out):
        weight[(c, c % per_group, *centre)] = mult[c]
    return _Branch(weight, offset.astype(np.float64), [*centre, *centre])


def _merge(branches: list[_Branch]) -> _Branch | None:
    """The sum of the branches as one convolution, or None when their grids do not line up."""
    rank = branches[0].weight.ndim - 2
    kernel = [max(b.weight.shape[2 + i] for b in branches) for i in range(rank)]
    total = np.zeros((*branches[0].weight.shape[:2], *kernel))
    pads: list[int] | None = None
    for b in branches:
        offsets = [kernel[i] - b.weight.shape[2 + i] for i in range(rank)]
        if any(o % 2 for o in offsets):
            return None
        half = [o // 2 for o in offsets]
        grown = [b.pads[i] + half[i] for i in range(rank)] + [b.pads[rank + i] + half[i] for i in range(rank)]
        if pads is not None and grown != pads:
            return None
        pads = grown
        window = [slice(h, h + b.weight.shape[2 + i]) for i, h in enumerate(half)]
        index = tuple([slice(None), slice(None), *window])
        total[index] += b.weight
    bias = sum(b.bias for b in branches)
    return _Branch(total, bias, pads or [0] * (2 * rank))  # type: ignore[arg-type]


def _common_check(found: Match, others: tuple[str, ...]) -> str | None:
    w = found["w1"].const
    if w.dtype not in NUMPY_FLOATS or any(found[k].const.dtype != w.dtype for k in others):
        return "weights are not floating point of one dtype"
    if len(w.shape) < 3:
        return "kernel rank below 1"
    layout = _layout(found["c1"], len(w.shape) - 2)
    if layout is None:
        return "dilated, auto_pad or unsupported Conv attributes"
    return None


def _conv_conv_check(found: Match, model: Model) -> str | None:
    reason = _common_check(found, ("w2",))
    if reason is not None:
        return reason
    rank = len(found["w1"].const.shape) - 2
    first, second = _layout(found["c1"], rank), _layout(found["c2"], rank)
    if second is None or first[:2] != second[:2]:  # type: ignore[index]
        return "groups or strides differ"
    if found["w1"].const.shape[:2] != found["w2"].const.shape[:2] or len(found["w2"].const.shape) != rank + 2:
        return "channel counts differ"
    if _merge([_as_branch(found, "1"), _as_branch(found, "2")]) is None:
        return "the kernels' grids do not line up (pads)"
    return None


def _identity_check(found: Match, model: Model) -> str | None:
    reason = _common_check(found, tuple(k for k in ("scale", "bias", "mean", "var") if found.get(k)))
    if reason is not None:
        return reason
    bn = found.get("bn")
    if bn is not None and (bn.attr("training_mode", 0) or any(o.num_uses or o.is_graph_output
                                                                  for o in bn.outputs[1:])):
        return "BatchNormalization in training mode or with used statistics"
    conv = found["c1"]
    rank = len(found["w1"].const.shape) - 2
    group, strides, _ = _layout(conv, rank)  # type: ignore[misc]
    out, per_group = found["w1"].const.shape[:2]
    if any(s != 1 for s in strides):
        return "strided: the identity branch keeps the input's size"
    if out != per_group * group:
        return "output channels differ from input channels"
    if any(k % 2 == 0 for k in found["w1"].const.shape[2:]):
        return "even kernel: no centre for the identity"
    if _merge([_as_branch(found, "1"), _identity(_as_branch(found, "1"), group, np.ones(out),
                                                 np.zeros(out))]) is None:
        return "the Conv's pads do not keep the input's size"
    return None


def _emit(found: Match, ctx: RewriteContext, merged: _Branch) -> list[Value]:
    conv = found["c1"]
    dtype = found["w1"].const.dtype
    np_dtype = NUMPY_FLOATS[dtype]
    attrs = {k: a.value for k, a in conv.attrs.items() if k != "pads"}
    attrs["pads"] = merged.pads
    attrs["kernel_shape"] = list(merged.weight.shape[2:])
    inputs = [found["x"], ctx.const(merged.weight.astype(np_dtype), dtype)]
    if np.any(merged.bias) or found.get("b1") is not None or found.get("b2") is not None:
        inputs.append(ctx.const(merged.bias.astype(np_dtype), dtype))
    node = ctx.node("Conv", inputs, attrs)
    out = node.outputs[0]
    out.dtype, out.shape = found.root.outputs[0].dtype, found.root.outputs[0].shape
    return [out]


def _fuse_conv_conv(found: Match, ctx: RewriteContext) -> list[Value] | None:
    merged = _merge([_as_branch(found, "1"), _as_branch(found, "2")])
    return None if merged is None else _emit(found, ctx, merged)


def _fuse_identity(found: Match, ctx: RewriteContext) -> list[Value] | None:
    branch = _as_branch(found, "1")
    out = branch.weight.shape[0]
    group = int(found["c1"].attr("group", 1))
    mult, offset = np.ones(out), np.zeros(out)
    if found.get("bn") is not None:
        eps = float(found["bn"].attr("epsilon", 1e-5))
        gamma, beta, mean, var = (found[k].const.numpy().astype(np.float64).reshape(-1)
                                  for k in ("scale", "bias", "mean", "var"))
        mult = gamma / np.sqrt(var + eps)
        offset = beta - mean * mult
    merged = _merge([branch, _identity(branch, group, mult, offset)])
    return None if merged is None else _emit(found, ctx, merged)


RULES = [
    Rule("conv-conv", Op("Add", _conv("1"), _conv("2")), _fuse_conv_conv, _conv_conv_check),
    Rule("conv-batchnorm-identity",
         Op("Add", _conv("1"), Op("BatchNormalization", Var("x"), Const("scale"), Const("bias"),
                                  Const("mean"), Const("var"), capture="bn")),
         _fuse_identity, _identity_check),
    Rule("conv-identity", Op("Add", _conv("1"), Var("x")), _fuse_identity, _identity_check),
]


@register_pass
@dataclass
class FuseConvBranches:
    """Merge parallel convolutions of one input that an Add sums into one convolution.

    Conv + Conv (same groups and strides, undilated, odd kernel differences) become the sum of their
    kernels, the smaller zero-padded to the larger and centred, when their pads then agree; Conv + x and
    Conv + BatchNormalization(x) (stride 1, as many output as input channels, pads that keep the size)
    add a centred one-hot kernel scaled by the BN. Nested Adds merge one pair at a time, so RepVGG's
    three branches become one Conv. Kernels are summed in float64 and stored in the weights' dtype.
    """

    name: ClassVar[str] = "fuse-conv-branches"

    def run(self, model: Model) -> PassResult:
        return rules_result(apply_rules(model, RULES), "fused")
