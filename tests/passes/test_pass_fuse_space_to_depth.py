"""fuse-space-to-depth: a Focus stem (b*b strided Slices re-joined on the channels) becomes SpaceToDepth,
its channel order folded into the reading Conv's weights or kept by one Gather. Exact structure, outputs
against onnxruntime on the original (bit-exact where only data moves), and the cases that stay."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h
from passes_kit import array, assert_same_outputs, info, ints, make, op_types, ort, randn, run_pass

PASS = "fuse-space-to-depth"
END = 2**63 - 1
YOLOV5_ORDER = [(0, 0), (1, 0), (0, 1), (1, 1)]  # x[..., ::2, ::2], x[..., 1::2, ::2], ...


def _focus(order: list[tuple[int, int]], reader: str = "conv", *, block: int = 2, one_slice: bool = False,
           h_end: int = END, extra_reader: bool = False, shape: tuple[int, ...] = (1, 3, 8, 12),
           shared_weight: bool = False) -> onnx.ModelProto:
    """Pieces x[:, :, i::b, j::b] for (i, j) in ``order``, Concat on axis 1, read by ``reader``."""
    nodes, inits = [], [ints("b", [block]), ints("end", [END]), ints("h_end", [h_end]),
                        ints("ax2", [2]), ints("ax3", [3]), ints("ax23", [2, 3])]
    pieces = []
    for k, (i, j) in enumerate(order):
        inits += [ints(f"s{i}_{j}", [i, j]), ints(f"i{i}", [i]), ints(f"j{j}", [j]),
                  ints(f"bb{i}_{j}", [block, block]), ints(f"ee{i}_{j}", [h_end, END])]
        piece = f"p{k}"
        if one_slice:
            params = [f"s{i}_{j}", f"ee{i}_{j}", "ax23", f"bb{i}_{j}"]
            nodes.append(h.make_node("Slice", ["x", *params], [piece]))
        else:
            nodes.append(h.make_node("Slice", ["x", f"i{i}", "h_end", "ax2", "b"], [f"r{k}"]))
            nodes.append(h.make_node("Slice", [f"r{k}", f"j{j}", "end", "ax3", "b"], [piece]))
        pieces.append(piece)
    inits = list({t.name: t for t in inits}.values())
    nodes.append(h.make_node("Concat", pieces, ["cat"], axis=1))
    outputs = [info("y", None)]
    channels = shape[1] * len(order)
    if reader == "conv":
        inits.append(array("w", randn(4, channels, 3, 3, seed=3)))
        nodes.append(h.make_node("Conv", ["cat", "w"], ["y"], pads=[1, 1, 1, 1]))
        if shared_weight:
            nodes.append(h.make_node("Conv", ["x2", "w"], ["y2"], pads=[1, 1, 1, 1]))
            outputs.append(info("y2", None))
    else:
        nodes.append(h.make_node("Relu", ["cat"], ["y"]))
    if extra_reader:
        nodes.append(h.make_node("Sigmoid", ["r0"], ["side"]))
        outputs.append(info("side", None))
    inputs = [info("x", ["N", *shape[1:]])]
    if shared_weight:
        inputs.append(info("x2", [1, channels, 4, 4]))
    return make(nodes, inputs, outputs, inits, opset=17)


def _feeds(proto: onnx.ModelProto, shape: tuple[int, ...] = (1, 3, 8, 12)) -> dict[str, np.ndarray]:
    feeds = {"x": randn(*shape)}
    if any(i.name == "x2" for i in proto.graph.input):
        feeds["x2"] = randn(1, 12, 4, 4, seed=5)
    return feeds


def _weights_close(proto: onnx.ModelProto, model, feeds: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    expected, actual = ort(proto, feeds), ort(model, feeds)
    assert list(actual) == list(expected)
    for name, value in expected.items():  # a Conv over permuted channels sums in another order
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-5 * float(np.abs(value).max()))


def test_focus_read_by_a_conv_becomes_space_to_depth_with_the_order_in_the_weights() -> None:
    """8 Slices + Concat + Conv -> SpaceToDepth + Conv: no Gather is left, the weight's input
    channels are permuted instead, and any batch gives the original's outputs."""
    proto = _focus(YOLOV5_ORDER)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["SpaceToDepth", "Conv"]
    assert result.stats == {"fused": 1, "order_into_conv_weights": 1}
    for batch in (1, 3):
        _weights_close(proto, model, {"x": randn(batch, 3, 8, 12, seed=batch)})
    assert not run_pass(model, PASS)[1].changed


def test_pieces_in_space_to_depth_order_need_no_permutation() -> None:
    """(0,0), (0,1), (1,0), (1,1) is SpaceToDepth's own channel order: bit-exact, nothing else."""
    proto = _focus([(0, 0), (0, 1), (1, 0), (1, 1)], reader="relu")
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["SpaceToDepth", "Relu"] and result.stats == {"fused": 1, "in_order": 1}
    assert_same_outputs(proto, model, _feeds(proto))


def test_another_reader_keeps_the_order_in_one_gather() -> None:
    """A Relu cannot take the order into weights: one Gather on the channels keeps it, bit-exact."""
    proto = _focus(YOLOV5_ORDER, reader="relu")
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["SpaceToDepth", "Gather", "Relu"]
    assert result.stats == {"fused": 1, "order_by_gather": 1}
    assert_same_outputs(proto, model, _feeds(proto))


def test_a_shared_conv_weight_is_not_permuted() -> None:
    """The weight is also read by a Conv of another input: permuting it would copy it, so a Gather."""
    proto = _focus(YOLOV5_ORDER, shared_weight=True)
    model, result = run_pass(proto, PASS)
    assert op_types(model).count("Gather") == 1 and result.stats["order_by_gather"] == 1
    assert_same_outputs(proto, model, _feeds(proto))


@pytest.mark.parametrize("block", [2, 3])
def test_one_slice_per_piece_and_larger_blocks(block: int) -> None:
    """x[:, :, i::b, j::b] as one Slice over axes (2, 3), for b = 2 and b = 3 (nine pieces)."""
    order = [(i, j) for j in range(block) for i in range(block)]
    shape = (2, 2, 6, 12)
    proto = _focus(order, reader="relu", block=block, one_slice=True, shape=shape)
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["SpaceToDepth", "Gather", "Relu"] and result.stats["fused"] == 1
    assert_same_outputs(proto, model, _feeds(proto, shape))


@pytest.mark.parametrize("case", ["missing block", "repeated block", "short end", "read elsewhere"])
def test_cases_that_are_not_space_to_depth_stay(case: str) -> None:
    """A block left out or taken twice, a piece that stops before the end, or a Slice read by
    another op: the Concat is not SpaceToDepth's output (or the Slice must stay anyway)."""
    orders = {"missing block": YOLOV5_ORDER[:3], "repeated block": [*YOLOV5_ORDER[:3], (0, 0)]}
    order = orders.get(case, YOLOV5_ORDER)
    proto = _focus(order, reader="relu", h_end=6 if case == "short end" else END,
                   extra_reader=case == "read elsewhere")
    model, result = run_pass(proto, PASS)
    assert not result.changed and "SpaceToDepth" not in op_types(model)
