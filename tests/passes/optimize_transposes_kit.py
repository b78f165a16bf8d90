"""Helpers shared by the optimize-transposes tests: node builders, the graph as text (``structure_of``) and
the check every case runs (tests/passes is not a package: import as a module, like passes_kit)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from passes_kit import ort, randn, run_pass

from graphopt import Model, Value

PASS = "optimize-transposes"
NHWC, NCHW = [0, 2, 3, 1], [0, 3, 1, 2]  # NCHW -> NHWC and back
X = [1, 2, 3, 4]  # distinct dims: a wrong perm changes the shape, not only the values


def transpose(src: str, dst: str, perm: list[int]) -> onnx.NodeProto:
    """A Transpose node from ``src`` to ``dst`` by ``perm``."""
    return h.make_node("Transpose", [src], [dst], perm=perm)


def op_node(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> onnx.NodeProto:
    """A node of op type ``op`` (onnx.helper.make_node without a name)."""
    return h.make_node(op, inputs, outputs, **attrs)


def describe_value(value: Value | None, index: dict[int, int]) -> str:
    """How structure_of shows an input: ``-`` (absent), ``c[shape]``, ``%k`` (node k's output) or a name."""
    if value is None:
        return "-"
    if value.const is not None:
        return f"c{list(value.const.shape)}"
    if id(value) in index:
        return f"%{index[id(value)]}"
    return value.name or "?"


def structure_of(model: Model) -> list[str]:
    """Each node as ``Op{attr=..}(inputs)``: inputs are graph-input names, ``c[shape]`` for constants and
    ``%k`` for the output of the k-th node; attributes that carry axes are shown."""
    index = {id(o): k for k, n in enumerate(model.graph) for o in n.outputs}
    lines = []
    for node in model.graph:
        attrs = ",".join(f"{k}={node.attr(k)}" for k in ("perm", "axis", "axes", "keepdims")
                         if node.attr(k) is not None)
        args = ",".join(describe_value(v, index) for v in node.inputs)
        lines.append(f"{node.op_type}{{{attrs}}}({args})" if attrs else f"{node.op_type}({args})")
    return lines


def transposes(source: onnx.ModelProto | Model) -> int:
    """How many Transposes ``source`` has (in every graph of a Model, in the main graph of a proto)."""
    if isinstance(source, Model):
        return sum(n.op_type == "Transpose" for n in source.graph.all_nodes())
    return sum(n.op_type == "Transpose" for n in source.graph.node)


def seeded_feeds(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Seeded inputs for ``proto``'s graph inputs (static shapes): normal floats, booleans for BOOL."""
    feeds = {}
    for k, vi in enumerate(proto.graph.input):
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        data = randn(*shape, seed=10 + k)
        elem = vi.type.tensor_type.elem_type
        feeds[vi.name] = data > 0 if elem == T.BOOL else data.astype(h.tensor_dtype_to_np_dtype(elem))
    return feeds


def assert_close(before: dict[str, Any], after: dict[str, Any], rtol: float) -> None:
    """Same output names, dtypes and shapes; values bit-exact, or within ``rtol`` (atol 1e-6) when given."""
    assert list(after) == list(before)
    for name, expected in before.items():
        assert after[name].dtype == expected.dtype and after[name].shape == expected.shape, name
        if rtol:
            np.testing.assert_allclose(after[name], expected, rtol=rtol, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(after[name], expected, err_msg=name)


def check(proto: onnx.ModelProto, rtol: float = 0.0) -> tuple[list[str], dict[str, int], Model]:
    """Run the pass; the outputs agree with onnxruntime's on the original (bit-exact unless ``rtol``),
    the Transpose count did not grow, and a second run changes nothing."""
    feeds = seeded_feeds(proto)
    model, result = run_pass(proto, PASS)
    assert_close(ort(proto, feeds), ort(model, feeds), rtol)
    assert transposes(model) <= transposes(proto)
    _, again = run_pass(model, PASS)
    assert not again.changed, again.stats
    assert result.changed == bool(result.stats)
    return structure_of(model), result.stats, model


def const_at(model: Model, node_index: int, input_index: int) -> np.ndarray:
    """The constant at input ``input_index`` of the main graph's node ``node_index``."""
    value = list(model.graph)[node_index].inputs[input_index]
    assert value is not None and value.const is not None
    return value.const.numpy()
