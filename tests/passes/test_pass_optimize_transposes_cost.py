"""optimize-transposes: the cost model, dedup, size-1 moves, a wrapped ResNet-like model, the property
and the Slice/Pad/ArgMax/Gather handlers (composition and pushes: test_pass_optimize_transposes.py, shared
helpers: optimize_transposes_kit.py)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st
from onnx import TensorProto as T
from optimize_transposes_kit import (
    NCHW,
    NHWC,
    PASS,
    X,
    assert_close,
    check,
    const_at,
    op_node,
    transpose,
    transposes,
)
from passes_kit import array, info, ints, make, ort, randn, run_pass

import graphopt
from graphopt.testing.layout import wrap_layout_sensitive

# ---- the cost model ----

def test_a_push_that_only_moves_a_transpose_to_a_graph_output_is_not_made() -> None:
    """Transpose -> Relu -> output: removing one and adding one gains nothing."""
    proto = make([transpose("x", "t", NHWC), op_node("Relu", ["t"], ["y"])], [info("x", X)],
                 [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 2, 3, 1]}(x)", "Relu(%0)"]
    assert stats == {}


def test_a_push_is_made_when_the_moved_transpose_cancels_further_down() -> None:
    """Relu and Sigmoid each gain nothing alone; the lookahead sees the inverse Transpose after them."""
    proto = make([transpose("x", "t", NHWC), op_node("Relu", ["t"], ["a"]), op_node("Sigmoid", ["a"], ["b"]),
                  transpose("b", "y", NCHW)], [info("x", X)], [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Relu(x)", "Sigmoid(%0)"]
    assert stats == {"cancelled": 1, "pushed_through_Relu": 1, "pushed_through_Sigmoid": 1}


def test_a_transpose_before_a_conv_is_not_moved() -> None:
    """The Conv needs NCHW: moving the Transpose past the Relu would gain nothing."""
    proto = make([transpose("x", "t", NCHW), op_node("Relu", ["t"], ["r"]),
                  op_node("Conv", ["r", "w"], ["y"])],
                 [info("x", [1, 3, 4, 2])], [info("y", None)], [array("w", randn(3, 2, 1, 1, seed=1))])
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 3, 1, 2]}(x)", "Relu(%0)", "Conv(%1,c[3, 2, 1, 1])"]
    assert stats == {}


def test_a_qdq_chain_input_transpose_stays_out_of_the_qdq_body() -> None:
    """T -> Q -> DQ -> Conv: the Transpose would end up between DQ and Conv, gaining nothing."""
    proto = make([transpose("x", "t", NCHW), op_node("QuantizeLinear", ["t", "s", "zp"], ["q"]),
                  op_node("DequantizeLinear", ["q", "s", "zp"], ["d"]), op_node("Conv", ["d", "w"], ["y"])],
                 [info("x", [1, 3, 4, 2])], [info("y", None)],
                 [array("s", np.float32(0.05)), array("zp", np.uint8(128)), array("w", randn(3, 2, 1, 1))])
    structure, stats, _ = check(proto)
    assert structure == ["Transpose{perm=[0, 3, 1, 2]}(x)", "QuantizeLinear(%0,c[],c[])",
                         "DequantizeLinear(%1,c[],c[])", "Conv(%2,c[3, 2, 1, 1])"]
    assert stats == {}


def test_a_transpose_shared_by_two_readers_is_not_copied_into_both() -> None:
    """Pushing into one reader would keep the Transpose for the other and add one: not made."""
    proto = make([transpose("x", "t", NHWC), op_node("Relu", ["t"], ["y"]), op_node("Neg", ["t"], ["z"])],
                 [info("x", X)], [info("y", None), info("z", None)])
    _, stats, model = check(proto)
    assert stats == {} and transposes(model) == 1


def _shared_constant_model(elements: int) -> onnx.ModelProto:
    """x [1, C, 2, 4] -> T(NHWC) -> Add(c[C]) -> T(NCHW) -> y, and c also read by z + c."""
    channels = elements
    c = randn(channels, seed=7)
    return make([transpose("x", "t", NHWC), op_node("Add", ["t", "c"], ["r"]), transpose("r", "y", NCHW),
                 op_node("Mul", ["z", "c"], ["w"])],
                [info("x", [1, channels, 2, 4]), info("z", [channels])], [info("y", None), info("w", None)],
                [array("c", c)])


def test_a_small_shared_constant_is_copied_permuted() -> None:
    """c[8] (32 bytes) is read by another node: a permuted copy is made, the original stays for it."""
    structure, stats, model = check(_shared_constant_model(8))
    assert structure == ["Add(x,c[1, 8, 1, 1])", "Mul(z,c[8])"]
    assert stats == {"cancelled": 1, "pushed_through_Add": 1}
    assert sorted(v.const.shape for v in model.graph.consts) == [(1, 8, 1, 1), (8,)]


def test_a_large_shared_constant_blocks_the_push() -> None:
    """c[512] (2 KB, over the 1 KB limit) shared with another reader: no permuted copy, no push."""
    structure, stats, _ = check(_shared_constant_model(512))
    assert structure == ["Transpose{perm=[0, 2, 3, 1]}(x)", "Add(%0,c[512])",
                         "Transpose{perm=[0, 3, 1, 2]}(%1)", "Mul(z,c[512])"]
    assert stats == {}


def test_a_large_constant_with_one_reader_is_permuted() -> None:
    proto = make([transpose("x", "t", NHWC), op_node("Add", ["t", "c"], ["r"]), transpose("r", "y", NCHW)],
                 [info("x", [1, 512, 2, 4])], [info("y", None)], [array("c", randn(512, seed=7))])
    structure, stats, _ = check(proto)
    assert structure == ["Add(x,c[1, 512, 1, 1])"]
    assert stats == {"cancelled": 1, "pushed_through_Add": 1}


# ---- deduplication ----

def test_transposes_of_one_value_by_one_perm_become_one() -> None:
    proto = make([op_node("Relu", ["x"], ["a"]), transpose("a", "t1", NHWC), transpose("a", "t2", NHWC),
                  transpose("a", "t3", [0, 1, 3, 2]),
                  op_node("Sigmoid", ["t1"], ["y"]), op_node("Tanh", ["t2"], ["z"]),
                  op_node("Neg", ["t3"], ["w"])],
                 [info("x", X)], [info("y", None), info("z", None), info("w", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Relu(x)", "Transpose{perm=[0, 2, 3, 1]}(%0)", "Transpose{perm=[0, 1, 3, 2]}(%0)",
                         "Sigmoid(%1)", "Tanh(%1)", "Neg(%2)"]
    assert stats == {"deduplicated": 1}


def test_duplicate_transposes_that_are_both_graph_outputs_stay() -> None:
    """Two outputs need two names: both Transposes stay."""
    proto = make([op_node("Relu", ["x"], ["a"]), transpose("a", "y", NHWC), transpose("a", "z", NHWC)],
                 [info("x", X)], [info("y", None), info("z", None)])
    _, stats, model = check(proto)
    assert stats == {} and transposes(model) == 2


# ---- Transposes that only move size-1 dims ----

def test_size_one_move_before_flatten_is_dropped() -> None:
    """[N, C, 1, 1] -> [N, 1, 1, C] keeps the element order: Flatten reads the NCHW tensor directly."""
    proto = make([transpose("x", "t", NHWC), op_node("Flatten", ["t"], ["y"])], [info("x", [2, 5, 1, 1])],
                 [info("y", None)])
    structure, stats, _ = check(proto)
    assert structure == ["Flatten(x)"] and stats == {"dropped_before_reshape": 1}


def test_size_one_move_before_a_reshape_to_a_constant_target_is_dropped() -> None:
    proto = make([transpose("x", "t", NHWC), op_node("Reshape", ["t", "s"], ["y"])],
                 [info("x", [2, 5, 1, 1])], [info("y", None)], [ints("s", [2, -1])])
    structure, stats, _ = check(proto)
    assert structure == ["Reshape(x,c[2])"] and stats == {"dropped_before_reshape": 1}


def test_size_one_move_before_flatten_and_reshape_readers_is_dropped_for_both() -> None:
    proto = make([transpose("x", "t", NHWC), op_node("Flatten", ["t"], ["y"]),
                  op_node("Reshape", ["t", "s"], ["z"])],
                 [info("x", [2, 5, 1, 1])], [info("y", None), info("z", None)], [ints("s", [10])])
    structure, stats, _ = check(proto)
    assert structure == ["Flatten(x)", "Reshape(x,c[1])"] and stats == {"dropped_before_reshape": 1}


@pytest.mark.parametrize("case", ["reshape-zero", "other-reader", "flatten-axis", "moves-data",
                                  "runtime-shape", "graph-output"])
def test_size_one_move_is_kept_when_a_reader_sees_more_than_the_element_order(case: str) -> None:
    """Refusals: a 0 in the Reshape target copies a dim of the (transposed) input; a Relu sees the
    layout; Flatten(axis=2) of [2, 1, 1, 5] is [2, 5] vs [10, 1]; a move of a non-1 dim; a shape known
    only at run time; a graph output."""
    shape, inits, extra_inputs = [2, 5, 1, 1], [], []
    outputs = [info("y", None)]
    if case == "reshape-zero":
        nodes = [op_node("Reshape", ["t", "s"], ["y"])]
        inits = [ints("s", [0, -1])]
    elif case == "other-reader":
        nodes = [op_node("Flatten", ["t"], ["y"]), op_node("Relu", ["t"], ["z"])]
        outputs.append(info("z", None))
    elif case == "flatten-axis":
        nodes = [op_node("Flatten", ["t"], ["y"], axis=2)]
    elif case == "moves-data":
        shape = [2, 5, 3, 1]
        nodes = [op_node("Flatten", ["t"], ["y"])]
    elif case == "runtime-shape":
        nodes = [op_node("Reshape", ["t", "s"], ["y"])]
        extra_inputs = [info("s", [2], T.INT64)]
    else:
        nodes = [op_node("Flatten", ["t"], ["y"])]
        outputs.append(info("t", None))
    proto = make([transpose("x", "t", NHWC), *nodes], [info("x", shape), *extra_inputs], outputs, inits)
    if case == "runtime-shape":
        model, result = run_pass(proto, PASS)
        feeds = {"x": randn(*shape), "s": np.array([2, -1], np.int64)}
        assert_close(ort(proto, feeds), ort(model, feeds), 0.0)
        stats = result.stats
    else:
        _, stats, model = check(proto)
    assert stats == {} and transposes(model) == 1


# ---- an NHWC-canonical ResNet-like model ----

def _resnet() -> onnx.ModelProto:
    """Conv-Relu-MaxPool, a residual block (Conv-Relu-Conv + Add), Relu, GlobalAveragePool, Flatten, Gemm."""
    nodes = [op_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]), op_node("Relu", ["c1"], ["r1"]),
             op_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             op_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1]), op_node("Relu", ["c2"], ["r2"]),
             op_node("Conv", ["r2", "w3"], ["c3"], pads=[1, 1, 1, 1]), op_node("Add", ["c3", "p1"], ["s"]),
             op_node("Relu", ["s"], ["r3"]), op_node("GlobalAveragePool", ["r3"], ["g"]),
             op_node("Flatten", ["g"], ["f"]), op_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1)]
    inits = [array("w1", randn(8, 3, 3, 3, seed=1) * 0.3), array("b1", randn(8, seed=2)),
             array("w2", randn(8, 8, 3, 3, seed=3) * 0.2), array("w3", randn(8, 8, 3, 3, seed=4) * 0.2),
             array("fw", randn(10, 8, seed=5)), array("fb", randn(10, seed=6))]
    return make(nodes, [info("x", [1, 3, 8, 8])], [info("y", [1, 10])], inits)


RESNET_OPS = ["Conv", "Relu", "MaxPool", "Conv", "Relu", "Conv", "Add", "Relu", "GlobalAveragePool",
              "Flatten", "Gemm"]


def test_wrapped_resnet_ends_with_no_transpose() -> None:
    """11 Transposes (one per boundary) -> 0: five pairs cancel after pushes through the Relus and the
    residual Add, and the one left before Flatten only moves the pool's size-1 dims."""
    wrapped = wrap_layout_sensitive(_resnet())
    assert transposes(wrapped) == 11
    feeds = {"x": randn(1, 3, 8, 8, seed=9)}
    model, result = run_pass(wrapped, PASS)
    assert [n.op_type for n in model.graph] == RESNET_OPS
    assert result.stats == {"cancelled": 5, "dropped_before_reshape": 1, "pushed_through_Add": 1,
                            "pushed_through_Relu": 3}
    assert_close(ort(_resnet(), feeds), ort(model, feeds), 1e-5)
    assert not run_pass(model, PASS)[1].changed


def test_wrapped_resnet_ends_with_no_transpose_after_the_default_pipeline() -> None:
    """The same through graphopt.optimize (per-pass checks on, nothing rolled back)."""
    result = graphopt.optimize(wrap_layout_sensitive(_resnet()), check="each")
    assert [n.op_type for n in result.model.graph] == RESNET_OPS
    assert result.report.rolled_back == []
    feeds = {"x": randn(1, 3, 8, 8, seed=9)}
    assert_close(ort(_resnet(), feeds), ort(result.model, feeds), 1e-5)


# ---- property: random chains of agnostic ops ----

UNARY_OPS = ["Relu", "Neg", "Sigmoid", "Abs"]
BINARY_OPS = ["Add", "Mul", "Sub"]


@st.composite
def _chains(draw: st.DrawFn) -> onnx.ModelProto:
    """x -> a random chain of Transposes and agnostic ops (constants of random broadcast shapes, a
    second transposed input, earlier values of the same shape) -> y, sometimes with an extra output."""
    rank = draw(st.integers(3, 4))
    shape = list(draw(st.permutations([2, 3, 4, 5])))[:rank]
    if draw(st.booleans()):
        shape[draw(st.integers(0, rank - 1))] = 1
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    values: list[tuple[str, list[int]]] = [("x", shape)]
    inputs = [info("x", shape), info("z", shape)]
    current, cur = "x", list(shape)
    count = 0

    def fresh() -> str:
        nonlocal count
        count += 1
        return f"v{count}"

    for _ in range(draw(st.integers(2, 9))):
        kind = draw(st.sampled_from(["transpose", "transpose", "transpose", "unary", "const", "input",
                                     "same", "softmax", "reduce", "concat", "where", "qdq"]))
        out = fresh()
        r = len(cur)
        if kind == "transpose":
            perm = list(draw(st.permutations(range(r))))
            nodes.append(transpose(current, out, perm))
            cur = [cur[p] for p in perm]
        elif kind == "unary":
            nodes.append(op_node(draw(st.sampled_from(UNARY_OPS)), [current], [out]))
        elif kind in ("const", "where"):
            k = draw(st.integers(0, r))
            cshape = [d if draw(st.booleans()) else 1 for d in cur[r - k:]]
            name = f"c{count}"
            data = randn(*cshape, seed=count) if cshape else np.float32(0.5)
            if kind == "where":
                inits.append(array(name, np.asarray(data) > 0))
                nodes.append(op_node("Where", [name, current, f"{name}b"], [out]))
                inits.append(array(f"{name}b", np.float32(-1.0)))
            else:
                args = [current, name] if draw(st.booleans()) else [name, current]
                inits.append(array(name, data))
                nodes.append(op_node(draw(st.sampled_from(BINARY_OPS)), args, [out]))
        elif kind == "input" and sorted(cur) == sorted(shape) and len(cur) == len(shape):
            perm = [shape.index(d) for d in cur] if len(set(shape)) == len(shape) else None
            if perm is None:
                nodes.append(op_node("Relu", [current], [out]))
            else:
                nodes.append(transpose("z", f"{out}z", perm))
                nodes.append(op_node(draw(st.sampled_from(BINARY_OPS)), [current, f"{out}z"], [out]))
        elif kind == "same":
            same = [name for name, s in values if s == cur]
            other = draw(st.sampled_from(same))
            nodes.append(op_node(draw(st.sampled_from(BINARY_OPS)), [current, other], [out]))
        elif kind == "softmax":
            nodes.append(op_node("Softmax", [current], [out], axis=draw(st.integers(-r, r - 1))))
        elif kind == "reduce":
            axes = sorted(draw(st.sets(st.integers(0, r - 1), min_size=1, max_size=r - 1)))
            keep = 1 if r <= 2 or len(axes) > r - 2 else draw(st.integers(0, 1))
            op = draw(st.sampled_from(["ReduceMean", "ReduceSum"]))
            if op == "ReduceSum":  # opset 13: axes as an input
                inits.append(ints(f"axes{count}", axes))
                nodes.append(op_node(op, [current, f"axes{count}"], [out], keepdims=keep))
            else:
                nodes.append(op_node(op, [current], [out], axes=axes, keepdims=keep))
            cur = [1 if i in axes else d for i, d in enumerate(cur)] if keep else \
                [d for i, d in enumerate(cur) if i not in axes]
        elif kind == "concat":
            axis = draw(st.integers(0, r - 1))
            nodes.append(op_node("Concat", [current, current], [out], axis=axis))
            cur = [2 * d if i == axis else d for i, d in enumerate(cur)]
        elif kind == "qdq":
            axis = draw(st.integers(0, r - 1))
            per_axis = draw(st.booleans())
            scale = np.linspace(0.02, 0.05, cur[axis]).astype(np.float32) if per_axis else np.float32(0.03)
            zero = np.full(scale.shape, 128, np.uint8)
            inits += [array(f"s{count}", scale), array(f"zp{count}", zero)]
            attrs = {"axis": axis} if per_axis else {}
            nodes.append(op_node("QuantizeLinear", [current, f"s{count}", f"zp{count}"], [f"{out}q"],
                                 **attrs))
            nodes.append(op_node("DequantizeLinear", [f"{out}q", f"s{count}", f"zp{count}"], [out], **attrs))
        else:
            nodes.append(op_node("Relu", [current], [out]))
        current = out
        values.append((out, list(cur)))
    outputs = [info(current, None)]
    if len(values) > 2 and draw(st.booleans()):
        extra = draw(st.sampled_from([name for name, _ in values[1:-1]]))
        outputs.append(info(extra, None))
    return make(nodes, inputs, outputs, inits, opset=13)


@settings(max_examples=50, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_chains())
def test_property_random_chains_keep_their_values_and_never_gain_transposes(proto: onnx.ModelProto) -> None:
    feeds = {"x": randn(*[d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim], seed=1),
             "z": randn(*[d.dim_value for d in proto.graph.input[1].type.tensor_type.shape.dim], seed=2)}
    model, _ = run_pass(proto, PASS)
    assert transposes(model) <= transposes(proto)
    before, after = ort(proto, feeds), ort(model, feeds)
    assert list(after) == list(before)
    for name, expected in before.items():
        assert after[name].shape == expected.shape, name
        np.testing.assert_allclose(after[name], expected, rtol=1e-5, atol=1e-5, err_msg=name)


def test_the_chain_strategy_reaches_pushes_and_cancellations() -> None:
    """Guard against a vacuous property: the strategy makes chains where the pass pushes and cancels."""
    def interesting(proto: onnx.ModelProto) -> bool:
        stats = run_pass(proto, PASS)[1].stats
        return "cancelled" in stats and any(k.startswith("pushed_through_") for k in stats)

    found = find(_chains(), interesting, settings=settings(max_examples=200, derandomize=True, database=None,
                                                          deadline=None))
    assert transposes(found) >= 2


# ---- Slice / Pad / ArgMax / Split ----

def test_push_through_slice_remaps_its_constant_axes_then_cancels() -> None:
    """Slice on NHWC axis 3 (channels) is Slice on NCHW axis 1."""
    proto = make([transpose("x", "t", NHWC), op_node("Slice", ["t", "s", "e", "a"], ["u"]),
                  transpose("u", "y", NCHW)],
                 [info("x", X)], [info("y", None)],
                 [ints("s", [1]), ints("e", [2]), ints("a", [3])])
    ops, stats, model = check(proto)
    assert ops == ["Slice(x,c[1],c[1],c[1])"]
    assert stats == {"cancelled": 1, "pushed_through_Slice": 1}
    assert const_at(model, 0, 3).tolist() == [1]


def test_slice_without_axes_is_not_pushed() -> None:
    """Default axes would need a new input: the Transposes stay."""
    proto = make([transpose("x", "t", NHWC), op_node("Slice", ["t", "s", "e"], ["u"]),
                  transpose("u", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [ints("s", [0]), ints("e", [1])])
    _, stats, model = check(proto)
    assert stats == {} and transposes(model) == 2


def test_push_through_pad_permutes_its_pads() -> None:
    """NHWC pads [0,1,2,3 | 0,2,1,0] are NCHW pads [0,3,1,2 | 0,0,2,1]."""
    proto = make([transpose("x", "t", NHWC), op_node("Pad", ["t", "p"], ["u"]), transpose("u", "y", NCHW)],
                 [info("x", X)], [info("y", None)], [ints("p", [0, 1, 2, 3, 0, 2, 1, 0])])
    ops, stats, model = check(proto)
    assert ops == ["Pad(x,c[8])"]
    assert stats == {"cancelled": 1, "pushed_through_Pad": 1}
    assert const_at(model, 0, 1).tolist() == [0, 3, 1, 2, 0, 0, 2, 1]


def test_push_through_argmax_without_keepdims_drops_the_axis_from_the_perm() -> None:
    """ArgMax(T(x), axis=3, keepdims=0) is ArgMax(x, axis=1) then the perm of the remaining axes."""
    proto = make([transpose("x", "t", NHWC), op_node("ArgMax", ["t"], ["u"], axis=3, keepdims=0),
                  op_node("Cast", ["u"], ["c"], to=T.FLOAT), transpose("c", "y", [0, 2, 1])],
                 [info("x", X)], [info("y", None)])
    ops, stats, _ = check(proto)  # the pushed perm is the identity on (N, H, W): it merges away
    assert ops == ["ArgMax{axis=1,keepdims=0}(x)", "Cast(%0)", "Transpose{perm=[0, 2, 1]}(%1)"]
    assert stats == {"merged": 1, "pushed_through_ArgMax": 1, "pushed_through_Cast": 1}


@pytest.mark.parametrize("index_rank", [0, 1])
def test_push_through_gather_remaps_its_axis(index_rank: int) -> None:
    """Gather on NHWC axis 3 is Gather on NCHW axis 1; a scalar index also drops that axis from the
    perm of the result, which is then the identity on (N, H, W) and merges into the last Transpose."""
    indices = ints("i", 1 if index_rank == 0 else [1, 0])
    proto = make([transpose("x", "t", NHWC), op_node("Gather", ["t", "i"], ["u"], axis=3),
                  transpose("u", "y", [0, 3, 1, 2] if index_rank == 1 else [0, 2, 1])],
                 [info("x", X)], [info("y", None)], [indices])
    ops, stats, _ = check(proto)
    if index_rank == 1:
        assert ops == ["Gather{axis=1}(x,c[2])"]
        assert stats == {"cancelled": 1, "pushed_through_Gather": 1}
    else:
        assert ops == ["Gather{axis=1}(x,c[])", "Transpose{perm=[0, 2, 1]}(%0)"]
        assert stats == {"merged": 1, "pushed_through_Gather": 1}


@pytest.mark.parametrize("perm", [NHWC, NCHW], ids=["to-nhwc", "to-nchw"])
@pytest.mark.parametrize("op", ["Concat", "ReduceMean", "Softmax", "Slice", "Gather"])
def test_axis_ops_push_in_both_layout_directions(op: str, perm: list[int]) -> None:
    """The same axis-carrying op between a Transpose and its inverse, for the perm to channels-last
    and the one back: the axis is remapped through the perm and the pair cancels."""
    shape = [2, 3, 4, 5]
    inverse = [perm.index(i) for i in range(4)]
    inits: list[onnx.TensorProto] = []
    if op == "Concat":
        node = op_node("Concat", ["t", "c"], ["u"], axis=2)
        inits = [array("c", randn(*[[shape[p] for p in perm][i] if i != 2 else 1 for i in range(4)], seed=3))]
    elif op == "ReduceMean":
        node = op_node("ReduceMean", ["t"], ["u"], axes=[2], keepdims=1)
    elif op == "Softmax":
        node = op_node("Softmax", ["t"], ["u"], axis=2)
    elif op == "Slice":
        node = op_node("Slice", ["t", "s", "e", "a"], ["u"])
        inits = [ints("s", [1]), ints("e", [3]), ints("a", [2])]
    else:
        node = op_node("Gather", ["t", "i"], ["u"], axis=2)
        inits = [ints("i", [1, 0])]
    proto = make([transpose("x", "t", perm), node, transpose("u", "y", inverse)], [info("x", shape)],
                 [info("y", None)], inits)
    ops, stats, model = check(proto, rtol=1e-6)
    assert [o.split("{")[0].split("(")[0] for o in ops] == [op]
    assert stats == {"cancelled": 1, f"pushed_through_{op}": 1}
    remapped = list(model.graph)[0]
    axis = remapped.attr("axes")[0] if op == "ReduceMean" else \
        int(const_at(model, 0, 3)[0]) if op == "Slice" else remapped.attr("axis")
    assert axis == perm[2]
