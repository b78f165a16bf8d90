"""node_cost: MACs and FLOPs per node from inferred shapes, by the convention of graphopt.analyses.costs
(each expected number is worked out by hand in the test), and dynamic_dims naming what kept one unknown."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from graphopt import Node, import_model
from graphopt.analyses.costs import UNNAMED, Cost, dynamic_dims, is_counted, is_named, node_cost
from graphopt.analyses.shapes import apply_types, infer_types


def _node(op: str, shapes: dict[str, list[object]], weights: dict[str, list[int]] | None = None,
          domain: str = "", **attrs: object) -> Node:
    """The one ``op`` node of a model with inputs of ``shapes`` and zero weights of ``weights``, typed by
    onnx shape inference."""
    weights = weights or {}
    inits = [numpy_helper.from_array(np.zeros(s, np.float32), n) for n, s in weights.items()]
    node = h.make_node(op, [*shapes, *weights], ["y"], domain=domain, **attrs)
    graph = h.make_graph([node], "g", [h.make_tensor_value_info(n, T.FLOAT, s) for n, s in shapes.items()],
                         [onnx.ValueInfoProto(name="y")], inits)
    opsets = [h.make_opsetid("", 18)] + ([h.make_opsetid(domain, 1)] if domain else [])
    model = import_model(h.make_model(graph, opset_imports=opsets))
    apply_types(model, infer_types(model))
    return next(iter(model.graph))


def test_conv_macs_are_output_elements_times_input_channels_times_kernel() -> None:
    """x[1,3,8,8] * W[4,3,3,3], pads 1 -> y[1,4,8,8]: 1*4*64 outputs, 3*3*3 MACs each = 6912."""
    node = _node("Conv", {"x": [1, 3, 8, 8]}, {"w": [4, 3, 3, 3]}, pads=[1, 1, 1, 1])
    assert node_cost(node) == Cost(6912, 13824)


@pytest.mark.parametrize("x,w,group,macs", [
    ([2, 8, 10, 10], [8, 1, 3, 3], 8, 2 * 8 * 8 * 8 * 1 * 9),   # depthwise: y[2,8,8,8], Cin/group = 1
    ([1, 4, 6, 6], [6, 2, 1, 1], 2, 1 * 6 * 6 * 6 * 2 * 1),     # two groups: each output reads 2 channels
])
def test_grouped_conv_reads_only_its_groups_channels(x: list[int], w: list[int], group: int,
                                                     macs: int) -> None:
    """N*Cout*prod(out spatial)*(Cin/groups)*prod(kernel)."""
    assert node_cost(_node("Conv", {"x": x}, {"w": w}, group=group)) == Cost(macs, 2 * macs)


def test_conv_transpose_macs_are_input_elements_times_weight_per_input_channel() -> None:
    """x[1,2,4,4], W[2,3,3,3], stride 2: each of the 32 input elements meets 3*3*3 weights = 864."""
    assert node_cost(_node("ConvTranspose", {"x": [1, 2, 4, 4]}, {"w": [2, 3, 3, 3]}, strides=[2, 2])) \
        == Cost(864, 1728)


@pytest.mark.parametrize("a,b,macs", [
    ([2, 1, 4, 5], [3, 5, 6], 2 * 3 * 4 * 6 * 5),   # batched with broadcasting: y[2,3,4,6], K=5
    ([5], [5, 6], 6 * 5),                            # a vector times a matrix: y[6]
    ([4, 5], [5], 4 * 5),                            # a matrix times a vector: y[4]
])
def test_matmul_macs_are_output_elements_times_k(a: list[int], b: list[int], macs: int) -> None:
    assert node_cost(_node("MatMul", {"a": a}, {"b": b})) == Cost(macs, 2 * macs)


def test_gemm_reads_k_according_to_trans_a() -> None:
    """A[5,4] with transA is 4x5: y[4,3] = 12 outputs of K=5 MACs = 60."""
    assert node_cost(_node("Gemm", {"a": [5, 4]}, {"b": [5, 3]}, transA=1)) == Cost(60, 120)


def test_elementwise_and_pool_ops_count_one_flop_per_output_element() -> None:
    assert node_cost(_node("Relu", {"x": [2, 3]})) == Cost(0, 6)
    assert node_cost(_node("MaxPool", {"x": [1, 2, 4, 4]}, kernel_shape=[2, 2], strides=[2, 2])) == Cost(0, 8)


def test_data_movement_and_custom_ops_are_not_counted() -> None:
    transpose = _node("Transpose", {"x": [2, 3]})
    custom = _node("FusedConv", {"x": [1, 3, 8, 8]}, {"w": [4, 3, 3, 3]}, domain="com.microsoft")
    assert not is_counted(transpose) and node_cost(transpose) == Cost(0, 0)
    assert not is_counted(custom) and node_cost(custom) == Cost(0, 0)


def test_a_dynamic_batch_leaves_the_cost_unknown_and_is_named() -> None:
    node = _node("Conv", {"x": ["batch", 3, 8, 8]}, {"w": [4, 3, 3, 3]})
    assert node_cost(node) is None
    assert dynamic_dims(node) == {"batch"}


def test_placeholder_dims_are_reported_as_unnamed() -> None:
    """onnx's made-up ``unk__N`` names and unknown dims cannot be fixed by name: they count as ``?``."""
    node = _node("MatMul", {"a": [None, 5], "b": ["unk__3", 6]})
    assert node_cost(node) is None
    assert dynamic_dims(node) == {UNNAMED}
    assert is_named("sequence") and not is_named("unk__3") and not is_named(None) and not is_named("?")
