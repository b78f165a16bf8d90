"""Ops onnxruntime has no kernel for without help: custom domains. Finds them, loads
onnxruntime-extensions' library for its own domain when that package is installed, and turns a load
failure into a message that names the op and the two ways to give onnxruntime its kernel."""

from __future__ import annotations

from typing import Any, Iterable

# domains whose kernels ship inside onnxruntime itself
ORT_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc",
                         "com.microsoft.experimental", "ai.onnx.preview.training", "ai.onnx.training",
                         "com.ms.internal.nhwc"})
EXTENSIONS_DOMAIN = "ai.onnx.contrib"  # onnxruntime-extensions registers its ops here

CustomOp = tuple[str, str, str]  # (domain, op_type, node name)


def find_custom_ops(nodes: Iterable[Any],
                    local_functions: Iterable[tuple[str, str]] = ()) -> tuple[CustomOp, ...]:
    """``(domain, op_type, node name)`` of each distinct op outside onnxruntime's own domains that is
    not a model-local function (``local_functions`` lists those as ``(domain, name)``)."""
    local = set(local_functions)
    found: dict[tuple[str, str], str] = {}
    for node in nodes:
        if node.domain not in ORT_DOMAINS and (node.domain, node.op_type) not in local:
            found.setdefault((node.domain, node.op_type), node.name or "")
    return tuple((domain, op, name) for (domain, op), name in found.items())


def extension_libraries(custom_ops: Iterable[CustomOp]) -> tuple[str, ...]:
    """onnxruntime-extensions' library when the model uses its domain and the package is installed."""
    if not any(domain == EXTENSIONS_DOMAIN for domain, _, _ in custom_ops):
        return ()
    try:
        from onnxruntime_extensions import get_library_path
    except ImportError:
        return ()
    return (get_library_path(),)


def explain_load_failure(what: str, line: str, custom_ops: tuple[CustomOp, ...],
                         libraries: tuple[str, ...]) -> str:
    """The one-line error for a session that could not be created."""
    if not custom_ops:
        return f"onnxruntime cannot load the {what}: {line}"
    named = [c for c in custom_ops if c[1] in line] or list(custom_ops)
    domain, op, node = named[0]
    where = f" (node {node!r})" if node else ""
    others = f" and {len(custom_ops) - 1} more custom op(s)" if len(custom_ops) > 1 else ""
    loaded = f"; loaded: {', '.join(libraries)}" if libraries else ""
    hint = ("install onnxruntime-extensions (pip install onnxruntime-extensions), "
            if domain == EXTENSIONS_DOMAIN else "")
    return (f"onnxruntime has no kernel for custom op {domain}::{op}{where}{others}, so the {what} cannot "
            f"be checked: give its library with --custom-op-library PATH, {hint}or skip checks with "
            f"--check off{loaded} [onnxruntime: {line}]")
