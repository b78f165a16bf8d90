"""Every built-in pass either rewrites If/Loop/Scan bodies correctly or leaves them untouched, on bodies
that capture outer-scope values (the models are built in tests/hostile/subgraph_models.py).

For each pass (convert-opset at two targets below the models' opset 20 and two above) and each model:
the pass runs, the IR stays consistent, the export passes onnx.checker, no body reads a name that is
not defined in an enclosing scope before the node holding it, a memory plan passes its verifier and
an arena run (plan-memory), and onnxruntime computes the original's outputs (the If model down both
branches; convert-layout compared in the original layout). What the pass did inside the bodies is
pinned per control-flow op in COVERAGE (and printed, for the record): ``rewrote`` (a body's own op
multiset changed), ``edited`` (same ops; an edge, attribute, constant or the order changed) or
``untouched`` (every body identical). The outer values the bodies read after each pass are pinned too.
"""

from __future__ import annotations

import functools
import json

import onnx
import pytest
import subgraph_models as sm
from subgraph_models import EDITED as E
from subgraph_models import REWROTE as R
from subgraph_models import UNTOUCHED as U

from graphopt.numerics.run import run_proto

CONFIGS = sm.configurations()
CASES = {case.name: case for case in sm.cases()}
ALL_U = {"If": U, "Loop": U, "Scan": U}
ALL_R = {"If": R, "Loop": R, "Scan": R}
ALL_E = {"If": E, "Loop": E, "Scan": E}
COVERAGE: dict[str, dict[str, str]] = {
    "convert-layout": ALL_E,  # bodies now read the boundary Transpose's output where they read x
    "convert-opset{target=11}": ALL_E,  # axes inputs (ReduceMean; Squeeze/Unsqueeze at 11) become attributes
    "convert-opset{target=17}": ALL_E,
    "convert-opset{target=21}": ALL_U,  # only version numbers change
    "convert-opset{target=23}": ALL_U,
    "convert-precision": ALL_E,  # bodies keep their types and read a Cast back to float32 of h
    "eliminate-common-subexpressions": ALL_R,
    "eliminate-dead-channels": ALL_U,  # these bodies hold no all-zero Conv channels
    "eliminate-dead-code": ALL_R,
    "fold-constants": ALL_R,
    "fuse-affine": ALL_R,
    "fuse-batchnorm": ALL_R,
    "fuse-conv-branches": ALL_U,  # these bodies hold no parallel branches; the scopes suite checks that
    "fuse-horizontal": ALL_U,  # neither matches across a body boundary
    "fuse-matmul-add": ALL_R,
    "fuse-normalization": ALL_R,
    "fuse-ort-contrib": ALL_R,
    "fuse-pad": ALL_R,
    "fuse-space-to-depth": ALL_U,  # these bodies hold no Focus stem
    "inline-functions": ALL_U,  # these models have no local functions
    "optimize-transposes": ALL_R,
    "plan-memory": ALL_U,  # plans the main graph only; bodies are opaque steps
    "prune-failing-branches": ALL_U,  # no branch of these models always fails
    "simplify-chains": ALL_R,
    "topological-sort": ALL_U,  # the fixtures are sorted already
}
# label -> (outer names some body stopped reading, outer values some body started reading), over all
# models; a name the original did not have is shown as <what defines it in the main graph>.
CAPTURE_CHANGES: dict[str, tuple[list[str], list[str]]] = {
    "convert-layout": (["x"], ["<Transpose>"]),
    "convert-precision": (["h", "h_dup", "h_id", "h_tt"], ["<Cast>"]),  # h is float16 outside now
    "eliminate-common-subexpressions": (["h_dup"], []),  # merged into h, which bodies read already
    "eliminate-dead-code": (["h_id"], []),  # Identity(h_dup) bypassed: h_dup
    "fold-constants": (["ia", "ib", "k"], ["<initializer>"]),  # Mul(ia, ib) folded inside, k outside
    "fuse-batchnorm": (["bn_bias", "bn_mean", "bn_scale", "bn_var", "w"], []),  # new body weights
    "optimize-transposes": (["h_tt"], []),  # the pair around h cancelled: bodies read h
    "simplify-chains": (["h_tt"], []),
}

# (label, case) -> reason: a pass known to break a model (xfail(strict=True): a fix shows up as XPASS)
KNOWN_BUGS: dict[tuple[str, str], str] = {}


@functools.cache
def outcome(label: str, case_name: str) -> sm.Outcome:
    case = CASES[case_name]
    return sm.check_pass(case.proto, case.feeds, *CONFIGS[label])


def _marks(label: str, case: str) -> list:
    reason = KNOWN_BUGS.get((label, case))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


PAIRS = [pytest.param(label, case, id=f"{label}-{case}", marks=_marks(label, case))
         for label in CONFIGS for case in CASES]


def test_every_builtin_pass_is_covered() -> None:
    """A new built-in pass must join this suite (and its row of COVERAGE)."""
    assert {name for name, _ in CONFIGS.values()} == set(sm.builtin_passes())
    assert len(sm.builtin_passes()) == 22
    assert set(COVERAGE) == set(CONFIGS)


def test_original_models_run_and_capture_outer_values() -> None:
    """The fixtures are what they claim: valid, runnable, and every body reads main-graph initializers,
    intermediates and the input (the nested If also values of the Loop body around it)."""
    for case in CASES.values():
        onnx.checker.check_model(case.proto, full_check=True)
        results = [run_proto(case.proto, feeds) for feeds in case.feeds]
        assert all(v.shape[-3:] == (3, 4, 4) for r in results for v in r.values())
        assert not sm.dangling(case.proto.graph)
        for path, _, body in sm.bodies(case.proto.graph):
            assert {"w", "bn_scale", "bn_bias", "bn_mean", "bn_var", "ia", "ib", "k", "h", "h_dup", "x"} \
                <= sm.captures(body), path
    if_out = [run_proto(CASES["if"].proto, feeds)["y"] for feeds in CASES["if"].feeds]
    assert float(abs(if_out[0] - if_out[1]).max()) > 1.0  # the branches differ
    paths = {case: [(p, op) for p, op, _ in sm.bodies(CASES[case].proto.graph)] for case in CASES}
    assert paths == {
        "if": [("if_main.else_branch", "If"), ("if_main.then_branch", "If")],
        "loop": [("loop_main.body", "Loop"), ("loop_main.body/if_nested.else_branch", "If"),
                 ("loop_main.body/if_nested.then_branch", "If")],
        "scan": [("scan_main.body", "Scan")]}
    loop = {p: sm.captures(b) for p, _, b in sm.bodies(CASES["loop"].proto.graph)}
    assert "loop_s" in loop["loop_main.body/if_nested.then_branch"]  # a value of the enclosing body
    assert {"loop_s", "loop_i"}.isdisjoint(loop["loop_main.body"])
    top = {p: sm.captures(b) for p, _, b in sm.bodies(CASES["if"].proto.graph)}
    assert {"h_id", "h_tt"} & top["if_main.then_branch"] == {"h_id"}
    assert {"h_id", "h_tt"} & top["if_main.else_branch"] == {"h_tt"}


@pytest.mark.parametrize(("label", "case"), PAIRS)
def test_pass_on_bodies_with_captures_is_sound(label: str, case: str) -> None:
    """IR consistent, onnx.checker clean, no dangling capture, outputs equal to the original's."""
    found = outcome(label, case)
    assert not found.problems, "\n".join(found.problems)
    assert set(found.bodies) == {p for p, _, _ in sm.bodies(CASES[case].proto.graph)}
    assert all(what in (U, E, R) for _, what in found.bodies.values())


@pytest.mark.parametrize(("label", "case"), PAIRS)
def test_captured_outer_values_stay_defined(label: str, case: str) -> None:
    """Every capture after the pass names a main-graph value (an initializer, an input or a node output)
    or, in the nested If, also a value of the Loop body; every body still reads from outside."""
    found = outcome(label, case)
    assert found.exported is not None, "\n".join(found.problems)
    graph = found.exported.graph
    main = {t.name for t in graph.initializer} | {v.name for v in graph.input}
    main |= {out for n in graph.node for out in n.output}
    loop_body = {p: b for p, _, b in sm.bodies(graph)}.get("loop_main.body")
    inner: set[str] = set()
    if loop_body is not None:
        inner = {out for n in loop_body.node for out in n.output} | {v.name for v in loop_body.input}
        inner |= {t.name for t in loop_body.initializer}
    for path, (_, names) in found.captures.items():
        allowed = main | inner if path.startswith("loop_main.body/") else main
        assert names and names <= allowed, (path, names - allowed)


def coverage_table() -> dict[str, dict[str, str]]:
    """label -> {If, Loop, Scan} -> the strongest thing the pass did to a body of that op (any model)."""
    rank = {U: 0, E: 1, R: 2}
    table: dict[str, dict[str, str]] = {}
    for label in CONFIGS:
        row = dict.fromkeys(sm.KINDS, U)
        for case in CASES:
            for op, what in outcome(label, case).bodies.values():
                if rank.get(what, 3) > rank.get(row[op], 3):
                    row[op] = what
        table[label] = row
    return table


def _defined_by(graph: onnx.GraphProto, name: str) -> str:
    producers = {out: n.op_type for n in graph.node for out in n.output}
    return producers.get(name) or ("initializer" if name in {t.name for t in graph.initializer} else "input")


def capture_changes() -> dict[str, tuple[list[str], list[str]]]:
    original = {name for case in CASES.values() for name in sm.names_defined(case.proto.graph)}
    changes = {}
    for label in CONFIGS:
        gone: set[str] = set()
        new: set[str] = set()
        for case in CASES:
            found = outcome(label, case)
            assert found.exported is not None, "\n".join(found.problems)
            for before, after in found.captures.values():
                gone |= before - after
                new |= {n if n in original else f"<{_defined_by(found.exported.graph, n)}>"
                        for n in after - before}
        if gone or new:
            changes[label] = (sorted(gone), sorted(new))
    return changes


def test_coverage_table_is_pinned() -> None:
    """The pass x If/Loop/Scan coverage: a change in what a pass does inside bodies shows up here."""
    table = coverage_table()
    print("\nsubgraph coverage (pass: If / Loop / Scan); see it with pytest -s")
    for label, row in table.items():
        print(f"  {label:34} {row['If']:10} {row['Loop']:10} {row['Scan']}")
    assert table == COVERAGE


def test_capture_changes_are_pinned() -> None:
    """Which outer values bodies stop or start reading: merged duplicates (h_dup -> h), removed no-ops
    (h_id -> h_dup), folded constants (k -> a new constant), weights fused into new body constants."""
    changes = capture_changes()
    print(json.dumps(changes, indent=1, sort_keys=True))
    assert changes == CAPTURE_CHANGES
