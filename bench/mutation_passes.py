"""Deliberately wrong plugin passes, to measure what graphopt's default check catches (bench/mutations.py).

Each pass makes one small, plausible mistake at one place of the model, chosen by ``which`` (first,
middle or last candidate node in graph order, If/Loop/Scan bodies included) and keeps every value's
name, as a buggy rewrite would:

- ``mutate-scale-weight{op=Conv}``: one Conv/Gemm/MatMul constant weight multiplied by ``factor`` (1.05);
- ``mutate-swap-channels``: output channels 0 and 1 of one Conv/Gemm weight (and bias) exchanged;
- ``mutate-drop-bias``: one Conv/Gemm loses its (non-zero) bias;
- ``mutate-slice-off-by-one``: one Slice with constant bounds ends one element early (or starts one late).

A pass that finds no candidate reports no change (the benchmark then counts the mutation as not
applicable). Load with ``--plugin bench/mutation_passes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from graphopt import Model, Node, PassResult, Tensor, register_pass

WHICH = ("first", "middle", "last")
INT_LIMIT = 2**31 - 1  # Slice ends at or beyond this mean "to the end"


def _pick(nodes: list[Node], which: str) -> Node | None:
    if not nodes:
        return None
    return {"first": nodes[0], "middle": nodes[len(nodes) // 2], "last": nodes[-1]}[which]


def _const(node: Node, slot: int) -> np.ndarray | None:
    value = node.inputs[slot] if len(node.inputs) > slot else None
    if value is None or value.const is None:
        return None
    return value.const.numpy()


def _replace_const(model: Model, node: Node, slot: int, array: np.ndarray) -> None:
    """Give ``node`` its own copy of a changed constant (the original may be shared)."""
    graph = node.graph or model.graph
    node.replace_input(slot, graph.add_const(Tensor.from_array(array)))


def _is_shape(value: Any) -> bool:
    """A value computed from a Shape (a size computation, not a tensor's contents)."""
    producer = value.producer if value is not None else None
    return producer is not None and producer.op_type in ("Shape", "Concat", "Gather", "Cast", "Slice")


def _weighted(model: Model, ops: tuple[str, ...], min_out: int = 1) -> list[Node]:
    found = []
    for node in model.graph.all_nodes():
        weight = _const(node, 1)
        if node.op_type in ops and weight is not None and weight.dtype.kind == "f" and weight.size > 1 \
                and (weight.shape[0] if weight.ndim else 1) >= min_out:
            found.append(node)
    return found


@register_pass
@dataclass
class MutateScaleWeight:
    """Wrong on purpose: scale one Conv/Gemm/MatMul constant weight."""

    may_grow: ClassVar[bool] = True  # a changed copy of a shared weight adds bytes: not the point here
    name: ClassVar[str] = "mutate-scale-weight"
    op: str = "Conv"
    which: str = "middle"
    factor: float = 1.05

    def run(self, model: Model) -> PassResult:
        node = _pick(_weighted(model, (self.op,)), self.which)
        if node is None:
            return PassResult(False)
        weight = _const(node, 1)
        assert weight is not None
        _replace_const(model, node, 1, (weight * self.factor).astype(weight.dtype))
        return PassResult(True, {"mutated": 1})


@register_pass
@dataclass
class MutateSwapChannels:
    """Wrong on purpose: exchange output channels 0 and 1 of one Conv (or Gemm) weight and bias."""

    may_grow: ClassVar[bool] = True  # a changed copy of a shared weight adds bytes: not the point here
    name: ClassVar[str] = "mutate-swap-channels"
    which: str = "middle"

    def run(self, model: Model) -> PassResult:
        candidates = _weighted(model, ("Conv",), min_out=2) or _weighted(model, ("Gemm",), min_out=2)
        node = _pick(candidates, self.which)
        if node is None:
            return PassResult(False)
        for slot in (1, 2):
            array = _const(node, slot)
            if array is not None and array.ndim and array.shape[0] >= 2:
                swapped = array.copy()
                swapped[[0, 1]] = swapped[[1, 0]]
                _replace_const(model, node, slot, swapped)
        return PassResult(True, {"mutated": 1})


@register_pass
@dataclass
class MutateDropBias:
    """Wrong on purpose: remove the non-zero bias of one Conv or Gemm."""

    may_grow: ClassVar[bool] = True  # a changed copy of a shared weight adds bytes: not the point here
    name: ClassVar[str] = "mutate-drop-bias"
    which: str = "middle"

    def run(self, model: Model) -> PassResult:
        candidates = [n for n in model.graph.all_nodes() if n.op_type in ("Conv", "Gemm")
                      and (b := _const(n, 2)) is not None and np.any(b != 0)]
        node = _pick(candidates, self.which)
        if node is None:
            return PassResult(False)
        node.set_inputs(list(node.inputs[:2]))
        return PassResult(True, {"mutated": 1})


@register_pass
@dataclass
class MutateSliceOffByOne:
    """Wrong on purpose: one Slice with constant bounds ends one element early (or starts one late)."""

    may_grow: ClassVar[bool] = True  # a changed copy of a shared weight adds bytes: not the point here
    name: ClassVar[str] = "mutate-slice-off-by-one"
    which: str = "middle"

    def run(self, model: Model) -> PassResult:
        candidates = [n for n in model.graph.all_nodes() if n.op_type == "Slice" and _const(n, 1) is not None
                      and _const(n, 2) is not None and not _is_shape(n.inputs[0])]
        node = _pick(candidates, self.which)
        if node is None:
            return PassResult(False)
        starts, ends = _const(node, 1), _const(node, 2)
        assert starts is not None and ends is not None
        if 0 < abs(int(ends[0])) < INT_LIMIT and int(ends[0]) - 1 != int(starts[0]):
            changed = ends.copy()
            changed[0] -= 1
            _replace_const(model, node, 2, changed)
        else:
            changed = starts.copy()
            changed[0] += 1
            _replace_const(model, node, 1, changed)
        return PassResult(True, {"mutated": 1})


def mutation_steps() -> list[tuple[str, dict[str, Any]]]:
    """Every (pass name, options) the benchmark applies."""
    steps: list[tuple[str, dict[str, Any]]] = []
    for which in WHICH:
        for op in ("Conv", "Gemm", "MatMul"):
            steps.append(("mutate-scale-weight", {"op": op, "which": which}))
        steps += [("mutate-swap-channels", {"which": which}), ("mutate-drop-bias", {"which": which}),
                  ("mutate-slice-off-by-one", {"which": which})]
    return steps
