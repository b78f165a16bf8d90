"""graphopt: a graph-level ONNX optimizer with per-pass numeric equivalence checks.

The public API for users and for custom passes (built-in passes use nothing else)::

    import graphopt
    result = graphopt.optimize("model.onnx")
    result.save("model.opt.onnx")
"""

from __future__ import annotations

from graphopt.api import DEFAULT_PIPELINE, OptimizeOptions, OptimizeResult, op_histogram, optimize
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
from graphopt.onnx_io import export_model, import_model, load_model, save_model
from graphopt.pass_infra.base import Pass, PassResult
from graphopt.pass_infra.registry import pass_from_function, register_pass

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_PIPELINE", "Attr", "Graph", "Model", "Node", "OptimizeOptions", "OptimizeResult", "Pass",
    "PassResult", "Tensor", "Value", "bypass", "clone_model", "export_model", "import_model",
    "load_model", "op_histogram", "optimize", "pass_from_function", "register_pass",
    "replace_all_uses_with", "replace_node", "save_model", "verify",
]
