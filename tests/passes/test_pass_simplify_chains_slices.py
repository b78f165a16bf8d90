"""simplify-chains, slice-slice: two Slices with constant parameters on disjoint axes become one."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper as h
from passes_kit import assert_same_outputs, info, ints, make, op_types, randn, run_pass

from graphopt import Model, import_model

PASS = "simplify-chains"
SHAPE = [4, 5, 6]
Params = tuple[list[int], list[int], list[int] | None, list[int] | None]


def _slices(first: Params, second: Params, *, shape: list[int] | None = SHAPE,
            outputs: tuple[str, ...] = ("y",), dtype: type = np.int64) -> onnx.ModelProto:
    """x -> Slice(first) -> t -> Slice(second) -> y (then Relu, so the chain is not the output itself)."""
    inits, nodes = [], []
    for n, (starts, ends, axes, steps), src, dst in ((1, first, "x", "t"), (2, second, "t", "u")):
        names = [src, f"b{n}", f"e{n}"]
        inits += [ints(f"b{n}", starts, dtype), ints(f"e{n}", ends, dtype)]
        if axes is not None or steps is not None:
            names.append(f"a{n}" if axes is not None else "")
            if axes is not None:
                inits.append(ints(f"a{n}", axes, dtype))
        if steps is not None:
            names.append(f"p{n}")
            inits.append(ints(f"p{n}", steps, dtype))
        nodes.append(h.make_node("Slice", names, [dst]))
    nodes.append(h.make_node("Relu", ["u"], ["y"]))
    return make(nodes, [info("x", shape)], [info(o, None) for o in outputs], inits)


def _check(proto: onnx.ModelProto) -> tuple[list[str], dict, object]:
    model, result = run_pass(proto, PASS)
    assert_same_outputs(proto, model, {"x": randn(*SHAPE)})
    _, again = run_pass(model, PASS)
    assert not again.changed  # idempotent
    return op_types(model), result.stats, model


def _slice_inputs(model: object) -> list[list[int]]:
    node = model.graph.nodes[0]  # type: ignore[attr-defined]
    return [v.const.numpy().tolist() for v in node.inputs[1:]]


def test_slices_on_two_axes_become_one_slice_with_both_axes() -> None:
    """x[:, 1:4][..., ::2] (axis 1 then axis 2 with step 2) is one Slice over axes [1, 2]."""
    ops, stats, model = _check(_slices(([1], [4], [1], None), ([0], [6], [2], [2])))
    assert ops == ["Slice", "Relu"] and stats == {"simplified_slice-slice": 1}
    assert _slice_inputs(model) == [[1, 0], [4, 6], [1, 2], [1, 2]]


def test_negative_axes_are_resolved_with_the_known_rank() -> None:
    """Axis -1 of a rank-3 input is axis 2, which the first Slice (axis 0, from the omitted axes) leaves."""
    ops, _, model = _check(_slices(([1], [3], None, None), ([-4], [-1], [-1], [1])))
    assert ops == ["Slice", "Relu"]
    assert _slice_inputs(model) == [[1, -4], [3, -1], [0, 2], [1, 1]]


def test_int32_parameters_are_merged_as_int64() -> None:
    ops, _, model = _check(_slices(([0], [2], [0], None), ([5], [0], [1], [-1]), dtype=np.int32))
    assert ops == ["Slice", "Relu"]
    assert all(v.const.dtype == onnx.TensorProto.INT64 for v in model.graph.nodes[0].inputs[1:])


def test_keep_slices_of_the_same_axis() -> None:
    """Two Slices of axis 1 compose only through clamping and steps: left alone."""
    model, result = run_pass(_slices(([1], [5], [1], None), ([1], [3], [-2], None)), PASS)
    assert op_types(model) == ["Slice", "Slice", "Relu"] and not result.changed
    assert result.rules["slice-slice"]["rejections"] == {"the Slices share an axis": 1}


def test_keep_negative_axes_of_unknown_rank() -> None:
    """Axis -1 may be axis 0 of a rank-1 input: without the rank the axes cannot be compared."""
    model, result = run_pass(_slices(([0], [1], [0], None), ([0], [1], [-1], None), shape=None), PASS)
    assert op_types(model) == ["Slice", "Slice", "Relu"]
    assert result.rules["slice-slice"]["rejections"] == {"negative axes and rank unknown": 1}


def test_keep_a_slice_chain_whose_middle_is_a_graph_output() -> None:
    model, _ = run_pass(_slices(([1], [4], [1], None), ([0], [3], [2], None), outputs=("y", "t")), PASS)
    assert op_types(model) == ["Slice", "Slice", "Relu"]


def _axis_params(axis: int, dim: int, data: st.DataObject) -> Params:
    step = data.draw(st.sampled_from([1, 2, -1, -2]), label="step")
    start = data.draw(st.integers(-dim - 2, dim + 2), label="start")
    end = data.draw(st.integers(-dim - 2, dim + 2), label="end")
    return [start], [end], [axis - data.draw(st.sampled_from([0, 3]), label="negative")], [step]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.data())
def test_any_slice_pair_on_disjoint_axes_matches_onnxruntime(data: st.DataObject) -> None:
    """Property: any starts/ends (out of range, negative), steps (negative too) and axis signs on two
    different axes give the tensor the two Slices give, bit for bit, with one Slice."""
    a1, a2 = data.draw(st.permutations(range(3)), label="axes")[:2]
    ops, stats, _ = _check(_slices(_axis_params(a1, SHAPE[a1], data), _axis_params(a2, SHAPE[a2], data)))
    assert ops == ["Slice", "Relu"] and stats == {"simplified_slice-slice": 1}


def _patch_merging(reader_op: str = "Slice", reader_axis: int = 2) -> onnx.ModelProto:
    """Swin's patch merging on NHWC x[2, 4, 4, 3]: rows 0::2 and 1::2 (one Slice each), each read by
    two Slices of columns 0::2 and 1::2 (or by ``reader_op``), joined on the channels."""
    nodes = [h.make_node("Slice", ["x", f"r{i}", "end", "ax1", "two"], [f"row{i}"]) for i in (0, 1)]
    pieces = []
    for i in (0, 1):
        for j in (0, 1):
            name = f"p{i}{j}"
            if reader_op == "Slice" or j == 0:
                params = [f"r{j}", "end", f"ax{reader_axis}", "two"]
                nodes.append(h.make_node("Slice", [f"row{i}", *params], [name]))
            else:
                nodes.append(h.make_node(reader_op, [f"row{i}"], [name]))
            pieces.append(name)
    nodes.append(h.make_node("Concat", pieces, ["y"], axis=-1))
    inits = [ints("r0", [0]), ints("r1", [1]), ints("end", [2**63 - 1]), ints("ax1", [1]), ints("ax2", [2]),
             ints("two", [2])]
    return make(nodes, [info("x", [2, 4, 4, 3])], [info("y", None)], inits)


def test_a_slice_read_only_by_slices_on_other_axes_goes_into_each_of_them() -> None:
    """6 Slices -> 4, each reading x directly with both axes; bit-exact."""
    proto = _patch_merging()
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Slice"] * 4 + ["Concat"]
    assert result.stats["simplified_slice-fanned-into-slices"] == 2  # slice-slice alone refuses (shared)
    assert all(n.inputs[0].name == "x" for n in model.graph if n.op_type == "Slice")
    assert_same_outputs(proto, model, {"x": randn(2, 4, 4, 3)})
    assert not run_pass(model, PASS)[1].changed


def test_keep_a_fanned_slice_with_another_reader_or_a_shared_axis() -> None:
    """A Relu reads the row Slice too, or the readers slice the rows' axis again: nothing merges."""
    for proto in (_patch_merging(reader_op="Relu"), _patch_merging(reader_axis=1)):
        model, result = run_pass(proto, PASS)
        assert "simplified_slice-fanned-into-slices" not in result.stats
        assert op_types(model).count("Slice") == op_types(_model_of(proto)).count("Slice")


def _model_of(proto: onnx.ModelProto) -> Model:
    return import_model(proto)
