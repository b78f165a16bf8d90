"""convert-opset: Upsample/Resize across 7, 9, 10, 11, 13, 18 and 19; TopK k (10), Dropout ratio and mask
(10, 12), Scatter reductions (16, 18), GridSample modes (20), and the generic check of attributes the target
does not know. Each conversion pins the node left and onnxruntime outputs equal before and after; each refusal
names the op, the node and the reason (the shared helpers live in convert_opset_kit.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from convert_opset_kit import const_at, convert, one_op, refused
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, info, ints, make, only_node, ort, randn, run_pass

from graphopt import Node

X4 = [1, 2, 5, 7]
FEEDS = {"x": randn(*X4)}
ASYM = {"coordinate_transformation_mode": "asymmetric"}
GROW, SHRINK, ODD = [1.0, 1.0, 2.0, 3.0], [1.0, 1.0, 0.5, 0.6], [1.0, 1.0, 1.7, 2.5]
MIXED = [1.0, 1.0, 0.5, 2.0]


def _attrs(node: Node) -> dict:
    return {name: node.attr(name) for name in node.attrs}


def _floats(name: str, values: list[float]) -> onnx.TensorProto:
    return array(name, np.array(values, np.float32))


def _resize(opset: int, inputs: list[str], attrs: dict, scales: list[float] | None = None,
            extra: list[onnx.TensorProto] = ()) -> onnx.ModelProto:
    inits = ([] if scales is None else [_floats("s", scales)]) + list(extra)
    return one_op("Resize", inputs, attrs, X4, opset, inits)


# ---- Upsample 7 -> 9 -> Resize 10 -> 11 (up) ----

@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_scales_attribute_becomes_an_input_at_9(mode: str) -> None:
    proto = one_op("Upsample", ["x"], {"scales": GROW, "mode": mode}, X4, 7)
    model, stats = convert(proto, 9, FEEDS)
    node = only_node(model)
    assert node.op_type == "Upsample" and _attrs(node) == {"mode": mode}
    assert const_at(node, 1) == GROW and node.inputs[1].const.numpy().dtype == np.float32
    assert stats["adapted_Upsample@9"] == 1


@pytest.mark.parametrize("scales", [GROW, ODD], ids=["2x3", "1.7x2.5"])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_is_renamed_resize_at_10(mode: str, scales: list[float]) -> None:
    proto = one_op("Upsample", ["x"], {"scales": scales, "mode": mode}, X4, 7)
    model, stats = convert(proto, 10, FEEDS)
    node = only_node(model)
    assert node.op_type == "Resize" and _attrs(node) == {"mode": mode}
    assert const_at(node, 1) == pytest.approx(scales) and len(node.inputs) == 2
    assert stats["renamed_Upsample"] == 1


@pytest.mark.parametrize("scales,rounding", [(GROW, "floor"), (ODD, "floor"), (SHRINK, "ceil")],
                         ids=["grow", "grow-odd", "shrink"])
def test_resize_10_nearest_gets_roi_asymmetric_grid_and_rounding_at_11(scales: list[float],
                                                                       rounding: str) -> None:
    """Resize-10 nearest floors on axes that grow and ceils on axes that shrink (as onnxruntime runs it)."""
    model, stats = convert(_resize(10, ["x", "s"], {"mode": "nearest"}, scales), 11, FEEDS)
    node = only_node(model)
    assert _attrs(node) == {"mode": "nearest", "nearest_mode": rounding, **ASYM}
    assert const_at(node, 1) == [] and node.inputs[1].const.numpy().dtype == np.float32
    assert node.inputs[2].name == "s" and stats["adapted_Resize@11"] == 1


@pytest.mark.parametrize("scales", [GROW, SHRINK, MIXED], ids=["grow", "shrink", "mixed"])
def test_resize_10_linear_needs_no_nearest_mode_at_11(scales: list[float]) -> None:
    model, _ = convert(_resize(10, ["x", "s"], {"mode": "linear"}, scales), 11, FEEDS)
    node = only_node(model)
    assert _attrs(node) == {"mode": "linear", **ASYM} and const_at(node, 1) == []


def test_upsample_7_reaches_resize_19_in_one_run() -> None:
    proto = one_op("Upsample", ["x"], {"scales": ODD, "mode": "nearest"}, X4, 7)
    model, stats = convert(proto, 19, FEEDS)
    node = only_node(model)
    assert node.op_type == "Resize" and _attrs(node) == {"mode": "nearest", "nearest_mode": "floor", **ASYM}
    assert const_at(node, 1) == [] and const_at(node, 2) == pytest.approx(ODD)
    assert stats["adapted_Upsample@9"] == stats["renamed_Upsample"] == 1


def test_nearest_that_grows_some_axes_and_shrinks_others_is_refused_at_11() -> None:
    refused(_resize(10, ["x", "s"], {"mode": "nearest"}, MIXED), 11, "Resize", "'n0'",
            "grows some axes and shrinks others")


def test_nearest_with_run_time_scales_is_refused_at_11() -> None:
    proto = make([h.make_node("Resize", ["x", "s"], ["y"], name="n0", mode="nearest")],
                 [info("x", X4), info("s", [4])], [info("y", None)], opset=10)
    refused(proto, 11, "Resize", "'n0'", "computed at run time")


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_upsample_with_run_time_scales_is_renamed_resize_11_rounding_down(mode: str) -> None:
    """Upsample's scales are >= 1 by definition, so nearest floors whether or not they are constants."""
    proto = make([h.make_node("Upsample", ["x", "s"], ["y"], name="n0", mode=mode)],
                 [info("x", X4), info("s", [4])], [info("y", None)], opset=9)
    model, _ = convert(proto, 11, {**FEEDS, "s": np.array(ODD, np.float32)})
    node = only_node(model)
    rounding = {"nearest_mode": "floor"} if mode == "nearest" else {}
    assert node.op_type == "Resize" and _attrs(node) == {"mode": mode, **rounding, **ASYM}
    assert const_at(node, 1) == [] and node.inputs[2].name == "s"


def test_linear_with_run_time_scales_converts_to_11() -> None:
    proto = make([h.make_node("Resize", ["x", "s"], ["y"], name="n0", mode="linear")],
                 [info("x", X4), info("s", [4])], [info("y", None)], opset=10)
    model, _ = convert(proto, 11, {**FEEDS, "s": np.array(ODD, np.float32)})
    node = only_node(model)
    assert _attrs(node) == {"mode": "linear", **ASYM} and node.inputs[2].name == "s"


# ---- Resize 13/11 -> 10 -> Upsample 9 -> 7/8 (down) ----

_DOWN_CASES = {
    "13-nearest-floor-grow": (13, ["x", "", "s"], {"mode": "nearest", "nearest_mode": "floor"}, GROW),
    "13-nearest-ceil-shrink": (13, ["x", "", "s"], {"mode": "nearest", "nearest_mode": "ceil"}, SHRINK),
    "13-linear-odd": (13, ["x", "", "s"], {"mode": "linear"}, ODD),
    "13-linear-shrink": (13, ["x", "", "s"], {"mode": "linear"}, SHRINK),
    "11-nearest-floor-roi": (11, ["x", "roi", "s"], {"mode": "nearest", "nearest_mode": "floor"}, ODD),
}


@pytest.mark.parametrize("case", list(_DOWN_CASES))
def test_resize_on_the_asymmetric_grid_drops_attributes_and_roi_at_10(case: str) -> None:
    source, inputs, attrs, scales = _DOWN_CASES[case]
    proto = _resize(source, inputs, {**attrs, **ASYM}, scales, [_floats("roi", [])])
    model, stats = convert(proto, 10, FEEDS)
    node = only_node(model)
    assert node.op_type == "Resize" and _attrs(node) == {"mode": attrs["mode"]}
    assert [v.name for v in node.inputs] == ["x", "s"] and stats["adapted_Resize@11"] == 1


@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_becomes_upsample_with_a_scales_input_at_9(mode: str) -> None:
    attrs = {"mode": mode, **ASYM, **({"nearest_mode": "floor"} if mode == "nearest" else {})}
    model, stats = convert(_resize(13, ["x", "", "s"], attrs, ODD), 9, FEEDS)
    node = only_node(model)
    assert node.op_type == "Upsample" and _attrs(node) == {"mode": mode}
    assert [v.name for v in node.inputs] == ["x", "s"] and stats["renamed_Resize"] == 1


@pytest.mark.parametrize("target", [7, 8])
@pytest.mark.parametrize("mode", ["nearest", "linear"])
def test_resize_becomes_upsample_with_a_scales_attribute_below_9(mode: str, target: int) -> None:
    attrs = {"mode": mode, **ASYM, **({"nearest_mode": "floor"} if mode == "nearest" else {})}
    model, stats = convert(_resize(13, ["x", "", "s"], attrs, GROW), target, FEEDS)
    node = only_node(model)
    assert node.op_type == "Upsample" and _attrs(node) == {"mode": mode, "scales": GROW}
    assert [v.name for v in node.inputs] == ["x"] and stats["adapted_Upsample@9"] == 1


def test_resize_13_gets_an_empty_roi_at_12() -> None:
    attrs = {"mode": "linear", **ASYM}
    model, _ = convert(_resize(13, ["x", "", "s"], attrs, ODD), 12, FEEDS)
    node = only_node(model)
    assert _attrs(node) == attrs and const_at(node, 1) == [] and node.inputs[2].name == "s"


_DOWN_REFUSALS = {
    "half-pixel-default": ({"mode": "linear"}, GROW, 10, "'half_pixel' has no equivalent"),
    "cubic": ({"mode": "cubic", **ASYM}, GROW, 10, "mode 'cubic' is new in opset 11"),
    "default-rounding": ({"mode": "nearest", **ASYM}, GROW, 10,
                         "with 'floor', the node with 'round_prefer_floor'"),
    "ceil-growing": ({"mode": "nearest", "nearest_mode": "ceil", **ASYM}, GROW, 10,
                     "with 'floor', the node with 'ceil'"),
    "floor-shrinking": ({"mode": "nearest", "nearest_mode": "floor", **ASYM}, SHRINK, 10,
                        "with 'ceil', the node with 'floor'"),
    "shrinking-upsample-8": ({"mode": "linear", **ASYM}, SHRINK, 8, "constants >= 1"),
}


@pytest.mark.parametrize("case", list(_DOWN_REFUSALS))
def test_resize_without_an_older_equivalent_is_refused(case: str) -> None:
    attrs, scales, target, reason = _DOWN_REFUSALS[case]
    refused(_resize(13, ["x", "", "s"], attrs, scales), target, "Resize", "'n0'", reason)


def test_resize_with_output_sizes_is_refused_at_10() -> None:
    attrs = {"mode": "nearest", "nearest_mode": "floor", **ASYM}
    proto = _resize(13, ["x", "", "", "sz"], attrs, extra=[ints("sz", [1, 2, 10, 21])])
    refused(proto, 10, "Resize", "'n0'", "output sizes")


def test_shrinking_resize_is_refused_at_9() -> None:
    refused(_resize(13, ["x", "", "s"], {"mode": "linear", **ASYM}, SHRINK), 9, "Resize", "'n0'",
            "constants >= 1")


# ---- Resize 18 (antialias, axes, keep_aspect_ratio_policy) and 19 (half_pixel_symmetric) ----

@pytest.mark.parametrize("attrs,scales", [({"antialias": 1}, GROW), ({"axes": [2, 3]}, [2.0, 3.0]),
                                          ({"keep_aspect_ratio_policy": "not_larger"}, GROW)],
                         ids=["antialias", "axes", "keep-aspect"])
def test_resize_18_attributes_are_refused_at_17(attrs: dict, scales: list[float]) -> None:
    proto = _resize(18, ["x", "", "s"], {"mode": "linear", **attrs}, scales)
    refused(proto, 17, "Resize", "'n0'", "new in opset 18")


def test_resize_18_attributes_at_their_defaults_are_dropped_at_17() -> None:
    attrs = {"mode": "linear", "antialias": 0, "keep_aspect_ratio_policy": "stretch"}
    model, _ = convert(_resize(18, ["x", "", "s"], attrs, ODD), 17, FEEDS)
    node = only_node(model)
    assert _attrs(node) == {"mode": "linear"} and node.inputs[1] is None and node.inputs[2].name == "s"


def test_half_pixel_symmetric_is_refused_at_18_and_half_pixel_is_kept() -> None:
    symmetric = {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric"}
    refused(_resize(19, ["x", "", "s"], symmetric, GROW), 18, "Resize", "'n0'", "half_pixel_symmetric")
    plain = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    model, _ = convert(_resize(19, ["x", "", "s"], plain, ODD), 18, FEEDS)
    assert _attrs(only_node(model)) == plain


# ---- TopK: k attribute before 10, int64[1] input from 10; largest/sorted new at 11 ----

def _topk(opset: int, inputs: list[str], attrs: dict, inits: list = (),
          graph_inputs: tuple = ()) -> onnx.ModelProto:
    node = h.make_node("TopK", inputs, ["v", "i"], name="n0", **attrs)
    return make([node], [info("x", [3, 6]), *graph_inputs], [info("v", None), info("i", None, T.INT64)],
                list(inits), opset=opset)


@pytest.mark.parametrize("target", [10, 11])
def test_topk_k_attribute_becomes_an_int64_input(target: int) -> None:
    model, stats = convert(_topk(9, ["x"], {"k": 2, "axis": 1}), target, {"x": randn(3, 6)})
    node = only_node(model)
    assert _attrs(node) == {"axis": 1} and const_at(node, 1) == [2]
    assert node.inputs[1].const.numpy().dtype == np.int64 and stats["adapted_TopK@10"] == 1


@pytest.mark.parametrize("target", [7, 9])
def test_topk_k_input_becomes_an_attribute_below_10(target: int) -> None:
    model, _ = convert(_topk(10, ["x", "k"], {"axis": 1}, [ints("k", [2])]), target, {"x": randn(3, 6)})
    node = only_node(model)
    assert _attrs(node) == {"axis": 1, "k": 2} and [v.name for v in node.inputs] == ["x"]


def test_topk_with_run_time_k_is_refused_below_10() -> None:
    proto = _topk(10, ["x", "k"], {}, graph_inputs=(info("k", [1], T.INT64),))
    refused(proto, 9, "TopK", "'n0'", "computed at run time")


def test_topk_largest_0_is_refused_at_10_and_defaults_are_dropped() -> None:
    refused(_topk(11, ["x", "k"], {"largest": 0}, [ints("k", [2])]), 10, "TopK", "'n0'", "largest=0")
    proto = _topk(11, ["x", "k"], {"axis": 1, "largest": 1, "sorted": 1}, [ints("k", [2])])
    model, _ = convert(proto, 10, {"x": randn(3, 6)})
    assert _attrs(only_node(model)) == {"axis": 1} and const_at(only_node(model), 1) == [2]


# ---- Dropout: ratio attribute before 12, input from 12; training_mode (12); bool mask from 10 ----

def _dropout(opset: int, inputs: list[str], attrs: dict, inits: list = (), mask: int | None = None,
             graph_inputs: tuple = ()) -> onnx.ModelProto:
    outputs = ["y"] + (["m"] if mask is not None else [])
    node = h.make_node("Dropout", inputs, outputs, name="n0", **attrs)
    declared = [info("y", None)] + ([info("m", None, mask)] if mask is not None else [])
    return make([node], [info("x", [3, 6]), *graph_inputs], declared, list(inits), opset=opset)


def test_dropout_ratio_attribute_becomes_an_input_at_12() -> None:
    model, stats = convert(_dropout(7, ["x"], {"ratio": 0.3}), 12, {"x": randn(3, 6)})
    node = only_node(model)
    assert not node.attrs and const_at(node, 1) == pytest.approx(0.3) and len(node.inputs) == 2
    assert node.inputs[1].const.numpy().dtype == np.float32 and stats["adapted_Dropout@12"] == 1


@pytest.mark.parametrize("target", [7, 11])
@pytest.mark.parametrize("training", [False, None], ids=["training-false", "no-training"])
def test_dropout_ratio_input_becomes_an_attribute_below_12(training: bool | None, target: int) -> None:
    inputs = ["x", "r"] + ([] if training is None else ["t"])
    inits = [_floats("r", 0.3)] + ([] if training is None else [array("t", np.array(training))])
    model, _ = convert(_dropout(12, inputs, {"seed": 3}, inits), target, {"x": randn(3, 6)})
    node = only_node(model)
    assert _attrs(node) == {"ratio": pytest.approx(0.3)} and [v.name for v in node.inputs] == ["x"]


def test_dropout_training_mode_true_or_at_run_time_is_refused_below_12() -> None:
    on = _dropout(12, ["x", "r", "t"], {}, [_floats("r", 0.3), array("t", np.array(True))])
    refused(on, 11, "Dropout", "'n0'", "training_mode")
    run_time = _dropout(12, ["x", "r", "t"], {}, [_floats("r", 0.3)], graph_inputs=(info("t", [], T.BOOL),))
    refused(run_time, 11, "Dropout", "'n0'", "training_mode")


def test_dropout_mask_read_is_refused_below_10() -> None:
    """Before 10 the mask has the data's type instead of bool."""
    refused(_dropout(11, ["x"], {}, mask=T.BOOL), 9, "Dropout", "'n0'", "mask", "bool from then on")


def test_dropout_mask_read_is_refused_below_12() -> None:
    """onnxruntime fills an inference mask with False before 12 and with True from 12 on."""
    refused(_dropout(12, ["x"], {}, mask=T.BOOL), 11, "Dropout", "'n0'", "mask is read", "opset 12")


def test_dropout_mask_unread_converts_below_10() -> None:
    proto = make([h.make_node("Dropout", ["x"], ["y", "m"], name="n0")], [info("x", [3, 6])],
                 [info("y", None)], opset=10)
    model, _ = convert(proto, 9, {"x": randn(3, 6)})
    assert only_node(model).op_type == "Dropout"


def test_dropout_mask_read_is_refused_going_up_to_10() -> None:
    refused(_dropout(7, ["x"], {"ratio": 0.3}, mask=T.FLOAT), 10, "Dropout", "'n0'", "mask")


# ---- ScatterElements/ScatterND reduction: add/mul from 16, max/min from 18 ----

_SCATTER = {
    "ScatterElements": ([ints("i", [[1, 0], [2, 3], [0, 0]]), _floats("u", np.arange(6).reshape(3, 2) + 1.0)],
                        {"axis": 1}),
    "ScatterND": ([ints("i", [[1], [0]]), _floats("u", np.arange(8).reshape(2, 4) + 1.0)], {}),
}


def _scatter(op: str, reduction: str | None, opset: int) -> onnx.ModelProto:
    inits, attrs = _SCATTER[op]
    extra = {} if reduction is None else {"reduction": reduction}
    return one_op(op, ["x", "i", "u"], {**attrs, **extra}, [3, 4], opset, inits)


@pytest.mark.parametrize("op", list(_SCATTER))
@pytest.mark.parametrize("reduction,source,target", [("add", 16, 15), ("mul", 16, 13), ("add", 18, 15),
                                                     ("max", 18, 17), ("min", 18, 16)])
def test_scatter_reduction_newer_than_the_target_is_refused(op: str, reduction: str, source: int,
                                                            target: int) -> None:
    since = 16 if reduction in ("add", "mul") else 18
    reason = f"reduction '{reduction}' is new in opset {since}"
    refused(_scatter(op, reduction, source), target, op, "'n0'", reason)


@pytest.mark.parametrize("op", list(_SCATTER))
@pytest.mark.parametrize("source,target", [(16, 15), (18, 13)])
def test_scatter_reduction_none_is_dropped_below_16(op: str, source: int, target: int) -> None:
    model, _ = convert(_scatter(op, "none", source), target, {"x": randn(3, 4)})
    node = only_node(model)
    assert _attrs(node) == _SCATTER[op][1] and [v.name for v in node.inputs] == ["x", "i", "u"]


@pytest.mark.parametrize("op", list(_SCATTER))
def test_scatter_reduction_add_is_kept_at_17(op: str) -> None:
    model, _ = convert(_scatter(op, "add", 18), 17, {"x": randn(3, 4)})
    assert only_node(model).attr("reduction") == "add"


# ---- GridSample: bilinear/bicubic (16) renamed linear/cubic at 20, N-D from 20 ----

def _grid_sample(opset: int, mode: str | None, x_shape: list[int] = (1, 2, 5, 6),
                 grid_shape: tuple[int, ...] = (1, 3, 4, 2)) -> onnx.ModelProto:
    grid = (np.random.default_rng(3).random(grid_shape) * 2.2 - 1.1).astype(np.float32)
    return one_op("GridSample", ["x", "g"], {} if mode is None else {"mode": mode}, list(x_shape), opset,
                  [array("g", grid)])


@pytest.mark.parametrize("mode,old", [("linear", "bilinear"), ("cubic", "bicubic"), ("nearest", "nearest"),
                                      (None, "bilinear")])
def test_grid_sample_modes_are_renamed_below_20(mode: str | None, old: str) -> None:
    model, stats = convert(_grid_sample(20, mode), 16, {"x": randn(1, 2, 5, 6)})
    assert _attrs(only_node(model)) == {"mode": old} and stats["adapted_GridSample@20"] == 1


def test_grid_sample_nearest_goes_up_to_20_unchanged() -> None:
    model, _ = convert(_grid_sample(16, "nearest"), 20, {"x": randn(1, 2, 5, 6)})
    assert _attrs(only_node(model)) == {"mode": "nearest"}


@pytest.mark.parametrize("mode,new", [("bilinear", "linear"), ("bicubic", "cubic"), (None, "linear")])
def test_grid_sample_modes_are_renamed_at_20(mode: str | None, new: str) -> None:
    model, _ = convert(_grid_sample(16, mode), 20, {"x": randn(1, 2, 5, 6)})
    assert _attrs(only_node(model)) == {"mode": new}


def test_grid_sample_not_4d_is_refused_below_20() -> None:
    proto = _grid_sample(20, "linear", [1, 2, 3, 5, 6], (1, 2, 3, 4, 3))
    refused(proto, 19, "GridSample", "'n0'", "rank is 5")
    unknown = make([h.make_node("GridSample", ["x", "g"], ["y"], name="n0")],
                   [info("x", None), info("g", None)], [info("y", None)], opset=20)
    refused(unknown, 19, "GridSample", "'n0'", "rank is unknown")


# ---- attributes unknown at the target: dropped at the default of the version that has them ----

def test_depth_to_space_mode_at_its_default_is_dropped_below_11() -> None:
    proto = one_op("DepthToSpace", ["x"], {"blocksize": 2, "mode": "DCR"}, [1, 8, 2, 3], 11)
    model, _ = convert(proto, 9, {"x": randn(1, 8, 2, 3)})
    assert _attrs(only_node(model)) == {"blocksize": 2}


def test_depth_to_space_mode_crd_is_refused_below_11() -> None:
    proto = one_op("DepthToSpace", ["x"], {"blocksize": 2, "mode": "CRD"}, [1, 8, 2, 3], 11)
    refused(proto, 9, "DepthToSpace", "'n0'", "mode='CRD'", "opset 9")


def _batch_norm(attrs: dict) -> onnx.ModelProto:
    inits = [_floats("s", [1.0, 2, 3]), _floats("b", [0.1, 0.2, 0.3]), _floats("m", [0.0, 0.5, -0.5]),
             _floats("v", [1.0, 2, 0.5])]
    return one_op("BatchNormalization", ["x", "s", "b", "m", "v"], {"epsilon": 1e-3, **attrs}, [2, 3, 4, 5],
                  7, inits)


def test_batch_norm_spatial_1_is_dropped_going_up_to_9() -> None:
    model, _ = convert(_batch_norm({"spatial": 1}), 9, {"x": randn(2, 3, 4, 5)})
    node = only_node(model)
    assert _attrs(node) == {"epsilon": pytest.approx(1e-3)} and len(node.inputs) == 5


def test_batch_norm_spatial_0_is_refused_going_up_to_9() -> None:
    refused(_batch_norm({"spatial": 0}), 9, "BatchNormalization", "'n0'", "spatial=0", "opset 9")


def test_run_pass_is_a_no_op_at_the_source_opset() -> None:
    """The conversion is idempotent: converting to the opset a model already has changes nothing."""
    model, _ = convert(_resize(10, ["x", "s"], {"mode": "nearest"}, GROW), 11, FEEDS)
    _, again = run_pass(model, "convert-opset", target=11)
    assert not again.changed and ort(model, FEEDS)["y"].shape == (1, 2, 10, 21)
