"""SymbolicShapes: run-time dims followed back to where they were first read, and the algebra on them.

The rules pinned here are the ones fold-constants relies on to drop a Reshape or an Expand that gives
its input's dims back: each states what holds in every run that succeeds.
"""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from graphopt import Model, Value, import_model
from graphopt.analyses.dim_algebra import SymbolicDim, broadcast, divide, multiply, root
from graphopt.analyses.shapes import refresh_types
from graphopt.analyses.symbolic_shapes import SymbolicShapes


def _analysed(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
              inits: list[onnx.TensorProto] = ()) -> tuple[Model, SymbolicShapes, dict[str, Value]]:
    outputs = [onnx.ValueInfoProto(name=nodes[-1].output[0])]
    graph = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = import_model(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]))
    refresh_types(model)
    values = {v.name: v for n in model.graph for v in (*n.inputs, *n.outputs) if v is not None}
    return model, SymbolicShapes(model.opset), values


def _ints(name: str, values: list[int]) -> onnx.TensorProto:
    return h.make_tensor(name, T.INT64, [len(values)], values)


def test_product_and_exact_quotient_are_canonical() -> None:
    """6*s / 3 is 2*s; s*t / t is s; s / 2 and s / t are not exact for every s, so unknown."""
    s, t = root(Value(name="x"), 0), root(Value(name="x"), 1)
    assert multiply(s, t) == multiply(t, s)
    assert divide(multiply(6, s), 3) == SymbolicDim(2, s.factors)
    assert divide(multiply(s, t), t) == s
    assert divide(s, 2) is None and divide(s, t) is None and divide(6, 4) is None
    assert multiply(s, 0) == 0 and multiply(2, 3) == 6


@pytest.mark.parametrize("dims,expected", [
    (("s", 1), "s"), ((1, 1), 1), (("s", 5), 5), (("s", "s"), "s"), (("s", "t"), None), ((5, None), 5),
    (("s", None), None),
], ids=str)
def test_broadcast_decides_only_what_every_successful_run_agrees_on(dims: tuple, expected: object) -> None:
    """A known 1 never decides, a size above 1 does, two different run-time dims may each be 1."""
    x = Value(name="x")
    named = {"s": root(x, 0), "t": root(x, 1)}
    assert broadcast([named.get(d, d) for d in dims]) == named.get(expected, expected)  # type: ignore[arg-type]


def test_attention_heads_keep_the_sequence_dim_of_the_input() -> None:
    """x[B, S, 64] -> Reshape(Concat(B, -1, 4, 16)) -> Transpose(0,2,1,3) -> MatMul with its own
    transpose: the -1 resolves to S (B*S*64 / (B*4*16)), so the scores are [B, 4, S, S] in x's dims."""
    nodes = [
        h.make_node("Shape", ["x"], ["shape"]),
        h.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
        h.make_node("Unsqueeze", ["b", "zero1"], ["b1"]),
        h.make_node("Concat", ["b1", "rest"], ["target"], axis=0),
        h.make_node("Reshape", ["x", "target"], ["heads"]),
        h.make_node("Transpose", ["heads"], ["q"], perm=[0, 2, 1, 3]),
        h.make_node("Transpose", ["heads"], ["k"], perm=[0, 2, 3, 1]),
        h.make_node("MatMul", ["q", "k"], ["scores"]),
    ]
    inits = [h.make_tensor("zero", T.INT64, [], [0]), _ints("zero1", [0]), _ints("rest", [-1, 4, 16])]
    _, ss, v = _analysed(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["B", "S", 64])], inits)
    batch, seq, _ = ss.dims(v["x"])
    assert ss.vector(v["target"]) == (batch, -1, 4, 16)
    assert ss.dims(v["heads"]) == (batch, seq, 4, 16)
    assert ss.dims(v["scores"]) == (batch, 4, seq, seq)


def test_same_dim_name_on_two_inputs_is_one_dim_but_placeholders_are_not() -> None:
    """The ONNX IR makes dims named alike equal; "?" (Paddle's name for every unknown) and "unk__3"
    are placeholders, not names."""
    nodes = [h.make_node("Add", ["a", "b"], ["y"])]
    inputs = [h.make_tensor_value_info("a", T.FLOAT, ["batch", "?", "unk__3"]),
              h.make_tensor_value_info("b", T.FLOAT, ["batch", "?", "unk__3"])]
    _, ss, v = _analysed(nodes, inputs)
    a, b = ss.dims(v["a"]), ss.dims(v["b"])
    assert a[0] == b[0]
    assert a[1] != b[1] and a[2] != b[2]
    assert ss.dims(v["y"])[0] == a[0]
    assert ss.dims(v["y"])[1] not in (a[1], b[1])  # either may be 1 at run time: a root of its own


def test_expand_shape_with_minus_one_resolved_by_equal_and_where() -> None:
    """PyTorch's expand(-1, ...) exports Where(Equal(shape, -1), 1, shape): a run-time dim is never -1,
    so the vector is known element by element."""
    nodes = [
        h.make_node("Shape", ["x"], ["shape"]),
        h.make_node("Gather", ["shape", "zero"], ["b"], axis=0),
        h.make_node("Unsqueeze", ["b", "zero1"], ["b1"]),
        h.make_node("Concat", ["b1", "minus1", "eight"], ["wanted"], axis=0),
        h.make_node("Equal", ["wanted", "minus1x3"], ["is_keep"]),
        h.make_node("Where", ["is_keep", "ones", "wanted"], ["target"]),
        h.make_node("Expand", ["x", "target"], ["y"]),
    ]
    inits = [h.make_tensor("zero", T.INT64, [], [0]), _ints("zero1", [0]), _ints("minus1", [-1]),
             _ints("eight", [8]), _ints("minus1x3", [-1, -1, -1]), _ints("ones", [1, 1, 1])]
    _, ss, v = _analysed(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["B", 1, 8])], inits)
    batch = ss.dims(v["x"])[0]
    assert ss.vector(v["is_keep"]) == (0, 1, 0)
    assert ss.vector(v["target"]) == (batch, 1, 8)
    assert ss.dims(v["y"]) == (batch, 1, 8)


def test_a_reshape_minus_one_that_does_not_divide_gets_its_own_root() -> None:
    """x[B, S] reshaped to (-1, 3): B*S/3 is no product of dims, so the analysis says nothing."""
    nodes = [h.make_node("Reshape", ["x", "target"], ["y"])]
    x = h.make_tensor_value_info("x", T.FLOAT, ["B", "S"])
    _, ss, v = _analysed(nodes, [x], [_ints("target", [-1, 3])])
    first, last = ss.dims(v["y"])
    assert last == 3 and first == root(v["y"], 0)


def test_statistics_outputs_do_not_take_the_input_dims() -> None:
    """LayerNormalization's Mean output is reduced: only its first output keeps x's dims."""
    nodes = [h.make_node("LayerNormalization", ["x", "g", "bias"], ["y", "mean"], axis=-1)]
    inits = [h.make_tensor("g", T.FLOAT, [4], [1.0] * 4), h.make_tensor("bias", T.FLOAT, [4], [0.0] * 4)]
    _, ss, v = _analysed(nodes, [h.make_tensor_value_info("x", T.FLOAT, ["B", "S", 4])], inits)
    x = ss.dims(v["x"])
    assert ss.dims(v["y"]) == x
    assert ss.dims(v["mean"]) != x


@pytest.mark.parametrize("op,domain", [("LSTM", ""), ("DynamicQuantizeLSTM", "com.microsoft")])
def test_recurrent_outputs_keep_the_sequence_and_batch_of_their_input(op: str, domain: str) -> None:
    """Y is [seq, directions, batch, hidden]: the same for onnxruntime's DynamicQuantizeLSTM, whose
    outputs onnx's inference cannot type (a custom op), so its Shape reads become known."""
    lstm = h.make_node(op, ["x", "w", "r"], ["y", "yh"], domain=domain, hidden_size=3,
                       direction="bidirectional")
    nodes = [lstm, h.make_node("Shape", ["y"], ["s"])]
    inits = [h.make_tensor("w", T.FLOAT, [2, 12, 4], [0.0] * 96),
             h.make_tensor("r", T.FLOAT, [2, 12, 3], [0.0] * 72)]
    outputs = [onnx.ValueInfoProto(name="s")]
    graph = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, ["S", "B", 4])], outputs, inits)
    opsets = [h.make_opsetid("", 17)] + ([h.make_opsetid(domain, 1)] if domain else [])
    model = import_model(h.make_model(graph, opset_imports=opsets))
    refresh_types(model)
    ss = SymbolicShapes(model.opset)
    values = {v.name: v for n in model.graph for v in (*n.inputs, *n.outputs) if v is not None}
    seq, batch, _ = ss.dims(values["x"])
    assert ss.dims(values["y"]) == (seq, 2, batch, 3)
    assert ss.dims(values["yh"]) == (2, batch, 3)
    assert ss.vector(values["s"]) == (seq, 2, batch, 3)
