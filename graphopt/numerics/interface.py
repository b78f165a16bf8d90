"""A model's interface permutations: passes that change the layout of inputs/outputs (NCHW -> NHWC)
record them in the model's metadata so that numeric checks feed and compare in the original layout."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from graphopt.ir.model import Model

INTERFACE_KEY = "graphopt.interface_perms"


def interface_perms(model: Model) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """(inputs, outputs): name -> perm such that the model's tensor is ``transpose(original, perm)``."""
    raw = model.metadata_props.get(INTERFACE_KEY)
    if not raw:
        return {}, {}
    data = json.loads(raw)
    return dict(data.get("inputs", {})), dict(data.get("outputs", {}))


def record_interface_perm(model: Model, kind: str, name: str, perm: list[int]) -> None:
    """Note that input/output ``name`` is now ``transpose(original, perm)`` (composing with earlier)."""
    inputs, outputs = interface_perms(model)
    table = inputs if kind == "inputs" else outputs
    old = table.get(name)
    table[name] = [old[p] for p in perm] if old is not None else list(perm)
    model.metadata_props[INTERFACE_KEY] = json.dumps({"inputs": inputs, "outputs": outputs},
                                                     sort_keys=True)


def adapt_feeds(model: Model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Original-layout feeds, permuted to what ``model`` takes."""
    inputs, _ = interface_perms(model)
    return {k: np.ascontiguousarray(np.transpose(v, inputs[k])) if k in inputs else v
            for k, v in feeds.items()}


def adapt_outputs(model: Model, outputs: dict[str, Any]) -> dict[str, Any]:
    """``model``'s outputs, permuted back to the original layout."""
    _, perms = interface_perms(model)
    return {k: np.transpose(v, np.argsort(perms[k])) if k in perms and isinstance(v, np.ndarray) else v
            for k, v in outputs.items()}
