"""passes/memory_alias.py share_buffers: views alias their input (views of graph inputs and constants
alias memory outside the arena), elementwise ops write over an input whose bytes nothing reads later,
and graph outputs always get bytes of their own."""

from __future__ import annotations

import onnx
import pytest
from graphopt.passes.plan_memory._lifetimes import lifetimes
from graphopt.passes.plan_memory._sharing import Sharing, share_buffers
from memory_kit import chain, typed
from onnx import helper as h
from passes_kit import array, info, ints, make, randn

Buffers = list[tuple[int, int, int, list[str]]]


def _share(proto: onnx.ModelProto, mode: str = "unary") -> Sharing:
    graph = typed(proto).graph
    order = list(graph)
    return share_buffers(order, lifetimes(graph, order), mode)


def _buffers(sharing: Sharing) -> Buffers:
    """Each buffer as (size, start, end, member names)."""
    return [(b.size, b.start, b.end, [m.name for m in b.members]) for b in sharing.buffers]


def _names(mapping: dict) -> dict[str, str]:
    return {k.name: v.name for k, v in mapping.items()}


def _view_model(op: str) -> onnx.ModelProto:
    """x[1,4,2] -> Exp -> e (32 B) -> ``op`` -> v -> Neg -> y (the graph output)."""
    extra = {"Reshape": (["shape"], [ints("shape", [4, 2])]), "Squeeze": (["axes"], [ints("axes", [0])]),
             "Unsqueeze": (["axes"], [ints("axes", [0])])}
    inputs, inits = extra.get(op, ([], []))
    return make([h.make_node("Exp", ["x"], ["e"]), h.make_node(op, ["e", *inputs], ["v"]),
                 h.make_node("Neg", ["v"], ["y"])], [info("x", [1, 4, 2])], [info("y", None)], inits)


@pytest.mark.parametrize("op", ["Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"])
def test_a_view_shares_the_buffer_of_its_input(op: str) -> None:
    """Even with in-place writes off: a view is not a write."""
    sharing = _share(_view_model(op), mode="none")
    assert _buffers(sharing) == [(32, 0, 2, ["e", "v"]), (32, 2, 3, ["y"])]
    assert _names(sharing.alias_of) == {"v": "e"}
    assert sharing.in_place == set() and sharing.external == {}


def test_views_of_graph_inputs_and_constants_alias_memory_outside_the_arena() -> None:
    """v = Reshape(x), v2 = Identity(v) (a view of a view), k2 = Identity(k) (k a constant): none of
    them takes arena bytes; only the Add's output has a buffer."""
    proto = make([h.make_node("Reshape", ["x", "shape"], ["v"]), h.make_node("Identity", ["v"], ["v2"]),
                  h.make_node("Identity", ["k"], ["k2"]), h.make_node("Add", ["v2", "k2"], ["y"])],
                 [info("x", [2, 4])], [info("y", [8])], [ints("shape", [8]), array("k", randn(8))])
    sharing = _share(proto)
    assert _buffers(sharing) == [(32, 3, 4, ["y"])]
    assert _names(sharing.external) == {"v": "x", "v2": "x", "k2": "k"}
    assert _names(sharing.alias_of) == {"v": "x", "v2": "v", "k2": "k"}


def test_a_unary_op_writes_over_its_input_when_nothing_reads_that_input_later() -> None:
    """Conv -> Relu (in place) -> Reshape (a view of the Relu): one 128-byte buffer for all three."""
    sharing = _share(chain())
    assert _buffers(sharing) == [(128, 0, 3, ["c", "r", "f"]), (20, 3, 4, ["y"])]
    assert _names(sharing.alias_of) == {"r": "c", "f": "r"}
    assert {v.name for v in sharing.in_place} == {"r"}


def test_in_place_off_gives_the_unary_op_its_own_buffer_but_views_still_alias() -> None:
    sharing = _share(chain(), mode="none")
    assert _buffers(sharing) == [(128, 0, 1, ["c"]), (128, 1, 3, ["r", "f"]), (20, 3, 4, ["y"])]
    assert _names(sharing.alias_of) == {"f": "r"} and sharing.in_place == set()


def test_a_relu_whose_input_is_read_later_gets_its_own_buffer() -> None:
    """c = Exp(x); r = Relu(c); y = Add(r, c): c is still needed at step 2."""
    proto = make([h.make_node("Exp", ["x"], ["c"]), h.make_node("Relu", ["c"], ["r"]),
                  h.make_node("Add", ["r", "c"], ["y"])], [info("x", [4])], [info("y", [4])])
    sharing = _share(proto)
    assert _buffers(sharing) == [(16, 0, 2, ["c"]), (16, 1, 2, ["r"]), (16, 2, 3, ["y"])]
    assert sharing.alias_of == {} and sharing.in_place == set()


def test_a_relu_whose_input_has_a_view_read_later_gets_its_own_buffer() -> None:
    """c = Exp(x); v = Reshape(c) (same bytes); r = Relu(c); y = Reshape(r) + v. c's last direct read
    is the Relu, but its bytes are still read through v at step 4."""
    proto = make([h.make_node("Exp", ["x"], ["c"]), h.make_node("Reshape", ["c", "flat"], ["v"]),
                  h.make_node("Relu", ["c"], ["r"]), h.make_node("Reshape", ["r", "flat"], ["rv"]),
                  h.make_node("Add", ["rv", "v"], ["y"])],
                 [info("x", [2, 4])], [info("y", [8])], [ints("flat", [8])])
    sharing = _share(proto)
    assert _buffers(sharing) == [(32, 0, 4, ["c", "v"]), (32, 2, 4, ["r", "rv"]), (32, 4, 5, ["y"])]
    assert sharing.in_place == set()
    assert _names(sharing.alias_of) == {"v": "c", "rv": "r"}


def test_binary_ops_write_in_place_only_in_binary_mode_over_the_operand_that_dies() -> None:
    """a = Exp(x); b = Neg(x); s = Add(a, b); y = Mul(s, a): a is read again at step 3, so s takes
    b's bytes; y (a graph output) never shares."""
    proto = make([h.make_node("Exp", ["x"], ["a"]), h.make_node("Neg", ["x"], ["b"]),
                  h.make_node("Add", ["a", "b"], ["s"]), h.make_node("Mul", ["s", "a"], ["y"])],
                 [info("x", [4])], [info("y", [4])])
    unary = _share(proto, "unary")
    assert _buffers(unary) == [(16, 0, 3, ["a"]), (16, 1, 2, ["b"]), (16, 2, 3, ["s"]), (16, 3, 4, ["y"])]
    assert unary.in_place == set()
    binary = _share(proto, "binary")
    assert _buffers(binary) == [(16, 0, 3, ["a"]), (16, 1, 3, ["b", "s"]), (16, 3, 4, ["y"])]
    assert _names(binary.alias_of) == {"s": "b"} and {v.name for v in binary.in_place} == {"s"}


def test_a_binary_op_writes_only_over_an_operand_of_its_own_size() -> None:
    """s = Add(row[1,4], big[4,4]): both die there, but only big (64 B) has the output's size."""
    proto = make([h.make_node("Exp", ["r"], ["row"]), h.make_node("Exp", ["x"], ["big"]),
                  h.make_node("Add", ["row", "big"], ["s"]), h.make_node("ReduceSum", ["s"], ["y"])],
                 [info("r", [1, 4]), info("x", [4, 4])], [info("y", [1, 1])])
    sharing = _share(proto, "binary")
    assert _names(sharing.alias_of) == {"s": "big"}
    assert _buffers(sharing) == [(16, 0, 2, ["row"]), (64, 1, 3, ["big", "s"]), (4, 3, 4, ["y"])]


@pytest.mark.parametrize("op", ["Relu", "Reshape"])
def test_a_graph_output_never_shares_bytes(op: str) -> None:
    """e dies at the last node, which is in-place capable (Relu) or a view (Reshape): the graph output
    still gets its own buffer, with no alias."""
    inputs, inits = (["shape"], [ints("shape", [4])]) if op == "Reshape" else ([], [])
    proto = make([h.make_node("Exp", ["x"], ["e"]), h.make_node(op, ["e", *inputs], ["y"])],
                 [info("x", [4])], [info("y", [4])], inits)
    for mode in ("unary", "binary"):
        sharing = _share(proto, mode)
        assert _buffers(sharing) == [(16, 0, 1, ["e"]), (16, 1, 2, ["y"])]
        assert sharing.alias_of == {} and sharing.in_place == set()


def test_a_view_of_a_graph_input_that_is_a_graph_output_is_not_external() -> None:
    """y = Identity(x) is a graph output: its own buffer, no alias of x."""
    proto = make([h.make_node("Identity", ["x"], ["y"])], [info("x", [4])], [info("y", [4])])
    sharing = _share(proto)
    assert _buffers(sharing) == [(16, 0, 1, ["y"])]
    assert sharing.alias_of == {} and sharing.external == {}
