"""Models whose If, Loop and Scan bodies capture outer-scope values and hold what every pass wants to
rewrite (tests/hostile is not a package: import as a module).

Each body is a "kitchen": a Sum of fragments, one per pass's favourite pattern (Conv+BatchNormalization,
Pad+Conv+Relu, Conv*scale*1+bias, a Transpose pair, a Reshape chain, foldable constants, duplicate
subexpressions, dead code and no-ops, decomposed LayerNorm and Gelu, MatMul+Add, Cast/Unsqueeze
chains). Bodies read main-graph initializers (conv/BN/LayerNorm/Gemm weights, foldable operands) and
main-graph intermediates that passes themselves want to fold or merge: ``h_dup`` (a duplicate of ``h``),
``h_id`` (an Identity of it), ``h_tt`` (a cancelling Transpose pair around it) and ``k`` (Add of two
initializers). The Loop body holds an If whose branches read the Loop's own values and main-graph
values two scopes up. Everything is static-shaped, opset 20, and runs in onnxruntime.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

OPSET = 20
SHAPE = [2, 3, 4, 4]
KINDS = ("If", "Loop", "Scan")
# main-graph intermediates the bodies capture (each one something a pass rewrites in the main graph)
OUTER_INTERMEDIATES = ("h", "h_dup", "h_id", "h_tt", "k")


class Scope:
    """Nodes and initializers of one graph under construction; names are ``<prefix><stem><n>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.nodes, self.inits, self.count = prefix, [], [], 0

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{self.prefix}{stem}{self.count}"

    def op(self, op_type: str, inputs: list[str], out: str | None = None, name: str | None = None,
           **attrs: object) -> str:
        out = out or self.fresh(op_type.lower())
        self.nodes.append(h.make_node(op_type, inputs, [out], name=name or self.fresh(op_type), **attrs))
        return out

    def const(self, values: object, dtype: type = np.float32, node: bool = False) -> str:
        """A body-local constant: an initializer, or (``node``) a Constant node."""
        name = self.fresh("c")
        tensor = nh.from_array(np.asarray(values, dtype=dtype), name)
        if node:
            self.nodes.append(h.make_node("Constant", [], [name], value=tensor))
        else:
            self.inits.append(tensor)
        return name


def _per_channel(values: list[float]) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(1, 3, 1, 1)


# ----- fragments: (scope, input name, outer names) -> output name of shape SHAPE ---------------------
def conv_bn(s: Scope, t: str, o: dict[str, str]) -> str:
    conv = s.op("Conv", [t, o["w"]], pads=[1, 1, 1, 1])
    return s.op("BatchNormalization", [conv, o["bn_scale"], o["bn_bias"], o["bn_mean"], o["bn_var"]])


def pad_conv_relu(s: Scope, t: str, o: dict[str, str]) -> str:
    pad = s.op("Pad", [t, s.const([0, 0, 1, 1, 0, 0, 1, 1], np.int64)])
    return s.op("Relu", [s.op("Conv", [pad, o["w"], o["wb"]])])


def conv_affine(s: Scope, t: str, o: dict[str, str]) -> str:
    conv = s.op("Conv", [t, o["w"]], pads=[1, 1, 1, 1])
    scaled = s.op("Mul", [conv, s.const(_per_channel([0.5, -1.5, 2.0]))])
    unit = s.op("Mul", [scaled, s.const(1.0, node=True)])  # Mul by 1
    return s.op("Add", [unit, s.const(_per_channel([0.1, 0.2, -0.3]))])


def transposes(s: Scope, t: str, o: dict[str, str]) -> str:
    shifted = s.op("Add", [t, o["k"]])
    return s.op("Transpose", [s.op("Transpose", [shifted], perm=[0, 2, 3, 1])], perm=[0, 3, 1, 2])


def reshapes(s: Scope, t: str, o: dict[str, str]) -> str:
    flat = s.op("Reshape", [t, s.const([2, 48], np.int64)])
    mid = s.op("Reshape", [flat, s.const([6, 16], np.int64)])
    return s.op("Reshape", [mid, s.const(SHAPE, np.int64)])


def folds(s: Scope, t: str, o: dict[str, str]) -> str:
    local = s.op("Add", [s.const(_per_channel([1.0, 2.0, 3.0])), s.const(0.25, node=True)])
    captured = s.op("Mul", [o["ia"], o["ib"]])  # both operands are main-graph initializers
    return s.op("Add", [s.op("Add", [t, local]), captured])


def duplicates(s: Scope, t: str, o: dict[str, str]) -> str:
    twice = s.op("Add", [s.op("Relu", [t]), s.op("Relu", [t])])
    # duplicates only once the main graph's h_dup is merged into h
    outer = s.op("Mul", [s.op("Sigmoid", [o["h"]]), s.op("Sigmoid", [o["h_dup"]])])
    return s.op("Sub", [twice, s.op("Abs", [outer])])


def reads_input(s: Scope, t: str, o: dict[str, str]) -> str:
    """Reads the main graph's input directly (convert-layout puts a Transpose behind it)."""
    return s.op("Sub", [t, s.op("Abs", [o["x"]])])


def dead_and_noops(s: Scope, t: str, o: dict[str, str]) -> str:
    s.op("Sigmoid", [t])  # unused
    s.op("Neg", [o["h"]])  # unused, reads an outer value
    same = s.op("Cast", [s.op("Identity", [t])], to=T.FLOAT)
    return s.op("Dropout", [same])


def layernorm(s: Scope, t: str, o: dict[str, str]) -> str:
    mean = s.op("ReduceMean", [t, s.const([-1], np.int64)])
    diff = s.op("Sub", [t, mean])
    var = s.op("ReduceMean", [s.op("Pow", [diff, s.const(2.0)]), s.const([-1], np.int64)])
    std = s.op("Sqrt", [s.op("Add", [var, s.const(1e-5)])])
    return s.op("Add", [s.op("Mul", [s.op("Div", [diff, std]), o["gamma"]]), o["beta"]])


def gelu(s: Scope, t: str, o: dict[str, str]) -> str:
    erf = s.op("Erf", [s.op("Div", [t, s.const(np.sqrt(2.0))])])
    return s.op("Mul", [s.op("Mul", [t, s.op("Add", [erf, s.const(1.0)])]), s.const(0.5)])


def matmul_add(s: Scope, t: str, o: dict[str, str]) -> str:
    rows = s.op("Reshape", [t, s.const([24, 4], np.int64)])
    gemm = s.op("Add", [s.op("MatMul", [rows, o["wm"]]), o["bm"]])
    return s.op("Reshape", [gemm, s.const(SHAPE, np.int64)])


def casts(s: Scope, t: str, o: dict[str, str]) -> str:
    back = s.op("Cast", [s.op("Cast", [t], to=T.DOUBLE)], to=T.FLOAT)
    return s.op("Squeeze", [s.op("Unsqueeze", [back, s.const([0], np.int64)]), s.const([0], np.int64)])


Fragment = Callable[[Scope, str, dict[str, str]], str]
ALL_FRAGMENTS: tuple[Fragment, ...] = (conv_bn, pad_conv_relu, conv_affine, transposes, reshapes, folds,
                                       duplicates, dead_and_noops, layernorm, gelu, matmul_add, casts,
                                       reads_input)
SMALL_FRAGMENTS: tuple[Fragment, ...] = (conv_bn, transposes, folds, duplicates, dead_and_noops,
                                         reads_input)


def kitchen(s: Scope, t: str, o: dict[str, str], fragments: tuple[Fragment, ...] = ALL_FRAGMENTS) -> str:
    """The Sum of every fragment applied to ``t``."""
    return s.op("Sum", [fragment(s, t, o) for fragment in fragments])


def vi(name: str, shape: list[int] | None, elem: int = T.FLOAT) -> onnx.ValueInfoProto:
    return h.make_tensor_value_info(name, elem, shape)


def _graph(s: Scope, name: str, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
           ) -> onnx.GraphProto:
    return h.make_graph(s.nodes, name, inputs, outputs, s.inits)


def _main_prelude(rng: np.random.Generator) -> tuple[Scope, dict[str, str]]:
    """Main-graph weights and the intermediates bodies capture."""
    m = Scope("m_")
    weights = {
        "w": rng.normal(0, 0.3, (3, 3, 3, 3)), "wb": rng.normal(0, 0.1, 3),
        "bn_scale": rng.uniform(0.5, 1.5, 3), "bn_bias": rng.normal(0, 0.1, 3),
        "bn_mean": rng.normal(0, 0.1, 3), "bn_var": rng.uniform(0.5, 1.5, 3),
        "gamma": rng.uniform(0.5, 1.5, 4), "beta": rng.normal(0, 0.1, 4),
        "wm": rng.normal(0, 0.5, (4, 4)), "bm": rng.normal(0, 0.1, 4),
        "ia": rng.normal(0, 1, (1, 3, 1, 1)), "ib": rng.normal(0, 1, (1, 3, 1, 1)),
        "ka": rng.normal(0, 1, (1, 3, 1, 1)), "kb": rng.normal(0, 1, (1, 3, 1, 1)),
    }
    m.inits = [nh.from_array(np.asarray(v, np.float32), k) for k, v in weights.items()]
    o = {k: k for k in weights} | {"x": "x"}
    m.op("Relu", ["x"], out="h")
    m.op("Relu", ["x"], out="h_dup")  # merged into h by eliminate-common-subexpressions
    m.op("Identity", ["h_dup"], out="h_id")  # removed by eliminate-dead-code
    m.op("Transpose", [m.op("Transpose", ["h"], perm=[0, 2, 3, 1])], out="h_tt", perm=[0, 3, 1, 2])
    m.op("Add", ["ka", "kb"], out="k")  # folded by fold-constants
    o.update({name: name for name in OUTER_INTERMEDIATES})
    return m, o


def make_model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
               outputs: list[onnx.ValueInfoProto], inits: Sequence[onnx.TensorProto] = (), *,
               opset: int = OPSET, ir_version: int = 10) -> onnx.ModelProto:
    """A model whose main graph is called 'main'."""
    graph = h.make_graph(nodes, "main", inputs, outputs, list(inits))
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def _model(m: Scope, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto]
           ) -> onnx.ModelProto:
    return make_model(m.nodes, inputs, outputs, m.inits)


def if_model() -> onnx.ModelProto:
    """``If(c)``: the then branch works on ``h_id``, the else branch on ``-h_tt`` (so they differ)."""
    m, o = _main_prelude(np.random.default_rng(1))
    branches = {}
    for branch, prefix, t in (("then_branch", "then_", "h_id"), ("else_branch", "else_", "h_tt")):
        s = Scope(prefix)
        out = kitchen(s, t if branch == "then_branch" else s.op("Neg", [t]), o)
        branches[branch] = _graph(s, branch, [], [vi(out, SHAPE)])
    m.nodes.append(h.make_node("If", ["c"], ["if_out"], name="if_main", **branches))
    m.op("Add", ["if_out", "h"], out="y")
    return _model(m, [vi("x", SHAPE), vi("c", [], T.BOOL)], [vi("y", SHAPE)])


def loop_model() -> onnx.ModelProto:
    """A 3-trip Loop carrying ``h_id``; its body holds an If on the iteration number whose branches read
    the Loop's carried value, the body's own result and main-graph values."""
    m, o = _main_prelude(np.random.default_rng(2))
    m.inits.append(nh.from_array(np.array(3, np.int64), "trips"))
    s = Scope("loop_")
    f = kitchen(s, "loop_s", o)
    first = s.op("Less", ["loop_i", s.const(1, np.int64)])
    nested = {}
    for branch, prefix, t in (("then_branch", "in_then_", "loop_s"), ("else_branch", "in_else_", f)):
        inner = Scope(prefix)
        out = inner.op("Add", [kitchen(inner, t, o, SMALL_FRAGMENTS), "h"])
        nested[branch] = _graph(inner, branch, [], [vi(out, SHAPE)])
    s.nodes.append(h.make_node("If", [first], ["loop_if_out"], name="if_nested", **nested))
    s.op("Mul", [s.op("Add", [f, "loop_if_out"]), s.const(0.1)], out="loop_s_next")
    s.op("Identity", ["loop_cond"], out="loop_cond_out")
    s.op("Add", ["loop_s", "h_tt"], out="loop_scan")
    body = _graph(s, "loop_body", [vi("loop_i", [], T.INT64), vi("loop_cond", [], T.BOOL),
                                   vi("loop_s", SHAPE)],
                  [vi("loop_cond_out", [], T.BOOL), vi("loop_s_next", SHAPE), vi("loop_scan", SHAPE)])
    m.nodes.append(h.make_node("Loop", ["trips", "", "h_id"], ["loop_final", "loop_stack"], name="loop_main",
                               body=body))
    m.op("Add", ["loop_final", "h"], out="y")
    return _model(m, [vi("x", SHAPE)], [vi("y", SHAPE), vi("loop_stack", [3, *SHAPE])])


def scan_model() -> onnx.ModelProto:
    """A Scan over ``[h, h_tt]`` stacked, state starting at ``h_id``; the body reads ``h_id`` and weights."""
    m, o = _main_prelude(np.random.default_rng(3))
    axis0 = m.const([0], np.int64)
    m.op("Concat", [m.op("Unsqueeze", ["h", axis0]), m.op("Unsqueeze", ["h_tt", axis0])], out="seq", axis=0)
    s = Scope("scan_")
    f = kitchen(s, s.op("Add", ["scan_state", "scan_x"]), o)
    s.op("Mul", [f, s.const(0.1)], out="scan_state_next")
    s.op("Add", ["scan_x", "h_id"], out="scan_y")
    body = _graph(s, "scan_body", [vi("scan_state", SHAPE), vi("scan_x", SHAPE)],
                  [vi("scan_state_next", SHAPE), vi("scan_y", SHAPE)])
    m.nodes.append(h.make_node("Scan", ["h_id", "seq"], ["scan_final", "scan_stack"], name="scan_main",
                               body=body, num_scan_inputs=1))
    m.op("Add", ["scan_final", "h"], out="y")
    return _model(m, [vi("x", SHAPE)], [vi("y", SHAPE), vi("scan_stack", [2, *SHAPE])])


@dataclass(frozen=True)
class Case:
    """A model and the feeds it is checked on (an If is run down both branches)."""

    name: str
    proto: onnx.ModelProto
    feeds: tuple[dict[str, np.ndarray], ...]


def cases() -> list[Case]:
    x = np.random.default_rng(0).normal(0, 1, SHAPE).astype(np.float32)
    both = tuple({"x": x, "c": np.array(flag)} for flag in (True, False))
    return [Case("if", if_model(), both), Case("loop", loop_model(), ({"x": x},)),
            Case("scan", scan_model(), ({"x": x},))]


# ----- reading exported protos ---------------------------------------------------------------------
def bodies(graph: onnx.GraphProto, path: str = "") -> Iterator[tuple[str, str, onnx.GraphProto]]:
    """(path, holder op type, body) for every subgraph, depth first; paths use node names (an unnamed
    node is ``<op>#<n>``, the n-th of its op in its graph)."""
    seen: Counter = Counter()
    for node in graph.node:
        label = node.name or f"{node.op_type}#{seen[node.op_type]}"
        seen[node.op_type] += 1
        for attr in node.attribute:
            subs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for index, sub in enumerate(subs):
                where = f"{path}{label}.{attr.name}" + (f"[{index}]" if len(subs) > 1 else "")
                yield where, node.op_type, sub
                yield from bodies(sub, where + "/")


def op_counts(graph: onnx.GraphProto) -> Counter:
    """The multiset of a body's own nodes (Constant nodes count as the constants they are)."""
    return Counter(f"{n.domain}::{n.op_type}" if n.domain else n.op_type
                   for n in graph.node if n.op_type != "Constant")


def structure(graph: onnx.GraphProto) -> tuple:
    """A body's nodes (edges, attributes; nested graphs by name only), constants, inputs and outputs.

    Value-info annotations are left out: passes refresh inferred types, which is not a rewrite."""
    def attr(a: onnx.AttributeProto) -> bytes:
        if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
            return a.name.encode()
        return a.SerializeToString(deterministic=True)
    nodes = [(n.op_type, n.domain, tuple(n.input), tuple(n.output), tuple(sorted(map(attr, n.attribute))))
             for n in graph.node]
    inits = sorted((t.name, t.SerializeToString(deterministic=True)) for t in graph.initializer)
    return (nodes, inits, [v.name for v in graph.input], [v.name for v in graph.output])


def captures(graph: onnx.GraphProto) -> set[str]:
    """Names a body (with its nested bodies) reads but does not define: its outer-scope captures."""
    defined = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    defined |= {out for n in graph.node for out in n.output}
    read = {name for n in graph.node for name in n.input if name}
    read |= {v.name for v in graph.output}
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                read |= captures(sub)
    return read - defined


def names_defined(graph: onnx.GraphProto) -> set[str]:
    """Every name a graph and its nested bodies define."""
    found = {v.name for v in graph.input} | {t.name for t in graph.initializer}
    found |= {out for n in graph.node for out in n.output}
    for _, _, body in bodies(graph):
        found |= {v.name for v in body.input} | {t.name for t in body.initializer}
        found |= {out for n in body.node for out in n.output}
    return found


def dangling(graph: onnx.GraphProto, outer: frozenset[str] = frozenset()) -> list[str]:
    """Every body read of a name not defined in scope before the node that holds the body."""
    scope = set(outer) | {v.name for v in graph.input} | {t.name for t in graph.initializer}
    problems = []
    for node in graph.node:
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                missing = sorted(captures(sub) - scope)
                problems += [f"{node.name}.{attr.name} reads undefined {name!r}" for name in missing]
                problems += dangling(sub, frozenset(scope))
        scope.update(node.output)
    return problems


# ----- the passes and running one ----------------------------------------------------------------------
OPSET_TARGETS = (11, 17, 21, 23)  # the kitchen models are at opset 20: two targets below, two above


def builtin_passes() -> list[str]:
    from graphopt.pass_infra.registry import DEFAULT_REGISTRY

    passes = DEFAULT_REGISTRY.all().items()
    return sorted(name for name, cls in passes if cls.__module__.startswith("graphopt.passes"))


def configurations() -> dict[str, tuple[str, dict[str, str]]]:
    """Label -> (pass name, options): every built-in pass, convert-opset once per target."""
    found: dict[str, tuple[str, dict[str, str]]] = {}
    for name in builtin_passes():
        if name == "convert-opset":
            found.update({f"{name}{{target={t}}}": (name, {"target": str(t)}) for t in OPSET_TARGETS})
        elif name == "convert-precision":  # float32 interface, so outputs compare by value
            found[name] = (name, {"keep_io_types": "true"})
        else:
            found[name] = (name, {})
    return found


# ----- running a pass and judging what it did ------------------------------------------------------
UNTOUCHED, EDITED, REWROTE = "untouched", "edited", "rewrote"


@dataclass
class Outcome:
    """What one pass did to one model; problems are collected (not raised) so that the coverage table
    can still be read when a pass misbehaves."""

    problems: list[str] = field(default_factory=list)
    bodies: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (holder op, label)
    captures: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)  # path -> (before, after)
    stats: dict = field(default_factory=dict)
    exported: onnx.ModelProto | None = None


def body_label(before: onnx.GraphProto, after: onnx.GraphProto) -> str:
    """``rewrote``: the body's own op multiset changed; ``edited``: same ops, but an edge, attribute,
    constant or the order differs; ``untouched``: identical."""
    if op_counts(before) != op_counts(after):
        return REWROTE
    return UNTOUCHED if structure(before) == structure(after) else EDITED


def check_pass(proto: onnx.ModelProto, feeds: Sequence[dict[str, np.ndarray]], name: str,
               options: dict[str, str] | None = None) -> Outcome:
    """Run pass ``name`` on ``proto`` imported; check the IR, onnx.checker, scoping of every body read,
    a memory plan (plan-memory) and onnxruntime's outputs in the original layout against the original's."""
    import graphopt
    from graphopt.memory import METADATA_KEY, MemoryPlan
    from graphopt.memory.execute import check_by_execution
    from graphopt.memory.verify import check_plan
    from graphopt.numerics.compare import compare_outputs
    from graphopt.numerics.interface import adapt_feeds, adapt_outputs
    from graphopt.numerics.run import run_proto
    from graphopt.onnx_io.exporter import export_model
    from graphopt.pass_infra.registry import DEFAULT_REGISTRY
    from graphopt.testing.asserts import assert_ir_consistent

    model = graphopt.import_model(proto)
    before = {path: body for path, _, body in bodies(export_model(model).graph)}
    found = Outcome()
    try:
        found.stats = DEFAULT_REGISTRY.create(name, options or {}).run(model).stats
    except Exception as exc:  # a pass that raises is a finding, reported by the caller
        found.problems.append(f"run raised {type(exc).__name__}: {exc}")
        return found
    try:
        assert_ir_consistent(model)  # the verifier (scoping included), use lists, onnx.checker
    except Exception as exc:
        found.problems.append(f"IR inconsistent: {type(exc).__name__}: {exc}")
    found.exported = exported = export_model(model)
    try:
        onnx.checker.check_model(exported, full_check=True)
    except Exception as exc:
        found.problems.append(f"onnx.checker (full): {exc}")
    found.problems += dangling(exported.graph)
    for path, op, body in bodies(exported.graph):
        found.bodies[path] = (op, body_label(before[path], body) if path in before else "new")
        found.captures[path] = (captures(before[path]) if path in before else set(), captures(body))
    found.bodies.update({path: ("?", "removed") for path in before if path not in found.bodies})
    if name == "plan-memory":
        plan = MemoryPlan.from_json(model.metadata_props[METADATA_KEY])
        found.problems += [f"plan: {p}" for p in check_plan(exported, plan)]
        for f in feeds:
            try:
                found.problems += [f"arena run: {p}" for p in check_by_execution(exported, plan, f)]
            except Exception as exc:  # the arena run stops at a tensor larger than planned
                found.problems.append(f"arena run: {type(exc).__name__}: {exc}")
    for f in feeds:
        try:
            actual = adapt_outputs(model, run_proto(exported, adapt_feeds(model, f)))
        except Exception as exc:
            found.problems.append(f"onnxruntime: {exc}")
            break
        flags = {k: v.tolist() for k, v in f.items() if v.dtype == np.bool_}
        # convert-precision alone (unchecked) may move each O(1) value by float16's rounding, even where
        # the original's output cancels to 0; optimize's drift-budget check would roll such a model back
        budget = (1e-2, 1e-2) if name == "convert-precision" else None
        found.problems += [f"{m} (feeds {flags})"
                           for m in compare_outputs(run_proto(proto, f), actual, budget)]
    return found
