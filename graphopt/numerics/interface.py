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


def interface_difference(reference: Model, candidate: Model) -> tuple[list[str], dict[str, tuple[int, ...]]]:
    """How ``candidate``'s inputs and outputs differ from ``reference``'s (read in the reference's
    layout), and the input shapes to check with where the candidate fixed dims the reference leaves
    dynamic. An empty list means the models can be compared."""
    ref_perms, _ = interface_perms(reference)
    perms, _ = interface_perms(candidate)
    ref_inputs = {v.name: v for v in reference.graph.inputs if v.const is None}
    cand_inputs = {v.name: v for v in candidate.graph.inputs if v.const is None}
    problems = [f"input {name!r} only in the {side}" for side, only in
                (("reference", set(ref_inputs) - set(cand_inputs)),
                 ("candidate", set(cand_inputs) - set(ref_inputs)))
                for name in sorted(only)]
    shapes: dict[str, tuple[int, ...]] = {}
    for name in sorted(set(ref_inputs) & set(cand_inputs)):
        ref, cand = ref_inputs[name], cand_inputs[name]
        if ref.dtype is not None and cand.dtype is not None and ref.dtype != cand.dtype:
            problems.append(f"input {name!r} is {_type_text(ref)} in the reference, {_type_text(cand)} in "
                            "the candidate")
            continue
        ref_shape, cand_shape = _original_layout(ref.shape, ref_perms.get(name)), \
            _original_layout(cand.shape, perms.get(name))
        if ref_shape is None or cand_shape is None:
            continue
        if len(ref_shape) != len(cand_shape) or any(isinstance(a, int) and isinstance(b, int) and a != b
                                                     for a, b in zip(ref_shape, cand_shape)):
            problems.append(f"input {name!r} is {_type_text(ref)} in the reference, {_type_text(cand)} in "
                            "the candidate")
        elif all(isinstance(b, int) for b in cand_shape) and not all(isinstance(a, int) for a in ref_shape):
            shapes[name] = tuple(int(b) for b in _ref_layout(cand_shape, ref_perms.get(name)))
    ref_outputs = {v.name for v in reference.graph.outputs}
    problems += [f"output {name!r} only in the reference"
                 for name in sorted(ref_outputs - {v.name for v in candidate.graph.outputs})]
    return problems, shapes


def _original_layout(shape: tuple | None, perm: list[int] | None) -> tuple | None:
    """``shape`` (of a tensor that is ``transpose(original, perm)``) in the original's layout."""
    if shape is None or perm is None or len(perm) != len(shape):
        return shape
    return tuple(shape[i] for i in np.argsort(perm))


def _ref_layout(shape: tuple, perm: list[int] | None) -> tuple:
    """An original-layout ``shape`` in the layout of a model whose input is ``transpose(original, perm)``."""
    return shape if perm is None or len(perm) != len(shape) else tuple(shape[p] for p in perm)


def _type_text(value: Any) -> str:
    from onnx import helper

    dtype = helper.tensor_dtype_to_np_dtype(value.dtype).name if value.dtype else "?"
    dims = ",".join("?" if d is None else str(d) for d in value.shape) if value.shape is not None else "..."
    return f"{dtype}[{dims}]"
