"""Which nodes eliminate-dead-code treats as no-ops: removed only where provably so, near-misses stay.

Every case is ``x -> <node> -> t -> Relu -> y``; a removed no-op leaves ``["Relu"]`` and reports
``noop_<Op>`` plus the constants that died with it; a near-miss leaves the graph and the stats empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest
from graphopt.passes.eliminate_dead_code._noop_rules import noop_source
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import array, assert_same_outputs, info, ints, make, op_types, randn, run_pass, untyped

from graphopt import import_model

BIG = 2**63 - 1


@dataclass
class Case:
    """One no-op candidate: the node, its constant inputs, the input shape and the feed shape."""

    node: onnx.NodeProto
    inits: list[onnx.TensorProto] = field(default_factory=list)
    xshape: list[int | str] | None = field(default_factory=lambda: [2, 3, 4])
    feed: tuple[int, ...] = (2, 3, 4)
    opset: int = 17

    def proto(self) -> onnx.ModelProto:
        """The model ``x -> node -> t -> Relu -> y``."""
        relu = h.make_node("Relu", ["t"], ["y"])
        return make([self.node, relu], [info("x", self.xshape)], [untyped("y")], self.inits,
                    opset=self.opset)


def n(op: str, *inputs: str, **attrs: object) -> onnx.NodeProto:
    """A node reading ``x`` and the named constants, writing ``t``."""
    return h.make_node(op, ["x", *inputs], ["t"], **attrs)


REMOVED: dict[str, tuple[Case, dict[str, int]]] = {
    "cast_to_same_type": (Case(n("Cast", to=T.FLOAT)), {"noop_Cast": 1}),
    "castlike_same_type": (Case(n("CastLike", "like"), [array("like", np.zeros(1, np.float32))]),
                           {"noop_CastLike": 1, "unused_constants": 1}),
    "reshape_to_same_shape": (Case(n("Reshape", "s"), [ints("s", [2, 3, 4])]),
                              {"noop_Reshape": 1, "unused_constants": 1}),
    "reshape_zero_copies_and_minus_one_infers": (Case(n("Reshape", "s"), [ints("s", [0, -1, 4])]),
                                                 {"noop_Reshape": 1, "unused_constants": 1}),
    "reshape_zero_keeps_symbolic_batch": (
        Case(n("Reshape", "s"), [ints("s", [0, 3, 4])], ["N", 3, 4], (5, 3, 4)),
        {"noop_Reshape": 1, "unused_constants": 1}),
    "reshape_minus_one_on_the_only_symbolic_dim": (
        Case(n("Reshape", "s"), [ints("s", [-1, 3, 4])], ["N", 3, 4], (5, 3, 4)),
        {"noop_Reshape": 1, "unused_constants": 1}),
    "reshape_zeros_and_minus_one_with_two_symbols": (
        Case(n("Reshape", "s"), [ints("s", [0, 0, -1])], ["N", 3, "K"], (2, 3, 7)),
        {"noop_Reshape": 1, "unused_constants": 1}),
    "reshape_allowzero_keeps_an_empty_dim": (
        Case(n("Reshape", "s", allowzero=1), [ints("s", [0, 3, 4])], [0, 3, 4], (0, 3, 4)),
        {"noop_Reshape": 1, "unused_constants": 1}),
    "transpose_identity_perm": (Case(n("Transpose", perm=[0, 1, 2])), {"noop_Transpose": 1}),
    "transpose_default_perm_of_rank_one": (Case(n("Transpose"), xshape=[5], feed=(5,)),
                                           {"noop_Transpose": 1}),
    "dropout_at_inference": (Case(n("Dropout")), {"noop_Dropout": 1}),
    "dropout_training_mode_false": (
        Case(n("Dropout", "r", "tm"), [array("r", np.array(0.5, np.float32)), array("tm", np.array(False))]),
        {"noop_Dropout": 1, "unused_constants": 2}),
    "pad_all_zero": (Case(n("Pad", "p"), [ints("p", [0] * 6)]), {"noop_Pad": 1, "unused_constants": 1}),
    "pad_all_zero_attribute_opset9": (Case(n("Pad", pads=[0] * 6), opset=9), {"noop_Pad": 1}),
    "expand_to_ones": (Case(n("Expand", "s"), [ints("s", [1])]), {"noop_Expand": 1, "unused_constants": 1}),
    "expand_broadcast_to_own_dims": (Case(n("Expand", "s"), [ints("s", [3, 1])]),
                                     {"noop_Expand": 1, "unused_constants": 1}),
    "expand_to_own_shape": (Case(n("Expand", "s"), [ints("s", [2, 3, 4])]),
                            {"noop_Expand": 1, "unused_constants": 1}),
    "slice_zero_to_int64_max": (Case(n("Slice", "st", "en"), [ints("st", [0]), ints("en", [BIG])]),
                                {"noop_Slice": 1, "unused_constants": 2}),
    "slice_minus_dim_to_dim": (
        Case(n("Slice", "st", "en", "ax"), [ints("st", [-4]), ints("en", [4]), ints("ax", [-1])]),
        {"noop_Slice": 1, "unused_constants": 3}),
    "slice_symbolic_dim_to_int64_max": (
        Case(n("Slice", "st", "en", "ax", "sp"),
             [ints("st", [0]), ints("en", [BIG]), ints("ax", [0]), ints("sp", [1])], ["N", 3, 4], (5, 3, 4)),
        {"noop_Slice": 1, "unused_constants": 4}),
    "slice_full_attributes_opset9": (Case(n("Slice", starts=[0], ends=[BIG], axes=[1]), opset=9),
                                     {"noop_Slice": 1}),
    "concat_of_one_input": (Case(n("Concat", axis=0)), {"noop_Concat": 1}),
    "sum_of_one_input": (Case(n("Sum")), {"noop_Sum": 1}),
    "add_zero_scalar": (Case(n("Add", "z"), [array("z", np.zeros((), np.float32))]),
                        {"noop_Add": 1, "unused_constants": 1}),
    "zero_plus_x_per_channel": (Case(h.make_node("Add", ["z", "x"], ["t"]),
                                     [array("z", np.zeros((3, 1), np.float32))]),
                                {"noop_Add": 1, "unused_constants": 1}),
    "sub_zero": (Case(n("Sub", "z"), [array("z", np.zeros(4, np.float32))]),
                 {"noop_Sub": 1, "unused_constants": 1}),
    "mul_one_full_shape": (Case(n("Mul", "o"), [array("o", np.ones((2, 3, 4), np.float32))]),
                           {"noop_Mul": 1, "unused_constants": 1}),
    "one_times_x": (Case(h.make_node("Mul", ["o", "x"], ["t"]), [array("o", np.ones(1, np.float32))]),
                    {"noop_Mul": 1, "unused_constants": 1}),
    "div_one": (Case(n("Div", "o"), [array("o", np.ones((), np.float32))]),
                {"noop_Div": 1, "unused_constants": 1}),
    "pow_one": (Case(n("Pow", "o"), [array("o", np.ones((), np.float32))]),
                {"noop_Pow": 1, "unused_constants": 1}),
}

KEPT: dict[str, Case] = {
    "cast_to_another_type": Case(n("Cast", to=T.DOUBLE)),
    "reshape_swapping_dims": Case(n("Reshape", "s"), [ints("s", [2, 4, 3])]),
    "reshape_merging_dims_with_minus_one": Case(n("Reshape", "s"), [ints("s", [2, -1])]),
    "reshape_allowzero_zero_means_empty": Case(n("Reshape", "s", allowzero=1), [ints("s", [0, 3, 4])],
                                               ["N", 3, 4], (0, 3, 4)),
    "reshape_number_against_symbolic_dim": Case(n("Reshape", "s"), [ints("s", [2, -1, 4])], ["N", 3, 4],
                                                (2, 3, 4)),
    "reshape_of_unknown_shape": Case(n("Reshape", "s"), [ints("s", [2, 3, 4])], None),
    "transpose_permuting": Case(n("Transpose", perm=[0, 2, 1])),
    "transpose_default_perm_of_rank_three": Case(n("Transpose")),
    "dropout_training_mode_true": Case(n("Dropout", "r", "tm"), [array("r", np.array(0.0, np.float32)),
                                                                 array("tm", np.array(True))]),
    "pad_nonzero": Case(n("Pad", "p"), [ints("p", [0, 0, 0, 0, 0, 1])]),
    "expand_growing_rank": Case(n("Expand", "s"), [ints("s", [1, 2, 3, 4])]),
    "expand_broadcasting_a_one": Case(n("Expand", "s"), [ints("s", [2, 3, 4])], [2, 1, 4], (2, 1, 4)),
    "expand_number_against_symbolic_dim": Case(n("Expand", "s"), [ints("s", [3, 4])], [2, "N", 4],
                                               (2, 1, 4)),
    "slice_step_two": Case(n("Slice", "st", "en", "ax", "sp"),
                           [ints("st", [0]), ints("en", [BIG]), ints("ax", [1]), ints("sp", [2])]),
    "slice_negative_step": Case(n("Slice", "st", "en", "ax", "sp"),
                                [ints("st", [-1]), ints("en", [-BIG]), ints("ax", [1]), ints("sp", [-1])]),
    "slice_start_one": Case(n("Slice", "st", "en", "ax"),
                            [ints("st", [1]), ints("en", [BIG]), ints("ax", [0])]),
    "slice_end_minus_one": Case(n("Slice", "st", "en", "ax"),
                                [ints("st", [0]), ints("en", [-1]), ints("ax", [2])]),
    "slice_negative_start_on_symbolic_dim": Case(n("Slice", "st", "en", "ax"),
                                                 [ints("st", [-2]), ints("en", [BIG]), ints("ax", [0])],
                                                 ["N", 3, 4], (2, 3, 4)),
    "concat_of_two_inputs": Case(h.make_node("Concat", ["x", "x"], ["t"], axis=0)),
    "add_zero_that_broadcasts_x_larger": Case(n("Add", "z"),
                                              [array("z", np.zeros((5, 2, 3, 4), np.float32))]),
    "add_zero_over_a_dim_of_size_one": Case(n("Add", "z"), [array("z", np.zeros((3, 4), np.float32))],
                                            [2, 1, 4], (2, 1, 4)),
    "add_zero_with_x_shape_unknown": Case(n("Add", "z"), [array("z", np.zeros((), np.float32))], None),
    "add_almost_zero": Case(n("Add", "z"), [array("z", np.full((), 1e-30, np.float32))]),
    "zero_minus_x": Case(h.make_node("Sub", ["z", "x"], ["t"]), [array("z", np.zeros((), np.float32))]),
    "one_divided_by_x": Case(h.make_node("Div", ["o", "x"], ["t"]), [array("o", np.ones((), np.float32))]),
    "mul_by_zero": Case(n("Mul", "z"), [array("z", np.zeros((), np.float32))]),
    "add_zero_of_another_dtype_via_pow": Case(n("Pow", "o"), [array("o", np.ones((), np.int64))]),
}


@pytest.mark.parametrize("case,stats", REMOVED.values(), ids=REMOVED.keys())
def test_remove_provable_noop(case: Case, stats: dict[str, int]) -> None:
    """The no-op goes with its dead constants; outputs are bit-identical; a second run is clean."""
    proto = case.proto()
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (True, stats)
    assert op_types(model) == ["Relu"]
    assert_same_outputs(proto, model, {"x": randn(*case.feed)})
    _, again = run_pass(model, "eliminate-dead-code")
    assert (again.changed, again.stats) == (False, {})


@pytest.mark.parametrize("case", KEPT.values(), ids=KEPT.keys())
def test_keep_near_miss_that_is_not_provably_a_noop(case: Case) -> None:
    """Nothing is removed and the stats stay empty."""
    proto = case.proto()
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert op_types(model) == [case.node.op_type, "Relu"]
    assert_same_outputs(proto, model, {"x": randn(*case.feed)})


def test_keep_cast_whose_input_type_cannot_be_inferred() -> None:
    """Behind a custom op inference knows no dtype, and a declared one is not trusted: Cast stays."""
    nodes = [h.make_node("Foo", ["x"], ["a"], domain="com.example"),
             h.make_node("Cast", ["a"], ["y"], to=T.FLOAT)]
    proto = make(nodes, [info("x", [2, 3])], [untyped("y")], value_info=[info("a", [2, 3])],
                 extra_opsets={"com.example": 1})
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert [n.qualified_type for n in model.graph] == ["com.example::Foo", "Cast"]


def test_remove_cast_whose_input_type_dce_infers() -> None:
    """With no value_info at all, DCE infers Abs's dtype itself and drops the same-type Cast."""
    nodes = [h.make_node("Abs", ["x"], ["a"]), h.make_node("Cast", ["a"], ["y"], to=T.FLOAT)]
    proto = make(nodes, [info("x", [2, 3])], [untyped("y")])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (True, {"noop_Cast": 1})
    assert op_types(model) == ["Abs"]


def test_keep_dropout_whose_mask_is_read() -> None:
    """The mask output is not a pass-through, so the node stays."""
    node = h.make_node("Dropout", ["x"], ["t", "mask"])
    proto = make([node, h.make_node("Relu", ["t"], ["y"])], [info("x", [2, 3])],
                 [untyped("y"), untyped("mask")])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert op_types(model) == ["Dropout", "Relu"]


def test_remove_dropout_whose_mask_output_is_named_but_unread() -> None:
    """An unread mask does not make Dropout observable."""
    node = h.make_node("Dropout", ["x"], ["t", "mask"])
    proto = make([node, h.make_node("Relu", ["t"], ["y"])], [info("x", [2, 3])], [untyped("y")])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert result.stats == {"noop_Dropout": 1}
    assert op_types(model) == ["Relu"]


def test_noop_source_names_the_pass_through_input() -> None:
    """noop_source returns the input index for a no-op and None for a custom domain."""
    proto = REMOVED["reshape_to_same_shape"][0].proto()
    reshape = import_model(proto).graph.nodes[0]
    assert noop_source(reshape, 17) == 0
    reshape.domain = "com.example"
    assert noop_source(reshape, 17) is None


def test_keep_reshape_whose_input_shape_is_only_declared_by_lying_value_info() -> None:
    """A declared shape proves nothing: true [4, N] reshaped to [3, 4] must stay a Reshape."""
    nodes = [h.make_node("Transpose", ["x"], ["t"], perm=[1, 0]), h.make_node("Reshape", ["t", "s"], ["y"])]
    proto = make(nodes, [info("x", ["N", 4])], [untyped("y")], [ints("s", [3, 4])],
                 value_info=[info("t", [3, 4])])
    model, result = run_pass(proto, "eliminate-dead-code")
    assert (result.changed, result.stats) == (False, {})
    assert_same_outputs(proto, model, {"x": randn(3, 4)})
