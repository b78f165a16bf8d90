"""The README's promises: its custom-pass example works as printed, and its set-up commands exist."""

from __future__ import annotations

import linecache
import re
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h

import graphopt
from graphopt.numerics.run import run_proto

README = (Path(__file__).parent.parent / "README.md").read_text()


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def _compile(source: str, label: str):  # type: ignore[no-untyped-def]
    """Compile a README block under its own pseudo-file, registered with linecache, so tools that read
    a function's source (hypothesis does) see the block itself, not whatever README.md has there."""
    filename = f"<README.md: {label}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    return compile(source, filename, "exec")


def test_custom_pass_example_runs_and_removes_double_neg() -> None:
    """The RemoveDoubleNeg example registers, removes both Negs and keeps the numbers."""
    (source,) = [b for b in _python_blocks() if "class RemoveDoubleNeg" in b]
    namespace: dict = {}
    exec(_compile(source, "RemoveDoubleNeg"), namespace)
    nodes = [h.make_node("Neg", ["x"], ["a"]), h.make_node("Neg", ["a"], ["b"]),
             h.make_node("Relu", ["b"], ["y"])]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [4])],
                         [h.make_tensor_value_info("y", T.FLOAT, [4])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    result = graphopt.optimize(model, pipeline="remove-double-neg,eliminate-dead-code")
    assert [n.op_type for n in result.model.graph] == ["Relu"]
    assert result.report.records[0].stats == {"removed": 1}
    x = {"x": np.array([-1.0, 2.0, -3.0, 4.0], np.float32)}
    out = run_proto(graphopt.export_model(result.model), x)["y"]
    np.testing.assert_array_equal(out, np.array([0.0, 2.0, 0.0, 4.0], np.float32))


def test_rewrite_rule_example_merges_scalar_scales_and_rejects_vectors() -> None:
    """The MergeScales example: two scalar Muls become one (x * 6); a vector factor is rejected and
    the rejection shows up in the rule statistics."""
    (source,) = [b for b in _python_blocks() if "class MergeScales" in b]
    namespace: dict = {}
    exec(_compile(source, "MergeScales"), namespace)

    def model(b: list[float]) -> onnx.ModelProto:
        nodes = [h.make_node("Mul", ["x", "a"], ["m"]), h.make_node("Mul", ["m", "b"], ["y"])]
        inits = [onnx.numpy_helper.from_array(np.array(2.0, np.float32), "a"),
                 onnx.numpy_helper.from_array(np.array(b, np.float32), "b")]
        graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [3])],
                             [h.make_tensor_value_info("y", T.FLOAT, [3])], inits)
        return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])

    result = graphopt.optimize(model([3.0]), pipeline="merge-scales")
    assert [n.op_type for n in result.model.graph] == ["Mul"]
    assert result.report.records[0].stats == {"merged_mul-mul": 1}
    assert result.report.records[0].rules["mul-mul"]["matches"] == 1
    x = {"x": np.array([1.0, -2.0, 0.5], np.float32)}
    out = run_proto(graphopt.export_model(result.model), x)["y"]
    np.testing.assert_array_equal(out, np.array([6.0, -12.0, 3.0], np.float32))
    kept = graphopt.optimize(model([1.0, 2.0, 3.0]), pipeline="merge-scales")
    assert [n.op_type for n in kept.model.graph] == ["Mul", "Mul"]
    assert kept.report.records[0].stats == {"rejected_mul-mul:factor is not a scalar": 1}


def test_readme_starts_with_the_two_setup_commands() -> None:
    """One command optimizes a fixture, one runs the tests; both name files that exist."""
    commands = re.findall(r"```bash\n(python3\.11 -m venv[^\n]*)\n```", README)
    assert len(commands) >= 2
    assert "graphopt optimize fixtures/" in commands[0]
    fixture = re.search(r"graphopt optimize (fixtures/\S+)", commands[0]).group(1)  # type: ignore[union-attr]
    assert (Path(__file__).parent.parent / fixture).is_file()
    assert "pytest" in commands[1]
    assert onnx.load(str(Path(__file__).parent.parent / fixture)).graph.node


def _testing_example() -> dict:
    (source,) = [b for b in _python_blocks() if "class DedupRelu" in b]
    namespace: dict = {}
    exec(_compile(source, "DedupRelu"), namespace)
    return namespace


def test_testing_your_own_pass_example_runs_as_printed() -> None:
    """The README's hypothesis test of DedupRelu runs (100 generated models) and passes."""
    _testing_example()["test_dedup_relu_preserves_semantics"]()


def test_testing_your_own_pass_example_catches_a_broken_pass() -> None:
    """The same assert on a wrong variant (dropping both Relus) fails with a reproduce line."""
    import pytest
    from hypothesis import given, settings

    from graphopt.testing.asserts import assert_pass_preserves_semantics
    from graphopt.testing.strategies import models

    class DropBothRelus(_testing_example()["DedupRelu"]):
        def run(self, model: graphopt.Model) -> graphopt.PassResult:
            removed = 0
            for graph in list(model.graph.all_graphs()):
                for node in graph:
                    inner = node.inputs[0].producer if node.op_type == "Relu" else None
                    if inner is not None and inner.op_type == "Relu" and inner.graph is graph:
                        graphopt.replace_all_uses_with(node.outputs[0], inner.inputs[0], outputs=True)
                        graph.remove(node)
                        removed += 1
            return graphopt.PassResult(removed > 0, {"removed": removed})

    @settings(max_examples=200, derandomize=True, deadline=None, database=None)
    @given(models(ops=["Relu", "Add", "Conv", "Transpose"], max_nodes=8))
    def check(model: onnx.ModelProto) -> None:
        assert_pass_preserves_semantics(DropBothRelus(), model)

    with pytest.raises(AssertionError, match="reproduce: graphopt optimize"):
        check()
