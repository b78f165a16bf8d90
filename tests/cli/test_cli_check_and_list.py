"""`graphopt check A B` (exit 0 equivalent, 1 not) and `graphopt list-passes`."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from graphopt.api import DEFAULT_PIPELINE
from graphopt.cli import main
from graphopt.numerics.check import prepare_check
from graphopt.numerics.run import run_proto
from graphopt.onnx_io import load_model
from graphopt.pass_infra.registry import PassRegistry


def _altered(model_path: Path, delta: float) -> Path:
    """A copy of the model with ``delta`` added to the classifier bias fc.b."""
    proto = onnx.load(str(model_path))
    init = next(t for t in proto.graph.initializer if t.name == "fc.b")
    init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init) + np.float32(delta), "fc.b"))
    path = model_path.with_name(f"altered_{delta}.onnx")
    onnx.save(proto, str(path))
    return path


def test_check_of_a_model_and_its_optimized_version_is_equivalent(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 0 and one summary line with a tiny, nonzero error.

    fuse-batchnorm folds the BatchNormalization into conv1's weights and bias, which legitimately
    changes the last float bits of the logits; everything else the pipeline does to this model is exact
    (removals, the Reshape target folded to [0, -1], MatMul + Add into one Gemm).
    """
    out = tiny_cnn.with_name("out.onnx")
    assert main(["optimize", str(tiny_cnn), "-o", str(out), "-q"]) == 0
    assert main(["check", str(tiny_cnn), str(out)]) == 0
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    number = r"(0|\d\.?\d*(?:e[-+]\d+)?)"
    lines = stdout.splitlines()
    assert lines[:2] == ["check inputs (1 set, chosen in 1 trial run(s) of the original):",
                         "  x: float32[1,3,16,16] ~N(0,1)"]
    found = re.fullmatch(rf"equivalent: 1 outputs, (\d+) intermediate tensors compared, "
                         rf"max abs err {number}, max rel err {number}", lines[2])
    assert found is not None and len(lines) == 3, stdout
    assert int(found[1]) > 0  # the tensors the optimized model kept by name are compared too
    max_abs, max_rel = float(found[2]), float(found[3])
    assert 0 < max_abs < 1e-5 and 0 < max_rel < 1e-5


def test_check_of_an_altered_model_exits_1_and_names_the_output(
        tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Adding 1 to every logit: MISMATCH line with the errors, then the NOT equivalent summary."""
    altered = _altered(tiny_cnn, 1.0)
    feeds = prepare_check(load_model(str(tiny_cnn))).reference.feeds[0]  # the inputs check chooses
    expected = run_proto(onnx.load(str(tiny_cnn)), feeds)["logits"].astype(np.float64)
    actual = run_proto(onnx.load(str(altered)), feeds)["logits"].astype(np.float64)
    max_abs = float(np.max(np.abs(expected - actual)))
    max_rel = max_abs / float(np.max(np.abs(expected)))
    assert main(["check", str(tiny_cnn), str(altered)]) == 1
    stdout, stderr = capsys.readouterr()
    assert stderr == ""
    assert stdout.splitlines()[-1] == (
        "NOT equivalent: numeric check failed: output 'logits' (output of Add 'fc_add'): values differ "
        f"beyond rtol=0.0001, atol=1e-05 (max abs err {max_abs:.3g}, max rel err {max_rel:.3g})")


def test_check_tolerance_flags_can_accept_a_small_change(tiny_cnn: Path) -> None:
    """A 1e-3 shift fails the float32 default and passes with --atol 1e-2."""
    altered = _altered(tiny_cnn, 1e-3)
    assert main(["check", str(tiny_cnn), str(altered)]) == 1
    assert main(["check", str(tiny_cnn), str(altered), "--atol", "1e-2"]) == 0


def test_check_input_shape_sets_the_batch(tiny_cnn: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--input-shape reaches the feeds of graphopt check."""
    assert main(["check", str(tiny_cnn), str(tiny_cnn), "--input-shape", "x=3,3,16,16"]) == 0
    out = capsys.readouterr().out
    assert "  x: float32[3,3,16,16] ~N(0,1)\n" in out and "\nequivalent: 1 outputs" in out


def test_list_passes_prints_each_pass_with_its_summary_and_the_default_pipeline(
        builtin_registry: PassRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    """One line per built-in pass (names padded to the longest, at least 24, here
    eliminate-common-subexpressions' 31, then one space and the first docstring line), then the
    default pipeline. A pass with options has them on the next line, indented, as name=default."""
    assert main(["list-passes"]) == 0
    stdout, stderr = capsys.readouterr()
    option_lines = [line.strip() for line in stdout.splitlines() if line.startswith(" ")]
    assert "options: growth_allowance=64 max_output_bytes=268435456 shapes=True " \
           "region_bytes_per_node=16384 " \
           "size_limit=0" in option_lines
    assert "options: target=0" in option_lines
    summary = "".join(line + "\n" for line in stdout.splitlines() if not line.startswith(" "))
    assert (summary, stderr) == (
        "convert-layout                  Make the model's image-like inputs and outputs channels-last "
        "(NHWC), in standard ONNX.\n"
        "convert-opset                   Convert the default ONNX domain to opset ``target``, up or down, "
        "recursing into subgraphs.\n"
        "convert-precision               Lower float32 to ``dtype`` (fp16 | bf16) within a drift budget; see "
        "the module docstring.\n"
        "eliminate-common-subexpressions Make equal things one thing.\n"
        "eliminate-dead-channels         Drop Conv output channels whose weights are all zero, and the input "
        "channels reading them.\n"
        "eliminate-dead-code             Remove what cannot affect the outputs, in every (sub)graph.\n"
        "fold-constants                  Replace computable nodes by constants.\n"
        "fuse-affine                     Fold Mul/Add/Sub/Div by a per-channel constant into the "
        "Conv/Gemm/MatMul/BN before it.\n"
        "fuse-batchnorm                  Fold BatchNormalization (inference mode) into the Conv, "
        "ConvTranspose or Gemm feeding it.\n"
        "fuse-conv-branches              Merge parallel convolutions of one input that an Add sums into "
        "one convolution.\n"
        "fuse-horizontal                 Merge ops with constant weights that read the same input into one "
        "op and a Split.\n"
        "fuse-matmul-add                 Fuse MatMul followed by a per-column bias Add into one Gemm.\n"
        "fuse-normalization              Recognise decomposed LayerNormalization, exact Gelu, HardSwish "
        "and HardSigmoid.\n"
        "fuse-ort-contrib                Fuse Conv + Relu/Tanh/Sigmoid/LeakyRelu/HardSigmoid/Clip into "
        "com.microsoft.FusedConv.\n"
        "fuse-pad                        Fold a zero-filled constant Pad into the pads of the Conv or "
        "AveragePool reading it.\n"
        "fuse-space-to-depth             Turn b*b strided Slices of one NCHW tensor re-joined by a channel "
        "Concat into SpaceToDepth.\n"
        "inline-functions                Inline calls to model-local functions (onnx's inliner), nested ones "
        "and those in bodies too.\n"
        "optimize-transposes             Push Transposes through layout-agnostic ops until they cancel; "
        "merge and drop them.\n"
        "plan-memory                     Plan activation memory: execution order, shared buffers and arena "
        "offsets, kept in metadata.\n"
        "prune-failing-branches          Replace an If by one branch when taking the other makes the run "
        "fail, whatever the inputs.\n"
        "simplify-chains                 Collapse Transpose-Transpose, Reshape-Reshape, Unsqueeze-Squeeze, "
        "Cast-Cast and Slice-Slice chains.\n"
        "topological-sort                Reorder nodes so every value is defined before use, keeping the "
        "current order where valid.\n"
        "\n"
        f"default pipeline: {DEFAULT_PIPELINE}\n", "")


def test_list_passes_with_a_plugin_lists_its_passes_too(
        tmp_path: Path, builtin_registry: PassRegistry, capsys: pytest.CaptureFixture[str]) -> None:
    """--plugin FILE.py adds the plugin's passes, sorted by name among the built-ins."""
    plugin = tmp_path / "noop_plugin.py"
    plugin.write_text(
        "from graphopt import PassResult, pass_from_function\n\n\n"
        "@pass_from_function('do-nothing')\n"
        "def do_nothing(model):\n"
        "    \"\"\"Changes nothing, on purpose.\"\"\"\n"
        "    return PassResult(False)\n")
    assert main(["list-passes", "--plugin", str(plugin)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert [line.split()[0] for line in lines[:23]] == [
        "convert-layout", "convert-opset", "convert-precision", "do-nothing",
        "eliminate-common-subexpressions",
        "eliminate-dead-channels", "eliminate-dead-code", "fold-constants", "fuse-affine", "fuse-batchnorm",
        "fuse-conv-branches", "fuse-horizontal", "fuse-matmul-add", "fuse-normalization", "fuse-ort-contrib",
        "fuse-pad",
        "fuse-space-to-depth", "inline-functions", "optimize-transposes", "plan-memory",
        "prune-failing-branches", "simplify-chains", "topological-sort"]
    assert lines[23:] == ["", f"default pipeline: {DEFAULT_PIPELINE}"]
    assert lines[3] == "do-nothing                      Changes nothing, on purpose."  # padded to 31
    assert list(PassRegistry().all()) == [
        "convert-layout", "convert-opset", "convert-precision", "eliminate-common-subexpressions",
        "eliminate-dead-channels",
        "eliminate-dead-code", "fold-constants",
        "fuse-affine", "fuse-batchnorm", "fuse-conv-branches", "fuse-horizontal", "fuse-matmul-add",
        "fuse-normalization",
        "fuse-ort-contrib", "fuse-pad", "fuse-space-to-depth", "inline-functions", "optimize-transposes",
        "plan-memory", "prune-failing-branches",
        "simplify-chains", "topological-sort"]
