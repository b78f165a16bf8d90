"""Fallback evaluation of one node with onnx's reference evaluator (exact semantics, slow)."""

from __future__ import annotations

import logging

import numpy as np
import onnx

from graphopt import Node, export_node

log = logging.getLogger(__name__)


def evaluate_with_reference(node: Node, inputs: list[np.ndarray | None],
                            opset: int) -> list[np.ndarray] | None:
    """Run ``node`` on ``inputs`` with onnx.reference; None when it cannot."""
    from onnx.reference import ReferenceEvaluator

    in_names = [f"i{k}" if x is not None else "" for k, x in enumerate(inputs)]
    out_names = [f"o{k}" for k in range(len(node.outputs))]
    proto = export_node(node, in_names, out_names)
    graph = onnx.helper.make_graph(
        [proto], "fold", [onnx.ValueInfoProto(name=n) for n in in_names if n],
        [onnx.ValueInfoProto(name=n) for n in out_names])
    try:
        session = ReferenceEvaluator(graph, opsets={"": opset})
        feeds = {n: x for n, x in zip(in_names, inputs) if n}
        with np.errstate(all="ignore"):
            outputs = session.run(None, feeds)
    except Exception as exc:  # the reference raises many types for unsupported cases
        log.debug("reference evaluator cannot fold %s: %s", node.op_type, exc)
        return None
    if any(not isinstance(o, np.ndarray) for o in outputs):
        return None
    return list(outputs)
