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


def _delta(base: list[int] | None, current: list[int]) -> list[int]:
    """The perm taking the ``base`` layout to the ``current`` one (both relative to the original)."""
    if base is None:
        return list(current)
    position = {axis: i for i, axis in enumerate(base)}
    return [position[axis] for axis in current]


def adapt_feeds(model: Model, feeds: dict[str, np.ndarray],
                base: dict[str, list[int]] | None = None) -> dict[str, np.ndarray]:
    """Feeds made for the reference (whose inputs had the perms ``base``, none by default), permuted
    to what ``model`` takes."""
    inputs, _ = interface_perms(model)
    base = base or {}
    out = {}
    for name, value in feeds.items():
        if name in inputs and inputs[name] != base.get(name):
            value = np.ascontiguousarray(np.transpose(value, _delta(base.get(name), inputs[name])))
        out[name] = value
    return out


def adapt_outputs(model: Model, outputs: dict[str, Any],
                  base: dict[str, list[int]] | None = None) -> dict[str, Any]:
    """``model``'s outputs, permuted back to the reference's layout (perms ``base``, none by default)."""
    _, perms = interface_perms(model)
    base = base or {}
    out = {}
    for name, value in outputs.items():
        if name in perms and perms[name] != base.get(name) and isinstance(value, np.ndarray):
            value = np.transpose(value, np.argsort(_delta(base.get(name), perms[name])))
        out[name] = value
    return out
