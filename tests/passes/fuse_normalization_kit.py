"""Helpers shared by the fuse-normalization tests: the decomposed LayerNormalization builder and the check
every case runs (tests/passes is not a package: import as a module, like passes_kit)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import helper as h
from passes_kit import array, check_pass, info, ints, make

from graphopt import Model

PASS = "fuse-normalization"
TOL = (1e-5, 1e-6)  # rtol of the output's largest magnitude, atol: float32 summation order only
SQRT2 = math.sqrt(2.0)
BROADCASTS = "a constant would broadcast x to a larger shape"


def check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray],
          tol: tuple[float, float] | None = TOL) -> tuple[list[str], dict, Model]:
    """Run the pass; outputs agree with onnxruntime within ``tol``; a second run changes nothing."""
    return check_pass(PASS, proto, feeds, tol)


def reduce_mean(src: str, dst: str, axes: Sequence[int], opset: int, keepdims: int,
                inits: list[onnx.TensorProto]) -> onnx.NodeProto:
    """ReduceMean over ``axes``: an attribute before opset 18, an input from 18."""
    if opset < 18:
        return h.make_node("ReduceMean", [src], [dst], axes=list(axes), keepdims=keepdims)
    inits.append(ints(f"{dst}_axes", list(axes)))
    return h.make_node("ReduceMean", [src, f"{dst}_axes"], [dst], keepdims=keepdims)


def layernorm(shape: Sequence[int | str] = (2, 3, 4), *, axes: Sequence[int] = (-1,),
              var_axes: Sequence[int] | None = None, square: str = "pow", opset: int = 17,
              exponent: Any = 2.0, eps: Any = 1e-5, keepdims: tuple[int, int] = (1, 1),
              gamma: np.ndarray | None = None, beta: np.ndarray | None = None, swap: bool = False,
              dtype: Any = np.float32, outputs: Sequence[str] = ("y",),
              tail: Sequence[onnx.NodeProto] = ()) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x -> mean -> d = x - mean -> sq -> var -> + eps -> sqrt -> n = d / std [-> s = n * gamma] [-> + beta],
    the last value named y; ``swap`` puts the constants first in the commutative Mul/Add/Mul(d, d)."""
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    inits = [array("eps", np.asarray(eps, dtype))]
    nodes = [reduce_mean("x", "mean", axes, opset, keepdims[0], inits),
             h.make_node("Sub", ["x", "mean"], ["d"])]
    if square == "pow":
        inits.append(array("two", np.asarray(exponent, dtype)))
        nodes.append(h.make_node("Pow", ["d", "two"], ["sq"]))
    else:
        nodes.append(h.make_node("Mul", ["d", "d"], ["sq"]))
    nodes += [reduce_mean("sq", "var", axes if var_axes is None else var_axes, opset, keepdims[1], inits),
              h.make_node("Add", ["eps", "var"] if swap else ["var", "eps"], ["ve"]),
              h.make_node("Sqrt", ["ve"], ["std"]), h.make_node("Div", ["d", "std"], ["n"])]
    last = "n"
    for name, op, out in (("gamma", "Mul", "s"), ("beta", "Add", "t")):
        value = {"gamma": gamma, "beta": beta}[name]
        if value is not None:
            inits.append(array(name, np.asarray(value, dtype)))
            nodes.append(h.make_node(op, [name, last] if swap else [last, name], [out]))
            last = out
    for node in nodes:  # the final value is y, whatever produces it
        node.output[:] = ["y" if o == last else o for o in node.output]
        node.input[:] = ["y" if i == last else i for i in node.input]
    proto = make(nodes + list(tail), [info("x", list(shape), elem)], [info(o, None, elem) for o in outputs],
                 inits, opset=opset)
    static = [d if isinstance(d, int) else 2 for d in shape]
    rng = np.random.default_rng(7)  # an offset and a spread per row, so centering and scaling both matter
    x = rng.standard_normal(static) * rng.uniform(0.5, 3.0, static[:-1] + [1]) + rng.normal(0, 2, static)
    return proto, {"x": x.astype(dtype)}
