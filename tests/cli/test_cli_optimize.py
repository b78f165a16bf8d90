"""`graphopt optimize` in-process: output file, tables, report, in-place rules, plugins, determinism,
--stats, --target ort, --layout nhwc and the never-worse rule."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_kit import (
    DEFAULT_RUN,
    FIXPOINT,
    NAME_WIDTH,
    OP_TABLE,
    OPS_AFTER,
    RERUN,
    TAIL,
    file_ops,
    numeric_check,
)

from graphopt import DEFAULT_PIPELINE
from graphopt.cli import main
from graphopt.numerics.check import prepare_check
from graphopt.numerics.run import run_proto
from graphopt.onnx_io import load_model

# The model after each changing pass of the default pipeline (what --dump-ir writes).
OPS_AFTER_DCE = ["Conv", "BatchNormalization", "Relu", "Conv", "GlobalAveragePool", "Shape", "Gather",
                 "Unsqueeze", "Concat", "Reshape", "MatMul", "Add"]
OPS_AFTER_FOLD = ["Conv", "BatchNormalization", "Relu", "Conv", "GlobalAveragePool", "Reshape", "MatMul",
                  "Add"]
OPS_AFTER_BN = ["Conv", "Relu", "Conv", "GlobalAveragePool", "Reshape", "MatMul", "Add"]


def test_optimize_writes_output_prints_op_table_and_exits_zero(tiny_cnn: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0, the before/after table first, one line per pass run, 'wrote OUTPUT' last.

    The pass table's first column is as wide as the longest pass name run (31). Node counts: DCE drops
    Identity, Dropout, Cast and the dead MatMul (16 -> 12); fold-constants turns the Reshape target into
    [0, -1] and drops the Shape-Gather-Unsqueeze-Concat that computed it (12 -> 8, -8 B: three 8-byte
    int64 constants out, one 16-byte one in); fuse-batchnorm (8 -> 7, -128 B: four 8-channel BN params);
    fuse-matmul-add turns MatMul + Add into one Gemm with the same weights (7 -> 6, 0 B).
    """
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    assert stdout.startswith(OP_TABLE + "\n\n")
    lines = stdout.splitlines()
    assert lines[-1] == f"wrote {out}"
    assert re.fullmatch(r"size 5\.7 KB -> 4\.2 KB; \d+\.\d\ds; checks: each \(4 onnxruntime sessions\)",
                        lines[-2]), lines[-2]
    assert lines[-3] == ""
    header = lines.index(next(x for x in lines if x.startswith("pass ")))
    assert lines[header] == (f"{'pass':<{NAME_WIDTH}} {'status':<12} {'time':>8} {'nodes':>13} "
                             f"{'weights Δ':>11}  check")
    pass_lines = lines[header + 1:-3]
    assert [tuple(line.split()[:2]) for line in pass_lines] == DEFAULT_RUN
    # BN folding rounds; the count is of intermediate tensors compared
    exact, rounded = r"ok \(rel 0\.0e\+00, \d+ tensors\)", r"ok \(rel [1-9]\.\de-0[5-8], \d+ tensors\)"
    first_round = {"eliminate-dead-code": (12, "-1.0 KB", exact), "fold-constants": (8, "-8 B", exact),
                   "fuse-batchnorm": (7, "-128 B", rounded), "fuse-matmul-add": (6, "0", rounded)}
    nodes, deltas, checks, count = [], [], [], 16
    for _i, (name, status) in enumerate(DEFAULT_RUN):
        after, delta, check = first_round[name] if status == "changed" else (count, "0", "-")
        nodes.append(f"{count}->{after}")
        deltas.append(delta)
        checks.append(check)
        count = after
    assert len(pass_lines) == len(DEFAULT_RUN) == len(nodes) == len(deltas) == len(checks)
    for line, (name, status), node, delta, check in zip(pass_lines, DEFAULT_RUN, nodes, deltas, checks):
        pattern = (re.escape(f"{name:<{NAME_WIDTH}} {status:<12}") + r" +\d+ms "
                   + re.escape(f"{node:>13} {delta:>11}  ") + (re.escape(check) if check == "-" else check))
        assert re.fullmatch(pattern, line), line
    assert file_ops(out) == OPS_AFTER
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)


def test_optimized_model_computes_the_same_logits(tiny_cnn: Path) -> None:
    """The written model matches the input under onnxruntime to float32 rounding.

    Not bit for bit: fuse-batchnorm folds the BatchNormalization into conv1's weights and bias, which
    legitimately changes the last bits of the logits (max rel err ~1e-7). The other rewrites (the folded
    Reshape target, MatMul + Add into Gemm) are exact on this model.
    """
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "-q"]) == 0
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}
    before = run_proto(onnx.load(str(tiny_cnn)), feeds)["logits"]
    np.testing.assert_allclose(run_proto(onnx.load(str(out)), feeds)["logits"], before, rtol=1e-5, atol=1e-6)


def test_default_output_is_input_with_opt_onnx_and_nothing_else_is_left(tiny_cnn: Path) -> None:
    """tiny_cnn.onnx -> tiny_cnn.opt.onnx beside it; no temporary files remain."""
    assert main(["optimize", str(tiny_cnn), "-q"]) == 0
    assert sorted(os.listdir(tiny_cnn.parent)) == ["tiny_cnn.onnx", "tiny_cnn.opt.onnx"]


def test_input_file_bytes_are_unchanged(tiny_cnn: Path) -> None:
    """The input is never modified without --in-place."""
    before = tiny_cnn.read_bytes()
    assert main(["optimize", str(tiny_cnn), "-q"]) == 0
    assert tiny_cnn.read_bytes() == before


def test_refuse_to_overwrite_the_input_without_in_place(tiny_cnn: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """-o INPUT is a usage error on one stderr line; the input is untouched."""
    before = tiny_cnn.read_bytes()
    assert main(["optimize", str(tiny_cnn), "-o", str(tiny_cnn)]) == 2
    stdout, stderr = capsys.readouterr()
    assert stderr == "graphopt: error: the output would overwrite the input; pass --in-place to allow that\n"
    assert stdout == ""
    assert tiny_cnn.read_bytes() == before


def test_in_place_overwrites_the_input_with_the_optimized_model(tiny_cnn: Path) -> None:
    """--in-place writes exactly what -o would have written."""
    reference = tiny_cnn.with_name("ref.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(reference), "-q"]) == 0
    assert main(["optimize", str(tiny_cnn), "--in-place", "-q"]) == 0
    assert tiny_cnn.read_bytes() == reference.read_bytes()


def test_in_place_and_output_exclude_each_other(tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both flags at once is a usage error."""
    assert main(["optimize", str(tiny_cnn), "--in-place", "-o", str(tiny_cnn.with_name("o.onnx"))]) == 2
    assert capsys.readouterr().err == "graphopt: error: --in-place and --output exclude each other\n"


def test_report_json_has_the_run_summary_and_every_pass(tiny_cnn: Path) -> None:
    """Paths, sizes, pipeline, op histograms, check sessions and per-pass records."""
    out, report = tiny_cnn.with_name("out.onnx"), tiny_cnn.with_name("report.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--report", str(report), "-q"]) == 0
    data = json.loads(report.read_text())
    assert list(data) == ["input", "output", "size_before", "size_after", "seconds", "pipeline", "check",
                          "check_sessions", "final_check", "check_inputs", "warnings", "nodes_before",
                          "nodes_after", "ops_before", "ops_after", "passes", "rules"]
    assert (data["input"], data["output"]) == (str(tiny_cnn), str(out))
    assert (data["size_before"], data["size_after"]) == (tiny_cnn.stat().st_size, out.stat().st_size)
    assert data["pipeline"] == DEFAULT_PIPELINE
    assert (data["check"], data["check_sessions"]) == ("each", 4)  # the four changing passes
    assert (data["final_check"], data["warnings"]) == (None, [])
    assert (data["nodes_before"], data["nodes_after"]) == (16, 6)
    assert data["ops_before"] == {"Add": 1, "BatchNormalization": 1, "Cast": 1, "Concat": 1, "Conv": 2,
                                  "Dropout": 1, "Gather": 1, "GlobalAveragePool": 1, "Identity": 1,
                                  "MatMul": 2, "Relu": 1, "Reshape": 1, "Shape": 1, "Unsqueeze": 1}
    assert data["ops_after"] == {"Conv": 2, "Gemm": 1, "GlobalAveragePool": 1, "Relu": 1, "Reshape": 1}
    passes = data["passes"]
    assert [(p["name"], p["status"]) for p in passes] == DEFAULT_RUN
    assert [p["step"] for p in passes] == [p["name"] for p in passes]
    changes = {"eliminate-dead-code": (12, 3712), "fold-constants": (8, 3704), "fuse-batchnorm": (7, 3576),
               "fuse-matmul-add": (6, 3576)}  # nodes and weight bytes after each changing pass
    expected, state = [], (16, 4736)
    for p in passes:
        after = changes[p["name"]] if p["status"] == "changed" else state
        expected.append((state, after))
        state = after
    assert [((p["nodes_before"], p["bytes_before"]), (p["nodes_after"], p["bytes_after"]))
            for p in passes] == expected
    assert all(p["failure"] is None for p in passes)

    first = {p["name"]: p for p in passes[:len(FIXPOINT)]}
    dce, fold, prune, cse, bn, affine, matmul_add, chains, transposes = (first[n] for n in (
        "eliminate-dead-code", "fold-constants", "prune-failing-branches", "eliminate-common-subexpressions",
        "fuse-batchnorm", "fuse-affine", "fuse-matmul-add", "simplify-chains", "optimize-transposes"))
    assert dce["stats"] == {"dead_nodes": 1, "noop_Cast": 1, "noop_Dropout": 1, "noop_Identity": 1,
                            "unused_constants": 1}  # DCE infers the Cast's input type itself
    assert dce["bytes_before"] - dce["bytes_after"] == 16 * 16 * 4  # unused.w
    assert numeric_check(dce) == ("ok", 0.0, 0.0)
    assert (dce["history"], dce["rules"]) == ([], {})
    # The Reshape target Concat(Unsqueeze(Gather(Shape(gap), 0)), [-1]) becomes the constant [0, -1]
    # (0 copies the batch dimension) and the four nodes computing it go: three 8-byte int64 constants
    # (zero, axes0, minus_one) out, one 16-byte [0, -1] in.
    assert fold["stats"] == {"folded": 1, "reshape_target_copies_dims": 1}
    assert fold["bytes_before"] - fold["bytes_after"] == 3 * 8 - 2 * 8
    assert numeric_check(fold) == ("ok", 0.0, 0.0)
    assert fold["history"] == ["eliminate-dead-code"]
    assert (prune["stats"], prune["checks"]) == ({}, {})  # no If in the model: nothing tried
    assert (cse["stats"], cse["checks"], cse["rules"]) == ({}, {}, {})
    assert cse["history"] == ["eliminate-dead-code", "fold-constants"]
    assert bn["stats"] == {"fused_conv-batchnorm": 1}
    assert bn["bytes_before"] - bn["bytes_after"] == 4 * 8 * 4  # 4 BN params of 8 channels
    fused = bn["checks"]["numeric"]
    assert fused["ok"] is True and 0 < fused["max_abs"] < 1e-5 and 0 < fused["max_rel"] < 1e-5
    assert {rule: {k: v for k, v in st.items() if k != "seconds"} for rule, st in bn["rules"].items()} == {
        "conv-batchnorm": {"attempts": 1, "matches": 1, "rejections": {}},
        "convtranspose-batchnorm": {"attempts": 0, "matches": 0, "rejections": {}},
        "gemm-batchnorm": {"attempts": 0, "matches": 0, "rejections": {}}}
    # fuse-affine leaves conv1's (non-zero) bias and the MatMul + Add (a MatMul has no bias to take the
    # shift) to others; the rejections are in its stats, and it did not change the model.
    assert affine["stats"] == {"rejected_conv-zero-bias:bias is not known to be zero": 1,
                               "rejected_matmul-add:MatMul has no bias to take an offset": 1}
    assert affine["checks"] == {}
    assert matmul_add["stats"] == {"fused_matmul-add": 1}
    assert matmul_add["history"] == ["eliminate-dead-code", "fold-constants", "fuse-batchnorm"]
    exact_gemm = matmul_add["checks"]["numeric"]  # against the original: the BN folding's rounding only
    assert exact_gemm["ok"] is True and 0 < exact_gemm["max_abs"] < 1e-5 and 0 < exact_gemm["max_rel"] < 1e-5
    assert chains["history"] == ["eliminate-dead-code", "fold-constants", "fuse-batchnorm", "fuse-matmul-add"]
    # optimize-transposes finds no Transpose to move: no stats, no check, no rules.
    assert (transposes["stats"], transposes["checks"], transposes["rules"]) == ({}, {}, {})
    assert all(p["history"] == chains["history"] for p in passes[passes.index(matmul_add) + 1:])


def test_optimizing_twice_gives_byte_identical_files(tiny_cnn: Path) -> None:
    """Determinism: same input, same options, same bytes."""
    first, second = tiny_cnn.with_name("a.onnx"), tiny_cnn.with_name("b.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(first), "-q"]) == 0
    assert main(["optimize", str(tiny_cnn), "-o", str(second), "-q"]) == 0
    assert first.read_bytes() == second.read_bytes()


def test_optimizing_the_output_again_changes_nothing(tiny_cnn: Path) -> None:
    """Idempotence at the CLI: optimize(optimize(m)) == optimize(m) byte for byte."""
    once, twice = tiny_cnn.with_name("once.onnx"), tiny_cnn.with_name("twice.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(once), "-q"]) == 0
    assert main(["optimize", str(once), "-o", str(twice), "-q"]) == 0
    assert twice.read_bytes() == once.read_bytes()


def test_quiet_prints_nothing(tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-q: no stdout, no stderr, still an output file."""
    assert main(["optimize", str(tiny_cnn), "-q"]) == 0
    assert capsys.readouterr() == ("", "")
    assert tiny_cnn.with_name("tiny_cnn.opt.onnx").is_file()


def test_disable_skips_a_pass_and_records_it(tiny_cnn: Path) -> None:
    """--disable eliminate-dead-code: no-ops and dead code stay; each scheduled DCE run says 'disabled'."""
    # fold-constants still folds the dead MatMul of unused.w (its only reader) into a constant that
    # nothing reads, which only DCE would remove; unused.w itself, left unread by that fold, is dropped
    # (1 KB out, 1 KB in). It also folds the Reshape target to [0, -1] and drops the 4 shape nodes
    # (16 -> 11 nodes, -8 B). fuse-batchnorm still folds the BN into conv1, fuse-matmul-add still makes
    # the classifier one Gemm. Identity, Dropout and Cast stay.
    out, report = tiny_cnn.with_name("out.onnx"), tiny_cnn.with_name("r.json")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--disable", "eliminate-dead-code",
                 "--report", str(report), "-q"]) == 0
    data = json.loads(report.read_text())
    statuses = {"eliminate-dead-code": "disabled", "fold-constants": "changed", "fuse-batchnorm": "changed",
                "fuse-matmul-add": "changed"}
    assert [(p["name"], p["status"]) for p in data["passes"]] == [
        *((name, statuses.get(name, "unchanged")) for name in FIXPOINT),
        *((name, "disabled" if name == "eliminate-dead-code" else "unchanged") for name in RERUN),
        *((name, "unchanged") for name in TAIL)]
    first = {p["name"]: p for p in data["passes"][:len(FIXPOINT)]}
    fold, bn, matmul_add = first["fold-constants"], first["fuse-batchnorm"], first["fuse-matmul-add"]
    assert fold["stats"] == {"folded": 2, "folded_MatMul": 1, "reshape_target_copies_dims": 1}
    assert (fold["nodes_before"], fold["nodes_after"]) == (16, 11)
    assert (fold["bytes_before"], fold["bytes_after"]) == (4736, 4728)
    assert bn["stats"] == {"fused_conv-batchnorm": 1}
    assert (bn["nodes_before"], bn["nodes_after"]) == (11, 10)
    assert matmul_add["stats"] == {"fused_matmul-add": 1}
    assert (matmul_add["nodes_before"], matmul_add["nodes_after"]) == (10, 9)
    assert (data["check_sessions"], data["nodes_after"]) == (3, 9)
    assert data["ops_after"] == {"Cast": 1, "Conv": 2, "Dropout": 1, "Gemm": 1, "GlobalAveragePool": 1,
                                 "Identity": 1, "Relu": 1, "Reshape": 1}
    assert file_ops(out) == ["Conv", "Relu", "Identity", "Conv", "Dropout", "Cast", "GlobalAveragePool",
                             "Reshape", "Gemm"]
    written = onnx.load(str(out)).graph
    read = {name for node in written.node for name in node.input}
    assert [list(t.dims) for t in written.initializer if t.name not in read] == [[16, 16]]  # the folded dead


def test_check_off_runs_no_onnxruntime_session(tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--check off says so in the summary line."""
    assert main(["optimize", str(tiny_cnn), "--check", "off"]) == 0
    assert "checks: off (0 onnxruntime sessions)" in capsys.readouterr().out


def test_input_shape_override_is_accepted_for_the_dynamic_batch(tiny_cnn: Path) -> None:
    """--input-shape x=4,3,16,16 feeds the checks with batch 4."""
    assert main(["optimize", str(tiny_cnn), "--input-shape", "x=4,3,16,16", "-q"]) == 0


def test_dump_ir_writes_one_model_per_changing_pass(tiny_cnn: Path) -> None:
    """The four changing runs (DCE, fold-constants, fuse-batchnorm, fuse-matmul-add) are dumped,
    numbered, each after its pass."""
    dumps = tiny_cnn.parent / "dumps"
    assert main(["optimize", str(tiny_cnn), "--dump-ir", str(dumps), "-q"]) == 0
    assert sorted(os.listdir(dumps)) == ["001-eliminate-dead-code.onnx", "002-fold-constants.onnx",
                                         "003-fuse-batchnorm.onnx", "004-fuse-matmul-add.onnx"]
    assert file_ops(dumps / "001-eliminate-dead-code.onnx") == OPS_AFTER_DCE
    assert file_ops(dumps / "002-fold-constants.onnx") == OPS_AFTER_FOLD
    assert file_ops(dumps / "003-fuse-batchnorm.onnx") == OPS_AFTER_BN
    assert file_ops(dumps / "004-fuse-matmul-add.onnx") == OPS_AFTER


def _swap_errors(model_path: Path) -> tuple[float, float]:
    """Max abs and rel error of the logits when fc_add is a Sub, on the CLI's seed-0 feeds."""
    proto = onnx.load(str(model_path))
    feeds = prepare_check(load_model(str(model_path))).reference.feeds[0]
    expected = run_proto(proto, feeds)["logits"].astype(np.float64)
    next(n for n in proto.graph.node if n.op_type == "Add").op_type = "Sub"
    actual = run_proto(proto, feeds)["logits"].astype(np.float64)
    max_abs = float(np.max(np.abs(expected - actual)))
    return max_abs, max_abs / float(np.max(np.abs(expected)))


def test_plugin_pass_that_breaks_numerics_is_rolled_back_with_a_repro_line(
        tiny_cnn: Path, builtin_registry: object, swap_plugin: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The pass, the output and the errors are named; the repro line fails with exit 4 on one line."""
    plugin = swap_plugin
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "--plugin", str(plugin),
                 "--pipeline", "swap-add-for-sub"]) == 0
    stdout = capsys.readouterr().out
    max_abs, max_rel = _swap_errors(tiny_cnn)
    failure = ("numeric check failed: output 'logits' (output of Sub 'fc_add'): values differ beyond "
               "rtol=0.0001, atol=1e-05 "
               f"(max abs err {max_abs:.3g}, max rel err {max_rel:.3g})")
    assert f"rolled back: swap-add-for-sub: {failure}\n" in stdout
    repro = (f"  reproduce: graphopt optimize {tiny_cnn} -o /tmp/repro.onnx --pipeline 'swap-add-for-sub' "
             f"--seed 0 --on-failure raise --plugin {plugin}\n")
    assert repro in stdout
    assert file_ops(out) == file_ops(tiny_cnn)  # the original model was written

    repro_out = tiny_cnn.with_name("repro.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(repro_out), "--pipeline", "swap-add-for-sub",
                 "--seed", "0", "--on-failure", "raise", "--plugin", str(plugin)]) == 4
    stdout, stderr = capsys.readouterr()
    assert stderr == f"graphopt: error: pass 'swap-add-for-sub' failed: {failure}\n"
    assert stdout == ""
    assert not repro_out.exists()


RAISING_PLUGIN = '''
from graphopt import PassResult, pass_from_function


@pass_from_function("always-raises")
def always_raises(model):
    """Raises on every model."""
    raise RuntimeError("boom")
'''


def test_plugin_pass_that_raises_with_on_failure_raise_exits_4_on_one_line(
        tiny_cnn: Path, builtin_registry: object, capsys: pytest.CaptureFixture[str]) -> None:
    """A user's pass raising is a pass failure (exit 4), not an internal error (exit 70)."""
    plugin = tiny_cnn.parent / "raising_plugin.py"
    plugin.write_text(RAISING_PLUGIN)
    out = tiny_cnn.with_name("out.onnx")
    code = main(["optimize", str(tiny_cnn), "-o", str(out), "--plugin", str(plugin),
                 "--pipeline", "always-raises", "--on-failure", "raise"])
    assert code == 4
    assert capsys.readouterr().err == "graphopt: error: pass 'always-raises' raised RuntimeError: boom\n"
    assert not out.exists()


def test_plugin_pass_that_raises_is_rolled_back_by_default(
        tiny_cnn: Path, builtin_registry: object, capsys: pytest.CaptureFixture[str]) -> None:
    """Rollback is the default: exit 0 and the failure in the output."""
    plugin = tiny_cnn.parent / "raising_plugin.py"
    plugin.write_text(RAISING_PLUGIN)
    assert main(["optimize", str(tiny_cnn), "--plugin", str(plugin), "--pipeline",
                 "eliminate-dead-code,always-raises"]) == 0
    stdout = capsys.readouterr().out
    assert "rolled back: always-raises: raised RuntimeError: boom\n" in stdout
    assert "--pipeline 'eliminate-dead-code,always-raises'" in stdout
