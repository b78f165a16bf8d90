"""The importer sorts out-of-order files and refuses broken graphs and files with ModelLoadError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.errors import GraphoptError, ModelLoadError
from graphopt.ir import verify
from graphopt.onnx_io import export_model, import_model, load_model

FLOAT = TensorProto.FLOAT


def _model(nodes: list[onnx.NodeProto], outputs: tuple[str, ...] = ("y",),
           initializers: tuple[str, ...] = (), inputs: tuple[str, ...] = ("x",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, FLOAT, [2]) for n in inputs],
        [helper.make_tensor_value_info(n, FLOAT, [2]) for n in outputs],
        initializer=[numpy_helper.from_array(np.zeros(2, np.float32), n) for n in initializers])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])


def test_nodes_out_of_topological_order_are_imported_sorted() -> None:
    """Nodes listed before their producers are imported producers first, otherwise stably."""
    proto = _model([
        helper.make_node("Neg", ["b"], ["y"], name="c"),
        helper.make_node("Abs", ["x"], ["free"], name="free"),
        helper.make_node("Relu", ["a"], ["b"], name="b"),
        helper.make_node("Sqrt", ["x"], ["a"], name="a"),
    ], outputs=("y", "free"))
    model = import_model(proto)
    assert [n.name for n in model.graph] == ["free", "a", "b", "c"]
    verify(model)
    assert [n.name for n in export_model(model).graph.node] == ["free", "a", "b", "c"]


def test_a_node_read_only_inside_a_subgraph_is_ordered_before_the_subgraph_holder() -> None:
    """A value captured by an If body counts as a dependency of the If node."""
    then_g = helper.make_graph([helper.make_node("Identity", ["late"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", FLOAT, [2])])
    else_g = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", FLOAT, [2])])
    proto = _model([
        helper.make_node("If", ["c"], ["y"], name="if", then_branch=then_g, else_branch=else_g),
        helper.make_node("Relu", ["x"], ["late"], name="late"),
    ], inputs=("x", "c"))
    model = import_model(proto)
    assert [n.name for n in model.graph] == ["late", "if"]
    verify(model)


def test_a_cycle_is_a_model_load_error_naming_a_node_on_it() -> None:
    """Two nodes reading each other's outputs cannot be sorted: the error says "cycle"."""
    proto = _model([
        helper.make_node("Add", ["x", "b"], ["a"], name="na"),
        helper.make_node("Relu", ["a"], ["b"], name="nb"),
        helper.make_node("Neg", ["b"], ["y"], name="out"),
    ])
    with pytest.raises(ModelLoadError, match=r"graph 'g' has a cycle through node '(na|nb)'"):
        import_model(proto)


def test_a_self_loop_is_a_model_load_error() -> None:
    """A node reading its own output is refused (it is never defined before it)."""
    proto = _model([helper.make_node("Add", ["x", "y"], ["y"], name="loop")])
    with pytest.raises(ModelLoadError, match=r"Add node 'loop' reads 'y'"):
        import_model(proto)


def test_a_dangling_input_is_a_model_load_error_naming_node_and_value() -> None:
    """Reading a name nobody defines reports the node, the name and the likely causes."""
    proto = _model([helper.make_node("Add", ["x", "ghost"], ["y"], name="adder")])
    with pytest.raises(ModelLoadError) as info:
        import_model(proto, source="m.onnx")
    message = str(info.value)
    assert message.startswith("m.onnx: Add node 'adder' reads 'ghost'")
    assert "not defined before it" in message and "dangling input" in message


def test_an_undefined_graph_output_is_a_model_load_error() -> None:
    """A graph output naming no value is reported as such."""
    proto = _model([helper.make_node("Relu", ["x"], ["y"])], outputs=("y", "nowhere"))
    with pytest.raises(ModelLoadError, match="a graph output reads 'nowhere'"):
        import_model(proto)


@pytest.mark.parametrize(("nodes", "initializers", "output", "what"), [
    ([helper.make_node("Relu", ["x"], ["y"], name="r1"), helper.make_node("Neg", ["x"], ["y"], name="r2")],
     (), "y", "output of Neg node 'r2'"),
    ([helper.make_node("Relu", ["x"], ["x"], name="r")], (), "x", "output of Relu node 'r'"),
    ([helper.make_node("Relu", ["w"], ["y"])], ("w", "w"), "y", "initializer"),
    ([helper.make_node("Relu", ["x"], ["w"], name="r")], ("w",), "w", "output of Relu node 'r'"),
], ids=["two-nodes", "node-redefines-input", "two-initializers", "node-redefines-initializer"])
def test_a_name_defined_twice_is_a_model_load_error(nodes: list[onnx.NodeProto],
                                                    initializers: tuple[str, ...], output: str,
                                                    what: str) -> None:
    """SSA violations are refused naming the value, the second definition and SSA."""
    proto = _model(nodes, initializers=initializers, outputs=(output,))
    with pytest.raises(ModelLoadError) as info:
        import_model(proto)
    message = str(info.value)
    assert "is defined twice" in message and f"({what})" in message and "SSA" in message


def test_missing_file_is_a_model_load_error(tmp_path: Path) -> None:
    """A path that does not exist says so."""
    path = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match="no such file"):
        load_model(str(path))


def test_directory_is_a_model_load_error(tmp_path: Path) -> None:
    """A directory is refused with a hint that a file was expected."""
    with pytest.raises(ModelLoadError, match="is a directory"):
        load_model(str(tmp_path))


def test_empty_file_is_a_model_load_error(tmp_path: Path) -> None:
    """A zero-byte file is reported as empty."""
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="file is empty"):
        load_model(str(path))


def test_random_bytes_are_a_model_load_error(tmp_path: Path) -> None:
    """Bytes that are not a ModelProto are refused (whether protobuf parses them or not)."""
    path = tmp_path / "noise.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match=r"noise\.onnx: not (a valid ONNX protobuf|an ONNX model)"):
        load_model(str(path))


def test_text_that_parses_as_an_empty_proto_is_a_model_load_error(tmp_path: Path) -> None:
    """A file protobuf accepts but that has no graph is not an ONNX model."""
    path = tmp_path / "blank.onnx"
    path.write_bytes(onnx.ModelProto(ir_version=8).SerializeToString())
    with pytest.raises(ModelLoadError, match="no graph or no opset_import"):
        load_model(str(path))


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_truncated_valid_model_is_a_model_load_error(tmp_path: Path, fraction: float) -> None:
    """A valid model file cut short is refused, never half-imported."""
    proto = _model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], initializers=("w",))
    proto.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.arange(512, dtype=np.float32), "w"))
    data = proto.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:int(len(data) * fraction)])
    with pytest.raises(ModelLoadError, match=r"cut\.onnx: not (a valid ONNX protobuf|an ONNX model)"):
        load_model(str(path))


def test_load_errors_are_graphopt_errors_with_exit_code_2(tmp_path: Path) -> None:
    """The CLI maps ModelLoadError to exit code 2 through the common base class."""
    with pytest.raises(GraphoptError) as info:
        load_model(str(tmp_path / "missing.onnx"))
    assert isinstance(info.value, ModelLoadError) and info.value.exit_code == 2


def test_load_model_records_the_model_folder_as_base_dir(tmp_path: Path) -> None:
    """A loaded model remembers the absolute folder its external data is resolved against."""
    path = tmp_path / "ok.onnx"
    onnx.save(_model([helper.make_node("Relu", ["x"], ["y"])]), str(path))
    model = load_model(str(path))
    assert model.base_dir == str(tmp_path)
    assert [n.op_type for n in model.graph] == ["Relu"]
