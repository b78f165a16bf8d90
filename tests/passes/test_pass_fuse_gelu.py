"""fuse-normalization: Gelu recognition and the property over random LayerNorm/Gelu variants
(the LayerNorm rules are in test_pass_fuse_normalization.py, the shared helpers in
fuse_normalization_kit.py)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
import pytest
from fuse_normalization_kit import BROADCASTS, PASS, SQRT2, check, layernorm
from hypothesis import event, given, settings
from hypothesis import strategies as st
from onnx import helper as h
from passes_kit import array, info, make, only_node, op_types, ort, randn, run_pass

# ---- Gelu ----

def _gelu(order: str = "a", *, arg: str = "div", opset: int = 20, k: float | None = None, one: float = 1.0,
          half: float = 0.5, swap: bool = False, shape: Sequence[int] = (2, 3), const_shape: tuple = (),
          dtype: Any = np.float32, outputs: Sequence[str] = ("y",),
          tail: Sequence[onnx.NodeProto] = ()) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """0.5 * x * (1 + erf(x / sqrt(2))) with the erf argument x / k (div) or x * k (mul), associated as
    a: (x * p) * 0.5, b: (x * 0.5) * p, c: x * (p * 0.5) where p = 1 + erf; ``swap`` flips every
    commutative Add/Mul."""
    if k is None:
        k = SQRT2 if arg == "div" else 1 / SQRT2

    def op(name: str, a: str, b: str, out: str) -> onnx.NodeProto:
        return h.make_node(name, [b, a] if swap and name != "Div" else [a, b], [out])

    nodes = [op("Div" if arg == "div" else "Mul", "x", "k", "a"), h.make_node("Erf", ["a"], ["e"]),
             op("Add", "e", "one", "p")]
    nodes += {"a": [op("Mul", "x", "p", "m"), op("Mul", "m", "half", "y")],
              "b": [op("Mul", "x", "half", "m"), op("Mul", "m", "p", "y")],
              "c": [op("Mul", "p", "half", "m"), op("Mul", "x", "m", "y")]}[order]
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [array(n, np.full(const_shape, v, dtype)) for n, v in (("k", k), ("one", one), ("half", half))]
    proto = make(nodes + list(tail), [info("x", list(shape), elem)], [info(o, None, elem) for o in outputs],
                 inits, opset=opset)
    return proto, {"x": np.asarray(randn(*shape, seed=3) * 2, dtype)}


@pytest.mark.parametrize("arg", ["div", "mul"])
@pytest.mark.parametrize("order", ["a", "b", "c"])
@pytest.mark.parametrize("swap", [False, True], ids=["x-first", "const-first"])
def test_exact_gelu_becomes_one_node(arg: str, order: str, swap: bool) -> None:
    """Every association order, x / sqrt(2) or x * 0.7071, operands either way round: one Gelu
    (approximate='none', the default) reading x."""
    proto, feeds = _gelu(order, arg=arg, swap=swap)
    ops, stats, model = check(proto, feeds)
    assert ops == ["Gelu"] and stats == {f"fused_gelu-erf-{int(arg == 'mul')}{order}": 1}
    gelu = only_node(model, "Gelu")
    assert gelu.inputs == (model.graph.inputs[0],) and gelu.attr("approximate", "none") == "none"
    assert gelu.outputs[0] is model.graph.outputs[0] and not model.graph.consts


def test_gelu_constants_of_shape_1_or_rounded_to_float16_match() -> None:
    """[1]-shaped constants within x's rank, and float16's nearest sqrt(2), are still the constants."""
    ops, stats, _ = check(*_gelu(const_shape=(1,)))
    assert ops == ["Gelu"] and stats == {"fused_gelu-erf-0a": 1}
    model, result = run_pass(_gelu("b", arg="mul", dtype=np.float16)[0], PASS)
    assert op_types(model) == ["Gelu"] and result.stats == {"fused_gelu-erf-1b": 1}


@pytest.mark.parametrize("opset", [17, 18, 19])
def test_keep_gelu_below_opset_20(opset: int) -> None:
    ops, stats, _ = check(*_gelu(opset=opset))
    assert ops == ["Div", "Erf", "Add", "Mul", "Mul"]
    assert stats == {"rejected_gelu-erf-0a:opset < 20 (no Gelu)": 1}


@pytest.mark.parametrize("arg,k", [("div", 1.5), ("div", 1 / SQRT2), ("mul", SQRT2), ("mul", 0.75)])
def test_keep_gelu_with_a_wrong_erf_scale(arg: str, k: float) -> None:
    """x / 0.7071 and x * 1.414 swap the two forms' constants: not Gelu."""
    ops, stats, _ = check(*_gelu(arg=arg, k=k))
    assert "Gelu" not in ops
    assert stats == {f"rejected_gelu-erf-{int(arg == 'mul')}a:erf argument is not x / sqrt(2)": 1}


@pytest.mark.parametrize("order", ["a", "b", "c"])
@pytest.mark.parametrize("one,half", [(1.0, 0.4), (1.0, 0.5001), (1.1, 0.5)])
def test_keep_gelu_with_wrong_half_or_one(order: str, one: float, half: float) -> None:
    ops, stats, _ = check(*_gelu(order, one=one, half=half))
    assert "Gelu" not in ops and stats == {f"rejected_gelu-erf-0{order}:constants are not 1 and 0.5": 1}


@pytest.mark.parametrize("const_shape", [(1, 1, 1), (1, 1, 1, 1)], ids=str)
def test_keep_gelu_whose_constants_add_dims(const_shape: tuple) -> None:
    """Regression: with constants of one element but rank 3 or 4, x [2, 3] gives an output of rank 3
    or 4; Gelu would keep [2, 3]."""
    proto, feeds = _gelu(const_shape=const_shape)
    ops, stats, _ = check(proto, feeds)
    assert "Gelu" not in ops and stats == {f"rejected_gelu-erf-0a:{BROADCASTS}": 1}
    assert ort(proto, feeds)["y"].ndim == len(const_shape)


@pytest.mark.parametrize("const_shape", [(), (1,)], ids=str)
def test_gelu_of_x_with_unknown_rank_needs_rank_0_constants(const_shape: tuple) -> None:
    """x declares no shape: a [1] constant would make a rank-0 x rank 1, so only rank-0 ones are safe."""
    proto, feeds = _gelu(const_shape=const_shape)
    del proto.graph.input[0].type.tensor_type.shape.dim[:]
    proto.graph.input[0].type.tensor_type.ClearField("shape")
    ops, stats, _ = check(proto, feeds)
    if const_shape:
        assert ops == ["Div", "Erf", "Add", "Mul", "Mul"]
        assert stats == {f"rejected_gelu-erf-0a:{BROADCASTS}": 1}
    else:
        assert ops == ["Gelu"] and stats == {"fused_gelu-erf-0a": 1}


@pytest.mark.parametrize("leak", ["a", "e", "p", "m"])
def test_keep_gelu_whose_intermediate_is_read_elsewhere(leak: str) -> None:
    ops, stats, _ = check(*_gelu(outputs=("y", leak)))
    assert "Gelu" not in ops and stats == {"rejected_gelu-erf-0a:intermediate value is a graph output": 1}
    ops, stats, _ = check(*_gelu(outputs=("y", "r"), tail=[h.make_node("Neg", [leak], ["r"])]))
    assert "Gelu" not in ops
    assert stats == {"rejected_gelu-erf-0a:intermediate value is used outside the match": 1}


def test_keep_gelu_of_two_different_tensors() -> None:
    """0.5 * z * (1 + erf(x / sqrt(2))) is not Gelu(x) when z is not x: nothing matches."""
    proto, feeds = _gelu()
    proto.graph.node[3].input[0] = "z"  # Mul(z, 1 + erf)
    proto.graph.input.append(info("z", [2, 3]))
    ops, stats, _ = check(proto, {**feeds, "z": randn(2, 3, seed=9)})
    assert "Gelu" not in ops and stats == {}


def test_keep_gelu_of_an_integer_input() -> None:
    """The dtype is checked before the constants (onnxruntime has no integer Erf to compare with)."""
    proto, _ = _gelu(dtype=np.int32, k=1, one=1, half=0)
    model, result = run_pass(proto, PASS)
    assert "Gelu" not in op_types(model)
    assert result.stats == {"rejected_gelu-erf-0a:input is not floating point": 1}


def test_layernorm_and_gelu_of_one_transformer_block_both_fuse() -> None:
    """LayerNorm -> MatMul -> Gelu at opset 20: both patterns in one run."""
    proto, feeds = layernorm((2, 3, 4), opset=20, gamma=randn(4, seed=1), beta=randn(4, seed=2))
    gelu, _ = _gelu(opset=20)
    proto.graph.output[0].name = "z"
    for node in gelu.graph.node:
        node.input[:] = ["h" if i == "x" else i for i in node.input]
        node.output[:] = ["z" if o == "y" else o for o in node.output]
    proto.graph.node.append(h.make_node("MatMul", ["y", "w"], ["h"]))
    proto.graph.node.extend(gelu.graph.node)
    proto.graph.initializer.extend([*gelu.graph.initializer, array("w", randn(4, 5, seed=4))])
    ops, stats, _ = check(proto, feeds)
    assert ops == ["LayerNormalization", "MatMul", "Gelu"]
    assert stats == {"fused_layernorm-pow-affine": 1, "fused_gelu-erf-0a": 1}


# ---- property ----

@st.composite
def _layernorm_case(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(1, 4))
    keepdims = (draw(st.sampled_from([1, 1, 1, 0])), draw(st.sampled_from([1, 1, 1, 0])))
    shape = [3] * rank if 0 in keepdims else draw(st.lists(st.sampled_from([1, 2, 3, 4]), min_size=rank,
                                                             max_size=rank))
    trailing = draw(st.integers(1, rank))
    axes = list(range(rank - trailing, rank))
    if draw(st.booleans()):  # any non-empty subset, usually not a trailing run
        axes = sorted(draw(st.sets(st.integers(0, rank - 1), min_size=1)))
    var_axes = axes
    if not draw(st.integers(0, 3)):  # one time in four, independent axes for the variance
        var_axes = sorted(draw(st.sets(st.integers(0, rank - 1), min_size=1)))

    def spelled(a: list[int]) -> list[int]:  # the same axes written negative, positive or shuffled
        return draw(st.permutations([x - rank if draw(st.booleans()) else x for x in a]))

    def affine() -> tuple[int, ...] | None:
        if not draw(st.booleans()):
            return None
        n = draw(st.integers(0, rank + 1))  # right-aligned with x; rank + 1 adds a leading 1
        return tuple(1 if i < 0 or draw(st.booleans()) else shape[i] for i in range(rank - n, rank))

    return {"shape": shape, "axes": spelled(axes), "var_axes": spelled(var_axes), "keepdims": keepdims,
            "opset": draw(st.sampled_from([16, 17, 18])), "square": draw(st.sampled_from(["pow", "mul"])),
            "exponent": draw(st.sampled_from([2.0, 2.0, 2.0, 3.0])), "gamma": affine(), "beta": affine(),
            "swap": draw(st.booleans()), "leak": draw(st.sampled_from([None] * 5 + ["mean", "d", "var"]))}


def _layernorm_expected(case: dict[str, Any]) -> list[str]:
    """The op list the pass may produce, stated from the rules, not the code."""
    rank = len(case["shape"])
    mean = sorted(a % rank for a in case["axes"])
    var = sorted(a % rank for a in case["var_axes"])
    core = (case["opset"] >= 17 and mean == var == list(range(mean[0], rank)) and case["keepdims"] == (1, 1)
            and (case["square"] == "mul" or case["exponent"] == 2.0) and case["leak"] is None)
    if not core:
        return []
    normalized = rank - mean[0]

    def fits(s: tuple[int, ...] | None) -> bool:  # rank at most the normalized rank (no squeezing)
        return s is not None and len(s) <= normalized

    if case["gamma"] is None:
        return ["LayerNormalization"] + (["Add"] if case["beta"] is not None else [])
    if not fits(case["gamma"]):
        return ["LayerNormalization", "Mul"] + (["Add"] if case["beta"] is not None else [])
    if case["beta"] is None or fits(case["beta"]):
        return ["LayerNormalization"]
    return ["LayerNormalization", "Add"]


@st.composite
def _gelu_case(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.integers(0, 3))
    return {"order": draw(st.sampled_from("abc")), "arg": draw(st.sampled_from(["div", "mul"])),
            "opset": draw(st.sampled_from([17, 19, 20, 20, 20])), "swap": draw(st.booleans()),
            "shape": draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)),
            "const_shape": (1,) * draw(st.integers(0, rank + 1)),
            "half": draw(st.sampled_from([0.5, 0.5, 0.4])), "one": draw(st.sampled_from([1.0, 1.0, 2.0]))}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.one_of(_layernorm_case().map(lambda c: ("layernorm", c)), _gelu_case().map(lambda c: ("gelu", c))))
def test_random_normalizations_fuse_exactly_when_sound(kind_case: tuple[str, dict[str, Any]]) -> None:
    """Property: random ranks, axes (trailing or not, spelled either way), keepdims, exponents, scale and
    bias shapes, leaked intermediates, Gelu orders, constants and opsets. Outputs agree with onnxruntime,
    and the fused ops appear exactly when the rules allow them."""
    kind, case = kind_case
    if kind == "gelu":
        proto, feeds = _gelu(**case)
        ops, _, _ = check(proto, feeds)
        fused = case["opset"] >= 20 and case["half"] == 0.5 and case["one"] == 1.0 and \
            len(case["const_shape"]) <= len(case["shape"])
        event(f"gelu fused={fused}")
        assert (ops == ["Gelu"]) == fused and (ops == ["Gelu"] or len(ops) == 5), ops
        return
    expected = _layernorm_expected(case)
    leak, gamma_shape, beta_shape = case.pop("leak"), case.pop("gamma"), case.pop("beta")
    gamma = None if gamma_shape is None else randn(*gamma_shape, seed=1) + 1
    beta = None if beta_shape is None else randn(*beta_shape, seed=2)
    proto, feeds = layernorm(**case, gamma=gamma, beta=beta, outputs=("y",) if leak is None else ("y", leak))
    ops, stats, _ = check(proto, feeds)
    event(f"layernorm fused={bool(expected)}")
    if expected:
        assert ops == expected, (ops, stats)
    else:
        assert "LayerNormalization" not in ops, (ops, stats)
        assert not any(k.startswith("fused_") for k in stats), stats
