"""The trade between nodes and weight bytes (graphopt.pass_infra.budget): a pass may grow the weights by
what its removed nodes are worth, a fusion that must copy a large shared weight skips that match, and
a fixed point that ends worse than it started is undone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

import graphopt
from graphopt import Model, PassResult, Tensor
from graphopt.numerics.run import run_model, run_proto
from graphopt.pass_infra.budget import BYTES_PER_NODE, SLACK_BYTES, allowed_growth, worse
from graphopt.pass_infra.registry import PassRegistry


def test_the_trade_in_numbers() -> None:
    assert allowed_growth(0) == SLACK_BYTES and allowed_growth(3, slack=0) == 3 * BYTES_PER_NODE
    assert worse(10, 0, 11, 0)  # a node more is always worse
    assert not worse(10, 0, 9, BYTES_PER_NODE + SLACK_BYTES)
    assert worse(10, 0, 9, BYTES_PER_NODE + SLACK_BYTES + 1)
    assert worse(10, 0, 10, 1, slack=0) and not worse(10, 0, 10, 1)


def _shared_bn_resnet(blocks: int, channels: int = 64) -> onnx.ModelProto:
    """Bias-free Convs each followed by a BatchNormalization, all reading the same four parameter
    tensors (an exporter that deduplicated identical BN parameters): folding gives each Conv its own
    bias, so the weights grow while the nodes shrink."""
    rng = np.random.default_rng(0)
    inits = [nh.from_array(np.ones(channels, np.float32), "gamma"),
             nh.from_array(np.zeros(channels, np.float32), "beta"),
             nh.from_array(np.zeros(channels, np.float32), "mean"),
             nh.from_array(np.ones(channels, np.float32), "var")]
    nodes, current = [], "x"
    for i in range(blocks):
        inits.append(nh.from_array((0.1 * rng.standard_normal((channels, channels, 1, 1))).astype(np.float32),
                                   f"w{i}"))
        nodes += [h.make_node("Conv", [current, f"w{i}"], [f"c{i}"]),
                  h.make_node("BatchNormalization", [f"c{i}", "gamma", "beta", "mean", "var"], [f"b{i}"]),
                  h.make_node("Relu", [f"b{i}"], [f"r{i}"])]
        current = f"r{i}"
    graph = h.make_graph(nodes, "resnet-ish", [h.make_tensor_value_info("x", T.FLOAT, [1, channels, 8, 8])],
                         [h.make_tensor_value_info(current, T.FLOAT, None)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_batchnorms_with_shared_parameters_fold_although_each_adds_a_bias() -> None:
    """Was rolled back as a whole (nodes 60 -> 40, weights +5 KB). Now: the BNs fold, and the zero
    biases they leave are removed by fuse-affine, so the result is smaller *and* has fewer nodes."""
    proto = _shared_bn_resnet(20)
    result = graphopt.optimize(proto)
    fuse = next(r for r in result.report.records if r.name == "fuse-batchnorm")
    assert (fuse.status, fuse.stats["fused_conv-batchnorm"]) == ("changed", 20)
    assert fuse.bytes_after > fuse.bytes_before
    out = graphopt.export_model(result.model)
    assert [n.op_type for n in out.graph.node] == ["Conv", "Relu"] * 20
    size = sum(t.ByteSize() for t in out.graph.initializer)
    assert size < sum(t.ByteSize() for t in proto.graph.initializer)
    x = {"x": np.random.default_rng(1).standard_normal((1, 64, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(run_model(result.model, x)["r19"], run_proto(proto, x)["r19"], rtol=1e-4,
                               atol=1e-5)


def _shared_conv_weight(out_channels: int) -> onnx.ModelProto:
    """One Conv weight read by two Convs, each followed by its own BatchNormalization."""
    rng = np.random.default_rng(0)
    w = nh.from_array(rng.standard_normal((out_channels, 16, 3, 3)).astype(np.float32), "w")
    inits = [w]
    nodes = []
    for i in range(2):
        stats = [nh.from_array((rng.uniform(0.5, 2, out_channels)).astype(np.float32), f"{k}{i}")
                 for k in ("g", "b", "m", "v")]
        inits += stats
        nodes += [h.make_node("Conv", ["x", "w"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  h.make_node("BatchNormalization", [f"c{i}", *(s.name for s in stats)], [f"y{i}"])]
    graph = h.make_graph(nodes, "shared-w", [h.make_tensor_value_info("x", T.FLOAT, [1, 16, 8, 8])],
                         [h.make_tensor_value_info(f"y{i}", T.FLOAT, None) for i in range(2)], inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])


def test_a_fusion_that_must_copy_a_large_shared_weight_skips_that_match() -> None:
    """A 147 KB weight read by two Convs: folding either BN would copy it to remove one node, which is
    worth 16 KB; both matches are skipped and counted, the pass changes nothing."""
    result = graphopt.optimize(_shared_conv_weight(256), pipeline="fuse-batchnorm")
    (record,) = result.report.records
    assert record.status == "unchanged"
    assert record.stats == {"rejected_conv-batchnorm:would copy a shared weight": 2}


def test_a_fusion_that_copies_a_small_shared_weight_goes_ahead() -> None:
    """4 output channels: the copy is 2.3 KB, below what the removed BatchNormalization is worth."""
    proto = _shared_conv_weight(4)
    result = graphopt.optimize(proto, pipeline="fuse-batchnorm")
    (record,) = result.report.records
    assert (record.status, record.stats) == ("changed", {"fused_conv-batchnorm": 2})
    assert [n.op_type for n in result.model.graph] == ["Conv", "Conv"]
    x = {"x": np.random.default_rng(1).standard_normal((1, 16, 8, 8)).astype(np.float32)}
    expected, actual = run_proto(proto, x), run_model(result.model, x)
    for name in ("y0", "y1"):
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=1e-4)


@dataclass
class SpreadScalar:
    """Replaces the scalar constant of an Add by the same value broadcast to [4, 8]: equal nodes, the
    same numbers, 124 bytes more (within one pass's slack, but nothing gives it back)."""

    name: ClassVar[str] = "spread-scalar"

    def run(self, model: Model) -> PassResult:
        for node in model.graph:
            c = node.inputs[1] if node.op_type == "Add" else None
            if c is not None and c.const is not None and c.const.size == 1:
                full = np.full((4, 8), c.const.numpy().reshape(()), np.float32)
                node.replace_input(1, model.graph.add_const(Tensor.from_array(full)))
                return PassResult(True)
        return PassResult(False)


def test_a_fixpoint_that_ends_larger_at_equal_nodes_is_undone(builtin_registry: PassRegistry) -> None:
    builtin_registry.register(SpreadScalar)
    k = nh.from_array(np.array(0.5, np.float32), "k")
    graph = h.make_graph([h.make_node("Add", ["x", "k"], ["a"]), h.make_node("Tanh", ["a"], ["y"])], "g",
                         [h.make_tensor_value_info("x", T.FLOAT, [4, 8])],
                         [h.make_tensor_value_info("y", T.FLOAT, [4, 8])], [k])
    proto = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    result = graphopt.optimize(proto, pipeline="fixpoint(spread-scalar,eliminate-dead-code)")
    assert result.report.records[0].status == "changed"  # the pass alone is within the slack
    assert [w for w in result.report.warnings if "undone" in w] == [
        "fixpoint(spread-scalar,eliminate-dead-code){max=10} undone: it ended worse than it started "
        "(nodes 2 -> 2, weight bytes 4 -> 128)"]
    assert graphopt.export_model(result.model).graph.initializer[0].dims == []
