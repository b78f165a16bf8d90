"""fold-constants: evaluate nodes whose inputs are constants, and shapes that inference proves static."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import (
    BYTES_PER_NODE,
    Graph,
    Model,
    Node,
    PassResult,
    Tensor,
    Value,
    is_standard_domain,
    onnx_dtype,
    register_pass,
    replace_all_uses_with,
)
from graphopt.analyses.shapes import refresh_types
from graphopt.analyses.symbolic_shapes import SymbolicShapes, dims_equal, expands_to_itself
from graphopt.errors import FoldDeclined, Unfoldable
from graphopt.rewrite import inline_if

from ._evaluators import EVALUATORS, shape_slice
from ._reference_fallback import evaluate_with_reference
from ._regions import computable, fold_regions, model_allowance
from ._size_limits import GENERATORS, predicted_elements

log = logging.getLogger(__name__)

STRING = 8  # onnx.TensorProto.STRING
NEVER_FOLD = frozenset({
    "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
    "Bernoulli", "If", "Loop", "Scan", "SequenceConstruct", "SequenceEmpty", "SequenceInsert",
    "SequenceErase", "SequenceAt", "SequenceLength", "SplitToSequence", "ConcatFromSequence",
    "Optional", "OptionalGetElement", "OptionalHasElement", "Constant",
})


@register_pass
@dataclass
class FoldConstants:
    """Replace computable nodes by constants.

    A node folds when every input is a constant (or, for Shape and Size, when inference proves the
    shape static); an If whose condition is a constant is replaced by the branch it takes. Folding
    never makes the model larger: a result may take at most the bytes of the constants that die with
    it plus ``growth_allowance`` bytes, unless ``size_limit`` is set: then any result of at most that
    many bytes folds, whatever it adds (the user's ``--fold-size-limit``). Non-deterministic ops,
    other ops holding subgraphs, sequence
    ops and nodes of custom domains are never folded.
    """

    name: ClassVar[str] = "fold-constants"
    growth_allowance: int = 64
    max_output_bytes: int = 256 * 2**20
    shapes: bool = True
    region_bytes_per_node: int = BYTES_PER_NODE  # 0: constant sub-graphs never grow the model
    size_limit: int = 0  # bytes; 0: the never-larger trade above decides

    def run(self, model: Model) -> PassResult:
        stats: Counter = Counter()
        if self.shapes:  # refines the IR's known types; not a change of the model's meaning
            refresh_types(model)
        self._shape_values = SymbolicShapes(model.opset, model.graph)
        self._warnings: list[str] = []
        for graph in list(model.graph.all_graphs()):
            for node in graph:
                self._try_fold(node, graph, model.opset, stats)
        if self.region_bytes_per_node > 0:
            allowance = model_allowance(model.const_bytes())
            for graph in list(model.graph.all_graphs()):
                members = computable(graph, self._eligible)
                if len(members) > 1:
                    allowance -= fold_regions(graph, members, self._evaluate_given(model.opset, stats),
                                              self.region_bytes_per_node, allowance, stats)
        changed = stats["folded"] > 0
        return PassResult(changed, {k: v for k, v in sorted(stats.items()) if v}, warnings=self._warnings)

    def _try_fold(self, node: Node, graph: Graph, opset: int, stats: Counter) -> None:
        if node.graph is not graph:
            return  # already folded away (an inlined If's nodes are folded as soon as they move)
        if node.op_type == "If" and is_standard_domain(node.domain):
            moved = inline_if(node, graph)
            if moved is not None:
                stats["inlined_If"] += 1
                stats["folded"] += 1
                for inner in moved:  # they now sit before the iterator: fold them right away
                    self._try_fold(inner, graph, opset, stats)
                return
        if not is_standard_domain(node.domain) or node.op_type in NEVER_FOLD:
            return
        if any(out.type_proto is not None for out in node.outputs):
            return
        arrays = self._static_shape(node) if node.op_type in ("Shape", "Size") else None
        if arrays is None:
            if not node.inputs or any(v is not None and v.const is None for v in node.inputs):
                if not self._fold_group(node, graph, opset, stats):
                    self._fold_shape_values(node, graph, stats)
                return
            if any(v is not None and v.const.dtype == STRING and v.const.size > 4096
                   for v in node.inputs):
                return  # large string tensors: leave them alone
            if self._too_big_to_try(node) or self._predicted_too_big(node):
                stats["skipped_size"] += 1
                return
            arrays = _evaluate(node, opset, stats, self._warnings)
            if arrays is None:
                return
        if not self._fits(node, arrays):
            stats["skipped_size"] += 1
            return
        _replace_with_constants(node, graph, arrays)
        stats["folded"] += 1
        stats[f"folded_{node.op_type}"] += 1

    @staticmethod
    def _eligible(node: Node) -> bool:
        """Whether a region may evaluate ``node`` (what the node-by-node sweep may fold)."""
        return is_standard_domain(node.domain) and node.op_type not in NEVER_FOLD \
            and not node.subgraphs() and bool(node.outputs) \
            and all(out.type_proto is None for out in node.outputs) \
            and not any(v is not None and v.const is not None and v.const.dtype == STRING
                        and v.const.size > 4096 for v in node.inputs)

    def _evaluate_given(self, opset: int, stats: Counter):  # type: ignore[no-untyped-def]
        scratch: Counter = Counter()  # a region's members are counted when it folds, not when tried
        return lambda node, given: _evaluate(node, opset, scratch, self._warnings, given)

    def _fold_group(self, node: Node, graph: Graph, opset: int, stats: Counter) -> bool:
        """Fold ``node`` together with the producers of its non-constant inputs when those read only
        constants and feed only ``node``: the group may free constants that no single member frees
        (e.g. three Slices of one weight re-joined by a Concat)."""
        if not is_standard_domain(node.domain) or node.op_type in NEVER_FOLD or len(node.outputs) != 1:
            return False
        producers: dict[Node, None] = {}
        for value in node.inputs:
            if value is None or value.const is not None:
                continue
            p = value.producer
            if (p is None or p.graph is not graph or not is_standard_domain(p.domain)
                    or p.op_type in NEVER_FOLD or len(p.outputs) != 1 or not p.inputs
                    or any(v is not None and v.const is None for v in p.inputs)
                    or value.is_graph_output or any(user is not node for user, _ in value.iter_uses())):
                return False
            producers[p] = None
        group = {node, *producers}
        dying = {v for member in group for v in member.inputs if v is not None and v.const is not None
                 and not v.is_graph_output and all(user in group for user, _ in v.iter_uses())}
        budget = self.size_limit or min(sum(v.const.nbytes for v in dying) + self.growth_allowance,
                                        self.max_output_bytes)
        given: dict[Value, np.ndarray] = {}
        scratch: Counter = Counter()  # members were already counted when tried on their own
        for p in producers:
            if any(v is not None and v.const.nbytes > self.max_output_bytes for v in p.inputs):
                return False
            result = _evaluate(p, opset, scratch, self._warnings)
            if result is None:
                return False
            given[p.outputs[0]] = result[0]
        arrays = _evaluate(node, opset, scratch, self._warnings, given)
        if arrays is None or sum(a.nbytes for a in arrays) > budget:
            return False
        _replace_with_constants(node, graph, arrays)
        read = [v for p in producers for v in p.inputs if v is not None and v.const is not None]
        graph.remove(list(producers))
        drop_unused_constants(read)
        stats["folded"] += 1 + len(producers)
        stats["folded_groups"] += 1
        return True

    def _fold_shape_values(self, node: Node, graph: Graph, stats: Counter) -> None:
        """Fold a shape computation whose elements are all known dims although the shapes it reads
        are only partly static; drop a Reshape or Expand that gives its input's dims back, and point
        a Reshape that copies some of its input's dims at a constant target."""
        if len(node.outputs) != 1:
            return
        out = node.outputs[0]
        known = self._shape_values.known(out) if out.dtype in (None, 6, 7) else None
        if known is None and node.op_type in ("Reshape", "Expand"):
            self._fold_reshape(node, graph, stats)
            return
        if known is None or known.size > 64:
            return
        known = known.astype(np.int32 if out.dtype == 6 else np.int64)
        sources = list(node.inputs)
        _replace_with_constants(node, graph, [known])
        for value in sources:
            prune_if_dead(value)
        stats["folded"] += 1
        stats[f"folded_{node.op_type}_of_shape"] += 1

    def _fold_reshape(self, node: Node, graph: Graph, stats: Counter) -> None:
        ss = self._shape_values
        if len(node.inputs) < 2 or node.inputs[0] is None or node.inputs[1] is None:
            return
        x, out = node.inputs[0], node.outputs[0]
        same = dims_equal(ss.dims(x), ss.dims(out)) if node.op_type == "Reshape" \
            else expands_to_itself(ss, node)
        if same and not out.is_graph_output and x.dtype == out.dtype:
            old = node.inputs[1]
            replace_all_uses_with(out, x)
            graph.remove(node)
            prune_if_dead(old)
            stats["folded"] += 1
            stats[f"{node.op_type.lower()}_to_itself"] += 1
            return
        target = _copy_target(ss, node) if node.op_type == "Reshape" else None
        if target is not None:
            old = node.inputs[1]
            node.replace_input(1, graph.add_const(Tensor.from_array(target)))
            prune_if_dead(old)
            stats["folded"] += 1
            stats["reshape_target_copies_dims"] += 1

    def _static_shape(self, node: Node) -> list[np.ndarray] | None:
        src = node.inputs[0] if node.inputs else None
        shape = src.shape if src is not None else None  # known shapes only, never declared ones
        if shape is None:
            return None
        if node.op_type == "Size":
            if not all(isinstance(d, int) for d in shape):
                return None
            return [np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)]
        dims = np.array([d if isinstance(d, int) else -1 for d in shape], dtype=np.int64)
        part = shape_slice(dims, node.attr("start", 0), node.attr("end"))
        return None if np.any(part < 0) else [part]

    def _too_big_to_try(self, node: Node) -> bool:
        """Skip evaluation early when inference already says the output is too large."""
        for out in node.outputs:
            shape = out.static_shape
            if shape is not None and out.dtype not in (None, 0, STRING):
                if Tensor(out.dtype, shape).nbytes > self._budget(node):
                    return True
        return False

    def _predicted_too_big(self, node: Node) -> bool:
        """The output size predicted from the constant inputs' values exceeds what the fold may create
        (checked before evaluating); for broadcasting ops only when it exceeds every input's size."""
        inputs = [v.const.numpy() if v is not None and v.const is not None else None for v in node.inputs]
        elements = predicted_elements(node, inputs)
        if elements is None:
            return False
        largest_input = max((a.size for a in inputs if a is not None), default=0)
        if node.op_type not in GENERATORS and elements <= largest_input:
            return False
        dtype = node.outputs[0].dtype if node.outputs else None
        itemsize = Tensor(dtype, [1]).nbytes if dtype not in (None, 0, STRING) else 8
        return elements * itemsize > max(self._budget(node), 1 << 20)

    def _budget(self, node: Node) -> int:
        """Bytes a fold may create: what dies with the node, plus the allowance, capped (or the
        user's size limit)."""
        if self.size_limit:
            return self.size_limit
        dying = {id(v): v for v in node.inputs
                 if v is not None and v.const is not None and not v.is_graph_output
                 and all(user is node for user, _ in v.iter_uses())}  # stops at another reader
        freed = sum(v.const.nbytes for v in dying.values())  # type: ignore[union-attr]
        return min(freed + self.growth_allowance, self.max_output_bytes)

    def _fits(self, node: Node, arrays: list[np.ndarray]) -> bool:
        return sum(a.nbytes for a in arrays) <= self._budget(node)


def _copy_target(ss: SymbolicShapes, node: Node) -> np.ndarray | None:
    """A constant target for a Reshape whose computed target is known except for dims it copies
    from its own input at the same position (written as 0, which Reshape copies when allowzero=0)
    and at most one more, written as -1 when the others are non-zero in every run that succeeds
    (onnxruntime refuses a -1 next to a zero-sized dim that the original target allowed)."""
    if ss.opset < 5 or node.attr("allowzero", 0) or node.inputs[1].const is not None:
        return None
    vector, x_dims = ss.vector(node.inputs[1]), ss.dims(node.inputs[0])
    if vector is None or x_dims is None:
        return None
    out: list[int] = []
    unresolved: list[int] = []
    for position, element in enumerate(vector):
        if isinstance(element, int):
            out.append(element)
        elif position < len(x_dims) and x_dims[position] == element:
            out.append(0)
        else:
            unresolved.append(position)
            out.append(-1)
    if unresolved and (len(unresolved) > 1 or vector.count(-1) or not all(
            ss.nonzero(x_dims[i] if e == 0 and i < len(x_dims) else e)
            for i, e in enumerate(vector) if i != unresolved[0])):
        return None
    copies = [i for i, e in enumerate(out) if e == 0]
    if not unresolved and len(copies) == 1 and all(e > 0 for i, e in enumerate(out) if i != copies[0]):
        out[copies[0]] = -1  # the same dim, and a constant target a following Reshape can merge with
    return np.array(out, dtype=np.int64)


def _evaluate(node: Node, opset: int, stats: Counter, warnings: list[str],
              given: dict[Value, np.ndarray] | None = None) -> list[np.ndarray] | None:
    """Evaluate a node on its constant inputs (or ``given`` values); None (counted by reason) when it
    cannot be done. An evaluator that raises where onnx.reference succeeds is a bug: it goes to
    ``warnings`` with the node's name."""
    given = given or {}
    inputs = [None if v is None else given[v] if v in given else v.const.numpy() if v.const is not None
              else None for v in node.inputs]
    if any(v is not None and a is None for v, a in zip(node.inputs, inputs)):
        return None
    fn = EVALUATORS.get(node.op_type)
    raised: Exception | None = None
    try:
        with np.errstate(all="ignore"):
            outputs = fn(node, inputs, opset) if fn is not None else None
    except Unfoldable as exc:  # an error or undefined result at run time: folding would hide it
        log.debug("not folding %s: %s", node.op_type, exc)
        stats["unfoldable"] += 1
        return None
    except FoldDeclined as exc:  # a case this evaluator leaves to the reference, by design
        stats[f"declined: {exc}"] += 1
        outputs = None
    except Exception as exc:  # noqa: BLE001 - the inputs are invalid, or the evaluator has a bug
        raised, outputs = exc, None
    if outputs is None:
        outputs = evaluate_with_reference(node, inputs, opset)
        stats["reference_evaluations"] += 1
        if raised is not None and outputs is not None:  # the reference computes what ours raised on
            stats["evaluator_errors"] += 1
            warnings.append(f"the numpy evaluator of {node.op_type} raised {type(raised).__name__}: "
                            f"{raised} on node {node.name!r}, which onnx.reference evaluates (a graphopt "
                            "bug: please report it); folded with the reference result")
    if outputs is None or len(outputs) != len(node.outputs):
        stats["not_evaluable"] += 1
        return None
    for out, arr in zip(node.outputs, outputs):
        if out.dtype is not None and arr.dtype != object and onnx_dtype(arr.dtype) != out.dtype:
            stats["dtype_mismatch"] += 1
            return None
    return [np.asarray(a) for a in outputs]


def _replace_with_constants(node: Node, graph: Graph, arrays: list[np.ndarray]) -> None:
    for out, arr in zip(node.outputs, arrays):
        dtype = out.dtype if out.dtype is not None else None
        tensor = Tensor.from_array(arr, dtype if arr.dtype == object else None)
        const: Value = graph.add_const(tensor, None)
        replace_all_uses_with(out, const, outputs=True)
    read = [v for v in node.inputs if v is not None and v.const is not None]
    graph.remove(node, safe=False)
    drop_unused_constants(read)


def prune_if_dead(value: Value | None) -> None:
    """Remove the shape computation that produced ``value`` once a fold left it unread, so that the
    fold itself shrinks the model (never-worse is judged per pass)."""
    if value is None or value.num_uses or value.is_graph_output:
        return
    if value.const is not None:
        drop_unused_constants([value])
        return
    node = value.producer
    if node is None or node.graph is None or not is_standard_domain(node.domain) or node.subgraphs() \
            or any(out.num_uses or out.is_graph_output for out in node.outputs):
        return
    inputs = list(node.inputs)
    node.graph.remove(node)
    for source in inputs:
        prune_if_dead(source)


def drop_unused_constants(values: list[Value]) -> None:
    """Remove constants that a fold consumed and nothing else reads (the model must not grow)."""
    for value in dict.fromkeys(values):
        if not value.num_uses and not value.is_graph_output and value.graph is not None:
            value.graph.remove_const(value)
