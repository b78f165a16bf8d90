"""Patterns split by a scope boundary: the producer in the main graph, its consumer inside an If branch,
a Loop body or a Scan body (the value crosses as a capture). A pass may rewrite such a pattern (in the
body, leaving the main-graph producer for dead-code elimination) or leave it, but must stay sound. The
rewrite framework refuses matches across scopes; optimize-transposes has its own matcher and does not.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
import subgraph_models as sm
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from subgraph_models import EDITED as E
from subgraph_models import REWROTE as R
from subgraph_models import UNTOUCHED as U
from subgraph_models import vi

import graphopt
from graphopt.pass_infra.registry import DEFAULT_REGISTRY
from graphopt.testing.asserts import assert_ir_consistent

S = sm.SHAPE
CONFIGS = sm.configurations()
FUSIONS = ("fuse-affine", "fuse-batchnorm", "fuse-conv-branches", "fuse-horizontal", "fuse-matmul-add",
           "fuse-space-to-depth",
           "fuse-normalization", "fuse-ort-contrib", "fuse-pad", "simplify-chains")


def _weights() -> list[onnx.TensorProto]:
    rng = np.random.default_rng(7)
    floats = dict(w1=rng.normal(0, .3, (3, 3, 3, 3)), w2=rng.normal(0, .3, (3, 3, 3, 3)),
                  w3=rng.normal(0, .3, (3, 3, 3, 3)), sc=rng.uniform(.5, 1.5, 3), bb=rng.normal(0, .1, 3),
                  mu=rng.normal(0, .1, 3), var=rng.uniform(.5, 1.5, 3), chan=rng.normal(0, 1, (1, 3, 1, 1)),
                  wm=rng.normal(0, .5, (4, 4)), bm=rng.normal(0, .1, 4), g=rng.uniform(.5, 1.5, 4),
                  b=rng.normal(0, .1, 4), two=2.0, eps=1e-5)
    ints = dict(pads=[0, 0, 1, 1, 0, 0, 1, 1], r1=[2, 48], r2=S, r24=[24, 4], last=[-1], zero=[0], trips=2,
                hw=[2, 3], two2=[2, 2], end2=[2**63 - 1] * 2,
                **{f"f{i}{j}": [i, j] for i in (0, 1) for j in (0, 1)})
    return [nh.from_array(np.asarray(v, np.float32), k) for k, v in floats.items()] + \
        [nh.from_array(np.asarray(v, np.int64), k) for k, v in ints.items()]


def _split_patterns() -> tuple[list[onnx.NodeProto], list[onnx.NodeProto], list[str]]:
    """Main-graph producers (each read only by the body), the body's consumers, and their results."""
    n = h.make_node
    main = [n("Conv", ["x", "w1"], ["p_bn"], pads=[1] * 4), n("Pad", ["x", "pads"], ["p_pad"]),
            n("Conv", ["x", "w2"], ["p_mul"], pads=[1] * 4), n("Conv", ["x", "w3"], ["p_relu"], pads=[1] * 4),
            n("Reshape", ["x", "r1"], ["p_reshape"]), n("Cast", ["x"], ["p_cast"], to=T.DOUBLE),
            n("Unsqueeze", ["x", "last"], ["p_unsq"]), n("Reshape", ["x", "r24"], ["m_rows"]),
            n("MatMul", ["m_rows", "wm"], ["p_mm"]), n("ReduceMean", ["x", "last"], ["m_mean"]),
            n("Sub", ["x", "m_mean"], ["p_centred"]), n("Transpose", ["x"], ["p_nhwc"], perm=[0, 2, 3, 1]),
            *(n("Slice", ["x", f"f{i}{j}", "end2", "hw", "two2"], [f"p_focus{i}{j}"])
              for i in (0, 1) for j in (0, 1))]
    body = [n("BatchNormalization", ["p_bn", "sc", "bb", "mu", "var"], ["o_bn"]),
            n("Conv", ["p_pad", "w1"], ["o_pad"]), n("Mul", ["p_mul", "chan"], ["o_mul"]),
            n("Relu", ["p_relu"], ["o_relu"]), n("Reshape", ["p_reshape", "r2"], ["o_reshape"]),
            n("Cast", ["p_cast"], ["o_cast"], to=T.FLOAT), n("Squeeze", ["p_unsq", "last"], ["o_squeeze"]),
            n("Add", ["p_mm", "bm"], ["q_mm"]), n("Reshape", ["q_mm", "r2"], ["o_mm"]),
            n("Concat", [f"p_focus{i}{j}" for i in (0, 1) for j in (0, 1)], ["q_focus"], axis=1),
            n("DepthToSpace", ["q_focus"], ["o_focus"], blocksize=2),
            n("Pow", ["p_centred", "two"], ["q_sq"]), n("ReduceMean", ["q_sq", "last"], ["q_var"]),
            n("Add", ["q_var", "eps"], ["q_ve"]), n("Sqrt", ["q_ve"], ["q_sd"]),
            n("Div", ["p_centred", "q_sd"], ["q_n"]), n("Mul", ["q_n", "g"], ["q_ng"]),
            n("Add", ["q_ng", "b"], ["o_ln"]), n("Relu", ["p_nhwc"], ["q_r"]),
            n("Transpose", ["q_r"], ["o_push"], perm=[0, 3, 1, 2])]
    return main, body, [name for node in body for name in node.output if name.startswith("o_")]


def _transpose_pair() -> tuple[list[onnx.NodeProto], list[onnx.NodeProto], list[str]]:
    """A Transpose in the main graph undone by one in the body, whose result is read further there."""
    return ([h.make_node("Transpose", ["x"], ["p_nhwc"], perm=[0, 2, 3, 1])],
            [h.make_node("Transpose", ["p_nhwc"], ["q_back"], perm=[0, 3, 1, 2]),
             h.make_node("Neg", ["q_back"], ["o_neg"])], ["o_neg"])


def _rename(nodes: list[onnx.NodeProto], prefix: str) -> list[onnx.NodeProto]:
    """Body-local names get ``prefix`` (names must be unique across scopes)."""
    local = {out for node in nodes for out in node.output}
    renamed = []
    for node in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.input[:] = [prefix + i if i in local else i for i in node.input]
        copy.output[:] = [prefix + o for o in node.output]
        renamed.append(copy)
    return renamed


def split_model(kind: str, parts: tuple[list, list, list[str]]) -> onnx.ModelProto:
    main, consumers, results = parts
    nodes = list(main)

    def body(prefix: str, extra: list[onnx.NodeProto], state: str) -> list[onnx.NodeProto]:
        total = h.make_node("Sum", [prefix + r for r in results] + [state], [prefix + "sum"])
        return [*_rename(consumers, prefix), total, *extra]

    if kind == "If":
        then = h.make_graph(body("t_", [], "x"), "then", [], [vi("t_sum", S)])
        other = h.make_graph([h.make_node("Neg", ["x"], ["e_o"])], "else", [], [vi("e_o", S)])
        nodes.append(h.make_node("If", ["c"], ["y"], name="cf", then_branch=then, else_branch=other))
        return sm.make_model(nodes, [vi("x", S), vi("c", [], T.BOOL)], [vi("y", S)], _weights())
    if kind == "Loop":
        extra = [h.make_node("Identity", ["l_cond"], ["l_cond_out"])]
        graph = h.make_graph(body("l_", extra, "l_s"), "body",
                             [vi("l_i", [], T.INT64), vi("l_cond", [], T.BOOL), vi("l_s", S)],
                             [vi("l_cond_out", [], T.BOOL), vi("l_sum", S)])
        nodes.append(h.make_node("Loop", ["trips", "", "x"], ["y"], name="cf", body=graph))
    else:
        extra = [h.make_node("Mul", ["s_sum", "s_x"], ["s_y"])]
        graph = h.make_graph(body("s_", extra, "s_s"), "body", [vi("s_s", S), vi("s_x", S)],
                             [vi("s_sum", S), vi("s_y", S)])
        nodes += [h.make_node("Unsqueeze", ["x", "zero"], ["seq"]),
                  h.make_node("Scan", ["x", "seq"], ["y", "ys"], name="cf", body=graph, num_scan_inputs=1)]
    return sm.make_model(nodes, [vi("x", S)], [vi("y", S)], _weights())


def _feeds(kind: str) -> tuple[dict[str, np.ndarray], ...]:
    x = np.random.default_rng(8).normal(0, 1, S).astype(np.float32)
    return tuple({"x": x, "c": np.array(flag)} for flag in (True, False)) if kind == "If" else ({"x": x},)


MODELS = {f"{name}-{kind}": (split_model(kind, parts()), _feeds(kind))
          for name, parts in (("split", _split_patterns), ("transpose-pair", _transpose_pair))
          for kind in sm.KINDS}
KNOWN_BUGS: dict[tuple[str, str], str] = {}  # (pass, model) -> reason, for a known bug marked xfail


@functools.cache
def outcome(label: str, model: str) -> sm.Outcome:
    proto, feeds = MODELS[model]
    return sm.check_pass(proto, feeds, *CONFIGS[label])


PAIRS = [pytest.param(label, model, id=f"{label}-{model}",
                      marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[(label, model)])]
                      if (label, model) in KNOWN_BUGS else [])
         for label in CONFIGS for model in MODELS]


def test_split_models_are_valid_and_capture_every_producer() -> None:
    from graphopt.numerics.run import run_proto

    for name, (proto, feeds) in MODELS.items():
        onnx.checker.check_model(proto, full_check=True)
        assert all(np.isfinite(v).all() for f in feeds for v in run_proto(proto, f).values()), name
        produced = {out for node in proto.graph.node for out in node.output if out.startswith("p_")}
        captured = set().union(*(sm.captures(b) for _, _, b in sm.bodies(proto.graph)))
        assert produced and produced <= captured, name  # every producer's consumer is in a body


@pytest.mark.parametrize(("label", "model"), PAIRS)
def test_pass_on_a_pattern_split_by_a_scope_is_sound(label: str, model: str) -> None:
    found = outcome(label, model)
    assert not found.problems, "\n".join(found.problems)


# What each pass does to the bodies of the split-pattern models (If/Loop/Scan).
SPLIT_COVERAGE = {label: {"If": U, "Loop": U, "Scan": U} for label in CONFIGS}
SPLIT_COVERAGE.update({
    "convert-layout": {"If": E, "Loop": U, "Scan": U},  # only the If branch reads x itself
    "convert-opset{target=11}": {"If": E, "Loop": E, "Scan": E},
    "convert-opset{target=17}": {"If": E, "Loop": E, "Scan": E},
    "optimize-transposes": {"If": R, "Loop": R, "Scan": R},
    "convert-precision": {"If": E, "Loop": E, "Scan": E},  # bodies read a Cast back to float32
})


def test_split_pattern_coverage_is_pinned() -> None:
    """Fusions never match across a scope (bodies untouched); optimize-transposes pushes the main-graph
    Transpose through the body's Relu, where it cancels."""
    table = {}
    for label in CONFIGS:
        row = {}
        for kind in sm.KINDS:
            labels = {what for _, what in outcome(label, f"split-{kind}").bodies.values()}
            row[kind] = R if R in labels else E if E in labels else U
        table[label] = row
    assert table == SPLIT_COVERAGE


@pytest.mark.parametrize("kind", sm.KINDS)
@pytest.mark.parametrize("label", FUSIONS)
def test_fusions_do_not_match_across_a_scope(label: str, kind: str) -> None:
    found = outcome(label, f"split-{kind}")
    assert found.exported is not None
    before = sm.op_counts(MODELS[f"split-{kind}"][0].graph)
    assert sm.op_counts(found.exported.graph) == before
    assert not any(key.startswith(("fused_", "simplified_")) for key in found.stats), found.stats


def _transpose_pair_in_if() -> onnx.ModelProto:
    """Minimal: t = Transpose(x); If(c) then Neg(Transpose(t)) else Abs(x)."""
    then = h.make_graph([h.make_node("Transpose", ["t"], ["u"], perm=[1, 0]),
                         h.make_node("Neg", ["u"], ["o"])], "then", [], [vi("o", [2, 3])])
    other = h.make_graph([h.make_node("Abs", ["x"], ["e"])], "else", [], [vi("e", [2, 3])])
    return sm.make_model([h.make_node("Transpose", ["x"], ["t"], perm=[1, 0]),
                          h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                         [vi("x", [2, 3]), vi("c", [], T.BOOL)], [vi("y", [2, 3])])


def test_optimize_transposes_cancels_a_pair_split_by_an_if_branch() -> None:
    """A Transpose in a branch reading a main-graph Transpose: the pair cancels, and the main-graph
    Transpose (now unread) is removed from its own graph, not from the branch."""
    model = graphopt.import_model(_transpose_pair_in_if())
    result = DEFAULT_REGISTRY.create("optimize-transposes").run(model)
    assert_ir_consistent(model)
    assert result.stats == {"cancelled": 1}
    assert sorted(n.op_type for n in model.graph.all_nodes()) == ["Abs", "If", "Neg"]


def _dead_capture_model() -> onnx.ModelProto:
    """Minimal: z = Sin(x) is read only by a dead Neg inside the then branch."""
    then = h.make_graph([h.make_node("Neg", ["z"], ["dead"]), h.make_node("Relu", ["x"], ["o"])], "then", [],
                        [vi("o", [2])])
    other = h.make_graph([h.make_node("Abs", ["x"], ["e"])], "else", [], [vi("e", [2])])
    return sm.make_model([h.make_node("Sin", ["x"], ["z"]),
                          h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)],
                         [vi("x", [2]), vi("c", [], T.BOOL)], [vi("y", [2])])


def test_dead_body_code_goes_in_one_run() -> None:
    model = graphopt.import_model(_dead_capture_model())
    result = DEFAULT_REGISTRY.create("eliminate-dead-code").run(model)
    assert result.stats["dead_nodes"] >= 1
    assert "Neg" not in [n.op_type for n in model.graph.all_nodes()]


def test_outer_value_read_only_by_dead_body_code_goes_in_the_same_run() -> None:
    model = graphopt.import_model(_dead_capture_model())
    DEFAULT_REGISTRY.create("eliminate-dead-code").run(model)
    assert [n.op_type for n in model.graph] == ["If"]
    assert not DEFAULT_REGISTRY.create("eliminate-dead-code").run(model).changed  # idempotent
