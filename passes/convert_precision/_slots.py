"""Which inputs and outputs of a node may carry the lower float type, read from the op's ONNX schema at
the model's opset: a type variable bound to float32 that also admits float16 (or bfloat16) converts as
a whole; slots typed ``tensor(float)`` outright (Resize ``scales``) and type variables that only inputs
use (Resize ``roi``, GridSample ``grid``: coordinates lose pixels in float16) keep float32."""

from __future__ import annotations

from dataclasses import dataclass

import onnx
import onnx.defs
from onnx import TensorProto

from graphopt import Node, Value

LOW_NAMES = {TensorProto.FLOAT16: "tensor(float16)", TensorProto.BFLOAT16: "tensor(bfloat16)"}
# Ops that stay float32 whatever their schema admits: selections whose result changes with rounding
# (TopK and ArgMax ties, NonMaxSuppression, RoiAlign boxes), index generators and running sums
# (Range, CumSum), random ops, and the classic-ML ops (onnxruntime's float16 tool blocks the same).
BLOCKED = frozenset({
    "TopK", "ArgMax", "ArgMin", "NonMaxSuppression", "RoiAlign", "Range", "CumSum", "Multinomial",
    "RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Bernoulli", "EyeLike",
    "NonZero", "Unique", "Einsum", "STFT", "DFT", "MelWeightMatrix", "HannWindow", "HammingWindow",
    "BlackmanWindow", "If", "Loop", "Scan", "SequenceMap",
})
ATTRIBUTE_TYPED = {"Cast": "to", "ConstantOfShape": "value"}  # output type set by an attribute


@dataclass(frozen=True)
class Slots:
    """The input and output positions of one node that switch to the lower type when it converts."""

    inputs: frozenset[int]
    outputs: frozenset[int]


def low_slots(node: Node, opset: int, low: int) -> Slots | None:
    """The slots that convert, or None when the node cannot run in the lower type (blocked op, custom
    domain, no float32 type variable admitting the lower type, an output typed by another attribute)."""
    if node.domain not in ("", "ai.onnx") or node.op_type in BLOCKED or node.subgraphs():
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    in_vars = [_formal(schema.inputs, i) for i in range(len(node.inputs))]
    out_vars = [_formal(schema.outputs, i) for i in range(len(node.outputs))]
    if None in in_vars or None in out_vars:
        return None
    bound: dict[str, set[int | None]] = {}
    for var, value in [*zip(in_vars, node.inputs), *zip(out_vars, node.outputs)]:
        if value is not None:
            bound.setdefault(var, set()).add(value.dtype)  # type: ignore[arg-type]
    converting = {var for var in set(out_vars) if var in allowed and LOW_NAMES[low] in allowed[var]
                  and bound.get(var) == {TensorProto.FLOAT}}
    if not converting:
        return None
    if node.op_type in ATTRIBUTE_TYPED and not _attribute_is_float(node):
        return None
    inputs = frozenset(i for i, v in enumerate(in_vars) if v in converting and node.inputs[i] is not None)
    return Slots(inputs, frozenset(i for i, v in enumerate(out_vars) if v in converting))


def float_outputs(node: Node) -> list[Value]:
    """The node's float32 outputs."""
    return [v for v in node.outputs if v.dtype == TensorProto.FLOAT]


def _formal(params: list[onnx.defs.OpSchema.FormalParameter], index: int) -> str | None:
    """The type string of a node's ``index``-th input or output (the last formal when it is variadic)."""
    if index < len(params):
        return params[index].type_str
    if params and params[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        return params[-1].type_str
    return None


def _attribute_is_float(node: Node) -> bool:
    """Cast to float32, or ConstantOfShape of a float32 value: the attribute can be lowered too."""
    if node.op_type == "Cast":
        return node.attr("to") == TensorProto.FLOAT
    value = node.attr("value")
    return value is not None and getattr(value, "dtype", None) == TensorProto.FLOAT
