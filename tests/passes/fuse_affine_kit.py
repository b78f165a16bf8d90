"""Helpers shared by the fuse-affine tests (tests/passes is not a package: import as a module, like
passes_kit)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from passes_kit import check_pass

from graphopt import Model, Node

PASS = "fuse-affine"
TOL = (1e-5, 1e-6)  # rtol of the output's largest magnitude, atol: float32 reassociation only
KEEP_BIAS = "rejected_conv-zero-bias:bias is not known to be zero"  # every Conv with a real bias


def check(proto: onnx.ModelProto, feeds: dict[str, np.ndarray],
          tol: tuple[float, float] | None = TOL) -> tuple[list[str], dict, Model]:
    """Run the pass; outputs agree with onnxruntime within ``tol``; a second run changes nothing."""
    return check_pass(PASS, proto, feeds, tol)


def inputs_of(node: Node) -> list[Any]:
    """Each input as its constant's array, or its name when it is not a constant."""
    return [None if v is None else v.const.numpy() if v.const is not None else v.name for v in node.inputs]
