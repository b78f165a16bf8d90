"""graphopt.testing.asserts: real failures are caught, saved, and reproducible from the printed line."""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import graphopt
from graphopt.cli import main
from graphopt.testing.asserts import assert_equivalent, assert_ir_consistent, assert_pass_preserves_semantics


def _add_model() -> onnx.ModelProto:
    graph = h.make_graph([h.make_node("Add", ["x", "y"], ["z"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [3]),
                          h.make_tensor_value_info("y", T.FLOAT, [3])],
                         [h.make_tensor_value_info("z", T.FLOAT, [3])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _load_plugin(path: Path):  # type: ignore[no-untyped-def]
    """The plugin file imported as a module, as a user's test would import their pass."""
    spec = importlib.util.spec_from_file_location("swap_plugin_for_test", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["swap_plugin_for_test"] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_broken_pass_is_caught_saved_and_reproducible(tmp_path: Path, swap_plugin: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The message names the saved model and a command that fails the same way (exit code 4)."""
    monkeypatch.setenv("GRAPHOPT_FAILURES_DIR", str(tmp_path / "failures"))
    plugin = _load_plugin(swap_plugin)
    with pytest.raises(AssertionError) as info:
        assert_pass_preserves_semantics(plugin.SwapAddForSub(), _add_model())
    message = str(info.value)
    saved = re.search(r"model saved to (\S+)", message).group(1)  # type: ignore[union-attr]
    assert Path(saved).is_file() and onnx.load(saved).graph.node[0].op_type == "Add"
    line = re.search(r"reproduce: (.*)", message).group(1)  # type: ignore[union-attr]
    assert "--plugin" in line and "--pipeline swap-add-for-sub" in line
    argv = shlex.split(line)
    assert argv[:2] == ["graphopt", "optimize"]
    argv[argv.index("-o") + 1] = str(tmp_path / "repro.onnx")
    assert main(argv[1:]) == 4
    assert not (tmp_path / "repro.onnx").exists()


def test_correct_pass_passes_and_returns_the_transformed_model() -> None:
    """A sound pipeline passes; the returned model is the optimized copy, the input is untouched."""
    proto = onnx.load(str(Path(__file__).parents[2] / "fixtures" / "tiny_cnn.onnx"))
    before = proto.SerializeToString()
    result = assert_pass_preserves_semantics("eliminate-dead-code", proto)
    assert len(result.graph) == 12 and proto.SerializeToString() == before


def test_assert_equivalent_reports_the_differing_output() -> None:
    """A model computing x - y is not equivalent to x + y, and the message names the output."""
    model = _add_model()
    other = onnx.ModelProto()
    other.CopyFrom(model)
    other.graph.node[0].op_type = "Sub"
    feeds = {"x": np.ones(3, np.float32), "y": np.ones(3, np.float32)}
    with pytest.raises(AssertionError, match="output 'z'"):
        assert_equivalent(model, other, feeds=feeds)
    assert_equivalent(model, model, feeds=feeds)


def test_assert_ir_consistent_catches_a_stale_use() -> None:
    """A use recorded for a slot that no longer reads the value is reported."""
    model = graphopt.import_model(_add_model())
    node = model.graph.nodes[0]
    x = node.inputs[0]
    x._uses[(node, 1)] = None  # corrupt the bookkeeping on purpose
    with pytest.raises(Exception, match="use"):
        assert_ir_consistent(model)
