"""Edge cases of bodies that capture outer-scope values, each run through every built-in pass.

- bodies whose axes/pads/split/shape operands are captured main-graph initializers (opset 20), and the
  opset-11 attribute forms of the same ops (convert-opset moves them between inputs and attributes);
- If nodes with a constant condition: one nested in a Loop body whose taken branch reads the Loop's values
  and a main-graph constant (also read by the main graph) through a Transpose sandwich, one in the main
  graph whose taken branch holds a Loop (fold-constants inlines both);
- bodies whose outputs are outer values, body inputs or constants (no-ops that cannot be bypassed);
- dynamic shapes: a Loop-carried value that grows (its Shape is read in the body) and an If whose
  branches give different shapes;
- an IR 3 model whose captured initializer is also a graph input (a default the caller may override).
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
import subgraph_models as sm

CONFIGS = sm.configurations()

OPSET20_BODY = """
    {p}m = ReduceMean(x, axes)
    {p}p = Pad(x, pads)
    {p}ps = ReduceSum({p}p, axes)
    {p}s0, {p}s1 = Split <axis = 0> (x, split)
    {p}u = Unsqueeze({p}s0, uax)
    {p}q = Squeeze({p}u, uax)
    {p}r = Reshape(x, shape)
    {p}rs = ReduceSum <keepdims = 0> ({p}r)
    {p}sm = Softmax <axis = 0> (x)
    {p}smr = ReduceSum({p}sm, axes)"""
OPSET11_BODY = """
    {p}m = ReduceMean <axes = [-1]> (x)
    {p}p = Pad(x, pads)
    {p}ps = ReduceSum <axes = [-1]> ({p}p)
    {p}s0, {p}s1 = Split <axis = 0, split = [1, 1]> (x)
    {p}u = Unsqueeze <axes = [0]> ({p}s0)
    {p}q = Squeeze <axes = [0]> ({p}u)
    {p}r = Reshape(x, shape)
    {p}rs = ReduceSum <keepdims = 0> ({p}r)
    {p}sm = Softmax <axis = 0> (x)
    {p}sr = ReduceSum <axes = [-1]> ({p}sm)
    {p}smr = Clip({p}sr, lo, hi)"""
BODY_TAIL = """
    {p}a = Add({p}m, {p}ps)
    {p}a2 = Add({p}a, {p}smr)
    {p}a3 = Sub({p}a2, {p}q)
    {p}o = Add({p}a3, {p}rs)"""
OPERANDS_MAIN = """
{header}
main (float[2, 2] x, bool c) => (float[2, 2] yf, float[1, 2, 2] ys) <{inits}>
{{
  y = If (c) <then_branch = g1 () => (float[2, 2] t_o) {{ {t} }},
              else_branch = g2 () => (float[2, 2] e_n) {{ {e}
                e_n = Neg(e_o) }}>
  yl = Loop (trips, "", y) <body = lb (int64 li, bool lc, float[2, 2] ls) => (bool lc2, float[2, 2] ls2) {{
    {l}
    lc2 = Identity(lc)
    ls2 = Add(ls, l_o) }}>
  seq = {unsqueeze}
  yf, ys = Scan <num_scan_inputs = 1, body = sb (float[2, 2] ss, float[2, 2] sx) => (float[2, 2] ss2,
                                                                                    float[2, 2] sy) {{
    {s}
    ss2 = Add(ss, s_o)
    sy = Mul(ss2, sx) }}> (y, seq)
}}"""
INTS = "int64[4] pads = {0, 1, 0, 1}, int64[2] shape = {4, 1}, int64 trips = {2}"


def _operands(body: str, header: str, inits: str, unsqueeze: str) -> onnx.ModelProto:
    text = {k: (body + BODY_TAIL).format(p=f"{k}_") for k in "tels"}
    text.update(header=header, inits=inits, unsqueeze=unsqueeze)
    return onnx.parser.parse_model(OPERANDS_MAIN.format(**text))


def sandwich(p: str, src: str) -> str:
    """A Transpose pair around Mul by the main-graph constant ``cn`` (the main graph reads it too)."""
    return (f"{p}t1 = Transpose <perm = [0, 2, 3, 1]> ({src})\n {p}m = Mul({p}t1, cn)\n {p}r = Relu({p}m)\n"
            f" {p}t2 = Transpose <perm = [0, 3, 1, 2]> ({p}r)\n {p}o = Add({p}t2, hx)")


F4 = "float[1, 3, 2, 2]"
CONSTANT_IF_IN_LOOP = f"""
<ir_version: 10, opset_import: ["" : 20]>
main ({F4} x, bool c) => ({F4} out)
  <float[1, 1, 1, 3] cn = {{0.5, -2.0, 1.5}}, bool yes = {{1}}, float half = {{0.5}}, int64 trips = {{2}}>
{{
  hx = Relu(x)
  xt = Transpose <perm = [0, 2, 3, 1]> (x)
  xm = Mul(xt, cn)
  xb = Transpose <perm = [0, 3, 1, 2]> (xm)
  y = If (c) <then_branch = g1 () => ({F4} t_o) {{ {sandwich("t_", "hx")} }},
              else_branch = g2 () => ({F4} e_o) {{ {sandwich("e_", "x")} }}>
  yl = Loop (trips, "", y) <body = lb (int64 li, bool lc, {F4} ls) => (bool lc2, {F4} ls2) {{
    l_pre = Sigmoid(ls)
    l_if = If (yes) <then_branch = g3 () => ({F4} it_out) {{ {sandwich("it_", "ls")}
                       it_out = Add(it_o, l_pre) }},
                     else_branch = g4 () => ({F4} ie_out) {{ ie_out = Neg(ls) }}>
    ls2 = Mul(l_if, half)
    lc2 = Identity(lc) }}>
  out = Add(yl, xb)
}}"""
CONSTANT_IF_HOLDING_LOOP = """
<ir_version: 10, opset_import: ["" : 20]>
main (float[2, 3] x) => (float[2, 3] y) <int64 trips = {2}, bool yes = {1}>
{
  hx = Relu(x)
  y = If (yes) <then_branch = g1 () => (float[2, 3] t_o) {
                  t_loc = Sigmoid(hx)
                  t_o = Loop (trips, "", x) <body = lb (int64 li, bool lc, float[2, 3] ls)
                                                    => (bool lc2, float[2, 3] ls2) {
                    la = Add(ls, t_loc)
                    ls2 = Mul(la, hx)
                    lc2 = Identity(lc) }> },
                else_branch = g2 () => (float[2, 3] e_o) { e_o = Neg(x) }>
}"""
OUTPUTS = """
<ir_version: 10, opset_import: ["" : 20]>
main (float[2, 3] x, bool c) => (float[2, 3] y, float[2, 3] yc, float[2, 3] yl, float[2, 2, 3] ylc,
                                 float[2, 1, 3] ylk, float[2, 2, 3] ylm, float[2, 3] yf, float[2, 1, 3] ysk,
                                 float[2, 3] ys)
  <float[1, 3] k = {1.0, 2.0, 3.0}, int64 trips = {2}, int64[2] shp = {2, 3}, float one = {1.0},
   float zero = {0.0}>
{
  hx = Relu(x)
  y, yc = If (c) <then_branch = g1 () => (float[2, 3] t_o, float[2, 3] t_c) {
                    t_o = Identity(hx)
                    t_c = Constant <value = float[2, 3] {1.0, 1.0, 1.0, 1.0, 1.0, 1.0}> () },
                  else_branch = g2 () => (float[2, 3] e_o, float[2, 3] e_c) {
                    e_o = Dropout(x)
                    e_k = Cast <to = 1> (k)
                    e_c = Expand(e_k, shp) }>
  yl, ylc, ylk, ylm = Loop (trips, "", y) <body = lb (int64 li, bool lc, float[2, 3] ls) => (bool lc2,
      float[2, 3] ls2, float[2, 3] lsc, float[1, 3] lk, float[2, 3] lm) {
    ls2 = Identity(ls)
    lsc = Cast <to = 1> (ls)
    lc2 = Identity(lc)
    lk = Transpose <perm = [0, 1]> (k)
    lm = Mul(hx, one) }>
  yf, ysk, ys = Scan <num_scan_inputs = 1, body = sb (float[2, 3] ss, float[3] sx) => (float[2, 3] ss2,
                                                                                      float[1, 3] sk,
                                                                                      float[3] sy) {
    ss2 = Identity(ss)
    sk = Identity(k)
    sy = Add(sx, zero) }> (yl, x)
}"""
GROWING_LOOP = """
<ir_version: 10, opset_import: ["" : 20]>
main (float[1] x) => (float[n] sf, float[m, 1] stack) <float[1] one = {1.0}, int64 trips = {3}>
{
  sf, stack = Loop (trips, "", one) <body = lb (int64 i, bool cond, float[k] s)
                                               => (bool cond_out, float[j] s2, float[1] out) {
    s2 = Concat <axis = 0> (s, one)
    sh = Shape(s2)
    n = ReduceSum(sh)
    nf = Cast <to = 1> (n)
    out = Add(nf, x)
    cond_out = Identity(cond) }>
}"""
UNEQUAL_BRANCHES = """
<ir_version: 10, opset_import: ["" : 20]>
main (float[2, 3] x, bool c) => (float[r, 3] out) <int64[1] ax = {0}>
{
  y = If (c) <then_branch = g1 () => (float[2, 3] t_o) { t_o = Relu(x) },
              else_branch = g2 () => (float[4, 3] e_o) { e_o = Concat <axis = 0> (x, x) }>
  sh = Shape(y)
  d0 = Gather(sh, ax)
  d0f = Cast <to = 1> (d0)
  out = Mul(y, d0f)
}"""
OVERRIDABLE = """
<ir_version: 3, opset_import: ["" : 11]>
main (float[2, 3] x, bool c, float[1, 3] w, float[1, 3] k) => (float[2, 3] y)
  <float[1, 3] w = {1.0, 2.0, 3.0}, float[1, 3] k = {0.5, 0.5, 0.5}>
{
  y = If (c) <then_branch = g1 () => (float[2, 3] t_o) { t_m = Mul(w, k)
                                                          t_o = Add(t_m, x) },
              else_branch = g2 () => (float[2, 3] e_o) { e_o = Sub(x, w) }>
}"""


def _floats(shape: list[int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, shape).astype(np.float32)


def both(x: np.ndarray) -> tuple[dict[str, np.ndarray], ...]:
    """Feeds down each branch of the If on ``c``."""
    return tuple({"x": x, "c": np.array(flag)} for flag in (True, False))


def _models() -> dict[str, tuple[onnx.ModelProto, tuple[dict[str, np.ndarray], ...]]]:
    x2, x23, x4 = _floats([2, 2]), _floats([2, 3]), _floats([1, 3, 2, 2])
    parse = onnx.parser.parse_model
    return {
        "opset20-operands": (_operands(
            OPSET20_BODY, '<ir_version: 10, opset_import: ["" : 20]>',
            f"int64[1] axes = {{-1}}, int64[2] split = {{1, 1}}, int64[1] uax = {{0}}, {INTS}",
            "Unsqueeze(yl, uax)"), both(x2)),
        "opset11-attributes": (_operands(
            OPSET11_BODY, '<ir_version: 6, opset_import: ["" : 11]>',
            f"float lo = {{0.1}}, float hi = {{0.9}}, {INTS}", "Unsqueeze <axes = [0]> (yl)"), both(x2)),
        "constant-if-in-loop": (parse(CONSTANT_IF_IN_LOOP), both(x4)),
        "constant-if-holding-loop": (parse(CONSTANT_IF_HOLDING_LOOP), ({"x": x23},)),
        "outputs": (parse(OUTPUTS), both(x23)),
        "growing-loop": (parse(GROWING_LOOP), ({"x": np.array([0.5], np.float32)},)),
        "unequal-branches": (parse(UNEQUAL_BRANCHES), both(x23)),
        "overridable": (parse(OVERRIDABLE), both(x23)),  # overrides: see the onnx.reference test below
    }


MODELS = _models()


@functools.cache
def outcome(label: str, model: str, options: tuple = ()) -> sm.Outcome:
    proto, feeds = MODELS[model]
    name, default = CONFIGS[label] if label in CONFIGS else (label, {})
    return sm.check_pass(proto, feeds, name, dict(options) or default)


def test_edge_models_are_valid_and_run() -> None:
    from graphopt.numerics.run import run_proto

    for name, (proto, feeds) in MODELS.items():
        onnx.checker.check_model(proto, full_check=True)
        assert not sm.dangling(proto.graph)
        assert any(sm.captures(body) for _, _, body in sm.bodies(proto.graph)), name
        for f in feeds:
            assert all(np.isfinite(v).all() for v in run_proto(proto, f).values()), name



@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("label", [label for label in CONFIGS if label != "plan-memory"])
def test_pass_on_edge_model_is_sound(label: str, model: str) -> None:
    found = outcome(label, model)
    assert not found.problems, "\n".join(found.problems)


def test_plan_memory_refuses_an_if_whose_branches_give_different_sizes() -> None:
    """Which branch runs is data: one observation run cannot size the output for every input."""
    found = outcome("plan-memory", "unequal-branches")
    assert len(found.problems) == 1 and "depends on the input data" in found.problems[0]


@pytest.mark.parametrize("model", [m for m in MODELS if m != "unequal-branches"])
def test_plan_memory_on_edge_model_is_sound(model: str) -> None:
    """The plan passes its verifier and an arena run for every feed (both values of an If's condition)."""
    found = outcome("plan-memory", model)
    assert not found.problems, "\n".join(found.problems)
    assert found.exported is not None
    assert "graphopt.memory_plan" in {p.key for p in found.exported.metadata_props}


def _adapted(stats: dict) -> str:
    return " ".join(f"{k.removeprefix('adapted_')}:{v}" for k, v in sorted(stats.items())
                    if k.startswith("adapted_"))


# Four bodies (If then/else, Loop, Scan) hold one of each op (ReduceSum three times); the main graph's
# Unsqueeze is the fifth Unsqueeze.
DOWN = {
    9: ("Pad@11:4 Pad@18:4 Pad@19:4 ReduceMean@18:4 ReduceSum@13:12 Reshape@14:4 Softmax@13:4 Split@13:4 "
        "Split@18:4 Squeeze@13:4 Unsqueeze@13:5", {"axes", "pads", "split", "uax"}),
    11: ("Pad@18:4 Pad@19:4 ReduceMean@18:4 ReduceSum@13:12 Reshape@14:4 Softmax@13:4 Split@13:4 Split@18:4 "
         "Squeeze@13:4 Unsqueeze@13:5", {"axes", "split", "uax"}),
    13: ("Pad@18:4 Pad@19:4 ReduceMean@18:4 Reshape@14:4 Split@18:4", set()),  # ReduceSum-13 reads axes
    18: ("Pad@19:4", set()),
}


@pytest.mark.parametrize("target", sorted(DOWN))
def test_convert_opset_down_moves_captured_operands_into_attributes(target: int) -> None:
    """Each body's ops are adapted; bodies stop reading exactly the captured operands that became
    attributes at the target, and read nothing new."""
    found = outcome("convert-opset", "opset20-operands", (("target", str(target)),))
    assert not found.problems, "\n".join(found.problems)
    gone = set().union(*(before - after for before, after in found.captures.values()))
    new = set().union(*(after - before for before, after in found.captures.values()))
    assert (_adapted(found.stats), gone, new) == (*DOWN[target], set())


@pytest.mark.parametrize("target", [13, 18, 21])
def test_convert_opset_up_gives_each_body_its_own_operand_constants(target: int) -> None:
    """Attributes that became inputs read new constants of the body itself, never an outer name."""
    found = outcome("convert-opset", "opset11-attributes", (("target", str(target)),))
    assert not found.problems, "\n".join(found.problems)
    assert found.exported is not None
    assert all(before == after for before, after in found.captures.values())
    moved = {"Squeeze", "Unsqueeze", "Split"} | ({"ReduceMean"} if target >= 18 else set())
    for path, _, body in sm.bodies(found.exported.graph):
        local = {t.name for t in body.initializer}
        readers = [n for n in body.node if n.op_type in moved]
        assert len(readers) == len(moved), path
        assert all(len(n.input) == 2 and n.input[1] in local for n in readers), path


def test_fold_constants_inlines_constant_ifs_with_their_captures() -> None:
    """The If(yes) in the Loop body becomes nodes of the Loop body; the main-graph If(yes) brings its
    Loop into the main graph, where the Loop still reads hx and the inlined Sigmoid."""
    nested = outcome("fold-constants", "constant-if-in-loop")
    holding = outcome("fold-constants", "constant-if-holding-loop")
    assert nested.stats == holding.stats == {"folded": 1, "inlined_If": 1}
    assert nested.bodies == {"If#0.then_branch": ("If", "untouched"), "If#0.else_branch": ("If", "untouched"),
                             "Loop#0.body": ("Loop", "rewrote"),
                             "Loop#0.body/If#0.then_branch": ("?", "removed"),
                             "Loop#0.body/If#0.else_branch": ("?", "removed")}
    assert nested.captures["Loop#0.body"] == ({"cn", "half", "hx", "yes"}, {"cn", "half", "hx"})
    assert holding.exported is not None
    assert [n.op_type for n in holding.exported.graph.node] == ["Relu", "Sigmoid", "Loop"]
    assert holding.captures == {"Loop#0.body": (set(), {"hx", holding.exported.graph.node[1].output[0]})}


def test_no_ops_whose_outputs_are_body_outputs_stay_as_identities() -> None:
    found = outcome("eliminate-dead-code", "outputs")
    assert found.stats == {"noop_Add_to_identity": 1, "noop_Cast": 1, "noop_Cast_to_identity": 1,
                           "noop_Dropout_to_identity": 1, "noop_Mul_to_identity": 1,
                           "noop_Transpose_to_identity": 1, "unused_constants": 2}


def test_shapes_that_change_across_iterations_or_branches_are_not_folded() -> None:
    assert "folded_Shape" not in outcome("fold-constants", "growing-loop").stats
    assert "folded_Shape" not in outcome("fold-constants", "unequal-branches").stats


OVERRIDE = {"x": _floats([2, 3]), "w": np.array([[9.0, 8.0, 7.0]], np.float32)}


@pytest.mark.parametrize("label", CONFIGS)
def test_an_override_of_a_captured_initializer_still_reaches_the_body(label: str) -> None:
    """Judged with onnx.reference: graphopt's onnxruntime runner drops feeds for IR<4 initializers."""
    from onnx.reference import ReferenceEvaluator

    found = outcome(label, "overridable")
    assert found.exported is not None, "\n".join(found.problems)
    for flag in (True, False):
        feeds = {**OVERRIDE, "c": np.array(flag)}
        original = ReferenceEvaluator(MODELS["overridable"][0])
        expected = original.run(None, feeds)[0]
        actual = ReferenceEvaluator(found.exported).run(None, feeds)[0]
        np.testing.assert_allclose(actual, expected, rtol=1e-6)
        default = original.run(None, {"x": OVERRIDE["x"], "c": np.array(flag)})[0]
        assert abs(expected - default).max() > 1  # the override matters


def test_a_captured_overridable_initializer_is_not_folded() -> None:
    found = outcome("fold-constants", "overridable")
    assert found.stats == {}
    assert found.exported is not None
    assert [{n.op_type for n in b.node} for _, _, b in sm.bodies(found.exported.graph)] == \
        [{"Add", "Mul"}, {"Sub"}]
