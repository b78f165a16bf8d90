"""Fix some input dims of a model to sizes, in the model itself (not only in the checks), so that the
folding that follows can turn the shape arithmetic those dims fed into constants.

Three forms, by key: an input name with a whole shape (``x=1,3,224,224``, ``?`` keeps one dim
dynamic), an input axis (``x:0=1``), or a dim name shared by inputs (``batch=1``). A named dim is
one size wherever the model uses that name (the ONNX IR's rule), so fixing one input's named axis
fixes that name everywhere; placeholder names such as ``?`` or ``unk__3`` name nothing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence, Union

from graphopt.analyses.shapes import apply_types, infer_types
from graphopt.analyses.symbolic_shapes import PLACEHOLDER_NAME
from graphopt.errors import UsageError
from graphopt.ir.model import Model
from graphopt.ir.value import Dim, Value

DimSpec = Union[int, Sequence[Union[int, None]]]  # one size, or a whole shape (None: keep dynamic)
KEEP = ("?", "*", "-1", "")


@dataclass(frozen=True)
class FixedDims:
    """What fixing changed: the new input shapes by name, and each dim name fixed to a size."""

    inputs: dict[str, tuple[Dim, ...]]
    names: dict[str, int]


def parse_fix_dims(texts: Iterable[str]) -> dict[str, DimSpec]:
    """``["x=1,3,?,?", "x:0=1", "batch=1"]`` -> ``{"x": [1, 3, None, None], "x:0": 1, "batch": 1}``."""
    specs: dict[str, DimSpec] = {}
    for text in texts:
        key, sep, rest = text.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--fix-dims {text!r}: expected NAME=D0,D1,..., NAME:AXIS=N or DIM_NAME=N")
        parts = [p.strip() for p in rest.split(",")]
        try:
            sizes = [None if p in KEEP else int(p) for p in parts]
        except ValueError:
            raise UsageError(f"--fix-dims {text!r}: sizes must be integers or '?' (keep dynamic)") from None
        specs[key.strip()] = sizes[0] if len(sizes) == 1 and ":" in key else sizes
    return specs


def fix_dims(model: Model, specs: Mapping[str, DimSpec]) -> FixedDims:
    """Rewrite the main graph's input types per ``specs`` and re-infer the types that depend on them.

    Raises UsageError for an unknown input or dim name, an axis out of range, a size below 1, or a
    size that contradicts a static dim of the model.
    """
    graph_inputs = {v.name: v for v in model.graph.inputs if v.name and v.const is None}
    shapes = {name: list(v.shape) if v.shape is not None else None for name, v in graph_inputs.items()}
    names: dict[str, int] = {}
    for key, spec in specs.items():
        _apply_spec(key, spec, graph_inputs, shapes, names)
    for name, shape in shapes.items():  # a fixed dim name holds wherever it appears
        if shape is not None:
            shapes[name] = [names.get(d, d) if isinstance(d, str) else d for d in shape]
    changed = {name: tuple(shape) for name, shape in shapes.items()
               if shape is not None and tuple(shape) != graph_inputs[name].shape}
    for name, shape in changed.items():
        graph_inputs[name].shape = shape
    if changed:
        _refresh_dependent_types(model, names)
    return FixedDims(changed, names)


def _apply_spec(key: str, spec: DimSpec, graph_inputs: dict[str, Value],
                shapes: dict[str, list[Dim] | None], names: dict[str, int]) -> None:
    name, colon, axis_text = key.rpartition(":") if ":" in key else (key, "", "")
    if colon:
        if name not in graph_inputs:
            raise _unknown(name, graph_inputs, shapes)
        size = spec if isinstance(spec, int) else None
        if size is None:
            raise UsageError(f"--fix-dims {key}=...: one axis takes one size (e.g. {key}=1)")
        _fix_axis(name, _axis(key, axis_text, shapes[name]), size, shapes, names)
        return
    sizes = [spec] if isinstance(spec, int) else list(spec)
    if key in graph_inputs:
        shape = shapes[key]
        if shape is not None and len(sizes) != len(shape):
            raise UsageError(f"--fix-dims {key}: the input has {len(shape)} dims "
                             f"({_shape_text(shape)}), {len(sizes)} given")
        if shape is None:
            shapes[key] = shape = [None] * len(sizes)
        for axis, size in enumerate(sizes):
            if size is not None:
                _fix_axis(key, axis, size, shapes, names)
        return
    if key in _dim_names(shapes) and len(sizes) == 1 and sizes[0] is not None:
        names[key] = _positive(key, sizes[0])
        return
    raise _unknown(key, graph_inputs, shapes)


def _fix_axis(name: str, axis: int, size: int, shapes: dict[str, list[Dim] | None],
              names: dict[str, int]) -> None:
    shape = shapes[name]
    assert shape is not None
    current = shape[axis]
    _positive(f"{name}:{axis}", size)
    if isinstance(current, int) and current != size:
        raise UsageError(f"--fix-dims {name}:{axis}={size}: that dim is {current} in the model "
                         f"({name} {_shape_text(shape)}); only dynamic dims can be fixed")
    if isinstance(current, str) and not PLACEHOLDER_NAME.match(current.strip()):
        if names.get(current, size) != size:
            raise UsageError(f"--fix-dims: dim {current!r} is fixed to both {names[current]} and {size}")
        names[current] = size
    shape[axis] = size


def _axis(key: str, text: str, shape: list[Dim] | None) -> int:
    try:
        axis = int(text)
    except ValueError:
        raise UsageError(f"--fix-dims {key}: the axis must be an integer") from None
    rank = len(shape) if shape is not None else None
    if rank is None:
        raise UsageError(f"--fix-dims {key}: the input's rank is unknown; give its whole shape instead")
    if not -rank <= axis < rank:
        raise UsageError(f"--fix-dims {key}: axis {axis} is out of range for {rank} dims")
    return axis % rank


def _positive(what: str, size: int) -> int:
    if size < 1:
        raise UsageError(f"--fix-dims {what}: sizes must be at least 1, not {size}")
    return size


def _dim_names(shapes: dict[str, list[Dim] | None]) -> set[str]:
    return {d for shape in shapes.values() if shape for d in shape
            if isinstance(d, str) and not PLACEHOLDER_NAME.match(d.strip())}


def _unknown(key: str, graph_inputs: dict[str, Value], shapes: dict[str, list[Dim] | None]) -> UsageError:
    known = sorted(graph_inputs) + sorted(_dim_names(shapes))
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(f"{n} {_shape_text(shapes[n])}" for n in sorted(graph_inputs))
    return UsageError(f"--fix-dims {key}: no input or dim of that name{hint} (inputs: {listed or 'none'})")


def _shape_text(shape: Sequence[Dim] | None) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]" if shape is not None else "[?]"


def _refresh_dependent_types(model: Model, names: dict[str, int]) -> None:
    """Forget what was known from the old input types, infer again, and update declared interface
    types (a graph output declared ``['batch', 80]`` becomes ``[1, 80]`` once batch is fixed)."""
    for graph in model.graph.all_graphs():
        for node in graph:
            for out in node.outputs:
                if out.shape is not None and any(not isinstance(d, int) for d in out.shape):
                    out.shape = None
                if out.declared is not None and out.declared[1] is not None:
                    dtype, shape = out.declared
                    out.declared = (dtype, tuple(names.get(d, d) if isinstance(d, str) else d for d in shape))
    model.analysis_stamps.pop("types", None)
    apply_types(model, infer_types(model))
    settle_output_types(model)


def settle_output_types(model: Model) -> int:
    """Write the static sizes now known for the main graph's outputs into their declared types, in
    place of the dynamic dims the file declared; returns how many outputs changed. Run after fixing
    dims and again after folding, which often learns what inference on the original could not."""
    changed = 0
    for out in model.graph.outputs:
        if out.declared is None or out.declared[1] is None or out.shape is None:
            continue
        dtype, declared = out.declared
        if len(declared) != len(out.shape):
            continue
        settled = tuple(known if isinstance(known, int) and not isinstance(d, int) else d
                        for d, known in zip(declared, out.shape))
        if settled != declared:
            out.declared = (dtype, settled)
            changed += 1
    return changed
