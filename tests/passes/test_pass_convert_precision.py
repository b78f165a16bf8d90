"""convert-precision on hand-made graphs: what converts, what keeps float32 and why (blocked ops, shape
arithmetic, Resize scales, out-of-range constants and activations: kept, never clamped), Cast targets,
If bodies, the interface with and without keep_io_types, and the drift budget of the check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

import graphopt
from graphopt.pass_infra.registry import DEFAULT_REGISTRY

F32, F16 = T.FLOAT, T.FLOAT16


def _model(
    nodes: list, inputs: list, outputs: list, inits: list | None = None, opset: int = 17
) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "g", inputs, outputs, inits or [])
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], ir_version=8)


def _init(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array, name)


def _convert(proto: onnx.ModelProto, **options: str) -> tuple[onnx.ModelProto, dict]:
    model = graphopt.import_model(proto)
    result = DEFAULT_REGISTRY.create("convert-precision", options).run(model)
    out = graphopt.export_model(model)
    onnx.checker.check_model(out, full_check=True)
    return out, {**result.stats, "changed": result.changed, "budget": result.drift_budget}


def _run(proto: onnx.ModelProto, feeds: dict) -> list:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    wanted = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    cast = {k: v.astype(np.float16) if wanted.get(k) == F16 else v for k, v in feeds.items()}
    return session.run(None, cast)


def _types(proto: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    found = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
    }
    found.update({t.name: t.data_type for t in inferred.graph.initializer})
    return found


def _mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    return _model(
        [
            h.make_node("MatMul", ["x", "w"], ["m"]),
            h.make_node("Add", ["m", "b"], ["a"]),
            h.make_node("Relu", ["a"], ["y"]),
        ],
        [h.make_tensor_value_info("x", F32, [2, 8])],
        [h.make_tensor_value_info("y", F32, [2, 4])],
        [
            _init("w", rng.standard_normal((8, 4)).astype(np.float32)),
            _init("b", rng.standard_normal(4).astype(np.float32)),
        ],
    )


def test_everything_converts_and_the_float32_weights_die() -> None:
    out, stats = _convert(_mlp())
    assert [n.op_type for n in out.graph.node] == ["MatMul", "Add", "Relu"]
    assert [i.type.tensor_type.elem_type for i in [*out.graph.input, *out.graph.output]] == [F16, F16]
    assert sorted(t.data_type for t in out.graph.initializer) == [F16, F16]
    assert (stats["nodes_lowered"], stats["casts"], stats["constants_lowered"]) == (3, 0, 2)
    assert stats["budget"] == (1e-2, 1e-5)
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    want, got = _run(_mlp(), {"x": x})[0], _run(out, {"x": x})[0].astype(np.float32)
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()


def test_keep_io_types_keeps_the_interface_and_its_names() -> None:
    out, stats = _convert(_mlp(), keep_io_types="true")
    assert [n.op_type for n in out.graph.node] == ["Cast", "MatMul", "Add", "Relu", "Cast"]
    assert [(v.name, v.type.tensor_type.elem_type) for v in [*out.graph.input, *out.graph.output]] == [
        ("x", F32),
        ("y", F32),
    ]
    assert [a.i for a in out.graph.node[0].attribute] == [F16] and [
        a.i for a in out.graph.node[-1].attribute
    ] == [F32]
    assert stats["casts"] == 2


def test_blocked_ops_keep_float32_behind_one_cast_each_way() -> None:
    """TopK's selection changes with rounding: it reads a Cast back to float32; its values output is
    cast down again for the Relu after it."""
    proto = _model(
        [
            h.make_node("Relu", ["x"], ["r"]),
            h.make_node("TopK", ["r", "k"], ["v", "i"], axis=1),
            h.make_node("Neg", ["v"], ["y"]),
        ],
        [h.make_tensor_value_info("x", F32, [2, 8])],
        [h.make_tensor_value_info("y", F32, [2, 3]), h.make_tensor_value_info("i", T.INT64, [2, 3])],
        [_init("k", np.array([3], np.int64))],
    )
    out, stats = _convert(proto, keep_io_types="true")
    assert [n.op_type for n in out.graph.node] == ["Cast", "Relu", "Cast", "TopK", "Cast", "Neg", "Cast"]
    types = _types(out)
    topk = next(n for n in out.graph.node if n.op_type == "TopK")
    assert types[topk.input[0]] == F32 and types[topk.output[0]] == F32
    assert stats["kept_selection_or_index_op"] == 1
    x = np.random.default_rng(2).standard_normal((2, 8)).astype(np.float32)
    np.testing.assert_array_equal(_run(out, {"x": x})[1], _run(proto, {"x": x})[1])  # same indices


def test_shape_arithmetic_and_resize_scales_keep_float32() -> None:
    """scales = Cast(Shape(x)[2:]) / Cast(Shape(x)[2:]) * 2: computed from shapes only, so it stays
    float32 (Resize's scales input admits nothing else); the Resize itself converts."""
    proto = _model(
        [
            h.make_node("Shape", ["x"], ["s"]),
            h.make_node("Cast", ["s"], ["sf"], to=F32),
            h.make_node("Div", ["sf", "sf"], ["one"]),
            h.make_node("Mul", ["one", "two"], ["scales"]),
            h.make_node("Relu", ["x"], ["r"]),
            h.make_node("Resize", ["r", "", "scales"], ["y"], mode="nearest"),
        ],
        [h.make_tensor_value_info("x", F32, [1, 2, 4, 4])],
        [h.make_tensor_value_info("y", F32, None)],
        [_init("two", np.array([1, 1, 2, 2], np.float32))],
        opset=19,
    )
    out, stats = _convert(proto)
    types = _types(out)
    resize = next(n for n in out.graph.node if n.op_type == "Resize")
    assert types[resize.input[2]] == F32 and types[resize.input[0]] == F16 and types[resize.output[0]] == F16
    assert [n.op_type for n in out.graph.node if n.op_type in ("Div", "Mul")] == ["Div", "Mul"]
    assert all(types[n.output[0]] == F32 for n in out.graph.node if n.op_type in ("Div", "Mul"))
    assert stats["casts"] == 0
    x = np.random.default_rng(3).standard_normal((1, 2, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(
        _run(out, {"x": x})[0].astype(np.float32), _run(proto, {"x": x})[0], rtol=1e-3, atol=1e-3
    )


def test_an_out_of_range_constant_keeps_its_node_in_float32_never_clamped() -> None:
    """x * 1e6 / 1e6: the constant 1e6 exceeds float16's 65504. The Mul keeps float32 and so does the
    Div reading its 1e6-scaled output (the observed run shows it out of range); nothing is clamped."""
    proto = _model(
        [
            h.make_node("Relu", ["x"], ["r"]),
            h.make_node("Mul", ["r", "big"], ["m"]),
            h.make_node("Div", ["m", "big"], ["d"]),
            h.make_node("Neg", ["d"], ["y"]),
        ],
        [h.make_tensor_value_info("x", F32, [4])],
        [h.make_tensor_value_info("y", F32, [4])],
        [_init("big", np.array(1e6, np.float32))],
    )
    out, stats = _convert(proto)
    types = _types(out)
    mul, div = (next(n for n in out.graph.node if n.op_type == op) for op in ("Mul", "Div"))
    assert types[mul.input[1]] == F32 and types[mul.output[0]] == F32 and types[div.output[0]] == F32
    assert stats["kept_out_of_range"] == 2
    assert all(
        np.all(np.abs(numpy_helper.to_array(t)) <= 65504) or t.data_type == F32 for t in out.graph.initializer
    )
    x = np.array([0.5, 1.25, 3.0, 0.0], np.float32)
    np.testing.assert_allclose(_run(out, {"x": x})[0].astype(np.float32), -x, rtol=1e-3)


def test_an_out_of_range_activation_is_found_by_the_observed_run() -> None:
    """x * 300 * 300 reaches ~1e5 on N(0,1) inputs although no constant is out of range."""
    proto = _model(
        [
            h.make_node("Mul", ["x", "c"], ["a"]),
            h.make_node("Mul", ["a", "c"], ["b"]),
            h.make_node("Div", ["b", "c"], ["y"]),
        ],
        [h.make_tensor_value_info("x", F32, [64])],
        [h.make_tensor_value_info("y", F32, [64])],
        [_init("c", np.array(300.0, np.float32))],
    )
    out, stats = _convert(proto)
    assert stats["kept_out_of_range"] >= 2
    x = np.random.default_rng(0).standard_normal(64).astype(np.float32)
    got = _run(out, {"x": x})[0].astype(np.float32)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, x * 300, rtol=2e-3)
    _, unobserved = _convert(proto, observe="false")  # without the run all three would convert
    assert (unobserved["nodes_lowered"], unobserved.get("kept_out_of_range", 0)) == (3, 0)


def test_cast_targets_follow_the_lowered_type() -> None:
    """A mask cast from bool to float32 in the data path becomes a Cast to float16."""
    proto = _model(
        [
            h.make_node("Greater", ["x", "zero"], ["mask"]),
            h.make_node("Cast", ["mask"], ["mf"], to=F32),
            h.make_node("Mul", ["x", "mf"], ["y"]),
        ],
        [h.make_tensor_value_info("x", F32, [8])],
        [h.make_tensor_value_info("y", F32, [8])],
        [_init("zero", np.array(0.0, np.float32))],
    )
    out, _ = _convert(proto)
    cast = next(n for n in out.graph.node if n.op_type == "Cast" and n.input[0] == "mask")
    assert cast.attribute[0].i == F16
    greater = next(n for n in out.graph.node if n.op_type == "Greater")  # a threshold keeps float32
    assert _types(out)[greater.input[0]] == F32
    x = np.linspace(-2, 2, 8).astype(np.float32)
    np.testing.assert_allclose(_run(out, {"x": x})[0].astype(np.float32), np.maximum(x, 0), rtol=1e-3)


def test_if_bodies_keep_their_types_and_read_float32() -> None:
    then_g = h.make_graph(
        [h.make_node("Neg", ["r"], ["t"])], "then", [], [h.make_tensor_value_info("t", F32, [4])]
    )
    else_g = h.make_graph(
        [h.make_node("Abs", ["r"], ["e"])], "else", [], [h.make_tensor_value_info("e", F32, [4])]
    )
    proto = _model(
        [
            h.make_node("Relu", ["x"], ["r"]),
            h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
        ],
        [h.make_tensor_value_info("x", F32, [4]), h.make_tensor_value_info("c", T.BOOL, [])],
        [h.make_tensor_value_info("y", F32, [4])],
    )
    out, stats = _convert(proto)
    assert [n.op_type for n in out.graph.node] == ["Relu", "Cast", "If"]
    assert stats["kept_subgraph"] == 1
    x = np.array([-1, 0.5, 2, -3], np.float32)
    for cond in (True, False):
        got = _run(out, {"x": x, "c": np.array(cond)})[0]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, -np.maximum(x, 0) if cond else np.maximum(x, 0), rtol=1e-3)


def test_keep_fp32_by_op_type_and_node_name() -> None:
    out, stats = _convert(_mlp(), keep_fp32="Add")
    assert stats["kept_on_request"] == 1 and stats["nodes_lowered"] == 2
    assert _types(out)[out.graph.node[[n.op_type for n in out.graph.node].index("Add")].output[0]] == F32


def test_bf16_where_onnxruntime_has_no_kernel_keeps_float32_and_says_so() -> None:
    out, stats = _convert(_mlp(), dtype="bf16", keep_io_types="true")
    missing = sorted(k for k in stats if k.startswith("kept_no_bf16_kernel_"))
    x = np.random.default_rng(1).standard_normal((2, 8)).astype(np.float32)
    got, want = _run(out, {"x": x})[0], _run(_mlp(), {"x": x})[0]  # it loads and runs either way
    assert np.abs(got - want).max() <= 5e-2 * np.abs(want).max()
    lowered = [n.op_type for n in out.graph.node if n.op_type != "Cast"]
    assert set(lowered) == {"MatMul", "Add", "Relu"}
    assert all(k.rsplit("_", 1)[-1] in lowered for k in missing)


def test_optimize_precision_folds_an_overflowing_batchnorm_first(tmp_path: Path) -> None:
    """The PP-OCR detector case: a BatchNormalization running variance of 9.79e7 (> 65504). Folded
    into its Conv by the pipeline before conversion, so nothing out of range is left to clamp."""
    rng = np.random.default_rng(0)
    var = np.array([9.79e7, 1.0, 4.0], np.float32)
    proto = _model(
        [
            h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
            h.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"]),
            h.make_node("Relu", ["bn"], ["y"]),
        ],
        [h.make_tensor_value_info("x", F32, [1, 2, 8, 8])],
        [h.make_tensor_value_info("y", F32, [1, 3, 8, 8])],
        [
            _init("w", (rng.standard_normal((3, 2, 3, 3)) * 1000).astype(np.float32)),
            _init("s", np.ones(3, np.float32)),
            _init("b", np.full(3, 0.1, np.float32)),
            _init("m", np.zeros(3, np.float32)),
            _init("v", var),
        ],
    )
    path = tmp_path / "bn.onnx"
    onnx.save(proto, path)
    result = graphopt.optimize(path, precision="fp16")
    rec = next(r for r in result.report.records if r.name == "convert-precision")
    assert rec.status == "changed", rec.failure
    drift = rec.checks["numeric"]["drift"]
    assert drift["budget"] == {"rtol": 1e-2, "atol": 1e-5} and 0 < drift["outputs"]["y"] <= 1e-2
    out = graphopt.export_model(result.model)
    assert [n.op_type for n in out.graph.node] == ["Conv", "Relu"]
    assert {t.data_type for t in out.graph.initializer} == {F16}
    x = rng.standard_normal((1, 2, 8, 8)).astype(np.float32)
    want, got = _run(proto, {"x": x})[0], _run(out, {"x": x})[0].astype(np.float32)
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()


@pytest.mark.parametrize("bad", [{"dtype": "int8"}, {"rtol": "-1"}])
def test_bad_options_are_refused(bad: dict) -> None:
    from graphopt.errors import GraphoptError

    with pytest.raises(GraphoptError):
        DEFAULT_REGISTRY.create("convert-precision", bad)


def _cancelling() -> onnx.ModelProto:
    """y = (relu(x) * 1.0003 - relu(x)) * 1000 + 1: float16 rounds 1.0003 to 1.0 (its spacing near 1 is
    2^-10), so the difference vanishes unless the nodes around it keep float32; Relu and the tail need
    not. (onnxruntime's CPU computes float16 ops in float32 between Casts: weights and Casts round.)"""
    return _model(
        [
            h.make_node("Relu", ["x"], ["r"]),
            h.make_node("Mul", ["r", "w"], ["a"]),
            h.make_node("Sub", ["a", "r"], ["s"]),
            h.make_node("Mul", ["s", "k"], ["m"]),
            h.make_node("Add", ["m", "one"], ["y"]),
        ],
        [h.make_tensor_value_info("x", F32, [256])],
        [h.make_tensor_value_info("y", F32, [256])],
        [
            _init("w", np.array(1.0003, np.float32)),
            _init("k", np.array(1000.0, np.float32)),
            _init("one", np.array(1.0, np.float32)),
        ],
    )


def test_auto_keeps_only_the_sensitive_nodes_in_float32() -> None:
    x = np.random.default_rng(5).standard_normal(256).astype(np.float32)
    want = _run(_cancelling(), {"x": x})[0]
    naive, plain = _convert(_cancelling(), keep_io_types="true")
    assert plain["nodes_lowered"] == 5  # everything converts without --auto, and drifts too far:
    assert np.abs(_run(naive, {"x": x})[0] - want).max() > 1e-2 * np.abs(want).max()
    out, stats = _convert(_cancelling(), keep_io_types="true", auto="true")
    types = _types(out)
    mul = next(n for n in out.graph.node if n.op_type == "Mul" and "w" in n.input)
    assert types[mul.output[0]] == F32  # the node reading 1.0003 keeps float32
    assert 1 <= stats["nodes_lowered"] <= 4 and stats["kept_auto_sensitive"] == 5 - stats["nodes_lowered"]
    assert stats["auto_runs"] <= 2 + 3  # two instrumented runs and a bisection over 5 nodes
    got = _run(out, {"x": x})[0]
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()
