"""Builders and runners shared by the pass tests (tests/passes is not a package: import as a module).

Models are built with onnx.helper so that each test shows the exact graph it pins; outputs are compared
with onnxruntime (graph optimisations off) on explicit, seeded inputs.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from graphopt import Model, Node, PassResult, import_model, verify
from graphopt.numerics.run import run_model, run_proto
from graphopt.pass_infra.registry import DEFAULT_REGISTRY

FLOAT, INT64, BOOL = T.FLOAT, T.INT64, T.BOOL


def info(name: str, shape: Sequence[int | str] | None, elem: int = T.FLOAT) -> onnx.ValueInfoProto:
    """A typed ValueInfoProto (shape None means unknown rank)."""
    return h.make_tensor_value_info(name, elem, shape)


def untyped(name: str) -> onnx.ValueInfoProto:
    """A ValueInfoProto that declares nothing about its type."""
    return onnx.ValueInfoProto(name=name)


def ints(name: str, values: Any, dtype: Any = np.int64) -> onnx.TensorProto:
    """An integer initializer."""
    return nh.from_array(np.array(values, dtype=dtype), name)


def array(name: str, values: Any) -> onnx.TensorProto:
    """An initializer from a numpy array (dtype kept)."""
    return nh.from_array(np.asarray(values), name)


def make(nodes: Sequence[onnx.NodeProto], inputs: Sequence[onnx.ValueInfoProto],
         outputs: Sequence[onnx.ValueInfoProto], inits: Sequence[onnx.TensorProto] = (), *,
         opset: int = 17, value_info: Sequence[onnx.ValueInfoProto] = (),
         extra_opsets: dict[str, int] | None = None) -> onnx.ModelProto:
    """A model of one graph named 'g' at ``opset`` (ir_version 8, accepted by onnxruntime)."""
    graph = h.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits),
                         value_info=list(value_info))
    opsets = [h.make_opsetid("", opset)] + [h.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()]
    model = h.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def run_pass(source: onnx.ModelProto | Model, name: str, **options: Any) -> tuple[Model, PassResult]:
    """Import (when given a proto), run pass ``name`` with ``options``, verify the IR, return both."""
    model = import_model(source) if isinstance(source, onnx.ModelProto) else source
    pass_ = DEFAULT_REGISTRY.create(name, {k: str(v) for k, v in options.items()})
    result = pass_.run(model)
    verify(model)
    return model, result


def op_types(model: Model) -> list[str]:
    """Op types of the main graph, in order."""
    return [n.op_type for n in model.graph]


def only_node(model: Model, op: str | None = None) -> Node:
    """The main graph's one node (its one node of op type ``op`` when given); fails unless exactly one."""
    (node,) = [n for n in model.graph if op is None or n.op_type == op]
    return node


def ort(source: onnx.ModelProto | Model, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Outputs by name from onnxruntime (graph optimisations off)."""
    if isinstance(source, Model):
        return run_model(source, feeds)
    return run_proto(source, feeds)


def assert_same_outputs(original: onnx.ModelProto, optimized: Model, feeds: dict[str, np.ndarray],
                        rtol: float = 0.0) -> None:
    """Same output names, dtypes, shapes and values (bit-exact unless ``rtol`` is given)."""
    before, after = ort(original, feeds), ort(optimized, feeds)
    assert list(after) == list(before)
    for name, expected in before.items():
        actual = after[name]
        assert actual.dtype == expected.dtype, name
        assert actual.shape == expected.shape, name
        if rtol:
            np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=name)


def randn(*shape: int, seed: int = 0) -> np.ndarray:
    """Seeded float32 normal data."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def check_pass(name: str, proto: onnx.ModelProto, feeds: dict[str, np.ndarray],
               tol: tuple[float, float] | None) -> tuple[list[str], dict, Model]:
    """Run pass ``name``; outputs agree with onnxruntime within ``tol`` (graphopt's dtype-aware
    tolerances when None); a second run changes nothing. Returns (op types, stats, model)."""
    from graphopt.numerics.compare import compare_outputs

    model, result = run_pass(proto, name)
    before, after = ort(proto, feeds), ort(model, feeds)
    assert list(after) == list(before)
    problems = compare_outputs(before, after, tol)
    assert not problems, problems
    _, again = run_pass(model, name)
    assert not again.changed
    return op_types(model), result.stats, model
