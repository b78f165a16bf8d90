"""fuse-conv-branches: RepVGG/MobileOne-style parallel convolutions of one input summed by Adds become one
Conv (kernels zero-padded to the largest and centred, identity branches as centred one-hot kernels).
Exact structure, merged kernels against numpy, outputs against onnxruntime on the original; and the
cases that must stay (strided identity, misaligned pads, dilation, other strides, a shared weight)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from onnx import helper as h
from passes_kit import array, info, make, op_types, ort, randn, run_pass

import graphopt

PASS = "fuse-conv-branches"


def _bn(name: str, x: str, out: str, channels: int,
        seed: int) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    rng = np.random.default_rng(seed)
    params = [rng.uniform(0.5, 1.5, channels), rng.normal(0, 0.1, channels), rng.normal(0, 0.1, channels),
              rng.uniform(0.5, 2.0, channels)]
    inits = [array(f"{name}_{k}", p.astype(np.float32)) for k, p in zip("sbmv", params)]
    return h.make_node("BatchNormalization", [x, *(i.name for i in inits)], [out]), inits


def _repvgg_block(channels: int = 8, group: int = 1, *, stride: int = 1, identity: bool = True,
                  pads_1x1: int = 0, dilation: int = 1) -> onnx.ModelProto:
    """Conv3x3 + BN, Conv1x1 + BN, BN(x) (the identity branch), two Adds and a Relu: 8 nodes."""
    per_group = channels // group
    inits = [array("w3", randn(channels, per_group, 3, 3, seed=1)),
             array("w1", randn(channels, per_group, 1, 1, seed=2))]
    nodes = [h.make_node("Conv", ["x", "w3"], ["c3"], pads=[dilation] * 4, strides=[stride] * 2, group=group,
                         dilations=[dilation] * 2),
             h.make_node("Conv", ["x", "w1"], ["c1"], pads=[pads_1x1] * 4, strides=[stride] * 2, group=group)]
    for i, (src, out) in enumerate((("c3", "b3"), ("c1", "b1"))):
        node, params = _bn(f"bn{i}", src, out, channels, seed=10 + i)
        nodes.append(node)
        inits += params
    nodes.append(h.make_node("Add", ["b3", "b1"], ["s"]))
    last = "s"
    if identity:
        node, params = _bn("bnid", "x", "bid", channels, seed=20)
        nodes += [node, h.make_node("Add", ["s", "bid"], ["t"])]
        inits += params
        last = "t"
    nodes.append(h.make_node("Relu", [last], ["y"]))
    return make(nodes, [info("x", [1, channels, 6, 6])], [info("y", None)], inits)


def _optimize(proto: onnx.ModelProto) -> tuple[graphopt.Model, Any]:
    """The default pipeline's fixpoint (fuse-batchnorm first) around the pass, checks on."""
    result = graphopt.optimize(proto)
    assert not result.report.rolled_back
    return result.model, result


def _same(proto: onnx.ModelProto, model: graphopt.Model, channels: int = 8) -> None:
    feeds = {"x": randn(1, channels, 6, 6, seed=5)}
    expected, actual = ort(proto, feeds)["y"], ort(model, feeds)["y"]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))


@pytest.mark.parametrize("group", [1, 8], ids=["dense", "depthwise"])
def test_a_repvgg_block_becomes_one_conv(group: int) -> None:
    proto = _repvgg_block(group=group)
    model, result = _optimize(proto)
    assert op_types(model) == ["Conv", "Relu"]
    fuse = next(r for r in result.report.records if r.name == PASS and r.stats)
    assert fuse.stats == {"fused_conv-conv": 1, "fused_conv-batchnorm-identity": 1}
    conv = next(iter(model.graph))
    assert conv.attr("pads") == [1, 1, 1, 1] and conv.inputs[1].const.shape == (8, 8 // group, 3, 3)
    _same(proto, model)


def test_the_merged_kernel_is_the_centred_sum() -> None:
    """Without BNs: w3 + pad(w1) + one-hot identity, checked element by element."""
    w3, w1 = randn(4, 4, 3, 3, seed=1), randn(4, 4, 1, 1, seed=2)
    nodes = [h.make_node("Conv", ["x", "w3"], ["c3"], pads=[1, 1, 1, 1]),
             h.make_node("Conv", ["x", "w1"], ["c1"]),
             h.make_node("Add", ["c3", "c1"], ["s"]), h.make_node("Add", ["s", "x"], ["y"])]
    proto = make(nodes, [info("x", [1, 4, 5, 5])], [info("y", None)], [array("w3", w3), array("w1", w1)])
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Conv"] and result.stats == {"fused_conv-conv": 1, "fused_conv-identity": 1}
    expected = w3.astype(np.float64).copy()
    expected[:, :, 1, 1] += w1[:, :, 0, 0] + np.eye(4)
    np.testing.assert_allclose(next(iter(model.graph)).inputs[1].const.numpy(), expected, rtol=1e-6)
    feeds = {"x": randn(1, 4, 5, 5, seed=3)}
    np.testing.assert_allclose(ort(model, feeds)["y"], ort(proto, feeds)["y"], rtol=1e-5, atol=1e-5)


def test_a_strided_block_merges_its_convs_but_has_no_identity() -> None:
    """RepVGG's downsampling blocks: stride 2, no identity branch; the two Convs still merge."""
    proto = _repvgg_block(stride=2, identity=False)
    model, _ = _optimize(proto)
    assert op_types(model) == ["Conv", "Relu"]
    _same(proto, model)


def _refused(proto: onnx.ModelProto, reason: str) -> None:
    model, result = run_pass(proto, PASS)
    assert not result.changed and any(reason in key for key in result.stats), result.stats
    assert op_types(model) == [n.op_type for n in proto.graph.node]


def test_misaligned_pads_stay() -> None:
    """A 1x1 with pads 1 beside a 3x3 with pads 1 is not the same grid (and not the same size)."""
    proto = make([h.make_node("Conv", ["x", "w3"], ["a"], pads=[1, 1, 1, 1]),
                  h.make_node("Conv", ["x", "w1"], ["b"], pads=[0, 0, 0, 0], strides=[1, 1]),
                  h.make_node("Add", ["a", "b"], ["y"])],
                 [info("x", [1, 4, 5, 5])], [info("y", None)],
                 [array("w3", randn(4, 4, 3, 3)), array("w1", randn(4, 4, 1, 1))])
    proto.graph.node[1].attribute[0].ints[:] = [1, 1, 1, 1]
    _refused(proto, "grids do not line up")


def test_dilated_convs_stay() -> None:
    proto = make([h.make_node("Conv", ["x", "w3"], ["a"], pads=[2, 2, 2, 2], dilations=[2, 2]),
                  h.make_node("Conv", ["x", "w1"], ["b"]), h.make_node("Add", ["a", "b"], ["y"])],
                 [info("x", [1, 4, 5, 5])], [info("y", None)],
                 [array("w3", randn(4, 4, 3, 3)), array("w1", randn(4, 4, 1, 1))])
    _refused(proto, "dilated")


def test_a_strided_conv_plus_its_input_stays() -> None:
    proto = make([h.make_node("Conv", ["x", "w"], ["a"], pads=[1, 1, 1, 1], strides=[2, 2]),
                  h.make_node("Add", ["a", "x"], ["y"])],
                 [info("x", [1, 4, 6, 6])], [info("y", None)], [array("w", randn(4, 4, 3, 3))])
    _refused(proto, "strided")


def test_a_large_weight_another_node_reads_is_not_copied() -> None:
    """w3 also feeds a second Conv: merging would copy 147 KB to remove one node."""
    w3 = randn(64, 64, 3, 3)
    proto = make([h.make_node("Conv", ["x", "w3"], ["a"], pads=[1, 1, 1, 1]),
                  h.make_node("Conv", ["x", "w1"], ["b"]), h.make_node("Add", ["a", "b"], ["s"]),
                  h.make_node("Conv", ["s", "w3"], ["y"], pads=[1, 1, 1, 1])],
                 [info("x", [1, 64, 5, 5])], [info("y", None)],
                 [array("w3", w3), array("w1", randn(64, 64, 1, 1))])
    _refused(proto, "would copy a shared weight")
