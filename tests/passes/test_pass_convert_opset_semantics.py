"""convert-opset across boundaries where an attribute's default is not what the older version did:
each conversion runs in onnxruntime on both sides (RoiAlign 10/16, DFT 17/20), what cannot be said the
other way is refused, and every attribute onnx added, removed or re-defaulted since opset 7 carries a
reviewed verdict, so a new one cannot slip through the generic drop-the-default rule unseen."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from graphopt.passes.convert_opset import OLDEST
from graphopt.passes.convert_opset._adapters import DOWN, UP
from graphopt.passes.convert_opset._decompose import SOFTMAX_FAMILY
from onnx import TensorProto as T
from onnx import defs
from onnx import helper as h
from passes_kit import assert_same_outputs, info, ints, make, randn, run_pass

from graphopt import export_model
from graphopt.errors import UsageError

PASS = "convert-opset"
REVIEWED_THROUGH = 28  # the newest opset whose schema changes were audited

# (op, opset where the change appeared) -> verdict; "default": the new attribute's default (or the
# removed one's only legal value) is what the older version did, so the generic rule is exact;
# "adapter": converted or refused by an adapter in both directions
AUDIT = {
    ("ArgMax", 12): "default", ("ArgMin", 12): "default", ("Attention", 25): "default",
    ("AveragePool", 10): "default", ("AveragePool", 19): "default", ("BatchNormalization", 9): "default",
    ("BatchNormalization", 14): "adapter", ("Cast", 19): "adapter", ("Cast", 24): "default",
    ("CastLike", 19): "default", ("CastLike", 24): "default", ("Clip", 11): "adapter",
    ("Constant", 11): "default", ("Constant", 12): "default", ("DFT", 20): "adapter",
    ("DepthToSpace", 11): "default", ("DequantizeLinear", 13): "default", ("DequantizeLinear", 21): "default",
    ("DequantizeLinear", 23): "default", ("Dropout", 12): "adapter", ("GRU", 14): "default",
    ("GatherND", 12): "default", ("GridSample", 20): "adapter", ("GroupNormalization", 21): "adapter",
    ("Hardmax", 13): "adapter", ("LSTM", 14): "default", ("LogSoftmax", 13): "adapter",
    ("LpPool", 18): "default", ("MaxPool", 8): "default", ("MaxPool", 10): "default", ("Pad", 11): "adapter",
    ("QuantizeLinear", 13): "default", ("QuantizeLinear", 19): "default", ("QuantizeLinear", 21): "default",
    ("QuantizeLinear", 23): "default", ("RNN", 14): "default",
    ("Range", 27): "default",  # stash_type: float16/bfloat16 intermediate precision, unspecified before
    **{(op, 18): "adapter" for op in ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp",
                                      "ReduceMax", "ReduceMean", "ReduceMin", "ReduceProd",
                                      "ReduceSumSquare")},
    ("ReduceSum", 13): "adapter", ("Reshape", 14): "adapter", ("Resize", 11): "adapter",
    ("Resize", 18): "adapter", ("RoiAlign", 16): "adapter", ("Scan", 9): "adapter",
    ("ScatterElements", 16): "adapter", ("ScatterND", 16): "adapter", ("Shape", 15): "adapter",
    ("Slice", 10): "adapter", ("Softmax", 13): "adapter", ("SpaceToDepth", 28): "default",
    ("Split", 13): "adapter", ("Split", 18): "adapter", ("Squeeze", 13): "adapter", ("TopK", 10): "adapter",
    ("TopK", 11): "default", ("Unsqueeze", 13): "adapter", ("Upsample", 9): "adapter",
}


def _attribute_changes() -> set[tuple[str, int]]:
    """(op, opset) of every default-domain version in (OLDEST, REVIEWED_THROUGH] that adds, removes or
    re-defaults an attribute."""
    def default(attr: onnx.defs.OpSchema.Attribute) -> object:
        return h.get_attribute_value(attr.default_value) if attr.default_value.type else None

    by_op: dict[str, list[defs.OpSchema]] = {}
    for schema in defs.get_all_schemas_with_history():
        if schema.domain == "":
            by_op.setdefault(schema.name, []).append(schema)
    found = set()
    for op, versions in by_op.items():
        versions.sort(key=lambda s: s.since_version)
        for old, new in zip(versions, versions[1:]):
            if not OLDEST < new.since_version <= REVIEWED_THROUGH:
                continue
            before, after = old.attributes, new.attributes
            if set(before) != set(after) or any(default(before[k]) != default(after[k]) for k in after
                                                 if k in before):
                found.add((op, new.since_version))
    return found


def test_every_attribute_change_since_the_oldest_opset_has_a_reviewed_verdict() -> None:
    assert _attribute_changes() == set(AUDIT)
    for (op, version), verdict in AUDIT.items():
        if verdict == "adapter" and not (op in SOFTMAX_FAMILY and version == 13):
            assert (op, version) in UP or (op, version) in DOWN, (op, version)


def _roi_align(opset: int, **attrs: object) -> onnx.ModelProto:
    node = h.make_node("RoiAlign", ["x", "rois", "idx"], ["y"], name="roi", output_height=3, output_width=3,
                       sampling_ratio=2, spatial_scale=0.5, **attrs)
    return make([node], [info("x", [1, 2, 8, 8]), info("rois", [3, 4]), info("idx", [3], T.INT64)],
                [info("y", [3, 2, 3, 3])], opset=opset)


# sub-pixel boxes too: the old grid clamps a RoI to 1x1, half_pixel does not
ROI_FEEDS = {"x": randn(1, 2, 8, 8), "idx": np.zeros(3, np.int64),
             "rois": np.array([[1.0, 2.0, 9.0, 12.0], [0.0, 0.0, 15.0, 15.0], [4.0, 4.0, 4.6, 5.0]],
                              np.float32)}


def test_roi_align_10_going_up_keeps_its_grid_explicitly() -> None:
    proto = _roi_align(13)
    model, _ = run_pass(proto, PASS, target=16)
    (node,) = export_model(model).graph.node
    assert [(a.name, a.s) for a in node.attribute if a.name == "coordinate_transformation_mode"] == [
        ("coordinate_transformation_mode", b"output_half_pixel")]
    assert_same_outputs(proto, model, ROI_FEEDS)


def test_roi_align_16_on_the_old_grid_goes_down_dropping_the_attribute() -> None:
    """torchvision's aligned=False export: exactly what RoiAlign-10 computes (was refused before)."""
    proto = _roi_align(16, coordinate_transformation_mode="output_half_pixel")
    model, _ = run_pass(proto, PASS, target=13)
    (node,) = list(model.graph)
    assert "coordinate_transformation_mode" not in node.attrs
    assert_same_outputs(proto, model, ROI_FEEDS)


@pytest.mark.parametrize("attrs", [{}, {"coordinate_transformation_mode": "half_pixel"}])
def test_roi_align_16_on_the_half_pixel_grid_is_refused_going_down(attrs: dict) -> None:
    """The default half_pixel grid used to lose its attribute and convert silently wrong."""
    with pytest.raises(UsageError, match="coordinate_transformation_mode 'half_pixel' has no equivalent "
                                         "before opset 16"):
        run_pass(_roi_align(16, **attrs), PASS, target=13)


def _dft(opset: int, axis: int | None, rank: int) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    if opset >= 20:
        inputs, inits = ["x", "", "axis"] if axis is not None else ["x"], \
            [ints("axis", axis)] if axis is not None else []
        node = h.make_node("DFT", inputs, ["y"], name="dft")
    else:
        inits = []
        node = h.make_node("DFT", ["x"], ["y"], name="dft", **({"axis": axis} if axis is not None else {}))
    shape = [2, 6, 1] if rank == 3 else [2, 4, 6, 1]
    proto = make([node], [info("x", shape)], [info("y", None)], inits, opset=opset)
    return proto, {"x": randn(*shape)}


@pytest.mark.parametrize("axis, rank", [(None, 4), (2, 4), (None, 3), (-2, 4)])
def test_dft_17_axis_attribute_becomes_an_input_with_the_old_default(axis: int | None, rank: int) -> None:
    """DFT-17's axis defaults to 1, DFT-20's axis input to -2: on a rank-4 signal they differ."""
    proto, feeds = _dft(17, axis, rank)
    model, _ = run_pass(proto, PASS, target=20)
    (node,) = list(model.graph)
    assert "axis" not in node.attrs
    assert int(node.inputs[2].const.numpy()) == (1 if axis is None else axis)
    assert_same_outputs(proto, model, feeds, rtol=1e-6)


@pytest.mark.parametrize("axis", [None, 1])
def test_dft_20_axis_input_becomes_the_attribute_going_down(axis: int | None) -> None:
    proto, feeds = _dft(20, axis, 4)
    model, _ = run_pass(proto, PASS, target=17)
    (node,) = list(model.graph)
    assert len(node.inputs) == 1 and node.attr("axis") == (-2 if axis is None else axis)
    assert_same_outputs(proto, model, feeds, rtol=1e-6)


def test_dft_20_with_a_run_time_axis_is_refused_going_down() -> None:
    node = h.make_node("DFT", ["x", "", "axis"], ["y"], name="dft")
    proto = make([node], [info("x", [2, 4, 6, 1]), info("axis", [], T.INT64)], [info("y", None)], opset=20)
    with pytest.raises(UsageError, match="DFT node 'dft': its axis is computed at run time"):
        run_pass(proto, PASS, target=17)


def test_scan_8_is_refused_going_up() -> None:
    body = h.make_graph([h.make_node("Add", ["s", "e"], ["s2"]), h.make_node("Identity", ["s2"], ["o"])], "b",
                        [info("s", [2]), info("e", [2])], [info("s2", [2]), info("o", [2])])
    node = h.make_node("Scan", ["", "init", "xs"], ["final", "ys"], name="scan", num_scan_inputs=1, body=body)
    proto = make([node], [info("init", [1, 2]), info("xs", [1, 3, 2])],
                 [info("final", [1, 2]), info("ys", [1, 3, 2])], opset=8)
    with pytest.raises(UsageError, match="Scan node 'scan': Scan-8 has a batch axis"):
        run_pass(proto, PASS, target=9)
