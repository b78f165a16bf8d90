"""Version boundaries where an attribute's default is *not* what the older version did, so the generic
rule (an attribute the target lacks is dropped when it holds its default) would silently change the
result: RoiAlign's grid (16), DFT's axis (20, now an input with another default) and Scan's batch axis
(9). Each is converted explicitly where the older form can say the same thing and refused otherwise.

Audited against every attribute onnx added or re-defaulted since opset 7 (the list and the verdicts
are pinned in tests/passes/test_pass_convert_opset_semantics.py); Resize-11 lives in ``_resize`` and
the Softmax family's axis at 13 in ``_decompose``.
"""

from __future__ import annotations

import numpy as np

from graphopt import Graph, Node, Tensor
from graphopt.errors import OpsetConversionError

from ._adapters import DOWN, UP, text_attr, trim

# RoiAlign before 16 samples on the output_half_pixel grid (and clamps every RoI to at least 1x1);
# RoiAlign-16 adds coordinate_transformation_mode with the default half_pixel
ROI_ALIGN_BEFORE_16 = "output_half_pixel"


def _roi_align_up(node: Node, graph: Graph) -> None:
    node.set_attr("coordinate_transformation_mode", ROI_ALIGN_BEFORE_16)


def _roi_align_down(node: Node, graph: Graph) -> None:
    mode = text_attr(node, "coordinate_transformation_mode", "half_pixel")
    if mode != ROI_ALIGN_BEFORE_16:
        raise OpsetConversionError(
            f"RoiAlign node {node.name!r}: coordinate_transformation_mode {mode!r} has no equivalent before "
            f"opset 16, which always samples on the {ROI_ALIGN_BEFORE_16!r} grid and clamps RoIs to 1x1; "
            "keep opset 16 or export with aligned=False")
    node.attrs.pop("coordinate_transformation_mode", None)


UP[("RoiAlign", 16)], DOWN[("RoiAlign", 16)] = _roi_align_up, _roi_align_down

DFT_AXIS_BEFORE_20 = 1  # the axis attribute's default before 20; the axis input's default from 20 is -2


def _dft_up(node: Node, graph: Graph) -> None:
    """The axis attribute (default 1) becomes the third input (whose default would be -2)."""
    axis = node.attrs.pop("axis", None)
    value = int(axis.value) if axis is not None else DFT_AXIS_BEFORE_20
    inputs = list(node.inputs) + [None] * max(0, 2 - len(node.inputs))
    node.set_inputs([*inputs[:2], graph.add_const(Tensor.from_array(np.array(value, np.int64)))])


def _dft_down(node: Node, graph: Graph) -> None:
    """A constant axis input (absent: -2) becomes the attribute; a run-time axis is refused."""
    axis_input = node.inputs[2] if len(node.inputs) > 2 else None
    if axis_input is None:
        value = -2
    elif axis_input.const is None:
        raise OpsetConversionError(f"DFT node {node.name!r}: its axis is computed at run time, and before "
                                   "opset 20 it must be a constant attribute")
    else:
        value = int(np.asarray(axis_input.const.numpy()).reshape(-1)[0])
    node.set_inputs(trim(list(node.inputs[:2])))
    node.set_attr("axis", value)


UP[("DFT", 20)], DOWN[("DFT", 20)] = _dft_up, _dft_down


def _scan_across_9(node: Node, graph: Graph) -> None:
    raise OpsetConversionError(
        f"Scan node {node.name!r}: Scan-8 has a batch axis and a sequence_lens input that Scan-9 does not "
        "(its body sees one batch element); graphopt does not rewrite a Scan body across opset 9")


UP[("Scan", 9)] = DOWN[("Scan", 9)] = _scan_across_9
