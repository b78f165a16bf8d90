"""graphopt: a graph-level ONNX optimizer with per-pass numeric equivalence checks.

The public API for users and for custom passes. Built-in passes use nothing else: they import only
``graphopt``, ``graphopt.rewrite``, ``graphopt.analyses``, ``graphopt.errors``, ``graphopt.memory``
and other built-in passes' public names (``tests/test_public_api.py`` enforces it)::

    import graphopt
    result = graphopt.optimize("model.onnx")
    result.save("model.opt.onnx")
"""

from __future__ import annotations

from graphopt.api import DEFAULT_PIPELINE, OptimizeOptions, OptimizeResult, op_histogram, optimize, simplify
from graphopt.ir import (
                         Attr,
                         Graph,
                         Model,
                         Node,
                         Tensor,
                         Value,
                         bypass,
                         clone_model,
                         replace_all_uses_with,
                         replace_node,
                         verify,
)
from graphopt.ir.ops import (
                             COMMUTATIVE_OPS,
                             FLOAT_TYPES,
                             INDEX_TYPES,
                             ML_DOMAIN,
                             NUMPY_FLOATS,
                             STANDARD_DOMAINS,
                             UNARY_ELEMENTWISE,
                             const_ints,
                             is_standard_domain,
                             onnx_slice,
                             shape_slice,
)
from graphopt.ir.tensor import numpy_dtype, onnx_dtype
from graphopt.numerics.drift import relative_drift
from graphopt.numerics.feeds import make_feeds
from graphopt.numerics.interface import record_interface_perm
from graphopt.numerics.run import observe
from graphopt.numerics.user_inputs import load_arrays
from graphopt.onnx_io import export_model, export_node, import_model, load_model, save_model
from graphopt.pass_infra.base import Pass, PassResult
from graphopt.pass_infra.budget import BYTES_PER_NODE, allowed_growth
from graphopt.pass_infra.registry import pass_from_function, register_pass

__version__ = "0.1.0"

__all__ = [
    "BYTES_PER_NODE", "COMMUTATIVE_OPS", "DEFAULT_PIPELINE", "FLOAT_TYPES", "INDEX_TYPES", "ML_DOMAIN",
    "NUMPY_FLOATS", "STANDARD_DOMAINS", "UNARY_ELEMENTWISE", "Attr", "Graph", "Model", "Node",
    "OptimizeOptions", "OptimizeResult", "Pass",
    "PassResult", "Tensor", "Value", "allowed_growth", "bypass", "clone_model", "const_ints", "export_model",
    "export_node", "import_model", "is_standard_domain", "load_arrays", "load_model", "make_feeds",
    "numpy_dtype", "observe", "onnx_dtype", "onnx_slice", "op_histogram", "optimize", "pass_from_function",
    "record_interface_perm", "register_pass", "relative_drift", "replace_all_uses_with", "replace_node",
    "save_model",
    "shape_slice", "simplify",
    "verify",
]
