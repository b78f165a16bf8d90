"""Resize and Upsample across their version boundaries, both directions.

Upsample took its scales as an attribute until 9 and became Resize at 10 (same semantics). Resize-10
samples on the asymmetric grid (``x_in = x_out / scale``); for nearest, onnxruntime floors on axes that
grow and ceils on axes that shrink. Resize-11 makes both explicit (``coordinate_transformation_mode``,
``nearest_mode``), so a node crosses 11 when one explicit setting reproduces that, and is refused when
not (half_pixel grids, cubic, sizes, nearest on axes that both grow and shrink).
"""

from __future__ import annotations

import numpy as np

from graphopt import Graph, Node, Tensor, Value
from graphopt.errors import OpsetConversionError

from ._adapters import DOWN, UP, attr_to_input, input_to_attr, noop, trim


def _text(node: Node, name: str, default: str) -> str:
    value = node.attr(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _empty_float(graph: Graph) -> Value:
    return graph.add_const(Tensor.from_array(np.zeros((0,), np.float32)))


def _constant_scales(node: Node, index: int) -> np.ndarray | None:
    value = node.inputs[index] if index < len(node.inputs) else None
    if value is None or value.const is None:
        return None
    return np.asarray(value.const.numpy(), np.float64).reshape(-1)


def _nearest_mode(node: Node, scales: np.ndarray | None) -> str:
    """The Resize-11 nearest_mode that reproduces Resize-10 nearest for these scales."""
    if scales is None:
        raise OpsetConversionError(f"Resize node {node.name!r}: nearest rounding across opset 11 depends on "
                                   "whether each axis grows or shrinks, and the scales are computed at run "
                                   "time")
    if np.all(scales >= 1):
        return "floor"
    if np.all(scales <= 1):
        return "ceil"
    raise OpsetConversionError(f"Resize node {node.name!r}: nearest resize that grows some axes and shrinks "
                               "others has no single rounding mode on the other side of opset 11")


def _resize_up_11(node: Node, graph: Graph) -> None:
    """10 -> 11: Resize(X, scales) becomes Resize(X, roi=[], scales) on the asymmetric grid."""
    mode = _text(node, "mode", "nearest")
    if mode == "nearest":
        node.set_attr("nearest_mode", _nearest_mode(node, _constant_scales(node, 1)))
    node.set_attr("coordinate_transformation_mode", "asymmetric")
    node.set_inputs([node.inputs[0], _empty_float(graph), node.inputs[1]])


def upsample_as_resize(node: Node, target: int) -> int:
    """An Upsample just renamed to Resize: at target >= 11 it becomes Resize-11 directly, rounding
    nearest with floor since Upsample's scales are >= 1 by definition (whether or not they are
    constants). Returns the Resize version the node now has."""
    if target < 11:
        return 10
    graph = node.graph
    assert graph is not None
    if _text(node, "mode", "nearest") == "nearest":
        node.set_attr("nearest_mode", "floor")
    node.set_attr("coordinate_transformation_mode", "asymmetric")
    node.set_inputs([node.inputs[0], _empty_float(graph), node.inputs[1]])
    return 11


def resize_as_upsample(node: Node, target: int) -> None:
    """A Resize-10 about to become Upsample: Upsample only grows, so its scales must be constants >= 1."""
    scales = _constant_scales(node, 1)
    if scales is None or np.any(scales < 1):
        raise OpsetConversionError(f"Resize node {node.name!r}: before opset 10 it is Upsample, whose scales "
                                   "must be constants >= 1")


def _resize_down_11(node: Node, graph: Graph) -> None:
    """11 -> 10: only scales on the asymmetric grid, nearest rounding as Resize-10 does it, no cubic."""
    mode = _text(node, "mode", "nearest")
    coordinates = _text(node, "coordinate_transformation_mode", "half_pixel")
    reasons = []
    if mode not in ("nearest", "linear"):
        reasons.append(f"mode {mode!r} is new in opset 11")
    if coordinates != "asymmetric":
        reasons.append(f"coordinate_transformation_mode {coordinates!r} has no equivalent before opset 11")
    scales = node.inputs[2] if len(node.inputs) > 2 else None
    if len(node.inputs) > 3 and node.inputs[3] is not None:
        reasons.append("output sizes (instead of scales) are new in opset 11")
    elif scales is None or (scales.const is not None and scales.const.numpy().size == 0):
        reasons.append("it has no scales")
    if not reasons and mode == "nearest":
        wanted = _nearest_mode(node, _constant_scales(node, 2))
        if _text(node, "nearest_mode", "round_prefer_floor") != wanted:
            reasons.append(f"opset 10 rounds these scales with {wanted!r}, the node with "
                           f"{_text(node, 'nearest_mode', 'round_prefer_floor')!r}")
    if reasons:
        raise OpsetConversionError(f"Resize node {node.name!r}: {'; '.join(reasons)}")
    for name in ("coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
                 "extrapolation_value"):
        node.attrs.pop(name, None)
    node.set_inputs([node.inputs[0], scales])


def _resize_down_13(node: Node, graph: Graph) -> None:
    """roi and scales are required inputs before 13: empty tensors mean "not used"."""
    inputs = list(node.inputs) + [None] * max(0, 3 - len(node.inputs))
    if inputs[1] is None:
        inputs[1] = _empty_float(graph)
    if inputs[2] is None:
        inputs[2] = _empty_float(graph)
    node.set_inputs(trim(inputs))


def _resize_down_18(node: Node, graph: Graph) -> None:
    if node.attr("antialias", 0) or node.attr("axes") is not None or \
            _text(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise OpsetConversionError(f"Resize node {node.name!r}: antialias, axes and keep_aspect_ratio_policy "
                                   "are new in opset 18")
    for name in ("antialias", "axes", "keep_aspect_ratio_policy"):
        node.attrs.pop(name, None)


def _resize_down_19(node: Node, graph: Graph) -> None:
    if _text(node, "coordinate_transformation_mode", "half_pixel") == "half_pixel_symmetric":
        raise OpsetConversionError(f"Resize node {node.name!r}: half_pixel_symmetric is new in opset 19")


def _upsample_scales_down(node: Node, graph: Graph) -> None:
    """9 -> 7: the scales input becomes an attribute (it must be a constant, every scale >= 1)."""
    scales = _constant_scales(node, 1)
    if scales is not None and np.any(scales < 1):
        raise OpsetConversionError(f"Resize node {node.name!r}: scales below 1 (shrinking) do not exist "
                                   "before opset 10")
    input_to_attr("scales", 1, "scales")(node, graph)


DOWN[("Resize", 11)], UP[("Resize", 11)] = _resize_down_11, _resize_up_11
DOWN[("Resize", 13)], UP[("Resize", 13)] = _resize_down_13, noop
DOWN[("Resize", 18)], UP[("Resize", 18)] = _resize_down_18, noop
DOWN[("Resize", 19)], UP[("Resize", 19)] = _resize_down_19, noop
DOWN[("Upsample", 9)], UP[("Upsample", 9)] = _upsample_scales_down, attr_to_input("scales", 1, np.float32)
