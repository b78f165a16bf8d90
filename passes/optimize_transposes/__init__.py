"""optimize-transposes: push Transposes through layout-agnostic ops until they cancel, merge them, and
turn a Transpose that only moves size-1 dims into a Reshape. Never increases the Transposes executed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import (
    Graph,
    Model,
    Node,
    PassResult,
    Tensor,
    Value,
    is_standard_domain,
    register_pass,
    replace_all_uses_with,
)
from graphopt.analyses.shapes import refresh_types

from ._push import data_inputs, inverse, permuted_constant, plan_push


def transpose_perm(node: Node) -> list[int] | None:
    """The perm of a standard Transpose node (an omitted perm reverses the axes), or None."""
    if node.op_type != "Transpose" or not is_standard_domain(node.domain):
        return None
    perm = node.attr("perm")
    if perm is not None:
        return [int(p) for p in perm]
    src = node.inputs[0]
    return None if src is None or src.rank is None else list(range(src.rank))[::-1]


def _transposed_by(value: Value | None) -> tuple[Node, list[int]] | None:
    if value is None or value.producer is None or value.producer.graph is not value.graph:
        return None
    perm = transpose_perm(value.producer)
    return None if perm is None else (value.producer, perm)


@dataclass
class _Push:
    node: Node
    perm: list[int]
    removed: int
    added: int


@register_pass
@dataclass
class OptimizeTransposes:
    """Push Transposes through layout-agnostic ops until they cancel; merge and drop them.

    Elementwise ops (constants are permuted at compile time), Concat/Softmax axes, Reduce* axes and
    Q/DQ per-channel axes are remapped. A push is made only when it removes more Transposes than it
    adds, or moves one (removed = added) along a path that ends in a cancellation, so the number of
    Transposes executed never grows. A Transpose that only moves size-1 dims is dropped before a
    Flatten or Reshape (the element order is the same).
    """

    name: ClassVar[str] = "optimize-transposes"
    lookahead: int = 16
    max_rounds: int = 32

    def run(self, model: Model) -> PassResult:
        if not any(n.op_type == "Transpose" for n in model.graph.all_nodes()):
            return PassResult(False, {})
        refresh_types(model)
        stats: Counter = Counter()
        for graph in list(model.graph.all_graphs()):
            for _ in range(self.max_rounds):
                before = sum(stats.values())
                self._compose(graph, stats)
                self._push(graph, model.opset, stats)
                _dedup(graph, stats)
                if sum(stats.values()) == before:
                    break
            _size_one_moves(graph, model.opset, stats)
        return PassResult(bool(stats), dict(sorted(stats.items())))

    # ----- Transpose(Transpose(x)) -----------------------------------------------------------------
    def _compose(self, graph: Graph, stats: Counter) -> None:
        for node in graph:
            perm = transpose_perm(node)
            inner = _transposed_by(node.inputs[0]) if perm is not None else None
            if inner is None or len(inner[1]) != len(perm):  # type: ignore[arg-type]
                continue
            first, p1 = inner
            composed = [p1[i] for i in perm]  # type: ignore[union-attr]
            source = first.inputs[0]
            assert source is not None
            if composed == list(range(len(composed))):
                if node.outputs[0].is_graph_output and not _can_take_over(source, graph):
                    continue
                replace_all_uses_with(node.outputs[0], source, outputs=True)
                graph.remove(node)
                stats["cancelled"] += 1
            else:
                node.replace_input(0, source)
                node.set_attr("perm", composed)
                stats["merged"] += 1
            left = first.outputs[0]
            if not left.num_uses and not left.is_graph_output and first.graph is not None:
                first.graph.remove(first)  # the first Transpose may sit in an enclosing graph

    # ----- pushing through ops -------------------------------------------------------------------
    def _push(self, graph: Graph, opset: int, stats: Counter) -> None:
        for node in graph:
            if node.graph is not graph or not is_standard_domain(node.domain):
                continue
            push = self._evaluate(node, opset)
            if push is None:
                continue
            gain = push.removed - push.added
            if gain > 0 or (gain == 0 and self._cancels_later(node, push.perm, opset, self.lookahead)):
                _apply_push(graph, node, push.perm, opset)
                stats[f"pushed_through_{node.op_type}"] += 1

    def _evaluate(self, node: Node, opset: int) -> _Push | None:
        """The perm to push through ``node`` and the Transposes it would remove and add."""
        indices = data_inputs(node)
        sources = [_transposed_by(node.inputs[i]) for i in indices]
        perms = [s[1] for s in sources if s is not None]
        if not perms or any(p != perms[0] for p in perms):
            return None
        perm = perms[0]
        rank = len(perm)
        if plan_push(node, perm, opset) is None or any(o.type_proto is not None for o in node.outputs):
            return None
        removed, added = 0, 0
        seen: set[int] = set()
        for i, source in zip(indices, sources):
            value = node.inputs[i]
            assert value is not None
            if source is not None:
                t = source[0]
                if id(t) not in seen and all(user is node for user, _ in t.outputs[0].iter_uses()) \
                        and not t.outputs[0].is_graph_output:
                    removed += 1
                seen.add(id(t))
            elif value.const is not None:
                if len(value.const.shape) > rank:
                    return None
                if value.const.size > 1 and value.num_uses > 1 and value.const.nbytes > 1024:
                    return None  # a permuted copy of a large shared constant would grow the model
            elif value.rank == rank:
                added += 1  # an inverse Transpose on this input
            else:
                return None
        added += sum(1 for o in node.outputs if o.num_uses or o.is_graph_output)
        return _Push(node, perm, removed, added)

    def _cancels_later(self, node: Node, perm: list[int], opset: int, depth: int) -> bool:
        """Whether the Transpose that a push would place after ``node`` is absorbed further down."""
        plan = plan_push(node, perm, opset)
        if plan is None or depth <= 0 or len(node.outputs) != 1:
            return False
        out = node.outputs[0]
        if out.is_graph_output or not out.num_uses:
            return False
        q = plan.out_perm
        for user in out.consumers():
            t = transpose_perm(user)
            if t is not None:
                continue  # it merges with (or cancels against) the moved Transpose
            if not is_standard_domain(user.domain) or user.graph is not node.graph:
                return False
            if user.op_type in ("Flatten", "Reshape") and _moves_size_one_dims(out, q):
                continue  # dropped there: a size-1 move before a reshape changes no element order
            if plan_push(user, q, opset) is None:
                return False
            others = [user.inputs[i] for i in data_inputs(user) if user.inputs[i] is not out]
            if any(self._carries(v, q, opset, depth) for v in others):
                continue  # there it meets another Transpose of the same perm: a net removal
            if any(v is not None and v.const is None for v in others):
                return False
            if not self._cancels_later(user, q, opset, depth - 1):
                return False
        return True

    def _carries(self, value: Value | None, perm: list[int], opset: int, depth: int) -> bool:
        """Whether ``value`` is a Transpose by ``perm``, or will be once pushes bring one down through
        the single-reader agnostic ops producing it (e.g. the other operand of a residual Add)."""
        if value is None or depth <= 0:
            return False
        source = _transposed_by(value)
        if source is not None:
            return source[1] == perm
        node = value.producer
        if node is None or not is_standard_domain(node.domain) or len(node.outputs) != 1 \
                or value.num_uses != 1 or value.is_graph_output or node.graph is not value.graph:
            return False
        plan = plan_push(node, perm, opset)
        if plan is None or plan.out_perm != perm:
            return False
        data = [node.inputs[i] for i in data_inputs(node)]
        return any(self._carries(v, perm, opset, depth - 1) for v in data) and \
            all(v is None or v.const is not None or self._carries(v, perm, opset, depth - 1) for v in data)


def _apply_push(graph: Graph, node: Node, perm: list[int], opset: int) -> None:
    plan = plan_push(node, perm, opset)
    assert plan is not None
    inverse_perm = inverse(perm)
    inputs: list[Value | None] = list(node.inputs)
    data = set(data_inputs(node))
    for i, value in enumerate(node.inputs):
        if i in plan.replace_consts:
            inputs[i] = graph.add_const(Tensor.from_array(plan.replace_consts[i]))
        if value is None or i not in data:
            continue
        source = _transposed_by(value)
        if source is not None:
            inputs[i] = source[0].inputs[0]
        elif value.const is not None:
            if any(d != 1 for d in value.const.shape):  # not size > 1: an empty one must move too
                permuted = permuted_constant(value, perm)
                inputs[i] = graph.add_const(Tensor.from_array(permuted, value.const.dtype))
        else:
            undo = Node("Transpose", [value], {"perm": inverse_perm})
            undo.outputs[0].dtype = value.dtype
            graph.insert_before(node, undo)
            inputs[i] = undo.outputs[0]
    moved = Node(node.op_type, inputs, plan.attrs, num_outputs=len(node.outputs), domain=node.domain,
                 name=node.name)
    graph.insert_before(node, moved)
    inv_out = inverse(plan.out_perm)
    for old, new in zip(node.outputs, moved.outputs):
        new.dtype = old.dtype
        if old.shape is not None and len(old.shape) == len(plan.out_perm):
            new.shape = tuple(old.shape[inv_out[j]] for j in range(len(inv_out)))
        if not old.num_uses and not old.is_graph_output:
            continue
        after = Node("Transpose", [new], {"perm": plan.out_perm})
        after.outputs[0].dtype, after.outputs[0].shape = old.dtype, old.shape
        graph.insert_after(moved, after)
        replace_all_uses_with(old, after.outputs[0], outputs=True)
    read = [v for v in node.inputs if v is not None]
    graph.remove(node)
    for value in read:
        producer = value.producer
        if producer is not None and transpose_perm(producer) is not None and not value.num_uses \
                and not value.is_graph_output and producer.graph is graph:
            graph.remove(producer)
        elif value.const is not None and not value.num_uses and not value.is_graph_output \
                and value.graph is not None:
            value.graph.remove_const(value)


def _moves_size_one_dims(value: Value, perm: list[int]) -> bool:
    """Whether transposing ``value`` by ``perm`` keeps the order of every dim that may differ from 1."""
    shape = value.shape
    if shape is None or len(shape) != len(perm):
        return False
    moving = [p for p in perm if shape[p] != 1]
    return moving == sorted(moving)


def _dedup(graph: Graph, stats: Counter) -> None:
    """Transposes of one value by one perm become one."""
    seen: dict[tuple[int, tuple[int, ...]], Node] = {}
    for node in graph:
        perm = transpose_perm(node)
        if perm is None or node.inputs[0] is None:
            continue
        key = (id(node.inputs[0]), tuple(perm))
        first = seen.setdefault(key, node)
        if first is node or (node.outputs[0].is_graph_output and first.outputs[0].is_graph_output):
            continue
        replace_all_uses_with(node.outputs[0], first.outputs[0], outputs=True)
        graph.remove(node)
        stats["deduplicated"] += 1


def _size_one_moves(graph: Graph, opset: int, stats: Counter) -> None:
    """Drop a Transpose that keeps the order of every dim that may differ from 1 when all its readers
    only see the element order (Flatten, Reshape to a constant): it moves no data.

    Such a Transpose feeding other ops stays: as a Reshape it would need a shape constant, which
    makes the model larger (never worse).
    """
    if opset < 5:
        return
    for node in graph:
        perm = transpose_perm(node)
        src = node.inputs[0] if perm is not None else None
        if src is None or src.shape is None or len(src.shape) != len(perm):  # type: ignore[arg-type]
            continue
        moving = [p for p in perm if src.shape[p] != 1]  # type: ignore[union-attr]
        if moving != sorted(moving) or not _order_only_consumers(node, src):
            continue
        replace_all_uses_with(node.outputs[0], src, outputs=True)
        graph.remove(node)
        stats["dropped_before_reshape"] += 1


def _order_only_consumers(node: Node, src: Value) -> bool:
    """Whether every reader of a size-1-moving Transpose only depends on the element order: a
    Flatten giving the same 2-D shape, or a Reshape to a constant target without copied (0) dims."""
    out = node.outputs[0]
    if out.is_graph_output or not out.num_uses or src.shape is None or out.shape is None:
        return False
    for user, index in out.iter_uses():
        if index != 0 or not is_standard_domain(user.domain):
            return False
        if user.op_type == "Flatten":
            axis = int(user.attr("axis", 1)) % len(src.shape)
            if not _same_product(src.shape[:axis], out.shape[:axis]):
                return False
        elif user.op_type == "Reshape":
            target = user.inputs[1] if len(user.inputs) > 1 else None
            if target is None or target.const is None:
                return False
            if np.any(target.const.numpy() == 0) and not user.attr("allowzero", 0):
                return False
        else:
            return False
    return True


def _same_product(a, b) -> bool:  # type: ignore[no-untyped-def]
    """Products of two dim lists agree: equal after dropping 1s (symbolic dims compared by name)."""
    return [d for d in a if d != 1] == [d for d in b if d != 1] and all(d is not None for d in a)


def _can_take_over(src: Value, graph: Graph) -> bool:
    return src.producer is not None and src.graph is graph and not src.is_graph_output
