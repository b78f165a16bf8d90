"""fuse-batchnorm: BN folded into Conv (plain, grouped, depthwise), ConvTranspose and Gemm, exactly
where it is sound, with onnxruntime outputs equal within float tolerance."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt import import_model, optimize
from graphopt.numerics.compare import compare_outputs
from graphopt.numerics.run import run_model, run_proto

RNG = np.random.default_rng(0)


def _bn_inits(channels: int, prefix: str = "bn") -> list[onnx.TensorProto]:
    return [nh.from_array(RNG.uniform(0.5, 1.5, channels).astype(np.float32), f"{prefix}.s"),
            nh.from_array(RNG.normal(size=channels).astype(np.float32), f"{prefix}.b"),
            nh.from_array(RNG.normal(size=channels).astype(np.float32), f"{prefix}.m"),
            nh.from_array(RNG.uniform(0.5, 2.0, channels).astype(np.float32), f"{prefix}.v")]


def _bn(x: str, y: str, prefix: str = "bn", **attrs: float) -> onnx.NodeProto:
    return h.make_node("BatchNormalization", [x, f"{prefix}.s", f"{prefix}.b", f"{prefix}.m", f"{prefix}.v"],
                       [y], **attrs)


def _model(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x_shape: list[int],
           outputs: list[str] = ("y",)) -> onnx.ModelProto:  # type: ignore[assignment]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, x_shape)],
                         [h.make_tensor_value_info(o, T.FLOAT, None) for o in outputs], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _run(proto: onnx.ModelProto, x_shape: list[int]) -> tuple[list[str], dict]:
    feeds = {"x": RNG.normal(size=x_shape).astype(np.float32)}
    result = optimize(proto, pipeline="fuse-batchnorm", check="off", on_failure="raise")
    assert not compare_outputs(run_proto(proto, feeds), run_model(result.model, feeds))
    return [n.op_type for n in result.model.graph], result.report.records[0].stats


@pytest.mark.parametrize("group,c_in,c_out", [(1, 3, 4), (2, 4, 6), (4, 4, 4)],
                         ids=["plain", "grouped", "depthwise"])
@pytest.mark.parametrize("bias", [True, False])
def test_fold_bn_into_conv(group: int, c_in: int, c_out: int, bias: bool) -> None:
    """Conv(+bias) -> BN becomes one Conv with a bias; outputs stay equal."""
    inits = [nh.from_array(RNG.normal(size=(c_out, c_in // group, 3, 3)).astype(np.float32), "w"),
             *_bn_inits(c_out)]
    inputs = ["x", "w"]
    if bias:
        inits.append(nh.from_array(RNG.normal(size=c_out).astype(np.float32), "b"))
        inputs.append("b")
    nodes = [h.make_node("Conv", inputs, ["c"], group=group, pads=[1, 1, 1, 1]), _bn("c", "y")]
    ops, stats = _run(_model(nodes, inits, [1, c_in, 5, 5]), [1, c_in, 5, 5])
    assert ops == ["Conv"] and stats == {"fused_conv-batchnorm": 1}


@pytest.mark.parametrize("group", [1, 2])
def test_fold_bn_into_conv_transpose(group: int) -> None:
    """ConvTranspose weights are [C_in, C_out/group, k, k]: the BN scales the right slices."""
    c_in, per_group = 4, 3
    inits = [nh.from_array(RNG.normal(size=(c_in, per_group, 2, 2)).astype(np.float32), "w"),
             *_bn_inits(per_group * group)]
    nodes = [h.make_node("ConvTranspose", ["x", "w"], ["c"], group=group, strides=[2, 2]), _bn("c", "y")]
    ops, stats = _run(_model(nodes, inits, [1, c_in, 3, 3]), [1, c_in, 3, 3])
    assert ops == ["ConvTranspose"] and stats == {"fused_convtranspose-batchnorm": 1}


@pytest.mark.parametrize("trans_b", [0, 1])
def test_fold_bn_into_gemm(trans_b: int) -> None:
    """BN over the columns of a 2-D Gemm output folds into B and C (alpha and beta included)."""
    shape = (5, 4) if trans_b else (4, 5)
    inits = [nh.from_array(RNG.normal(size=shape).astype(np.float32), "w"),
             nh.from_array(RNG.normal(size=5).astype(np.float32), "c"), *_bn_inits(5)]
    nodes = [h.make_node("Gemm", ["x", "w", "c"], ["g"], transB=trans_b, alpha=0.5, beta=2.0),
             _bn("g", "y")]
    ops, stats = _run(_model(nodes, inits, [3, 4]), [3, 4])
    assert ops == ["Gemm"] and stats == {"fused_gemm-batchnorm": 1}


def test_keep_bn_when_the_conv_output_is_read_elsewhere() -> None:
    """The Conv's output escapes the match (also a graph output): nothing is fused."""
    inits = [nh.from_array(RNG.normal(size=(4, 3, 1, 1)).astype(np.float32), "w"), *_bn_inits(4)]
    nodes = [h.make_node("Conv", ["x", "w"], ["c"]), _bn("c", "y")]
    ops, stats = _run(_model(nodes, inits, [1, 3, 4, 4], outputs=["y", "c"]), [1, 3, 4, 4])
    assert ops == ["Conv", "BatchNormalization"]
    assert stats == {"rejected_conv-batchnorm:intermediate value is a graph output": 1}


def test_keep_bn_whose_parameters_are_not_constant() -> None:
    """A BN mean that is a graph input cannot be folded at compile time."""
    inits = [nh.from_array(RNG.normal(size=(4, 3, 1, 1)).astype(np.float32), "w"), *_bn_inits(4)]
    proto = _model([h.make_node("Conv", ["x", "w"], ["c"]), _bn("c", "y")], inits, [1, 3, 4, 4])
    proto.graph.initializer.pop(3)  # bn.m becomes an input
    proto.graph.input.append(h.make_tensor_value_info("bn.m", T.FLOAT, [4]))
    result = optimize(proto, pipeline="fuse-batchnorm", check="off")
    assert [n.op_type for n in result.model.graph] == ["Conv", "BatchNormalization"]


def test_keep_bn_after_an_op_it_cannot_fold_into() -> None:
    """BN after a Relu stays (it would need a Mul and an Add: more nodes, not fewer)."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), _bn("r", "y")]
    ops, stats = _run(_model(nodes, _bn_inits(3), [1, 3, 2, 2]), [1, 3, 2, 2])
    assert ops == ["Relu", "BatchNormalization"] and stats == {}


def test_fused_weights_replace_the_old_ones_and_a_second_run_changes_nothing() -> None:
    """The old weight and BN constants go with the fused nodes; the pass is idempotent."""
    inits = [nh.from_array(RNG.normal(size=(4, 3, 1, 1)).astype(np.float32), "w"), *_bn_inits(4)]
    proto = _model([h.make_node("Conv", ["x", "w"], ["c"]), _bn("c", "y")], inits, [1, 3, 4, 4])
    model = import_model(proto)
    optimize(model, pipeline="fuse-batchnorm", check="off")
    assert [v.const.shape for v in model.graph.consts] == [(4, 3, 1, 1), (4,)]
    again = optimize(model, pipeline="fuse-batchnorm", check="off")
    assert again.report.records[0].status == "unchanged"
