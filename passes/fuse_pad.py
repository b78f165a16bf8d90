"""fuse-pad: fold a zero constant Pad into the pads of the Conv or AveragePool reading it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import Model, PassResult, Value, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.rewrite import Const, Match, Op, Opt, RewriteContext, Rule, Var, apply_rules, rules_result

_PAD = Op("Pad", Var("x"), Opt(Const("pads")), Opt(Const("value")), Opt(Const("axes")), capture="pad")


def full_pads(found: Match, model: Model) -> list[int] | None:
    """The Pad's [begin..., end...] amounts over every axis of x, or None when not constant."""
    pad = found["pad"]
    if model.opset >= 11:
        if found.get("pads") is None:
            return None
        pads = [int(p) for p in found["pads"].const.numpy().reshape(-1)]
    else:
        raw = pad.attr("pads", pad.attr("paddings"))
        if raw is None:
            return None
        pads = [int(p) for p in raw]
    axes_value = found.get("axes")
    if axes_value is None:
        return pads
    rank = found["x"].rank
    if rank is None:
        return None
    axes = [int(a) % rank for a in axes_value.const.numpy().reshape(-1)]
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
    return full


def _pad_is_zero_constant(found: Match, model: Model) -> str | None:
    pad = found["pad"]
    mode = pad.attr("mode", "constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        return "Pad mode is not constant"
    value = found.get("value")
    fill = float(pad.attr("value", 0.0)) if model.opset < 11 else \
        (0.0 if value is None else value.const.numpy().reshape(-1))
    if np.any(np.asarray(fill) != 0):
        return "Pad value is not zero"
    pads = full_pads(found, model)
    if pads is None:
        return "pads are not constant"
    rank = len(pads) // 2
    if any(p < 0 for p in pads):
        return "negative pads (cropping)"
    if pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
        return "Pad pads the batch or channel axis"
    return None


def _spatial(found: Match, model: Model) -> tuple[list[int], list[int]]:
    pads = full_pads(found, model)
    assert pads is not None
    rank = len(pads) // 2
    return pads[2:rank], pads[rank + 2:]


def _check(found: Match, model: Model) -> str | None:
    reason = _pad_is_zero_constant(found, model)
    if reason is not None:
        return reason
    consumer = found["op"]
    auto_pad = consumer.attr("auto_pad", "NOTSET")
    if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) != "NOTSET":
        return "consumer uses auto_pad"
    begin, _ = _spatial(found, model)
    kernel = consumer.attr("kernel_shape")
    if consumer.op_type == "Conv" and found["w"].rank is not None:
        spatial = found["w"].rank - 2
    else:
        spatial = len(kernel) if kernel is not None else None
    if spatial is None or spatial != len(begin):
        return "ranks of Pad and consumer do not agree"
    if consumer.op_type == "AveragePool":
        if any(consumer.attr("pads", [0] * 2 * spatial)):
            return "AveragePool already pads (its divisor would change)"
        if consumer.attr("ceil_mode", 0):
            return "AveragePool with ceil_mode"
        _, end = _spatial(found, model)
        if any(p >= k for p, k in zip(begin + end, list(kernel) * 2)):
            return "pads not smaller than the AveragePool kernel"  # onnxruntime refuses such pooling
    return None


def _fuse(found: Match, ctx: RewriteContext) -> list[Value]:
    consumer = found["op"]
    begin, end = _spatial(found, ctx.model)
    old = [int(p) for p in consumer.attr("pads", [0] * 2 * len(begin))]
    n = len(begin)
    pads = [old[i] + begin[i] for i in range(n)] + [old[n + i] + end[i] for i in range(n)]
    attrs = dict(consumer.attrs)
    attrs["pads"] = pads
    attrs.pop("auto_pad", None)
    if consumer.op_type == "AveragePool":
        attrs["count_include_pad"] = 1  # the Pad's zeros were real elements of every window
    inputs = [found["x"], *consumer.inputs[1:]]
    node = ctx.node(consumer.op_type, inputs, attrs)
    node.name = consumer.name
    out, was = node.outputs[0], consumer.outputs[0]
    out.dtype, out.shape = was.dtype, was.shape
    return [out]


RULES = [
    Rule("pad-conv", Op("Conv", _PAD, Var("w"), Opt(Var("b")), capture="op"), _fuse, _check),
    Rule("pad-averagepool", Op("AveragePool", _PAD, capture="op"), _fuse, _check),
]


@register_pass
@dataclass
class FusePad:
    """Fold a zero-filled constant Pad into the pads of the Conv or AveragePool reading it.

    Only non-negative spatial pads; an AveragePool then counts the padding in its divisor.

    Left alone: Pads of reflect/edge mode, non-zero fill, cropping (negative pads), padding of the
    batch or channel axis; consumers with auto_pad; an AveragePool that already pads, uses ceil_mode or
    would get pads as large as its kernel (onnxruntime refuses those).
    """

    name: ClassVar[str] = "fuse-pad"

    def run(self, model: Model) -> PassResult:
        refresh_types(model)  # Pad's axes input needs the rank of x
        stats = apply_rules(model, RULES)
        return rules_result(stats, "fused")
