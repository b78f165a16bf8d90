"""Import -> export keeps everything a model file says, and the model still computes the same."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from graphopt.ir import verify
from graphopt.onnx_io import export_model, import_model, load_model, save_model

FLOAT, INT64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def _subgraph(name: str, reads: str) -> onnx.GraphProto:
    """A tiny body: Identity(<reads>) -> <name>_out."""
    return helper.make_graph(
        [helper.make_node("Identity", [reads], [f"{name}_out"], name=f"{name}_id")], name, [],
        [helper.make_tensor_value_info(f"{name}_out", FLOAT, [3])])


def _sparse(name: str) -> onnx.SparseTensorProto:
    values = numpy_helper.from_array(np.array([1.5, -2.0], np.float32), name)
    indices = numpy_helper.from_array(np.array([0, 4], np.int64), f"{name}_idx")
    return helper.make_sparse_tensor(values, indices, [6])


def _every_attribute() -> list[onnx.AttributeProto]:
    """One attribute of every type, including non-UTF8 string bytes."""
    tensor = numpy_helper.from_array(np.array([[1, 2], [3, 4]], np.int32), "t_attr")
    type_proto = helper.make_tensor_type_proto(FLOAT, ["B", None, 4])
    return [
        helper.make_attribute("f", 0.25),
        helper.make_attribute("i", -7),
        helper.make_attribute("s", b"caf\xc3\xa9 \xff\xfe raw"),
        helper.make_attribute("t", tensor),
        helper.make_attribute("g", _subgraph("g_body", "s")),
        helper.make_attribute("fs", [0.5, -1.0, 3.0]),
        helper.make_attribute("is", [1, -2, 3]),
        helper.make_attribute("ss", [b"a", b"\x80\x81", "\u00e9".encode()]),
        helper.make_attribute("ts", [tensor, numpy_helper.from_array(np.array(2.0, np.float64), "d")]),
        helper.make_attribute("gs", [_subgraph("gs0", "X"), _subgraph("gs1", "s")]),
        helper.make_attribute("sp", _sparse("sp_attr")),
        helper.make_attribute("tp", type_proto),
        helper.make_attribute("tps", [type_proto, helper.make_sequence_type_proto(type_proto)]),
        helper.make_attribute("sps", [_sparse("sps0")]),
    ]


def _rich_model() -> onnx.ModelProto:
    """A model exercising every field the importer must carry through."""
    fn = helper.make_function(
        "local.fn", "Twice", ["a"], ["b"], [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 21)], doc_string="function doc")
    custom = helper.make_node("Everything", ["X", "s"], ["e0", "", "e2"], name="custom",
                              domain="com.x", doc_string="custom doc")
    custom.attribute.extend(_every_attribute())
    nodes = [
        helper.make_node("Constant", [], ["k"], name="const_node",
                         value=numpy_helper.from_array(np.array([3.0, 3.0, 3.0], np.float32), "k")),
        helper.make_node("Add", ["X", "W"], ["s"], name="add", doc_string="node doc"),
        custom,
        helper.make_node("Twice", ["s"], ["twice"], name="call", domain="local.fn"),
        helper.make_node("Clip", ["s", "", "k_max"], ["clipped"], name="clip"),
        helper.make_node("Mul", ["clipped", "k"], ["m"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes, "main", [
            helper.make_tensor_value_info("X", FLOAT, ["N", 3]),
            helper.make_tensor_value_info("Z", INT64, [None, "M", 2]),
        ], [
            helper.make_tensor_value_info("m", FLOAT, ["N", 3]),
            helper.make_tensor_value_info("e2", FLOAT, None),
            helper.make_tensor_value_info("twice", FLOAT, ["N", None]),
            helper.make_tensor_value_info("e0", FLOAT, []),
        ],
        initializer=[numpy_helper.from_array(np.array([1, 2, 3], np.float32), "W"),
                     numpy_helper.from_array(np.array(6.0, np.float32), "k_max")],
        value_info=[helper.make_tensor_value_info("s", FLOAT, ["N", 3]),
                    helper.make_tensor_value_info("clipped", FLOAT, [None, "C"])],
        doc_string="graph doc",
        sparse_initializer=[_sparse("SP")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.x", 3),
                              helper.make_opsetid("local.fn", 1)],
        functions=[fn], ir_version=10, producer_name="maker", producer_version="4.5.6",
        domain="org.example", model_version=42, doc_string="model doc")
    helper.set_model_props(model, {"author": "me", "license": "MIT"})
    return model


def _roundtrip(proto: onnx.ModelProto) -> onnx.ModelProto:
    model = import_model(proto)
    verify(model)
    return export_model(model)


def _node(proto: onnx.ModelProto | onnx.GraphProto, name: str) -> onnx.NodeProto:
    graph = proto.graph if isinstance(proto, onnx.ModelProto) else proto
    (node,) = [n for n in graph.node if n.name == name]
    return node


@pytest.fixture(scope="module")
def rich() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """The rich model and its round trip."""
    proto = _rich_model()
    return proto, _roundtrip(proto)


def test_model_fields_survive_the_round_trip(rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """ir_version, producer, domain, model_version, doc string and metadata come back unchanged."""
    before, after = rich
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version",
                  "doc_string"):
        assert getattr(after, field) == getattr(before, field), field
    assert after.ir_version == 10 and after.model_version == 42
    assert {p.key: p.value for p in after.metadata_props} == {"author": "me", "license": "MIT"}


def test_opset_imports_of_every_domain_survive(rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """Each (domain, version) opset import comes back, in order."""
    _, after = rich
    assert [(o.domain, o.version) for o in after.opset_import] == [("", 21), ("com.x", 3),
                                                                    ("local.fn", 1)]


def test_graph_and_node_doc_strings_survive(rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """Graph name and doc string, node names and doc strings are kept."""
    _, after = rich
    assert (after.graph.name, after.graph.doc_string) == ("main", "graph doc")
    assert _node(after, "add").doc_string == "node doc"
    assert _node(after, "custom").doc_string == "custom doc"


def test_graph_inputs_and_outputs_keep_order_names_and_types(
        rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """The interface (names, order, element types, symbolic / unknown / scalar dims) is identical."""
    before, after = rich
    assert [vi.name for vi in after.graph.input] == ["X", "Z"]
    assert [vi.name for vi in after.graph.output] == ["m", "e2", "twice", "e0"]
    assert list(after.graph.input) == list(before.graph.input)
    assert list(after.graph.output) == list(before.graph.output)
    z_dims = after.graph.input[1].type.tensor_type.shape.dim
    assert [d.WhichOneof("value") for d in z_dims] == [None, "dim_param", "dim_value"]
    assert not after.graph.output[1].type.tensor_type.HasField("shape")  # unknown rank stays unknown
    assert after.graph.output[3].type.tensor_type.HasField("shape")  # scalar stays rank 0
    assert len(after.graph.output[3].type.tensor_type.shape.dim) == 0


def test_value_info_types_and_shapes_survive(rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """Intermediate value_info (symbolic and unknown dims) is exported again for the same names."""
    before, after = rich
    infos = {vi.name: vi for vi in after.graph.value_info}
    for vi in before.graph.value_info:
        assert infos[vi.name] == vi


@pytest.mark.parametrize("name", [a.name for a in _every_attribute()])
def test_attribute_of_every_type_survives(rich: tuple[onnx.ModelProto, onnx.ModelProto], name: str) -> None:
    """Every attribute type (incl. non-UTF8 strings, graphs, sparse tensors, type protos) is kept."""
    before, after = rich
    (old,) = [a for a in _node(before, "custom").attribute if a.name == name]
    (new,) = [a for a in _node(after, "custom").attribute if a.name == name]
    if old.type == AttributeProto.GRAPH:
        assert [(n.op_type, list(n.input)) for n in new.g.node] == [("Identity", ["s"])]
        assert list(new.g.output) == list(old.g.output)
    elif old.type == AttributeProto.GRAPHS:
        assert [[list(n.input) for n in g.node] for g in new.graphs] == [[["X"]], [["s"]]]
        assert [g.name for g in new.graphs] == ["gs0", "gs1"]
    else:
        assert new == old


def test_non_utf8_string_attributes_keep_their_exact_bytes(
        rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """Bytes that are not UTF-8 are carried losslessly through the str-typed IR."""
    _, after = rich
    attrs = {a.name: a for a in _node(after, "custom").attribute}
    assert attrs["s"].s == b"caf\xc3\xa9 \xff\xfe raw"
    assert list(attrs["ss"].strings) == [b"a", b"\x80\x81", b"\xc3\xa9"]


def test_sparse_initializers_survive(rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """Sparse initializers come back verbatim."""
    before, after = rich
    assert list(after.graph.sparse_initializer) == list(before.graph.sparse_initializer)


def test_model_local_functions_are_kept_verbatim_with_their_callers(
        rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """FunctionProtos are untouched, and the node calling one keeps its domain and op type."""
    before, after = rich
    assert list(after.functions) == list(before.functions)
    call = _node(after, "call")
    assert (call.domain, call.op_type, list(call.input), list(call.output)) == \
        ("local.fn", "Twice", ["s"], ["twice"])


def test_constant_node_in_the_main_graph_becomes_an_initializer(
        rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """The main graph's Constant node is imported as a constant and exported as an initializer."""
    _, after = rich
    assert "Constant" not in [n.op_type for n in after.graph.node]
    inits = {t.name: numpy_helper.to_array(t) for t in after.graph.initializer}
    assert sorted(inits) == ["W", "k", "k_max"]
    np.testing.assert_array_equal(inits["k"], np.array([3.0, 3.0, 3.0], np.float32))
    assert list(_node(after, "mul").input) == ["clipped", "k"]


def test_omitted_optional_inputs_and_outputs_stay_empty_names(
        rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """An omitted input slot and an omitted middle output slot are exported as ""."""
    _, after = rich
    assert list(_node(after, "clip").input) == ["s", "", "k_max"]
    assert list(_node(after, "custom").output) == ["e0", "", "e2"]
    model = import_model(_rich_model())
    clip = [n for n in model.graph if n.name == "clip"][0]
    assert clip.inputs[1] is None


def test_round_trip_of_the_round_trip_is_a_fixed_point(
        rich: tuple[onnx.ModelProto, onnx.ModelProto]) -> None:
    """Exporting what was exported gives the same proto again."""
    _, after = rich
    assert _roundtrip(after) == after


def _if_model(ir_version: int = 10) -> onnx.ModelProto:
    """Y = If(cond, then: Relu(X) + X + Constant, else: Relu(X) * W); branches read outer values."""
    then_g = helper.make_graph(
        [helper.make_node("Constant", [], ["two"], value=numpy_helper.from_array(
            np.array([2.0, 2.0, 2.0], np.float32), "two")),
         helper.make_node("Add", ["A", "X"], ["t0"]), helper.make_node("Add", ["t0", "two"], ["t1"])],
        "then", [], [helper.make_tensor_value_info("t1", FLOAT, [3])])
    else_g = helper.make_graph(
        [helper.make_node("Mul", ["A", "W"], ["e0"])],
        "else", [], [helper.make_tensor_value_info("e0", FLOAT, [3])])
    graph = helper.make_graph(
        [helper.make_node("Relu", ["X"], ["A"]),
         helper.make_node("If", ["cond"], ["Y"], then_branch=then_g, else_branch=else_g)],
        "if_model",
        [helper.make_tensor_value_info("X", FLOAT, [3]), helper.make_tensor_value_info("cond", BOOL, [])],
        [helper.make_tensor_value_info("Y", FLOAT, [3])],
        initializer=[numpy_helper.from_array(np.array([10.0, 20.0, 30.0], np.float32), "W")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=ir_version)


def test_constant_nodes_in_subgraphs_become_subgraph_initializers() -> None:
    """A Constant node in a branch comes back as an initializer of that branch, not a node."""
    after = _roundtrip(_if_model())
    then_g = [a.g for a in after.graph.node[-1].attribute if a.name == "then_branch"][0]
    assert not [n for n in then_g.node if n.op_type == "Constant"]
    (init,) = then_g.initializer
    assert init.name == "two"
    np.testing.assert_array_equal(numpy_helper.to_array(init), [2.0, 2.0, 2.0])


def _run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


@pytest.mark.parametrize("cond", [True, False])
def test_onnxruntime_outputs_are_equal_before_and_after_with_if_reading_outer_values(cond: bool) -> None:
    """The round-tripped If model checks and computes exactly what the original computes."""
    before = _if_model()
    after = _roundtrip(before)
    onnx.checker.check_model(after, full_check=True)
    feeds = {"X": np.array([-1.0, 0.5, 2.0], np.float32), "cond": np.array(cond)}
    expected = _run(before, feeds)
    got = _run(after, feeds)
    np.testing.assert_array_equal(got[0], expected[0])
    want = [1.0, 3.0, 6.0] if cond else [0.0, 10.0, 60.0]
    np.testing.assert_array_equal(got[0], np.array(want, np.float32))


@pytest.mark.parametrize("ir_version", [3, 8])
def test_initializer_that_is_also_an_input_stays_an_input_with_a_default(ir_version: int) -> None:
    """Old-IR style: a graph input with an initializer of the same name keeps both roles."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "B"], ["Y"])], "old",
        [helper.make_tensor_value_info("X", FLOAT, [2]), helper.make_tensor_value_info("B", FLOAT, [2])],
        [helper.make_tensor_value_info("Y", FLOAT, [2])],
        initializer=[numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "B")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)], ir_version=ir_version)
    model = import_model(proto)
    b = model.graph.inputs[1]
    assert b.name == "B" and b.is_graph_input and b.const is None
    assert model.graph.input_defaults[b].numpy().tolist() == [1.0, 2.0]
    after = export_model(model)
    assert [vi.name for vi in after.graph.input] == ["X", "B"]
    assert [t.name for t in after.graph.initializer] == ["B"]
    np.testing.assert_array_equal(numpy_helper.to_array(after.graph.initializer[0]), [1.0, 2.0])
    assert after.ir_version == ir_version
    out = _run(after, {"X": np.array([1.0, 1.0], np.float32)})
    np.testing.assert_array_equal(out[0], [2.0, 3.0])
    if ir_version < 4:
        return  # onnxruntime treats old-IR defaults as constants: they cannot be fed
    out = _run(after, {"X": np.array([1.0, 1.0], np.float32), "B": np.array([5.0, 5.0], np.float32)})
    np.testing.assert_array_equal(out[0], [6.0, 6.0])


def test_import_and_export_never_decode_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round-tripping a model with initializers reads no weight values (tensors stay lazy)."""
    proto = _if_model()

    def refuse(*_a: object, **_k: object) -> np.ndarray:
        raise AssertionError("a weight was decoded")

    monkeypatch.setattr(onnx.numpy_helper, "to_array", refuse)
    after = export_model(import_model(proto))
    assert after.graph.initializer[0] == proto.graph.initializer[0]


@pytest.mark.parametrize("make", [_rich_model, _if_model, lambda: _if_model(ir_version=3)],
                         ids=["rich", "if", "old-ir"])
def test_file_round_trip_matches_the_in_memory_round_trip(tmp_path: Path,
                                                          make: Callable[[], onnx.ModelProto]) -> None:
    """load_model + save_model (weights left encoded) write what import_model + export_model give."""
    proto = make()
    path = tmp_path / "m.onnx"
    onnx.save(proto, str(path))
    model = load_model(str(path))
    verify(model)
    save_model(model, str(tmp_path / "out.onnx"))
    assert onnx.load(str(tmp_path / "out.onnx")) == _roundtrip(proto)


def test_outputs_with_unnamed_or_negative_dims_keep_their_type() -> None:
    """A declared output shape like [-1, 2] or [?, 2] round-trips with its type (checker-valid)."""
    from onnx import TensorProto as T
    from onnx import helper as h

    out_a = h.make_tensor_value_info("a", T.FLOAT, [None, 2])
    out_b = h.make_tensor_value_info("b", T.FLOAT, [-1, 2])
    graph = h.make_graph([h.make_node("Relu", ["x"], ["a"]), h.make_node("Neg", ["x"], ["b"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, ["N", 2])], [out_a, out_b])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    exported = export_model(import_model(model))
    assert [o.type for o in exported.graph.output] == [out_a.type, out_b.type]
    onnx.checker.check_model(exported, full_check=True)
