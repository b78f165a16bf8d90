"""`graphopt optimize` in-process: --stats, --target ort, --layout nhwc, never-worse, re-optimizing a
converted file (the basics are in test_cli_optimize.py, the shared expectations in cli_kit.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
import pytest
from cli_kit import DEFAULT_RUN, NAME_WIDTH, OP_TABLE, OPS_AFTER, file_ops, numeric_check

from graphopt import DEFAULT_PIPELINE
from graphopt.cli import main
from graphopt.numerics.run import run_proto

# --stats on tiny_cnn: (rule, attempts, matches, rejection lines) for every rule whose root op occurred,
# summed over both fixpoint iterations. An attempt is a node of the rule's root op type: the 2 Convs in
# each of 2 runs (conv-zero-bias, pad-conv), the Add, BatchNormalization and Reshape in the one run
# where they still exist. conv1's bias (non-zero after BN folding) is rejected by conv-zero-bias in both
# runs (conv2 has no bias: no match, no rejection); fuse-affine declines MatMul + Add (a MatMul has no
# bias to take the shift), which fuse-matmul-add then turns into a Gemm.
RULE_ROWS = [
    ("fuse-affine/batchnorm-add", 1, 0, []),
    ("fuse-affine/conv-add", 1, 0, []),
    ("fuse-affine/conv-zero-bias", 4, 0, ["    rejected     2x  bias is not known to be zero"]),
    ("fuse-affine/convtranspose-add", 1, 0, []),
    ("fuse-affine/gemm-add", 1, 0, []),
    ("fuse-affine/matmul-add", 1, 0, ["    rejected     1x  MatMul has no bias to take an offset"]),
    ("fuse-batchnorm/conv-batchnorm", 1, 1, []),
    ("fuse-conv-branches/conv-batchnorm-identity", 1, 0, []),
    ("fuse-conv-branches/conv-conv", 1, 0, []),
    ("fuse-conv-branches/conv-identity", 1, 0, []),
    ("fuse-matmul-add/matmul-add", 1, 1, []),
    ("fuse-normalization/layernorm-mul-affine", 1, 0, []),
    ("fuse-normalization/layernorm-pow-affine", 1, 0, []),
    ("fuse-pad/pad-conv", 4, 0, []),
    ("simplify-chains/reshape-reshape", 1, 0, []),
]
RULE_REJECTIONS = {"fuse-affine/conv-zero-bias": {"bias is not known to be zero": 2},
                   "fuse-affine/matmul-add": {"MatMul has no bias to take an offset": 1}}
# Every rule of every rule-based pass in the default pipeline, as the JSON report keys them.
RULE_NAMES = {
    "fuse-affine": ["conv-zero-bias", "convtranspose-zero-bias",
                    *(f"{producer}-{op}"
                      for producer in ("conv", "convtranspose", "gemm", "matmul", "batchnorm")
                      for op in ("mul", "add", "sub", "div"))],
    "fuse-batchnorm": ["conv-batchnorm", "convtranspose-batchnorm", "gemm-batchnorm"],
    "fuse-conv-branches": ["conv-conv", "conv-batchnorm-identity", "conv-identity"],
    "fuse-matmul-add": ["matmul-add"],
    "fuse-normalization": [*(f"layernorm-{how}{affine}" for how in ("pow", "mul")
                             for affine in ("-affine", "-scale", "")),
                           *(f"gelu-erf-{i}{x}" for i in "01" for x in "abc"),
                           *(name.format(scale) for scale in ("div", "mul")
                             for name in ("hardswish-{}-outer", "hardswish-{}-inner", "hardsigmoid-{}"))],
    "fuse-pad": ["pad-conv", "pad-averagepool"],
    "simplify-chains": ["transpose-transpose", "reshape-reshape", "unsqueeze-squeeze",
                        "unsqueeze-squeeze-attr", "unsqueeze-squeeze-other-axes", "squeeze-unsqueeze",
                        "cast-cast", "slice-slice"],
}


def test_stats_prints_the_rule_table_between_the_pass_table_and_the_summary(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--stats: a header, one line per rule that was attempted (attempts, matches, time), an indented
    line per rejection reason, then a blank line before the size summary."""
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--stats"]) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    assert stdout.startswith(OP_TABLE + "\n\n")
    lines = stdout.splitlines()
    header = lines.index(f"{'rule':<48} {'attempts':>8} {'matches':>8} {'time':>8}")
    assert lines[header - 1] == ""
    assert lines[header - 2].startswith("topological-sort ")  # the pass table's last row
    table = lines[header + 1:]
    expected: list[str] = []
    for name, attempts, matches, rejected in RULE_ROWS:
        expected += [f"{name:<48} {attempts:>8} {matches:>8}", *rejected]
    assert len(table) == len(expected) + 3  # blank, size summary, wrote
    for line, want in zip(table, expected):
        if want.startswith("    rejected"):
            assert line == want
        else:
            assert re.fullmatch(rf"{re.escape(want)} +\d+\.\dms", line) and len(line) == len(want) + 9, line
    assert table[len(expected):][0] == ""
    assert "checks: each (4 onnxruntime sessions)" in table[-2]
    assert table[-1] == f"wrote {out}"
    assert file_ops(out) == OPS_AFTER  # --stats only reports


def test_report_json_rules_sums_every_rule_over_the_kept_runs(tiny_cnn: Path) -> None:
    """The top-level "rules": every rule of every rule-based pass run, keyed pass/rule and sorted, with
    attempts, matches, rejections by reason and seconds summed over the runs; the same numbers as --stats
    (a rule never attempted has all zeros, its time included)."""
    report = tiny_cnn.with_name("report.json")
    assert main(["optimize", str(tiny_cnn), "--report", str(report), "-q"]) == 0
    rules = json.loads(report.read_text())["rules"]
    keys = sorted(f"{pass_name}/{rule}" for pass_name, names in RULE_NAMES.items() for rule in names)
    assert len(keys) == 57
    assert list(rules) == keys
    attempted = {name: (attempts, matches) for name, attempts, matches, _ in RULE_ROWS}
    for key, st in rules.items():
        assert list(st) == ["attempts", "matches", "rejections", "seconds"]
        attempts, matches = attempted.get(key, (0, 0))
        assert (st["attempts"], st["matches"], st["rejections"]) == (attempts, matches,
                                                                    RULE_REJECTIONS.get(key, {})), key
        if attempts:
            assert isinstance(st["seconds"], float) and 0 <= st["seconds"] < 1, key
        else:
            assert st["seconds"] == 0.0, key


def test_target_ort_fuses_conv_relu_into_a_com_microsoft_fused_conv(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--target ort appends fuse-ort-contrib to the pipeline: conv1 + relu1 become one
    com.microsoft.FusedConv (activation Relu), the opset import com.microsoft=1 is added, and onnxruntime
    computes the input model's logits. The default target writes no contrib op."""
    out, report = tiny_cnn.with_name("ort.onnx"), tiny_cnn.with_name("ort.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--target", "ort", "--report", str(report)]) == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("""\
op type                    before    after
Conv                            2        1  *
MatMul                          2        0  *
Add                             1        0  *
BatchNormalization              1        0  *
Cast                            1        0  *
Concat                          1        0  *
Dropout                         1        0  *
Gather                          1        0  *
GlobalAveragePool               1        1
Identity                        1        0  *
Relu                            1        0  *
Reshape                         1        1
Shape                           1        0  *
Unsqueeze                       1        0  *
Gemm                            0        1  *
com.microsoft::FusedConv        0        1  *
total                          16        5

""")
    data = json.loads(report.read_text())
    assert data["pipeline"] == f"{DEFAULT_PIPELINE},fuse-ort-contrib"
    assert [(p["name"], p["status"]) for p in data["passes"]] == [*DEFAULT_RUN,
                                                                  ("fuse-ort-contrib", "changed")]
    contrib = data["passes"][-1]
    assert contrib["stats"] == {"fused_conv-relu": 1}
    assert (contrib["nodes_before"], contrib["nodes_after"]) == (6, 5)
    assert contrib["bytes_before"] == contrib["bytes_after"] == 3576
    assert contrib["checks"]["numeric"]["ok"] is True
    assert (data["check_sessions"], data["nodes_after"]) == (5, 5)
    assert data["ops_after"] == {"Conv": 1, "Gemm": 1, "GlobalAveragePool": 1, "Reshape": 1,
                                 "com.microsoft::FusedConv": 1}
    assert {k: {f: v for f, v in st.items() if f != "seconds"} for k, st in data["rules"].items()
            if k.startswith("fuse-ort-contrib/")} == {
        f"fuse-ort-contrib/conv-{act}": {"attempts": int(act == "relu"), "matches": int(act == "relu"),
                                         "rejections": {}}
        for act in ("clip", "hardsigmoid", "leakyrelu", "relu", "sigmoid", "tanh")}

    proto = onnx.load(str(out))
    assert {o.domain: o.version for o in proto.opset_import} == {"": 17, "com.microsoft": 1}
    assert [(n.domain, n.op_type, n.name) for n in proto.graph.node] == [
        ("com.microsoft", "FusedConv", "conv1"), ("", "Conv", "conv2"), ("", "GlobalAveragePool", "gap"),
        ("", "Reshape", "flatten"), ("", "Gemm", "fc_matmul")]
    fused = proto.graph.node[0]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in fused.attribute} == {
        "pads": [1, 1, 1, 1], "activation": b"Relu"}
    assert fused.input[0] == "x" and len(fused.input) == 3  # x, the BN-folded weight and bias
    assert proto.graph.node[1].input[0] == fused.output[0]
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    before = run_proto(onnx.load(str(tiny_cnn)), feeds)["logits"]
    np.testing.assert_allclose(run_proto(proto, feeds)["logits"], before, rtol=1e-5, atol=1e-6)

    default = tiny_cnn.with_name("default.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(default), "-q"]) == 0
    plain = onnx.load(str(default))
    assert {o.domain: o.version for o in plain.opset_import} == {"": 17}
    assert [(n.domain, n.op_type) for n in plain.graph.node] == [("", op) for op in OPS_AFTER]


LAYOUT_OP_TABLE = """\
op type              before    after
Conv                      2        2
MatMul                    2        0  *
Add                       1        0  *
BatchNormalization        1        0  *
Cast                      1        0  *
Concat                    1        0  *
Dropout                   1        0  *
Gather                    1        0  *
GlobalAveragePool         1        1
Identity                  1        0  *
Relu                      1        1
Reshape                   1        1
Shape                     1        0  *
Unsqueeze                 1        0  *
Gemm                      0        1  *
Transpose                 0        1  *
total                    16        7"""
LAYOUT_RUN = [("convert-layout", "changed"), *DEFAULT_RUN]


def test_layout_nhwc_makes_the_image_input_channels_last_through_one_transpose(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--layout nhwc runs convert-layout{layout=nhwc} before the default pipeline.

    convert-layout picks the float inputs and outputs of rank 4-5: x becomes [N, 16, 16, 3], read through
    one Transpose (perm [0, 3, 1, 2]) into conv1 (16 -> 17 nodes, 0 B); the 2-D logits stay as they are.
    The default pipeline then does what it does without --layout (one node more all along);
    optimize-transposes has nothing to push, the Transpose feeds a Conv. Every numeric check (one more
    session, for convert-layout) feeds x in the original layout, transposed as the interface perm the
    model records says, and passes. Fed x transposed, the written model computes the logits of the model
    written without --layout bit for bit.
    """
    out, report = tiny_cnn.with_name("nhwc.onnx"), tiny_cnn.with_name("nhwc.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--layout", "nhwc", "--report", str(report)]) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    assert stdout.startswith(LAYOUT_OP_TABLE + "\n\n")
    lines = stdout.splitlines()
    assert lines[-1] == f"wrote {out}"
    assert re.fullmatch(r"size 5\.7 KB -> 4\.3 KB; \d+\.\d\ds; checks: each \(5 onnxruntime sessions\)",
                        lines[-2]), lines[-2]
    assert lines[-3] == ""
    header = lines.index(next(x for x in lines if x.startswith("pass ")))
    pass_lines = lines[header + 1:-3]
    # BN folding rounds; the count is of intermediate tensors compared
    exact, rounded = r"ok \(rel 0\.0e\+00, \d+ tensors\)", r"ok \(rel [1-9]\.\de-0[5-8], \d+ tensors\)"
    changes = {"convert-layout": (17, "0", exact), "eliminate-dead-code": (13, "-1.0 KB", exact),
               "fold-constants": (9, "-8 B", exact), "fuse-batchnorm": (8, "-128 B", rounded),
               "fuse-matmul-add": (7, "0", rounded)}
    nodes, deltas, checks, count = [], [], [], 16
    for name, status in LAYOUT_RUN:
        after, delta, check = changes[name] if status == "changed" else (count, "0", "-")
        nodes.append(f"{count}->{after}")
        deltas.append(delta)
        checks.append(check)
        count = after
    assert len(pass_lines) == len(LAYOUT_RUN)
    for line, (name, status), node, delta, check in zip(pass_lines, LAYOUT_RUN, nodes, deltas, checks):
        pattern = (re.escape(f"{name:<{NAME_WIDTH}} {status:<12}") + r" +\d+ms "
                   + re.escape(f"{node:>13} {delta:>11}  ") + (re.escape(check) if check == "-" else check))
        assert re.fullmatch(pattern, line), line

    data = json.loads(report.read_text())
    assert data["pipeline"] == f"convert-layout{{layout=nhwc}},{DEFAULT_PIPELINE}"
    assert [(p["name"], p["status"]) for p in data["passes"]] == LAYOUT_RUN
    assert all(p["failure"] is None for p in data["passes"])
    assert all(p["checks"]["numeric"]["ok"] is True for p in data["passes"] if p["status"] == "changed")
    assert (data["check"], data["check_sessions"]) == ("each", 5)  # the five changing passes
    assert (data["final_check"], data["warnings"]) == (None, [])
    layout = data["passes"][0]
    assert layout["step"] == "convert-layout{layout=nhwc}"
    assert layout["stats"] == {"inputs_converted": 1}
    assert (layout["nodes_before"], layout["nodes_after"]) == (16, 17)
    assert (layout["bytes_before"], layout["bytes_after"]) == (4736, 4736)
    assert numeric_check(layout) == ("ok", 0.0, 0.0)
    assert (data["nodes_before"], data["nodes_after"]) == (16, 7)
    assert data["ops_after"] == {"Conv": 2, "Gemm": 1, "GlobalAveragePool": 1, "Relu": 1, "Reshape": 1,
                                 "Transpose": 1}

    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)

    def interface(values: Iterable[onnx.ValueInfoProto]) -> list[tuple[str, int, list[int | str]]]:
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    assert interface(proto.graph.input) == [("x", onnx.TensorProto.FLOAT, ["N", 16, 16, 3])]
    assert interface(proto.graph.output) == [("logits", onnx.TensorProto.FLOAT, ["N", 10])]
    assert file_ops(out) == ["Transpose", *OPS_AFTER]
    transpose, conv1 = proto.graph.node[:2]
    assert list(transpose.input) == ["x"] and conv1.input[0] == transpose.output[0]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in transpose.attribute} == {"perm": [0, 3, 1, 2]}
    assert {p.key: p.value for p in proto.metadata_props} == {
        "graphopt.interface_perms": '{"inputs": {"x": [0, 2, 3, 1]}, "outputs": {}}'}

    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    logits = run_proto(proto, {"x": np.ascontiguousarray(x.transpose(0, 2, 3, 1))})["logits"]
    assert logits.shape == (2, 10)
    np.testing.assert_allclose(logits, run_proto(onnx.load(str(tiny_cnn)), {"x": x})["logits"],
                               rtol=1e-5, atol=1e-6)  # the BN folding's rounding, as without --layout
    default = tiny_cnn.with_name("default.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(default), "-q"]) == 0
    np.testing.assert_array_equal(logits, run_proto(onnx.load(str(default)), {"x": x})["logits"])


GROW_PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

from graphopt import Node, PassResult, register_pass


def identity_before_relus(model):
    """Put a (useless) Identity in front of every Relu of the main graph."""
    added = 0
    for node in list(model.graph):
        if node.op_type == "Relu":
            identity = Node("Identity", [node.inputs[0]])
            model.graph.insert_before(node, identity)
            node.replace_input(0, identity.outputs[0])
            added += 1
    return PassResult(added > 0, {"added": added})


@register_pass
@dataclass
class AddIdentity:
    """Makes the model worse on purpose: one more node, same weights."""

    name: ClassVar[str] = "add-identity"

    def run(self, model):
        return identity_before_relus(model)


@register_pass
@dataclass
class AddIdentityMayGrow:
    """The same, declaring that it may grow the model."""

    name: ClassVar[str] = "add-identity-may-grow"
    may_grow: ClassVar[bool] = True

    def run(self, model):
        return identity_before_relus(model)
'''
NEVER_WORSE = "made the model worse (never-worse rule): nodes 16 -> 17, weight bytes 4736 -> 4736"
OPS_WITH_IDENTITY = ["Conv", "BatchNormalization", "Identity", "Relu", "Identity", "Conv", "Dropout",
                     "Cast", "GlobalAveragePool", "Shape", "Gather", "Unsqueeze", "Concat", "Reshape",
                     "MatMul", "Add", "MatMul"]


def test_a_pass_that_adds_a_node_is_rolled_back_by_the_never_worse_rule(
        tiny_cnn: Path, builtin_registry: object, capsys: pytest.CaptureFixture[str]) -> None:
    """More nodes at the same weight bytes is worse: the pass is rolled back before any numeric check
    (no onnxruntime session) and the written model is the input's, as a pipeline that changes nothing
    writes it."""
    plugin = tiny_cnn.parent / "grow_plugin.py"
    plugin.write_text(GROW_PLUGIN)
    out, report = tiny_cnn.with_name("out.onnx"), tiny_cnn.with_name("r.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--plugin", str(plugin),
                 "--pipeline", "add-identity", "--report", str(report)]) == 0
    stdout = capsys.readouterr().out
    assert f"\n    ! {NEVER_WORSE}\n" in stdout
    assert f"\nrolled back: add-identity: {NEVER_WORSE}\n" in stdout
    assert "checks: each (0 onnxruntime sessions)" in stdout
    data = json.loads(report.read_text())
    assert [(p["name"], p["status"], p["failure"]) for p in data["passes"]] == [
        ("add-identity", "rolled-back", NEVER_WORSE)]
    rec = data["passes"][0]
    assert (rec["nodes_before"], rec["nodes_after"]) == (16, 16)
    assert (rec["bytes_before"], rec["bytes_after"]) == (4736, 4736)
    assert (rec["stats"], rec["checks"]) == ({"added": 1}, {})
    assert (data["nodes_after"], data["ops_after"], data["check_sessions"]) == (16, data["ops_before"], 0)
    assert file_ops(out) == file_ops(tiny_cnn)
    unchanged = tiny_cnn.with_name("unchanged.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(unchanged), "--pipeline", "topological-sort",
                 "-q"]) == 0
    assert out.read_bytes() == unchanged.read_bytes()


@pytest.mark.parametrize("pass_name,flags", [("add-identity", ["--allow-worse"]),
                                             ("add-identity-may-grow", [])])
def test_allow_worse_or_may_grow_keeps_a_pass_that_adds_a_node(
        tiny_cnn: Path, builtin_registry: object, pass_name: str, flags: list[str]) -> None:
    """--allow-worse turns the rule off; a pass with ``may_grow = True`` is exempt from it. Either way the
    Identity stays (16 -> 17 nodes) and passes the numeric check exactly."""
    plugin = tiny_cnn.parent / "grow_plugin.py"
    plugin.write_text(GROW_PLUGIN)
    out, report = tiny_cnn.with_name("out.onnx"), tiny_cnn.with_name("r.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--plugin", str(plugin), "--pipeline", pass_name,
                 "--report", str(report), "-q", *flags]) == 0
    data = json.loads(report.read_text())
    assert [(p["name"], p["status"], p["failure"]) for p in data["passes"]] == [(pass_name, "changed", None)]
    rec = data["passes"][0]
    assert (rec["nodes_before"], rec["nodes_after"]) == (16, 17)
    assert (rec["bytes_before"], rec["bytes_after"]) == (4736, 4736)
    assert numeric_check(rec) == ("ok", 0.0, 0.0)
    assert (data["nodes_after"], data["ops_after"]["Identity"], data["check_sessions"]) == (17, 2, 1)
    assert file_ops(out) == OPS_WITH_IDENTITY


def test_a_layout_converted_file_optimizes_again_with_checks_relative_to_its_own_layout(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The NHWC file carries its interface perms; optimizing it again feeds the checks in NHWC (no
    second transpose), nothing is rolled back, and graphopt check accepts it against both files."""
    converted, again = tiny_cnn.with_name("a.onnx"), tiny_cnn.with_name("b.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(converted), "--pipeline", "convert-layout", "-q"]) == 0
    assert main(["optimize", str(converted), "-o", str(again), "--on-failure", "raise", "--report",
                 str(tiny_cnn.with_name("r.json")), "-q"]) == 0
    data = json.loads(tiny_cnn.with_name("r.json").read_text())
    assert [p["status"] for p in data["passes"] if p["status"] == "rolled-back"] == []
    assert sum(1 for p in data["passes"] if p["checks"].get("numeric", {}).get("ok")) == 4
    capsys.readouterr()
    assert main(["check", str(tiny_cnn), str(again)]) == 0
    assert main(["check", str(converted), str(again)]) == 0
    assert capsys.readouterr().out.count("equivalent: 1 outputs") == 2


def test_a_pass_option_the_pass_refuses_is_a_usage_error_before_any_work(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """convert-layout{layout=nchw}: exit 2 with the pass's own message, no output written."""
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--pipeline", "convert-layout{layout=nchw}"]) == 2
    assert capsys.readouterr().err == \
        "graphopt: error: convert-layout: unknown layout 'nchw' (supported: nhwc)\n"
    assert not out.exists()


def test_naming_an_input_that_is_not_image_like_is_a_usage_error(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user mistake found while the pass runs still ends in exit 2, not a rollback."""
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--pipeline",
                 "convert-layout{outputs=logits}"]) == 2
    assert capsys.readouterr().err == \
        "graphopt: error: convert-layout: output 'logits' is not a float tensor of rank 3-5\n"
    assert not out.exists()
