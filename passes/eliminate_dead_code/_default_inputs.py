"""Optional inputs given their default value: a zero initial state of a recurrent op, a zero Pad value,
an infinite Clip bound. Omitting them means the same and lets the producer (often a ConstantOfShape)
die."""

from __future__ import annotations

from collections import Counter

import numpy as np

from graphopt import Graph, Node, Tensor, Value, is_standard_domain

MS_DOMAIN = "com.microsoft"

# (domain kind, op) -> input slots whose default is all zeros (bias, initial states, peepholes)
ZERO_DEFAULT_SLOTS: dict[tuple[str, str], tuple[int, ...]] = {
    ("", "LSTM"): (3, 5, 6, 7),
    ("", "GRU"): (3, 5),
    ("", "RNN"): (3, 5),
    ("", "Pad"): (2,),
    # onnxruntime's DynamicQuantizeLSTM shares the LSTM kernel and its optional inputs
    (MS_DOMAIN, "DynamicQuantizeLSTM"): (3, 5, 6, 7),
}
INFINITE_DEFAULT_SLOTS: dict[str, tuple[tuple[int, float], ...]] = {"Clip": ((1, -np.inf), (2, np.inf))}


def drop_default_inputs(graph: Graph, opset: int, stats: Counter) -> None:
    """Omit every optional input of ``graph``'s nodes that provably equals the input's default."""
    for node in graph:
        kind = "" if is_standard_domain(node.domain) else node.domain
        zero_slots = ZERO_DEFAULT_SLOTS.get((kind, node.op_type), ())
        bound_slots = INFINITE_DEFAULT_SLOTS.get(node.op_type, ()) if kind == "" else ()
        if not zero_slots and not bound_slots:
            continue
        if node.op_type in ("Pad", "Clip") and opset < 11:
            continue  # these were attributes before opset 11
        dropped = [i for i in zero_slots if i < len(node.inputs) and _is_zeros(node.inputs[i])]
        dropped += [i for i, bound in bound_slots if i < len(node.inputs) and _equals(node.inputs[i], bound)]
        if not dropped:
            continue
        inputs = [None if i in dropped else v for i, v in enumerate(node.inputs)]
        while inputs and inputs[-1] is None:
            inputs.pop()
        node.set_inputs(inputs)
        stats[f"default_input_{node.op_type}"] += len(dropped)


def _is_zeros(value: Value | None) -> bool:
    """Whether every element of ``value`` is a (positive) zero, known without running the model."""
    if value is None:
        return False
    if value.const is not None:
        return _all_positive_zero(value.const.numpy())
    producer = value.producer
    if producer is None or producer.op_type != "ConstantOfShape" or not is_standard_domain(producer.domain):
        return False
    return _fill_is_zero(producer)


def _fill_is_zero(node: Node) -> bool:
    fill = node.attr("value")
    return not isinstance(fill, Tensor) or _all_positive_zero(fill.numpy())


def _all_positive_zero(array: np.ndarray) -> bool:
    array = np.asarray(array)
    if array.dtype.kind == "f":
        return bool(np.all(array == 0) and not np.any(np.signbit(array)))
    return array.dtype.kind in "iub" and not np.any(array)


def _equals(value: Value | None, bound: float) -> bool:
    if value is None or value.const is None:
        return False
    array = np.asarray(value.const.numpy())
    return array.dtype.kind == "f" and array.size == 1 and bool(array.reshape(-1)[0] == bound)
