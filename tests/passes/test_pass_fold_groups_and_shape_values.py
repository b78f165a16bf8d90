"""fold-constants, the newer paths: a node folded together with producers that read only constants when
the group frees enough bytes, and shape computations folded although the shapes they read are only
partly static (Gather/Slice/Concat/Cast/Unsqueeze/Squeeze of Shape outputs; a Reshape whose target
copies its input's own dims gets a constant target with 0 entries). Checked bit-exactly with
onnxruntime, with symbolic dims fed concrete sizes."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import (
    INT64,
    array,
    assert_same_outputs,
    info,
    ints,
    make,
    op_types,
    ort,
    randn,
    run_pass,
    untyped,
)

from graphopt import Model

PASS = "fold-constants"


def _check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray],
           **options: Any) -> tuple[list[str], dict, Model]:
    """Run the pass; outputs are bit-exact with onnxruntime; a second run changes nothing."""
    model, result = run_pass(proto, PASS, **options)
    assert_same_outputs(proto, model, feeds)
    _, again = run_pass(model, PASS, **options)
    assert not again.changed, again.stats
    return op_types(model), result.stats, model


def _const_of(model: Model, output: str) -> np.ndarray | None:
    """The constant that graph output ``output`` now is, or None when a node still computes it."""
    value = next(v for v in model.graph.outputs if v.name == output)
    return None if value.const is None else value.const.numpy()


# ---- group folds (one node with its producers; regions of any size are off here, see below) ----

NO_REGIONS = {"region_bytes_per_node": 0}

W = randn(6, 16, seed=7)  # 384 bytes: one third of it (128 B) exceeds what a single Slice may create


def _slices_concat(order: tuple[int, ...] = (2, 0, 1), *, extra_nodes: tuple[onnx.NodeProto, ...] = (),
                   outputs: tuple[str, ...] = ("y",), x_shape: tuple[int, ...] = (3, 6),
                   concat: onnx.NodeProto | None = None) -> onnx.ModelProto:
    """Three Slices of the weight w along axis 0, re-joined by Concat in ``order``, read by a MatMul."""
    nodes = [h.make_node("Slice", ["w", f"s{i}", f"e{i}", "ax"], [f"p{i}"]) for i in range(3)]
    nodes.append(concat or h.make_node("Concat", [f"p{i}" for i in order], ["c"], axis=0))
    nodes += [h.make_node("MatMul", ["x", "c"], ["y"]), *extra_nodes]
    inits = [array("w", W), ints("ax", [0])] + [ints(f"s{i}", [2 * i]) for i in range(3)] + \
        [ints(f"e{i}", [2 * i + 2]) for i in range(3)]
    return make(nodes, [info("x", list(x_shape))], [untyped(o) for o in outputs], inits)


def test_fold_slices_of_one_weight_rejoined_by_concat() -> None:
    """No Slice may fold alone (w stays alive for the others), but Slices + Concat free all of w: the
    group becomes one constant of w's size, the permuted weight, and w and the slice bounds go."""
    proto = _slices_concat()
    ops, stats, model = _check(proto, {"x": randn(3, 6)})
    assert ops == ["MatMul"]
    assert stats == {"folded": 4, "folded_groups": 1, "skipped_size": 3}
    (const,) = model.graph.consts
    np.testing.assert_array_equal(const.const.numpy(), np.concatenate([W[4:6], W[0:2], W[2:4]]))
    assert model.graph.nodes[0].inputs[1] is const


def test_keep_the_group_when_a_member_output_is_read_elsewhere() -> None:
    """p1 also feeds a Relu: the group cannot swallow it, nothing folds."""
    proto = _slices_concat(extra_nodes=(h.make_node("Relu", ["p1"], ["r"]),), outputs=("y", "r"))
    ops, stats, _ = _check(proto, {"x": randn(3, 6)}, **NO_REGIONS)
    assert ops == ["Slice"] * 3 + ["Concat", "MatMul", "Relu"] and stats == {"skipped_size": 3}


def test_keep_the_group_when_a_member_output_is_a_graph_output() -> None:
    proto = _slices_concat(outputs=("y", "p0"))
    ops, stats, _ = _check(proto, {"x": randn(3, 6)}, **NO_REGIONS)
    assert ops == ["Slice"] * 3 + ["Concat", "MatMul"] and stats == {"skipped_size": 3}


def test_keep_the_group_when_the_weight_is_also_read_elsewhere() -> None:
    """w also feeds a Neg, so folding would add a second 384-byte constant: refused."""
    proto = _slices_concat(extra_nodes=(h.make_node("Neg", ["w"], ["n"]),), outputs=("y", "n"))
    ops, stats, _ = _check(proto, {"x": randn(3, 6)}, **NO_REGIONS)
    assert ops == ["Slice"] * 3 + ["Concat", "MatMul", "Neg"]
    assert stats == {"skipped_size": 4}  # Neg(w) is as large as w, which another node reads


def test_keep_a_group_whose_result_is_larger_than_what_it_frees() -> None:
    """Concat(p2, p0, p1, p0, p1, p2) reads each Slice twice and is twice w's size."""
    concat = h.make_node("Concat", ["p2", "p0", "p1", "p0", "p1", "p2"], ["c"], axis=0)
    proto = _slices_concat(concat=concat, x_shape=(3, 12))
    ops, stats, _ = _check(proto, {"x": randn(3, 12)}, **NO_REGIONS)
    assert ops == ["Slice"] * 3 + ["Concat", "MatMul"] and stats == {"skipped_size": 3}


def test_keep_the_group_when_a_producer_reads_a_graph_input() -> None:
    """A Slice of the run-time x is no constant: the Concat does not fold (the Slice of w, its only
    reader, folds alone)."""
    nodes = [h.make_node("Slice", ["w", "s", "e", "ax"], ["p0"]),
             h.make_node("Slice", ["x", "s", "e", "ax"], ["p1"]),
             h.make_node("Concat", ["p0", "p1"], ["y"], axis=0)]
    proto = make(nodes, [info("x", [6, 16])], [untyped("y")],
                 [array("w", W), ints("s", [0]), ints("e", [4]), ints("ax", [0])])
    ops, stats, _ = _check(proto, {"x": randn(6, 16, seed=1)})
    assert ops == ["Slice", "Concat"] and stats == {"folded": 1, "folded_Slice": 1}


def test_keep_a_group_with_a_random_producer() -> None:
    """RandomUniformLike is never folded, not even as a group member."""
    nodes = [h.make_node("RandomUniformLike", ["w"], ["r"], seed=1.0),
             h.make_node("Slice", ["w", "s", "e", "ax"], ["p"]),
             h.make_node("Concat", ["r", "p"], ["y"], axis=0)]
    proto = make(nodes, [info("x", [1])], [untyped("y")],
                 [array("w", W), ints("s", [0]), ints("e", [4]), ints("ax", [0])])
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["RandomUniformLike", "Slice", "Concat"] and result.stats == {"skipped_size": 1}


# ---- Gather / Slice of partially static shapes ----

def _shape_then(tail: list[onnx.NodeProto], x_shape: list[int | str], inits: list[onnx.TensorProto],
                *, opset: int = 17, outputs: tuple[str, ...] = ("y",), **shape_attrs: Any) -> onnx.ModelProto:
    """x -> Relu -> r; Shape(r) -> s -> tail -> y (and r as an output, so the Relu stays)."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Shape", ["r"], ["s"], **shape_attrs), *tail]
    return make(nodes, [info("x", x_shape)], [untyped(o) for o in (*outputs, "r")], inits, opset=opset)


def _feeds(x_shape: list[int | str], sizes: tuple[int, ...] = (5, 7)) -> dict[str, np.ndarray]:
    symbols = iter(sizes)
    return {"x": randn(*[d if isinstance(d, int) else next(symbols) for d in x_shape])}


@pytest.mark.parametrize("index,expected", [(1, 3), (-1, 4), ([1, 2], [3, 4]), ([2, -2, 2], [4, 3, 4])],
                         ids=str)
def test_gather_of_static_dims_folds_although_the_batch_is_dynamic(index: Any, expected: Any) -> None:
    """Shape([N, 3, 4]) is not constant, but its dims 1 and 2 are; Shape is then dead and goes too."""
    proto = _shape_then([h.make_node("Gather", ["s", "i"], ["y"])], ["N", 3, 4], [ints("i", index)])
    ops, stats, model = _check(proto, _feeds(["N", 3, 4]))
    assert ops == ["Relu"] and stats == {"folded": 1, "folded_Gather_of_shape": 1}
    result = _const_of(model, "y")
    assert result is not None and result.dtype == np.int64
    assert result.tolist() == expected and result.shape == np.shape(expected)


@pytest.mark.parametrize("index", [0, [1, 0], -3], ids=str)
def test_keep_gather_that_selects_a_dynamic_dim(index: Any) -> None:
    proto = _shape_then([h.make_node("Gather", ["s", "i"], ["y"])], ["N", 3, 4], [ints("i", index)])
    ops, stats, _ = _check(proto, _feeds(["N", 3, 4]))
    assert ops == ["Relu", "Shape", "Gather"] and stats == {}


def test_keep_gather_with_an_out_of_range_index() -> None:
    """Index 3 of a rank-3 shape fails at run time: folding must not hide that."""
    proto = _shape_then([h.make_node("Gather", ["s", "i"], ["y"])], ["N", 3, 4], [ints("i", 3)])
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Relu", "Shape", "Gather"] and result.stats == {}


# starts, ends, steps -> the dims of [2, 3, 4, N] selected (None: a dynamic dim is selected)
SLICES = [
    ((0,), (3,), None, [2, 3, 4]),
    ((1,), (-1,), None, [3, 4]),
    ((0,), (100,), (2,), [2, 4]),
    ((2,), (-100,), (-1,), [4, 3, 2]),
    ((-2,), (-100,), (-2,), [4, 2]),
    ((-100,), (-200,), (-1,), [2]),  # ONNX clamps a start before the first element to element 0
    ((-100,), (-2,), (-1,), []),
    ((9,), (0,), (-1,), None),  # starts at the last (dynamic) dim
    ((3,), (4,), None, None),
    ((0,), (2**63 - 1,), None, None),
    ((2,), (2**63 - 1,), (-1,), None),  # onnxruntime reads this end as "to dim 0", the spec as "dim 3"
    ((2,), (2**31 - 1,), (-1,), None),  # the same for INT32_MAX: not folded either way
]


@pytest.mark.parametrize("starts,ends,steps,expected", SLICES, ids=[str(s[:3]) for s in SLICES])
def test_slice_of_a_partially_static_shape_folds_when_every_selected_dim_is_static(
        starts: tuple, ends: tuple, steps: tuple | None, expected: list[int] | None) -> None:
    """Slice's clamping rules (also for negative steps) decide which dims are selected; where
    onnxruntime departs from the spec (an INT_MAX end with a negative step) nothing is folded."""
    inputs, inits = ["s", "st", "en", "ax"], [ints("st", starts), ints("en", ends), ints("ax", [0])]
    if steps is not None:
        inputs.append("sp")
        inits.append(ints("sp", steps))
    x_shape: list[int | str] = [2, 3, 4, "N"]
    proto = _shape_then([h.make_node("Slice", inputs, ["y"])], x_shape, inits)
    ops, stats, model = _check(proto, _feeds(x_shape))
    if expected is None:
        assert ops == ["Relu", "Shape", "Slice"] and stats == {}
    else:
        assert ops == ["Relu"] and stats == {"folded": 1, "folded_Slice_of_shape": 1}
        assert _const_of(model, "y").tolist() == expected  # type: ignore[union-attr]


def test_keep_opset9_slice_with_attribute_bounds() -> None:
    """Slice-1 (bounds as attributes) is not read by the shape analysis."""
    tail = [h.make_node("Slice", ["s"], ["y"], starts=[1], ends=[3], axes=[0])]
    proto = _shape_then(tail, ["N", 3, 4], [], opset=9)
    ops, stats, _ = _check(proto, _feeds(["N", 3, 4]))
    assert ops == ["Relu", "Shape", "Slice"] and stats == {}


def test_shape_start_end_attributes_select_the_dims() -> None:
    """Opset 15 Shape(start=-2) of [N, M, 4] is [M, 4]; its element 1 is the static 4."""
    tail = [h.make_node("Gather", ["s", "i"], ["y"])]
    proto = _shape_then(tail, ["N", "M", 4], [ints("i", 1)], start=-2)
    ops, stats, model = _check(proto, _feeds(["N", "M", 4]))
    assert ops == ["Relu"] and stats == {"folded": 1, "folded_Gather_of_shape": 1}
    assert _const_of(model, "y").tolist() == 4  # type: ignore[union-attr]


def test_casts_and_identities_pass_dims_through_and_the_fold_keeps_int32() -> None:
    """Shape -> Identity -> Cast(int32) -> Gather 1 is the int32 constant 3."""
    tail = [h.make_node("Identity", ["s"], ["s1"]), h.make_node("Cast", ["s1"], ["s32"], to=T.INT32),
            h.make_node("Gather", ["s32", "i"], ["y"])]
    proto = _shape_then(tail, ["N", 3, 4], [ints("i", 1)])
    ops, stats, model = _check(proto, _feeds(["N", 3, 4]))
    assert ops == ["Relu"] and stats == {"folded": 1, "folded_Gather_of_shape": 1}
    result = _const_of(model, "y")
    assert result is not None and result.dtype == np.int32 and result.tolist() == 3


@pytest.mark.parametrize("extra,index,folds", [(7, 3, True), (2**40, 1, False)], ids=["fits", "overflows"])
def test_concat_of_shape_and_constant_then_int32_cast(extra: int, index: int, folds: bool) -> None:
    """Concat([N, 3, 4], [extra]) -> Cast(int32) -> Gather: known elements pass through Concat, but a
    value that an int32 Cast would wrap makes the whole cast vector unknown."""
    tail = [h.make_node("Concat", ["s", "more"], ["c"], axis=0),
            h.make_node("Cast", ["c"], ["c32"], to=T.INT32),
            h.make_node("Gather", ["c32", "i"], ["y"])]
    proto = _shape_then(tail, ["N", 3, 4], [ints("more", [extra]), ints("i", index)])
    ops, stats, model = _check(proto, _feeds(["N", 3, 4]))
    if folds:
        assert ops == ["Relu"] and stats == {"folded": 1, "folded_Gather_of_shape": 1}
        assert _const_of(model, "y").tolist() == extra  # type: ignore[union-attr]
    else:
        assert ops == ["Relu", "Shape", "Concat", "Cast", "Gather"] and stats == {}


def test_keep_dims_that_went_through_a_float_cast() -> None:
    """float16 holds 3001 as 3000: dims cast to a float type and back are not trusted."""
    tail = [h.make_node("Cast", ["s"], ["f"], to=T.FLOAT16), h.make_node("Cast", ["f"], ["s64"], to=T.INT64),
            h.make_node("Gather", ["s64", "i"], ["y"])]
    proto = _shape_then(tail, ["N", 3001], [ints("i", 1)])
    ops, stats, model = _check(proto, _feeds(["N", 3001], (1,)))
    assert ops == ["Relu", "Shape", "Cast", "Cast", "Gather"] and stats == {}
    assert ort(model, _feeds(["N", 3001], (1,)))["y"].tolist() == 3000


def test_unsqueeze_and_squeeze_keep_the_element() -> None:
    """Slice [1:2] -> Squeeze -> Unsqueeze of [N, 3, 4] is the static [3]: folded at the Slice, and
    the rest folds as ordinary constants."""
    tail = [h.make_node("Slice", ["s", "one", "two"], ["d"]), h.make_node("Squeeze", ["d", "ax"], ["sq"]),
            h.make_node("Unsqueeze", ["sq", "ax"], ["y"])]
    proto = _shape_then(tail, ["N", 3, 4], [ints("one", [1]), ints("two", [2]), ints("ax", [0])])
    ops, stats, model = _check(proto, _feeds(["N", 3, 4]))
    assert ops == ["Relu"]
    assert stats == {"folded": 3, "folded_Slice_of_shape": 1, "folded_Squeeze": 1, "folded_Unsqueeze": 1}
    assert _const_of(model, "y").tolist() == [3]  # type: ignore[union-attr]


# ---- Reshape targets that copy the input's own dims ----

def _reshape_by(tail: list[onnx.NodeProto], x_shape: list[int | str], inits: list[onnx.TensorProto],
                **reshape_attrs: Any) -> onnx.ModelProto:
    """x -> Relu -> r; Shape(r) -> tail -> t; Reshape(r, t) -> y."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Shape", ["r"], ["s"]), *tail,
             h.make_node("Reshape", ["r", "t"], ["y"], **reshape_attrs)]
    return make(nodes, [info("x", x_shape)], [untyped("y")], inits, opset=17)


def _target(model: Model) -> list[int] | None:
    reshape = next(n for n in model.graph if n.op_type == "Reshape")
    target = reshape.inputs[1]
    return None if target.const is None else target.const.numpy().tolist()


@pytest.mark.parametrize("x_shape,expected", [(["N", 3, 4], [-1, 3, 4]), (["N", "M", 4], [0, 0, 4])], ids=str)
def test_reshape_to_its_own_shape_gets_zero_entries(x_shape: list[int | str], expected: list[int]) -> None:
    """Reshape(r, Shape(r)): dynamic dims copy themselves (0; -1 when it is the only one beside static
    dims, which a following Reshape can merge with), static ones are written out; the shape
    computation is then dead and removed."""
    proto = _reshape_by([h.make_node("Identity", ["s"], ["t"])], x_shape, [])
    ops, stats, model = _check(proto, _feeds(x_shape))
    assert ops == ["Relu", "Reshape"] and stats == {"folded": 1, "reshape_target_copies_dims": 1}
    assert _target(model) == expected


def test_squeezed_and_unsqueezed_batch_dim_is_still_a_copy() -> None:
    """Slice [0:1] -> Squeeze -> Unsqueeze -> Concat with [-1] is [N, -1] = [0, -1]."""
    tail = [h.make_node("Slice", ["s", "zero", "one"], ["d"]), h.make_node("Squeeze", ["d", "ax"], ["sq"]),
            h.make_node("Unsqueeze", ["sq", "ax"], ["u"]),
            h.make_node("Concat", ["u", "minus1"], ["t"], axis=0)]
    inits = [ints("zero", [0]), ints("one", [1]), ints("ax", [0]), ints("minus1", [-1])]
    proto = _reshape_by(tail, ["N", 3, 4], inits)
    ops, stats, model = _check(proto, _feeds(["N", 3, 4]))
    assert ops == ["Relu", "Reshape"] and stats == {"folded": 1, "reshape_target_copies_dims": 1}
    assert _target(model) == [0, -1]


def test_keep_a_target_that_moves_dynamic_dims() -> None:
    """Shape([N, M, 4]) reversed is [4, M, N]: N sits at position 2, where a 0 would copy r's dim 2."""
    tail = [h.make_node("Slice", ["s", "start", "end", "ax", "step"], ["t"])]
    inits = [ints("start", [-1]), ints("end", [-2**63]), ints("ax", [0]), ints("step", [-1])]
    proto = _reshape_by(tail, ["N", "M", 4], inits)
    ops, stats, model = _check(proto, _feeds(["N", "M", 4], (5, 7)))
    assert ops == ["Relu", "Shape", "Slice", "Reshape"] and stats == {} and _target(model) is None


@pytest.mark.parametrize("z_batch", ["M", "?"])
def test_a_target_reading_another_tensors_dim_next_to_static_ones_gets_a_minus_one(z_batch: str) -> None:
    """Shape(z) with z: [M, 3, 4] (or Paddle's placeholder "?") while r is [N, 3, 4]: z's batch need
    not be r's, but the other dims (3, 4) are static and not 0, so -1 resolves to exactly it."""
    x_batch = "?" if z_batch == "?" else "N"
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Shape", ["z"], ["t"]),
             h.make_node("Reshape", ["r", "t"], ["y"])]
    proto = make(nodes, [info("x", [x_batch, 3, 4]), info("z", [z_batch, 3, 4])], [untyped("y")])
    feeds = {"x": randn(2, 3, 4), "z": randn(2, 3, 4, seed=1)}
    ops, stats, model = _check(proto, feeds)
    assert ops == ["Relu", "Reshape"] and stats == {"folded": 1, "reshape_target_copies_dims": 1}
    assert _target(model) == [-1, 3, 4]


def test_a_target_copying_a_dim_of_the_same_name_is_a_copy() -> None:
    """z: [N, 3, 4] and x: [N, 3, 4] name their batch alike, which the ONNX IR makes one size."""
    nodes = [h.make_node("Relu", ["x"], ["r"]), h.make_node("Shape", ["z"], ["t"]),
             h.make_node("Reshape", ["r", "t"], ["y"])]
    proto = make(nodes, [info("x", ["N", 3, 4]), info("z", ["N", 3, 4])], [untyped("y")])
    feeds = {"x": randn(2, 3, 4), "z": randn(2, 3, 4, seed=1)}
    ops, stats, model = _check(proto, feeds)
    assert ops == ["Relu", "Reshape"] and stats == {"folded": 1, "reshape_target_copies_dims": 1}
    assert _target(model) == [-1, 3, 4]  # the one copied dim beside static ones


def test_keep_a_target_when_reshape_allows_zero() -> None:
    """allowzero=1 reads a 0 as a zero-sized dim, not as a copy."""
    proto = _reshape_by([h.make_node("Identity", ["s"], ["t"])], ["N", 3, 4], [], allowzero=1)
    ops, stats, model = _check(proto, _feeds(["N", 3, 4]))
    assert ops == ["Relu", "Shape", "Identity", "Reshape"] and stats == {} and _target(model) is None


# ---- property ----

@st.composite
def _slice_cases(draw: st.DrawFn) -> tuple:
    rank = draw(st.integers(1, 4))
    dims = [draw(st.sampled_from([2, 3, "S"])) for _ in range(rank)]
    if "S" not in dims:  # a fully static shape is folded whole, by the older path
        dims[draw(st.integers(0, rank - 1))] = "S"
    bound = st.one_of(st.integers(-rank - 2, rank + 2), st.sampled_from([-2**63, 2**63 - 1]))
    if draw(st.booleans()):
        return dims, "Slice", (draw(bound), draw(bound), draw(st.sampled_from([-2, -1, 1, 2, 3])))
    indices = draw(st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=3))
    return dims, "Gather", (indices if draw(st.booleans()) else indices[0],)


def _selected(rank: int, op: str, args: tuple) -> list[int]:
    """Which dims the op picks, asked of onnxruntime on arange(rank): an oracle outside graphopt."""
    if op == "Slice":
        start, end, step = args
        nodes = [h.make_node("Slice", ["v", "st", "en", "ax", "sp"], ["o"])]
        inits = [ints("st", [start]), ints("en", [end]), ints("ax", [0]), ints("sp", [step])]
    else:
        nodes, inits = [h.make_node("Gather", ["v", "i"], ["o"])], [ints("i", args[0])]
    proto = make(nodes, [info("v", [rank], INT64)], [untyped("o")], inits)
    return np.asarray(ort(proto, {"v": np.arange(rank, dtype=np.int64)})["o"]).reshape(-1).tolist()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(_slice_cases())
def test_shape_slices_and_gathers_fold_exactly_when_all_picked_dims_are_static(case: tuple) -> None:
    """Property: random partially static shapes of rank 1-4 and random Slice bounds and steps (with the
    int64 extremes) or Gather indices. Outputs stay bit-exact, and the op folds to a constant exactly
    when every dim it picks (as onnxruntime picks them from arange(rank)) is static."""
    dims, op, args = case
    if op == "Slice":
        start, end, step = args
        tail = [h.make_node("Slice", ["s", "st", "en", "ax", "sp"], ["y"])]
        inits = [ints("st", [start]), ints("en", [end]), ints("ax", [0]), ints("sp", [step])]
    else:
        tail, inits = [h.make_node("Gather", ["s", "i"], ["y"])], [ints("i", args[0])]
    proto = _shape_then(tail, dims, inits)
    ops, stats, model = _check(proto, _feeds(dims, (5, 5, 5, 5)))
    picked = _selected(len(dims), op, args)
    disputed = op == "Slice" and args[2] < 0 and args[1] == 2**63 - 1  # onnxruntime departs from the spec
    expected = all(isinstance(dims[p], int) for p in picked) and not disputed
    event(f"folds={expected}")
    assert (op not in ops) == (stats == {"folded": 1, f"folded_{op}_of_shape": 1}) == expected, stats
    if expected:
        assert np.asarray(_const_of(model, "y")).reshape(-1).tolist() == [dims[p] for p in picked]
