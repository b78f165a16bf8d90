"""Export is deterministic: the same IR (or a clone of it) always serializes to the same bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from graphopt.ir import clone_model
from graphopt.onnx_io import export_model, import_model, load_model, save_model, serialize
from graphopt.onnx_io.save import model_bytes

FLOAT = TensorProto.FLOAT


def _model() -> onnx.ModelProto:
    """Many values with colliding / missing names, metadata, an If body and several initializers."""
    rng = np.random.default_rng(0)
    body = helper.make_graph([helper.make_node("Add", ["h", "w0"], ["o"]),
                              helper.make_node("Constant", [], ["kk"], value_float=2.0)], "body", [],
                             [helper.make_tensor_value_info("o", FLOAT, [4])])
    nodes = [helper.make_node("Relu", ["x"], ["h"]),
             helper.make_node("Identity", ["h"], [""]),  # output without a name
             helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=body),
             helper.make_node("Mul", ["y", "w1"], ["z"], name="dup"),
             helper.make_node("Mul", ["z", "w2"], ["out"], name="dup")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", FLOAT, ["N"]),
                     helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", FLOAT, None)],
        initializer=[numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), f"w{i}")
                     for i in range(3)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21),
                                                    helper.make_opsetid("com.b", 1)])
    helper.set_model_props(model, {"z": "1", "a": "2", "m": "3"})
    return model


def test_exporting_the_same_model_twice_gives_identical_bytes() -> None:
    """Two exports of one IR serialize byte for byte the same."""
    model = import_model(_model())
    first, second = serialize(export_model(model)), serialize(export_model(model))
    assert first == second
    assert len(first) > 100


def test_exporting_a_clone_gives_the_same_bytes_as_the_original() -> None:
    """clone_model changes nothing that export can see, including generated names."""
    model = import_model(_model())
    assert serialize(export_model(clone_model(model))) == serialize(export_model(model))


def test_two_imports_of_one_proto_export_identically() -> None:
    """Import is deterministic too: fresh IR objects give the same file."""
    proto = _model()
    assert serialize(export_model(import_model(proto))) == serialize(export_model(import_model(proto)))


def test_exported_names_are_unique_across_subgraphs_and_stable() -> None:
    """Colliding names in sibling bodies are renamed apart, the same way on every run."""
    exported = export_model(import_model(_model()))
    graphs = [exported.graph, *[a.g for n in exported.graph.node for a in n.attribute
                                if a.type == onnx.AttributeProto.GRAPH]]
    names = [o for g in graphs for n in g.node for o in n.output if o]
    names += [t.name for g in graphs for t in g.initializer]
    main_outputs = [list(n.output) for n in exported.graph.node]
    assert len(set(names)) == len(names) == 11  # both branches hold a copy of one body: renamed apart
    assert {"o", "o_0", "kk", "kk_0"} <= set(names)
    assert main_outputs == [list(n.output) for n in export_model(import_model(_model())).graph.node]
    assert main_outputs[1] == [""]  # an unnamed, unused output stays omitted


def test_model_bytes_is_deterministic_and_parses_to_the_exported_model(tmp_path: Path) -> None:
    """The streaming writer gives the same bytes every time and the same message as export_model."""
    path = tmp_path / "m.onnx"
    onnx.save(_model(), str(path))
    model = load_model(str(path))
    first, second = model_bytes(model), model_bytes(clone_model(model))
    assert first == second
    assert onnx.ModelProto.FromString(first) == export_model(model)


@pytest.mark.parametrize("external", [False, True])
def test_saving_the_same_model_twice_writes_identical_files(tmp_path: Path, external: bool) -> None:
    """Model and data files written twice (same basename) are byte-identical."""
    src = tmp_path / "src.onnx"
    onnx.save(_model(), str(src))
    model = load_model(str(src))
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        save_model(model, str(tmp_path / folder / "m.onnx"), external_data=external, threshold=8)
    assert (tmp_path / "a" / "m.onnx").read_bytes() == (tmp_path / "b" / "m.onnx").read_bytes()
    assert (tmp_path / "a" / "m.onnx.data").exists() is external
    if external:
        assert (tmp_path / "a" / "m.onnx.data").read_bytes() == (tmp_path / "b" / "m.onnx.data").read_bytes()


def test_load_then_save_keeps_every_initializer_byte_for_byte(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Unchanged weights are copied from the input file without decoding, and reload equal."""
    src = tmp_path / "src.onnx"
    proto = _model()
    onnx.save(proto, str(src))

    def refuse(*_a: object, **_k: object) -> np.ndarray:
        raise AssertionError("a weight was decoded")

    monkeypatch.setattr(onnx.numpy_helper, "to_array", refuse)
    model = load_model(str(src))
    assert all(v.const.encoded_as(v.name) is not None for v in model.graph.consts)
    save_model(model, str(tmp_path / "out.onnx"))
    monkeypatch.undo()
    out = onnx.load(str(tmp_path / "out.onnx"))
    assert list(out.graph.initializer) == list(proto.graph.initializer)


def test_saving_over_the_input_file_keeps_the_weights(tmp_path: Path) -> None:
    """A model saved over the file it was loaded from (weights still mapped from it) stays correct."""
    path = tmp_path / "m.onnx"
    proto = _model()
    onnx.save(proto, str(path))
    model = load_model(str(path))
    save_model(model, str(path))
    assert list(onnx.load(str(path)).graph.initializer) == list(proto.graph.initializer)
    reloaded = load_model(str(path))
    for value, init in zip(reloaded.graph.consts, proto.graph.initializer):
        np.testing.assert_array_equal(value.const.numpy(), numpy_helper.to_array(init))
