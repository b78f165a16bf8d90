"""simplify-chains: collapse Transpose/Reshape/Unsqueeze-Squeeze/Cast/Slice chains into one node (or none)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graphopt import Graph, Model, Node, PassResult, Tensor, Value, const_ints, register_pass
from graphopt import replace_all_uses_with as rauw
from graphopt.analyses.shapes import refresh_types
from graphopt.rewrite import Const, Match, Op, Opt, RewriteContext, Rule, Var, apply_rules, rules_result

# ONNX dtype codes
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL, FLOAT16, DOUBLE, UINT32, UINT64 = \
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13
BFLOAT16 = 16
INTEGERS = frozenset({UINT8, INT8, UINT16, INT16, INT32, INT64, UINT32, UINT64})
FLOATING = frozenset({FLOAT, FLOAT16, DOUBLE, BFLOAT16})
# src -> the types that represent every value of src exactly (widening casts)
EXACT: dict[int, frozenset[int]] = {
    BOOL: INTEGERS | FLOATING,
    UINT8: frozenset({UINT16, INT16, UINT32, INT32, UINT64, INT64, FLOAT16, BFLOAT16, FLOAT, DOUBLE}),
    INT8: frozenset({INT16, INT32, INT64, FLOAT16, BFLOAT16, FLOAT, DOUBLE}),
    UINT16: frozenset({UINT32, INT32, UINT64, INT64, FLOAT, DOUBLE}),
    INT16: frozenset({INT32, INT64, FLOAT, DOUBLE}),
    UINT32: frozenset({UINT64, INT64, DOUBLE}),
    INT32: frozenset({INT64, DOUBLE}),
    FLOAT16: frozenset({FLOAT, DOUBLE}),
    BFLOAT16: frozenset({FLOAT, DOUBLE}),
    FLOAT: frozenset({DOUBLE}),
}


def _exact(src: int, dst: int) -> bool:
    return src == dst or dst in EXACT.get(src, ())


def _same_type(found: Match, root: str) -> Value:
    """The root's output, whose known type any replacement value inherits."""
    return found[root].outputs[0]


def _typed(value: Value, like: Value) -> Value:
    if value.dtype is None:
        value.dtype = like.dtype
    if value.shape is None:
        value.shape = like.shape
    return value


# Transpose(Transpose(x, p1), p2): out[i] = in[perm[i]], so the pair is Transpose(x, p1[p2[i]]).

def _perm(node_perm: list[int] | None, rank: int | None) -> list[int] | None:
    if node_perm is not None:
        return [int(p) for p in node_perm]
    return None if rank is None else list(range(rank))[::-1]  # omitted perm reverses the axes


def _transpose_check(found: Match, model: Model) -> str | None:
    rank = found["x"].rank
    p1, p2 = _perm(found["t1"].attr("perm"), rank), _perm(found["t2"].attr("perm"), rank)
    if p1 is None or p2 is None:
        return "perm omitted and rank unknown"
    if len(p1) != len(p2):
        return "perm lengths differ"
    return None


def _transpose(found: Match, ctx: RewriteContext) -> list[Value]:
    rank = found["x"].rank
    p1, p2 = _perm(found["t1"].attr("perm"), rank), _perm(found["t2"].attr("perm"), rank)
    perm = [p1[i] for i in p2]  # type: ignore[index]
    if perm == list(range(len(perm))):
        return [found["x"]]
    node = ctx.node("Transpose", [found["x"]], {"perm": perm})
    return [_typed(node.outputs[0], _same_type(found, "t2"))]


# Reshape(Reshape(x, s1), s2) -> Reshape(x, s2): the first shape is irrelevant when s2 is absolute.

def _reshape_check(found: Match, model: Model) -> str | None:
    if model.opset < 5:
        return "opset < 5 (Reshape shape is an attribute)"
    shape = found["s2"].const.numpy()
    if (shape == 0).any() and not found["r2"].attr("allowzero", 0):
        return "second shape copies dimensions (0 entries)"
    return None


def _reshape(found: Match, ctx: RewriteContext) -> list[Value]:
    r2 = found["r2"]
    node = ctx.node("Reshape", [found["x"], found["s2"]], dict(r2.attrs))
    return [_typed(node.outputs[0], _same_type(found, "r2"))]


# Squeeze(Unsqueeze(x, axes), axes) -> x: Squeeze's input is Unsqueeze's output, so negative axes of
# both count from the same rank and equal axis sets mean the same dimensions.

def _axes(found: Match, node_key: str, const_key: str) -> list[int] | None:
    value = found.get(const_key)
    if value is not None:
        return [int(a) for a in np.asarray(value.const.numpy()).reshape(-1)]
    axes = found[node_key].attr("axes")
    return None if axes is None else [int(a) for a in axes]


def _squeeze_check(found: Match, model: Model) -> str | None:
    inputs_form = found.get("a1") is not None
    if inputs_form != (model.opset >= 13):
        return "axes form does not match the opset"
    a1, a2 = _axes(found, "u", "a1"), _axes(found, "s", "a2")
    if a1 is None or a2 is None:
        return "axes omitted"
    out_rank = _out_rank(found["x"], a1)
    if out_rank is not None:
        a1, a2 = [a % out_rank for a in a1], [a % out_rank for a in a2]
    if sorted(a1) != sorted(a2):
        return "axes differ"
    return None


def _out_rank(x: Value, axes: list[int]) -> int | None:
    return None if x.rank is None else x.rank + len(axes)


def _squeeze(found: Match, ctx: RewriteContext) -> list[Value]:
    return [found["x"]]


# Squeeze and Unsqueeze on other axes (an LSTM's [seq, 1, batch, hidden] squeezed on 1 and unsqueezed on
# 0): both only move unit dims, so the pair is one Reshape, or nothing when every dim ends where it was.

def _moved_dims(found: Match, first: str) -> list[int | None] | None:
    """For each output dim of the pair, the input dim it is (None: an inserted unit dim)."""
    rank = found["x"].rank
    a1, a2 = _axes(found, "n1", "a1"), _axes(found, "n2", "a2")
    if rank is None or a1 is None or a2 is None:
        return None
    dims: list[int | None] = list(range(rank))
    for op, axes in ((first, a1), ("Unsqueeze" if first == "Squeeze" else "Squeeze", a2)):
        if op == "Squeeze":
            gone = {a % len(dims) for a in axes}
            if len(gone) != len(axes):
                return None
            dims = [d for i, d in enumerate(dims) if i not in gone]
        else:
            size = len(dims) + len(axes)
            where = {a % size for a in axes}
            if len(where) != len(axes):
                return None
            rest = iter(dims)
            dims = [None if i in where else next(rest) for i in range(size)]
    return dims


def _reshape_target(x: Value, dims: list[int | None]) -> list[int] | None:
    """A Reshape target giving ``dims``: 1 for inserted dims, 0 where a dim stays at its index, the size
    where it is known, one -1 for an unknown dim that moved; None when that is not enough."""
    target, wildcard = [], False
    for j, d in enumerate(dims):
        size = None if d is None or x.shape is None else x.shape[d]
        if d is None:
            target.append(1)
        elif d == j:
            target.append(0)
        elif isinstance(size, int):
            target.append(size)
        elif not wildcard:
            target.append(-1)
            wildcard = True
        else:
            return None
    return target


def _keeps_shape(x: Value, dims: list[int | None]) -> bool:
    """The pair gives back x itself: every dim where it was, up to unit dims trading places."""
    shape = x.shape
    if shape is None or len(dims) != len(shape):
        return False
    return all(d == j or (shape[j] == 1 and (d is None or shape[d] == 1)) for j, d in enumerate(dims))


def _pair_check(first: str):  # type: ignore[no-untyped-def]
    def check(found: Match, model: Model) -> str | None:
        if model.opset < 13:
            return "axes are attributes before opset 13"
        dims = _moved_dims(found, first)
        if dims is None:
            return "axes omitted, repeated, or rank unknown"
        if not _keeps_shape(found["x"], dims) and _reshape_target(found["x"], dims) is None:
            return "two moved dims of unknown size"
        return None
    return check


def _pair(first: str):  # type: ignore[no-untyped-def]
    def rewrite(found: Match, ctx: RewriteContext) -> list[Value]:
        dims = _moved_dims(found, first)
        assert dims is not None
        if _keeps_shape(found["x"], dims):
            return [found["x"]]
        target = _reshape_target(found["x"], dims)
        node = ctx.node("Reshape", [found["x"], ctx.const(np.array(target, np.int64))])
        return [_typed(node.outputs[0], found["n2"].outputs[0])]
    return rewrite


# Cast(Cast(x, T1), T2) -> Cast(x, T2) when the first cast keeps every value of x.

def _cast_check(found: Match, model: Model) -> str | None:
    if model.opset < 6:
        return "opset < 6 (Cast 'to' is a string)"
    src, mid, dst = found["x"].dtype, found["c1"].attr("to"), found["c2"].attr("to")
    if src is None:
        return "input dtype unknown"
    if STRING in (src, mid, dst):
        return "string cast"
    if not _exact(src, mid):
        return "first cast is not value-exact (narrowing)"
    if src in INTEGERS and mid in FLOATING and dst in INTEGERS and not _exact(src, dst):
        return "integer through float to a narrower integer (out-of-range behaviour differs)"
    return None


def _cast(found: Match, ctx: RewriteContext) -> list[Value]:
    c2 = found["c2"]
    if c2.attr("to") == found["x"].dtype:
        return [found["x"]]
    node = ctx.node("Cast", [found["x"]], dict(c2.attrs))
    return [_typed(node.outputs[0], _same_type(found, "c2"))]


# Slice(Slice(x, ...), ...) on disjoint axes -> one Slice: each leaves the other's axes whole, so the
# second Slice's starts and ends index dims exactly as they are in x.

def _slice_params(found: Match, n: str) -> tuple[list[int], list[int], list[int], list[int]]:
    """Starts, ends, axes and steps of Slice ``s{n}`` (the pattern made every present one constant)."""
    node = found[f"s{n}"]
    starts, ends, axes, steps = (const_ints(node, i) for i in (1, 2, 3, 4))
    assert starts is not None and ends is not None
    return (starts, ends, list(range(len(starts))) if axes is None else axes,
            [1] * len(starts) if steps is None else steps)


def _slice_axes(found: Match) -> tuple[list[int], list[int]] | None:
    """Both Slices' axes, made non-negative (None when a negative axis meets an unknown rank)."""
    rank = found["x"].rank
    result = []
    for n in ("1", "2"):
        axes = _slice_params(found, n)[2]
        if any(a < 0 for a in axes):
            if rank is None:
                return None
            axes = [a % rank for a in axes]
        result.append(axes)
    return result[0], result[1]


def _slice_check(found: Match, model: Model) -> str | None:
    if model.opset < 10:
        return "opset < 10 (Slice parameters are attributes)"
    for n in ("1", "2"):
        starts, ends, axes, steps = _slice_params(found, n)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            return "parameter lengths differ"
    axes = _slice_axes(found)
    if axes is None:
        return "negative axes and rank unknown"
    first, second = axes
    if len(set(first)) != len(first) or len(set(second)) != len(second) or set(first) & set(second):
        return "the Slices share an axis"
    return None


def _slice(found: Match, ctx: RewriteContext) -> list[Value]:
    first, second = _slice_params(found, "1"), _slice_params(found, "2")
    axes = _slice_axes(found)
    assert axes is not None
    params = [first[0] + second[0], first[1] + second[1], axes[0] + axes[1], first[3] + second[3]]
    inputs = [found["x"], *(ctx.const(np.array(p, dtype=np.int64)) for p in params)]
    node = ctx.node("Slice", inputs)
    return [_typed(node.outputs[0], _same_type(found, "s2"))]


def _slice_pattern() -> Op:
    def params(n: str) -> tuple:
        return Const(f"b{n}"), Const(f"e{n}"), Opt(Const(f"a{n}")), Opt(Const(f"p{n}"))
    return Op("Slice", Op("Slice", Var("x"), *params("1"), capture="s1"), *params("2"), capture="s2")


def _node_slice(node: Node, rank: int | None) -> tuple[list[int], ...] | None:
    """Constant (starts, ends, non-negative axes, steps) of an opset >= 10 Slice, or None."""
    if node.op_type != "Slice" or len(node.inputs) < 3 or node.inputs[0] is None:
        return None
    given = [i < len(node.inputs) and node.inputs[i] is not None for i in range(5)]
    starts, ends, axes, steps = (const_ints(node, i) if given[i] else None for i in (1, 2, 3, 4))
    if starts is None or ends is None or (given[3] and axes is None) or (given[4] and steps is None):
        return None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if any(a < 0 for a in axes):
        if rank is None:
            return None
        axes = [a % rank for a in axes]
    if not len(starts) == len(ends) == len(axes) == len(steps) or len(set(axes)) != len(axes):
        return None
    return starts, ends, axes, steps


def merge_fanned_slices(graph: Graph, opset: int) -> int:
    """A Slice read only by Slices on other axes (Swin's patch merging: x[:, 0::2] and x[:, 1::2],
    each sliced again on the next axis) goes into each reader: one node fewer per such Slice."""
    merged = 0
    for first in graph:
        if opset < 10 or first.op_type != "Slice" or first.graph is not graph:
            continue
        out, x = first.outputs[0], first.inputs[0]
        params = _node_slice(first, x.rank if x is not None else None)
        readers = [user for user, index in out.iter_uses() if index == 0]
        if params is None or out.is_graph_output or out.num_uses < 2 or len(readers) != out.num_uses:
            continue
        seconds = [_node_slice(r, out.rank) for r in readers]
        if any(p is None or set(p[2]) & set(params[2]) or r.graph is not graph
               for p, r in zip(seconds, readers)):
            continue
        for reader, second in zip(readers, seconds):
            joined = [a + b for a, b in zip(params, second)]  # type: ignore[arg-type]
            inputs = [x, *(graph.add_const(Tensor.from_array(np.array(p, np.int64))) for p in joined)]
            node = Node("Slice", inputs)
            node.outputs[0].dtype, node.outputs[0].shape = reader.outputs[0].dtype, reader.outputs[0].shape
            graph.insert_before(reader, node)
            rauw(reader.outputs[0], node.outputs[0], outputs=True)
            graph.remove_with_constants(reader)
        graph.remove_with_constants(first)
        merged += 1
    return merged


RULES = [
    Rule("transpose-transpose", Op("Transpose", Op("Transpose", Var("x"), capture="t1"), capture="t2"),
         _transpose, _transpose_check),
    Rule("reshape-reshape", Op("Reshape", Op("Reshape", Var("x"), Const("s1"), capture="r1"), Const("s2"),
                               capture="r2"), _reshape, _reshape_check),
    Rule("unsqueeze-squeeze", Op("Squeeze", Op("Unsqueeze", Var("x"), Const("a1"), capture="u"), Const("a2"),
                                 capture="s"), _squeeze, _squeeze_check),
    Rule("unsqueeze-squeeze-attr", Op("Squeeze", Op("Unsqueeze", Var("x"), capture="u"), capture="s"),
         _squeeze, _squeeze_check),
    Rule("unsqueeze-squeeze-other-axes",
         Op("Squeeze", Op("Unsqueeze", Var("x"), Const("a1"), capture="n1"), Const("a2"), capture="n2"),
         _pair("Unsqueeze"), _pair_check("Unsqueeze")),
    Rule("squeeze-unsqueeze", Op("Unsqueeze", Op("Squeeze", Var("x"), Const("a1"), capture="n1"), Const("a2"),
                                 capture="n2"), _pair("Squeeze"), _pair_check("Squeeze")),
    Rule("cast-cast", Op("Cast", Op("Cast", Var("x"), capture="c1"), capture="c2"), _cast, _cast_check),
    Rule("slice-slice", _slice_pattern(), _slice, _slice_check),
]


@register_pass
@dataclass
class SimplifyChains:
    """Collapse Transpose-Transpose, Reshape-Reshape, Unsqueeze-Squeeze, Cast-Cast and Slice-Slice chains.

    Transposes compose (``out[i] = in[p1[p2[i]]]``; an identity pair disappears); a Reshape whose
    successor has a constant shape without 0 entries (or allowzero=1) is skipped; Squeeze undoes an
    Unsqueeze on equal constant axes (input form from opset 13, attribute form before), and a Squeeze
    and Unsqueeze on other axes become one Reshape (or nothing when every dim ends where it was); a Cast
    chain keeps only its last Cast when the first one is value-exact (widening); two Slices with
    constant parameters on disjoint axes become one, and so does a Slice read only by Slices on other
    axes with each of them. Other chains whose middle value is read elsewhere or is a graph output are
    left alone.
    """

    name: ClassVar[str] = "simplify-chains"

    def run(self, model: Model) -> PassResult:
        refresh_types(model)  # input dtypes decide Cast chains, ranks an omitted perm
        stats = apply_rules(model, RULES)
        result = rules_result(stats, "simplified")
        fanned = sum(merge_fanned_slices(g, model.opset) for g in list(model.graph.all_graphs()))
        if fanned:
            result.stats["simplified_slice-fanned-into-slices"] = fanned
            result = PassResult(True, dict(sorted(result.stats.items())), rules=result.rules)
        return result
