"""Per-op adapters for the default-domain version changes that matter on real models, both directions.

An adapter rewrites one node across one version boundary ``since`` (the opset in which the op's new
version appeared): ``up`` from ``since - 1`` to ``since``, ``down`` the other way. It raises
``OpsetConversionError`` with the reason when the node cannot be expressed on the other side.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from graphopt import FLOAT_TYPES, NUMPY_FLOATS, Graph, Node, Tensor, Value
from graphopt.errors import OpsetConversionError

Adapter = Callable[[Node, Graph], None]
UP: dict[tuple[str, int], Adapter] = {}
DOWN: dict[tuple[str, int], Adapter] = {}


def text_attr(node: Node, name: str, default: str) -> str:
    """A string attribute as text (attribute values arrive as bytes)."""
    value = node.attr(name, default)
    return value.decode() if isinstance(value, bytes) else str(value)


def _const_list(node: Node, index: int, what: str) -> list | None:
    value = node.inputs[index] if index < len(node.inputs) else None
    if value is None:
        return None
    if value.const is None:
        raise OpsetConversionError(f"{node.op_type} node {node.name!r}: its {what} are computed at run time, "
                                   "the older version needs them as a constant attribute")
    return np.asarray(value.const.numpy()).reshape(-1).tolist()


def attr_to_input(name: str, index: int, dtype=np.int64) -> Adapter:  # type: ignore[no-untyped-def]
    def up(node: Node, graph: Graph) -> None:
        value = node.attrs.pop(name, None)
        inputs = list(node.inputs) + [None] * max(0, index + 1 - len(node.inputs))
        if value is not None:
            inputs[index] = graph.add_const(Tensor.from_array(np.array(value.value, dtype=dtype)))
        node.set_inputs(trim(inputs))
    return up


def input_to_attr(name: str, index: int, what: str, scalar: bool = False) -> Adapter:
    def down(node: Node, graph: Graph) -> None:
        values = _const_list(node, index, what)
        inputs = list(node.inputs)
        if index < len(inputs):
            inputs[index] = None
        node.set_inputs(trim(inputs))
        if values is not None:
            node.set_attr(name, values[0] if scalar else [_plain(v) for v in values])
    return down


def trim(inputs: list[Value | None]) -> list[Value | None]:
    while inputs and inputs[-1] is None:
        inputs.pop()
    return inputs


def _plain(v):  # type: ignore[no-untyped-def]
    return float(v) if isinstance(v, float) else int(v)


def _drop_attrs(*names: str, refuse_if: Callable[[Node], str | None] | None = None) -> Adapter:
    def down(node: Node, graph: Graph) -> None:
        reason = refuse_if(node) if refuse_if is not None else None
        if reason:
            raise OpsetConversionError(f"{node.op_type} node {node.name!r}: {reason}")
        for name in names:
            node.attrs.pop(name, None)
    return down


def noop(node: Node, graph: Graph) -> None:
    """A pure version bump (type constraints are checked by the caller)."""


# axes: attribute before, input from (Squeeze/Unsqueeze/ReduceSum at 13, other Reduce* at 18)
for _op in ("Squeeze", "Unsqueeze", "ReduceSum"):
    UP[(_op, 13)] = attr_to_input("axes", 1)
    DOWN[(_op, 13)] = input_to_attr("axes", 1, "axes")
for _op in ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
            "ReduceLogSumExp", "ReduceSumSquare"):
    UP[(_op, 18)] = attr_to_input("axes", 1)
    DOWN[(_op, 18)] = input_to_attr("axes", 1, "axes")


def _reduce_down(inner: Adapter) -> Adapter:
    def down(node: Node, graph: Graph) -> None:
        if node.attr("noop_with_empty_axes", 0):
            axes = node.inputs[1] if len(node.inputs) > 1 else None
            if axes is None or (axes.const is not None and axes.const.numpy().size == 0):
                raise OpsetConversionError(f"{node.op_type} node {node.name!r}: noop_with_empty_axes=1 "
                                           "without axes has no older equivalent")
        node.attrs.pop("noop_with_empty_axes", None)
        inner(node, graph)
    return down


for _key in [k for k in DOWN if k[0].startswith("Reduce")]:
    DOWN[_key] = _reduce_down(DOWN[_key])

UP[("Split", 13)] = attr_to_input("split", 1)
DOWN[("Split", 13)] = input_to_attr("split", 1, "split sizes")


def _split_num_outputs_down(node: Node, graph: Graph) -> None:
    """num_outputs (18) without split sizes: equal parts, which older Split also does when they divide."""
    count = node.attrs.pop("num_outputs", None)
    if count is None or (len(node.inputs) > 1 and node.inputs[1] is not None):
        return
    src = node.inputs[0]
    axis = int(node.attr("axis", 0))
    dim = None if src is None or src.shape is None else src.shape[axis]
    parts = int(count.value)
    if isinstance(dim, int) and dim % parts:
        chunk = -(-dim // parts)  # ceil: every part but the last has it, the last takes what is left
        sizes = [chunk] * (parts - 1) + [dim - chunk * (parts - 1)]
        if sizes[-1] > 0:
            node.set_inputs([src, graph.add_const(Tensor.from_array(np.array(sizes, np.int64)))])
            return
    if not isinstance(dim, int) or dim % parts:
        raise OpsetConversionError(f"Split node {node.name!r}: num_outputs={parts} over a dim of unknown or "
                                   "unsplittable size has no older equivalent")


def _split_num_outputs_up(node: Node, graph: Graph) -> None:
    """Equal parts without split sizes need num_outputs from 18 on."""
    if len(node.inputs) < 2 or node.inputs[1] is None:
        node.set_attr("num_outputs", len(node.outputs))


DOWN[("Split", 18)] = _split_num_outputs_down
UP[("Split", 18)] = _split_num_outputs_up

# Clip: min/max attributes before 11, optional inputs from 11
UP[("Clip", 11)] = lambda node, graph: _clip_up(node, graph)
DOWN[("Clip", 11)] = lambda node, graph: _clip_down(node, graph)


def _clip_up(node: Node, graph: Graph) -> None:
    lo, hi = node.attrs.pop("min", None), node.attrs.pop("max", None)
    dtype = node.inputs[0].dtype if node.inputs[0] is not None else 1
    np_type = NUMPY_FLOATS.get(dtype or 1, np.float32)
    inputs = [node.inputs[0],
              None if lo is None else graph.add_const(Tensor.from_array(np.array(lo.value, np_type))),
              None if hi is None else graph.add_const(Tensor.from_array(np.array(hi.value, np_type)))]
    node.set_inputs(trim(inputs))


def _clip_down(node: Node, graph: Graph) -> None:
    lo, hi = _const_list(node, 1, "min"), _const_list(node, 2, "max")
    node.set_inputs([node.inputs[0]])
    if lo is not None:
        node.set_attr("min", float(lo[0]))
    if hi is not None:
        node.set_attr("max", float(hi[0]))


# Pad: pads/value attributes before 11, inputs from 11; axes input from 18
def _pad_up(node: Node, graph: Graph) -> None:
    pads, value = node.attrs.pop("pads", None), node.attrs.pop("value", None)
    dtype = node.inputs[0].dtype if node.inputs[0] is not None else 1
    np_type = NUMPY_FLOATS.get(dtype or 1, np.float32)
    inputs = [node.inputs[0], graph.add_const(Tensor.from_array(np.array(pads.value, np.int64)))]
    if value is not None and float(value.value) != 0.0:
        inputs.append(graph.add_const(Tensor.from_array(np.array(value.value, np_type))))
    node.set_inputs(inputs)


def _pad_down(node: Node, graph: Graph) -> None:
    pads, value = _const_list(node, 1, "pads"), _const_list(node, 2, "constant value")
    node.set_inputs([node.inputs[0]])
    node.set_attr("pads", [int(p) for p in pads or []])
    if value is not None:
        node.set_attr("value", float(value[0]))


def _pad_axes_down(node: Node, graph: Graph) -> None:
    """An axes input (18) becomes pads over every axis, zeros on the others (rank and axes known)."""
    if len(node.inputs) < 4 or node.inputs[3] is None:
        return
    src, axes_value = node.inputs[0], node.inputs[3]
    if src is None or src.rank is None or axes_value.const is None:
        raise OpsetConversionError(f"Pad node {node.name!r}: an axes input (opset 18) needs a known rank and "
                                   "constant axes to have an older form")
    axes = [int(a) % src.rank for a in np.asarray(axes_value.const.numpy()).reshape(-1)]
    pads = _const_list(node, 1, "pads") or []
    full = [0] * (2 * src.rank)
    for i, axis in enumerate(axes):
        full[axis], full[src.rank + axis] = int(pads[i]), int(pads[len(axes) + i])
    node.set_inputs(trim([src, graph.add_const(Tensor.from_array(np.array(full, np.int64))),
                           node.inputs[2] if len(node.inputs) > 2 else None]))


UP[("Pad", 11)], DOWN[("Pad", 11)] = _pad_up, _pad_down
UP[("Pad", 18)], DOWN[("Pad", 18)] = noop, _pad_axes_down
DOWN[("Pad", 19)] = _drop_attrs(refuse_if=lambda n: "mode 'wrap' is new in opset 19"
                                if text_attr(n, "mode", "constant") == "wrap" else None)


# Slice: attributes before 10, inputs from 10 (steps only as input)
def _slice_up(node: Node, graph: Graph) -> None:
    starts, ends, axes = (node.attrs.pop(k, None) for k in ("starts", "ends", "axes"))
    inputs = [node.inputs[0]] + [graph.add_const(Tensor.from_array(np.array(a.value, np.int64)))
                                 for a in (starts, ends)]
    if axes is not None:
        inputs.append(graph.add_const(Tensor.from_array(np.array(axes.value, np.int64))))
    node.set_inputs(inputs)


def _slice_down(node: Node, graph: Graph) -> None:
    steps = _const_list(node, 4, "steps")
    if steps is not None and any(s != 1 for s in steps):
        raise OpsetConversionError(f"Slice node {node.name!r}: steps other than 1 are new in opset 10")
    starts, ends, axes = (_const_list(node, i, w) for i, w in ((1, "starts"), (2, "ends"), (3, "axes")))
    node.set_inputs([node.inputs[0]])
    node.set_attr("starts", [int(v) for v in starts or []])
    node.set_attr("ends", [int(v) for v in ends or []])
    if axes is not None:
        node.set_attr("axes", [int(v) for v in axes])


UP[("Slice", 10)], DOWN[("Slice", 10)] = _slice_up, _slice_down


# Reshape allowzero (14), Cast saturate (19), BatchNormalization training_mode (14): down drops a default
def _reshape_down(node: Node, graph: Graph) -> None:
    if node.attr("allowzero", 0):
        target = node.inputs[1] if len(node.inputs) > 1 else None
        if target is None or target.const is None or np.any(target.const.numpy() == 0):
            raise OpsetConversionError(f"Reshape node {node.name!r}: allowzero=1 with a target that may hold "
                                       "0 entries is new in opset 14")
    node.attrs.pop("allowzero", None)


DOWN[("Reshape", 14)] = _reshape_down
DOWN[("Cast", 19)] = _drop_attrs("saturate")
DOWN[("BatchNormalization", 14)] = _drop_attrs("training_mode", refuse_if=lambda n: "training_mode=1"
                                               if n.attr("training_mode", 0) else None)
DOWN[("BatchNormalization", 15)] = noop


def _shape_down(node: Node, graph: Graph) -> None:
    """Shape start/end (15) become a Slice of the whole shape (Slice takes inputs from opset 10)."""
    start, end = node.attrs.pop("start", None), node.attrs.pop("end", None)
    if start is None and end is None:
        return
    from graphopt import replace_all_uses_with

    begin = int(start.value) if start is not None else 0
    stop = int(end.value) if end is not None else 2**62
    out = node.outputs[0]
    whole = Node("Shape", [node.inputs[0]])
    part = Node("Slice", [whole.outputs[0], graph.add_const(Tensor.from_array(np.array([begin], np.int64))),
                          graph.add_const(Tensor.from_array(np.array([stop], np.int64)))])
    part.outputs[0].dtype, part.outputs[0].shape = out.dtype, out.shape
    graph.insert_before(node, [whole, part])
    replace_all_uses_with(out, part.outputs[0], outputs=True)
    graph.remove(node)


DOWN[("Shape", 15)] = _shape_down


# TopK: k attribute before 10, an int64 [1] input from 10
def _topk_up(node: Node, graph: Graph) -> None:
    k = node.attrs.pop("k", None)
    if k is None:
        raise OpsetConversionError(f"TopK node {node.name!r} has no k attribute")
    node.set_inputs([node.inputs[0], graph.add_const(Tensor.from_array(np.array([k.value], np.int64)))])


UP[("TopK", 10)] = _topk_up
DOWN[("TopK", 10)] = input_to_attr("k", 1, "k", scalar=True)


# Dropout: mask becomes bool at 10; ratio attribute becomes an input and training_mode appears at 12
def _dropout_mask_across_10(node: Node, graph: Graph) -> None:
    """The mask is bool from 10 on and has the data's type before: refused when read, else retyped."""
    if len(node.outputs) < 2:
        return
    mask = node.outputs[1]
    if mask.num_uses or mask.is_graph_output:
        raise OpsetConversionError(f"Dropout node {node.name!r}: its mask is read, and its type changes at "
                                   "opset 10 (the data's type before, bool from then on)")
    mask.dtype = None  # unread: let inference type it for the version it ends up in


def _dropout_ratio_up(node: Node, graph: Graph) -> None:
    ratio = node.attrs.pop("ratio", None)
    if ratio is not None:
        node.set_inputs([node.inputs[0],
                         graph.add_const(Tensor.from_array(np.array(ratio.value, np.float32)))])


def _dropout_ratio_down(node: Node, graph: Graph) -> None:
    if len(node.outputs) > 1 and (node.outputs[1].num_uses or node.outputs[1].is_graph_output):
        raise OpsetConversionError(f"Dropout node {node.name!r}: its mask is read, and before opset 12 an "
                                   "inference Dropout's mask is all false in onnxruntime, not all true")
    training = node.inputs[2] if len(node.inputs) > 2 else None
    if training is not None and (training.const is None or bool(np.any(training.const.numpy()))):
        raise OpsetConversionError(f"Dropout node {node.name!r}: training_mode (opset 12) may be true, and "
                                   "older Dropout only runs as inference")
    node.attrs.pop("seed", None)  # only used in training mode, which the node is not in
    ratio = _const_list(node, 1, "ratio")
    node.set_inputs([node.inputs[0]])
    if ratio is not None:
        node.set_attr("ratio", float(ratio[0]))


UP[("Dropout", 7)] = _drop_attrs("is_test")  # every Dropout from 7 on is inference unless told otherwise
UP[("Dropout", 10)] = DOWN[("Dropout", 10)] = _dropout_mask_across_10
UP[("Dropout", 12)], DOWN[("Dropout", 12)] = _dropout_ratio_up, _dropout_ratio_down


# ScatterElements/ScatterND: reduction 'add'/'mul' from 16, 'max'/'min' from 18
def _reduction_since(version: int, new_values: tuple[str, ...]) -> Adapter:
    def down(node: Node, graph: Graph) -> None:
        reduction = text_attr(node, "reduction", "none")
        if reduction in new_values:
            raise OpsetConversionError(f"{node.op_type} node {node.name!r}: reduction {reduction!r} is "
                                       f"new in opset {version}")
        if version == 16:
            node.attrs.pop("reduction", None)
    return down


for _op in ("ScatterElements", "ScatterND"):
    DOWN[(_op, 16)] = _reduction_since(16, ("add", "mul"))
    DOWN[(_op, 18)] = _reduction_since(18, ("max", "min"))


# GridSample: modes renamed at 20 (bilinear -> linear, bicubic -> cubic), N-D input from 20
_GRID_MODES = {"bilinear": "linear", "bicubic": "cubic"}


def _grid_sample_up(node: Node, graph: Graph) -> None:
    mode = text_attr(node, "mode", "bilinear")
    node.set_attr("mode", _GRID_MODES.get(mode, mode))


def _grid_sample_down(node: Node, graph: Graph) -> None:
    mode = text_attr(node, "mode", "linear")
    old = {new: old for old, new in _GRID_MODES.items()}
    src = node.inputs[0]
    if src is None or src.rank != 4:
        rank = "unknown" if src is None or src.rank is None else str(src.rank)
        raise OpsetConversionError(f"GridSample node {node.name!r}: before opset 20 only 4-D input is "
                                   f"allowed, and this one's rank is {rank}")
    node.set_attr("mode", old.get(mode, mode))


UP[("GridSample", 20)], DOWN[("GridSample", 20)] = _grid_sample_up, _grid_sample_down


def _mod_down_28(node: Node, graph: Graph) -> None:
    """Floating-point Mod with fmod=0 (floor semantics) is new in opset 28; before, floats need fmod=1."""
    dtype = node.inputs[0].dtype if node.inputs[0] is not None else None
    floating = dtype in FLOAT_TYPES or dtype is None
    if floating and not int(node.attr("fmod", 0)):
        raise OpsetConversionError(f"Mod node {node.name!r}: fmod=0 on floating-point (or unknown-type) "
                                   "inputs is new in opset 28")


DOWN[("Mod", 28)] = _mod_down_28
