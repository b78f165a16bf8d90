"""simplify-chains: Transpose, Reshape, Unsqueeze-Squeeze and Cast chains collapse exactly where the result
is the same tensor (checked bit-exactly with onnxruntime), and never lose a graph output in the middle."""

from __future__ import annotations

import numpy as np
import onnx
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import assert_same_outputs, info, ints, make, op_types, randn, run_pass

PASS = "simplify-chains"


def _transposes(p1: list[int] | None, p2: list[int] | None, shape: list[int],
                outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    attrs1 = {} if p1 is None else {"perm": p1}
    attrs2 = {} if p2 is None else {"perm": p2}
    nodes = [h.make_node("Transpose", ["x"], ["t"], **attrs1),
             h.make_node("Transpose", ["t"], ["u"], **attrs2),
             h.make_node("Relu", ["u"], ["y"])]
    return make(nodes, [info("x", shape)], [info(o, None) for o in outputs])


def _check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[list[str], dict, onnx.ModelProto]:
    model, result = run_pass(proto, PASS)
    assert_same_outputs(proto, model, feeds)
    _, again = run_pass(model, PASS)
    assert not again.changed  # idempotent
    return op_types(model), result.stats, model


def test_compose_two_3d_transposes_in_the_right_order() -> None:
    """out[i] = in[perm[i]]: Transpose(Transpose(x, p1), p2) is Transpose(x, [p1[p2[i]]])."""
    proto = _transposes([1, 2, 0], [1, 0, 2], [2, 3, 4])
    ops, stats, model = _check(proto, {"x": randn(2, 3, 4)})
    assert ops == ["Transpose", "Relu"] and stats == {"simplified_transpose-transpose": 1}
    assert next(iter(model.graph)).attr("perm") == [2, 1, 0]  # p2[p1[i]] would be [0, 2, 1]


def test_drop_a_transpose_pair_that_composes_to_the_identity() -> None:
    """[1, 2, 0] then [2, 0, 1] restores the layout: both Transposes go."""
    ops, stats, _ = _check(_transposes([1, 2, 0], [2, 0, 1], [2, 3, 4]), {"x": randn(2, 3, 4)})
    assert ops == ["Relu"] and stats == {"simplified_transpose-transpose": 1}


def test_omitted_perms_reverse_the_axes() -> None:
    """Two default (reversing) Transposes cancel when the rank is known."""
    ops, stats, _ = _check(_transposes(None, None, [2, 3, 4]), {"x": randn(2, 3, 4)})
    assert ops == ["Relu"] and stats == {"simplified_transpose-transpose": 1}


def test_keep_omitted_perms_of_unknown_rank() -> None:
    """Without a rank an omitted perm cannot be composed: the chain stays, with the reason."""
    proto = _transposes(None, [1, 0], [2, 3])
    proto.graph.input[0].type.tensor_type.ClearField("shape")
    ops, stats, _ = _check(proto, {"x": randn(2, 3)})
    assert ops == ["Transpose", "Transpose", "Relu"]
    assert stats == {"rejected_transpose-transpose:perm omitted and rank unknown": 1}


def test_collapse_a_chain_of_three_transposes() -> None:
    """The driver repeats: three Transposes become one."""
    nodes = [h.make_node("Transpose", ["x"], ["a"], perm=[1, 2, 3, 0]),
             h.make_node("Transpose", ["a"], ["b"], perm=[0, 2, 1, 3]),
             h.make_node("Transpose", ["b"], ["y"], perm=[3, 1, 0, 2])]
    proto = make(nodes, [info("x", [2, 3, 4, 5])], [info("y", None)])
    ops, stats, _ = _check(proto, {"x": randn(2, 3, 4, 5)})
    assert ops == ["Transpose"] and stats == {"simplified_transpose-transpose": 2}


def test_keep_a_transpose_chain_whose_middle_is_a_graph_output() -> None:
    """The middle value 't' is a graph output: refused, and 't' is still produced."""
    ops, stats, _ = _check(_transposes([1, 2, 0], [1, 0, 2], [2, 3, 4], outputs=("y", "t")),
                           {"x": randn(2, 3, 4)})
    assert ops == ["Transpose", "Transpose", "Relu"]
    assert stats == {"rejected_transpose-transpose:intermediate value is a graph output": 1}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(1, 4).flatmap(lambda r: st.tuples(st.permutations(range(r)), st.permutations(range(r)))))
def test_any_transpose_pair_matches_onnxruntime(perms: tuple[list[int], list[int]]) -> None:
    """Property: every pair of permutations (ranks 1-4) composes to the same tensor."""
    p1, p2 = perms
    shape = [2, 3, 4, 5][:len(p1)]
    ops, stats, _ = _check(_transposes(list(p1), list(p2), shape), {"x": randn(*shape)})
    assert stats == {"simplified_transpose-transpose": 1}
    assert ops in (["Relu"], ["Transpose", "Relu"])


def _reshapes(s1: list[int], s2: list[int], *, allowzero: int | None = None) -> onnx.ModelProto:
    attrs = {} if allowzero is None else {"allowzero": allowzero}
    nodes = [h.make_node("Reshape", ["x", "s1"], ["r"]), h.make_node("Reshape", ["r", "s2"], ["y"], **attrs)]
    return make(nodes, [info("x", [2, 3, 4])], [info("y", None)], [ints("s1", s1), ints("s2", s2)])


def test_skip_the_first_reshape_when_the_second_shape_is_absolute() -> None:
    """Reshape(Reshape(x, [6, 4]), [4, -1]) is Reshape(x, [4, -1]); the first shape goes too."""
    ops, stats, model = _check(_reshapes([6, 4], [4, -1]), {"x": randn(2, 3, 4)})
    assert ops == ["Reshape"] and stats == {"simplified_reshape-reshape": 1}
    assert [v.const.numpy().tolist() for v in model.graph.consts] == [[4, -1]]


def test_skip_the_first_reshape_with_allowzero() -> None:
    """allowzero=1 on the second Reshape makes it absolute as well."""
    ops, stats, _ = _check(_reshapes([6, 4], [24], allowzero=1), {"x": randn(2, 3, 4)})
    assert ops == ["Reshape"] and stats == {"simplified_reshape-reshape": 1}


def test_keep_reshapes_when_the_second_shape_copies_dimensions() -> None:
    """A 0 in the second shape copies a dimension of the first Reshape's output: the chain stays."""
    ops, stats, _ = _check(_reshapes([6, 4], [0, 2, -1]), {"x": randn(2, 3, 4)})
    assert ops == ["Reshape", "Reshape"]
    assert stats == {"rejected_reshape-reshape:second shape copies dimensions (0 entries)": 1}


def test_keep_reshapes_whose_shape_is_not_constant() -> None:
    """A shape that is a graph input is not matched at all."""
    proto = _reshapes([6, 4], [4, -1])
    proto.graph.initializer.pop(1)
    proto.graph.input.append(info("s2", [2], T.INT64))
    model, result = run_pass(proto, PASS)
    assert op_types(model) == ["Reshape", "Reshape"] and result.stats == {}


def _unsqueeze_squeeze(a1: list[int], a2: list[int], opset: int,
                       outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    if opset >= 13:
        nodes = [h.make_node("Unsqueeze", ["x", "a1"], ["u"]), h.make_node("Squeeze", ["u", "a2"], ["s"])]
        inits = [ints("a1", a1), ints("a2", a2)]
    else:
        nodes = [h.make_node("Unsqueeze", ["x"], ["u"], axes=a1),
                 h.make_node("Squeeze", ["u"], ["s"], axes=a2)]
        inits = []
    nodes.append(h.make_node("Relu", ["s"], ["y"]))
    return make(nodes, [info("x", [3, 4])], [info(o, None) for o in outputs], inits, opset=opset)


def test_squeeze_undoes_unsqueeze_with_axes_as_inputs() -> None:
    """Opset 13+: equal axes (as sets, negative axes normalised) cancel."""
    ops, stats, _ = _check(_unsqueeze_squeeze([0, -1], [3, 0], 17), {"x": randn(3, 4)})
    assert ops == ["Relu"] and stats == {"simplified_unsqueeze-squeeze": 1}


def test_squeeze_undoes_unsqueeze_with_axes_as_attributes() -> None:
    """Opset < 13: the same with axes attributes."""
    ops, stats, _ = _check(_unsqueeze_squeeze([1], [1], 11), {"x": randn(3, 4)})
    assert ops == ["Relu"] and stats == {"simplified_unsqueeze-squeeze-attr": 1}


def test_unsqueeze_squeeze_on_different_axes_that_keep_the_shape_cancel() -> None:
    """x[1, 4]: inserting axis 0 and squeezing axis 1 gives back [1, 4], the same tensor."""
    proto = _unsqueeze_squeeze([0], [1], 17)
    proto.graph.input[0].CopyFrom(info("x", [1, 4]))
    ops, stats, _ = _check(proto, {"x": randn(1, 4)})
    assert ops == ["Relu"]
    assert stats == {"rejected_unsqueeze-squeeze:axes differ": 1,
                     "simplified_unsqueeze-squeeze-other-axes": 1}


def _squeeze_unsqueeze(shape: list, a1: list[int], a2: list[int]) -> onnx.ModelProto:
    nodes = [h.make_node("Squeeze", ["x", "a1"], ["s"]), h.make_node("Unsqueeze", ["s", "a2"], ["u"]),
             h.make_node("Relu", ["u"], ["y"])]
    return make(nodes, [info("x", shape)], [info("y", None)], [ints("a1", a1), ints("a2", a2)])


def test_lstm_output_squeezed_then_unsqueezed_elsewhere_is_one_reshape() -> None:
    """An LSTM's Y[seq, 1, batch, hidden] squeezed on 1 and unsqueezed on 0: one Reshape whose target
    copies the dims that stay in place (0) and takes -1 for the dynamic one that moved."""
    ops, stats, model = _check(_squeeze_unsqueeze(["seq", 1, 2, 8], [1], [0]), {"x": randn(5, 1, 2, 8)})
    assert ops == ["Reshape", "Relu"] and stats == {"simplified_squeeze-unsqueeze": 1}
    target = next(iter(model.graph)).inputs[1].const.numpy().tolist()
    assert target == [1, -1, 0, 0]


def test_squeeze_then_unsqueeze_on_the_same_axis_is_nothing() -> None:
    ops, stats, _ = _check(_squeeze_unsqueeze(["seq", 1, 2], [-2], [1]), {"x": randn(3, 1, 2)})
    assert ops == ["Relu"] and stats == {"simplified_squeeze-unsqueeze": 1}


def test_keep_a_pair_that_moves_two_dims_of_unknown_size() -> None:
    proto = _squeeze_unsqueeze(["a", "b", 1], [2], [0])
    ops, stats, _ = _check(proto, {"x": randn(3, 2, 1)})
    assert ops == ["Squeeze", "Unsqueeze", "Relu"]
    assert stats == {"rejected_squeeze-unsqueeze:two moved dims of unknown size": 1}


def test_keep_unsqueeze_squeeze_whose_middle_is_a_graph_output() -> None:
    """The Unsqueeze output 'u' is a graph output: it must keep being produced."""
    ops, stats, _ = _check(_unsqueeze_squeeze([0], [0], 17, outputs=("y", "u")), {"x": randn(3, 4)})
    assert ops == ["Unsqueeze", "Squeeze", "Relu"]
    assert stats == {"rejected_unsqueeze-squeeze:intermediate value is a graph output": 1,
                     "rejected_unsqueeze-squeeze-other-axes:intermediate value is a graph output": 1}


def _casts(src: int, mid: int, dst: int, outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    nodes = [h.make_node("Cast", ["x"], ["c"], to=mid), h.make_node("Cast", ["c"], ["y"], to=dst)]
    return make(nodes, [info("x", [4, 5], src)], [info(o, None, {"y": dst, "c": mid}[o]) for o in outputs])


def _values(dtype: type) -> np.ndarray:
    data = randn(4, 5) * 1000
    data[0, :3] = [np.inf, -np.inf, np.nan] if np.issubdtype(dtype, np.floating) else 0
    return data.astype(dtype)


def test_widening_cast_chains_keep_only_the_last_cast() -> None:
    """float16 -> float32 -> double is Cast(x, double); int32 -> int64 -> float is Cast(x, float)."""
    for src, mid, dst, dtype in [(T.FLOAT16, T.FLOAT, T.DOUBLE, np.float16),
                                 (T.INT32, T.INT64, T.FLOAT, np.int32),
                                 (T.INT8, T.FLOAT, T.INT32, np.int8),
                                 (T.FLOAT, T.DOUBLE, T.INT32, np.float32)]:
        feeds = {"x": _values(dtype)}
        if src == T.FLOAT:
            feeds["x"][0, :3] = 0  # float -> int of inf/nan is undefined
        ops, stats, model = _check(_casts(src, mid, dst), feeds)
        assert ops == ["Cast"] and stats == {"simplified_cast-cast": 1}
        assert next(iter(model.graph)).attr("to") == dst


def test_a_round_trip_through_a_wider_type_disappears() -> None:
    """float -> double -> float is x itself (an Identity keeps the graph output's name)."""
    ops, stats, _ = _check(_casts(T.FLOAT, T.DOUBLE, T.FLOAT), {"x": _values(np.float32)})
    assert ops == ["Identity"] and stats == {"simplified_cast-cast": 1}


def test_keep_a_narrowing_first_cast() -> None:
    """float -> float16 -> float rounds: the chain stays, with the reason."""
    ops, stats, _ = _check(_casts(T.FLOAT, T.FLOAT16, T.FLOAT), {"x": _values(np.float32)})
    assert ops == ["Cast", "Cast"]
    assert stats == {"rejected_cast-cast:first cast is not value-exact (narrowing)": 1}


def test_keep_an_integer_going_through_float_to_a_narrower_integer() -> None:
    """int32 -> double is exact, but double -> int8 overflows differently from int32 -> int8."""
    feeds = {"x": np.arange(20, dtype=np.int32).reshape(4, 5)}
    ops, stats, _ = _check(_casts(T.INT32, T.DOUBLE, T.INT8), feeds)
    assert ops == ["Cast", "Cast"]
    assert stats == {"rejected_cast-cast:integer through float to a narrower integer "
                     "(out-of-range behaviour differs)": 1}


def test_keep_a_cast_chain_whose_middle_is_a_graph_output() -> None:
    """The middle value 'c' is a graph output: refused, both Casts stay."""
    proto = _casts(T.FLOAT16, T.FLOAT, T.DOUBLE, outputs=("y", "c"))
    ops, stats, _ = _check(proto, {"x": _values(np.float16)})
    assert ops == ["Cast", "Cast"]
    assert stats == {"rejected_cast-cast:intermediate value is a graph output": 1}


CAST_TYPES = {T.FLOAT16: np.float16, T.FLOAT: np.float32, T.DOUBLE: np.float64, T.INT8: np.int8,
              T.UINT8: np.uint8, T.INT16: np.int16, T.INT32: np.int32, T.INT64: np.int64, T.BOOL: np.bool_}


@settings(max_examples=80, deadline=None, derandomize=True)
@given(st.tuples(*[st.sampled_from(sorted(CAST_TYPES))] * 3))
def test_any_simplified_cast_chain_matches_onnxruntime_bit_exactly(types: tuple[int, int, int]) -> None:
    """Property: whatever chain the pass collapses gives the same bits (in-range values, fractions)."""
    src, mid, dst = types
    data = np.random.default_rng(src * 100 + mid).uniform(0, 100, (4, 5))
    feeds = {"x": (data > 50 if src == T.BOOL else data).astype(CAST_TYPES[src])}
    model, result = run_pass(_casts(src, mid, dst), PASS)
    assert_same_outputs(_casts(src, mid, dst), model, feeds)
    if result.changed:  # only value-exact first casts (numpy's "safe" is a superset: int64 -> double)
        assert np.can_cast(CAST_TYPES[src], CAST_TYPES[mid], "safe"), result.stats
