"""fuse-ort-contrib: Conv + activation to onnxruntime's com.microsoft.FusedConv (``--target ort`` only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import Model, PassResult, Value, register_pass
from graphopt.analyses.shapes import refresh_types
from graphopt.rewrite import Const, Match, Op, Opt, RewriteContext, Rule, Var, apply_rules, rules_result

ORT_DOMAIN = "com.microsoft"
FLOAT = 1  # onnxruntime's CPU FusedConv kernel is registered for float only
_CONV = Op("Conv", Var("x"), Var("w"), Opt(Var("b")), capture="conv")


def _params(found: Match, model: Model) -> list[float] | None:
    """FusedConv's activation_params for the matched activation; None when not expressible."""
    act = found["act"]
    if act.op_type == "LeakyRelu":
        return [float(act.attr("alpha", 0.01))]
    if act.op_type == "HardSigmoid":
        return [float(act.attr("alpha", 0.2)), float(act.attr("beta", 0.5))]
    if act.op_type == "Clip":
        if model.opset < 11:
            big = float(np.finfo(np.float32).max)
            return [float(act.attr("min", -big)), float(act.attr("max", big))]
        bounds = []
        for key, default in (("lo", np.finfo(np.float32).min), ("hi", np.finfo(np.float32).max)):
            value = found.get(key)
            bounds.append(float(default) if value is None else float(value.const.numpy().reshape(-1)[0]))
        return bounds
    return []


def _check(found: Match, model: Model) -> str | None:
    conv = found["conv"]
    if found["x"].dtype != FLOAT or conv.outputs[0].dtype not in (None, FLOAT):
        return "not float32 (FusedConv's CPU kernel is float only)"
    if _params(found, model) is None:
        return "activation parameters are not constant"
    return None


def _fuse(found: Match, ctx: RewriteContext) -> list[Value]:
    conv, act = found["conv"], found["act"]
    attrs = dict(conv.attrs)
    attrs["activation"] = act.op_type
    params = _params(found, ctx.model)
    if params:
        attrs["activation_params"] = params
    node = ctx.node("FusedConv", [found["x"], found["w"], found.get("b")], attrs, domain=ORT_DOMAIN)
    node.name = conv.name
    out, old = node.outputs[0], act.outputs[0]
    out.dtype, out.shape = old.dtype, old.shape
    return [out]


RULES = [
    *(Rule(f"conv-{op.lower()}", Op(op, _CONV, capture="act"), _fuse, _check)
      for op in ("Relu", "Tanh", "Sigmoid", "LeakyRelu", "HardSigmoid")),
    Rule("conv-clip", Op("Clip", _CONV, Opt(Const("lo")), Opt(Const("hi")), capture="act"), _fuse, _check),
]


@register_pass
@dataclass
class FuseOrtContrib:
    """Fuse Conv + Relu/Tanh/Sigmoid/LeakyRelu/HardSigmoid/Clip into com.microsoft.FusedConv.

    onnxruntime-specific (its CPU kernel, float32 only): not standard ONNX, so it runs only with
    ``--target ort`` or when named in a pipeline. Clip bounds must be constants.
    """

    name: ClassVar[str] = "fuse-ort-contrib"

    def run(self, model: Model) -> PassResult:
        refresh_types(model)  # FusedConv's kernel exists for float32 only
        stats = apply_rules(model, RULES)
        result = rules_result(stats, "fused")
        if result.changed:
            model.opset_imports.setdefault(ORT_DOMAIN, 1)
        return result
