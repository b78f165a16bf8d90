"""What the user says about check inputs (``--input-shape``, ``--inputs``, ``--input-value``,
``--input-range``), parsed and validated against the model's real inputs: a misspelled name, a wrong
rank or dtype is a usage error naming the inputs the model has, never silently ignored."""

from __future__ import annotations

import difflib
import re
import zipfile
from typing import Any

import numpy as np

from graphopt.errors import UsageError
from graphopt.ir.tensor import numpy_dtype
from graphopt.numerics.synthesize import FeedSpec, Request, feed_specs

SEQUENCE_KEY = re.compile(r"^(?P<name>.+)\[(?P<index>\d+)\]$")  # NAME[0], NAME[1]... in an .npz


def parse_shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    """``NAME=1,3,224,224`` items (``NAME=`` is a scalar)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, dims = _split(item, "--input-shape", "NAME=D0,D1,... with integers")
        try:
            shapes[name] = tuple(int(d) for d in dims.split(",") if d.strip() != "")
        except ValueError:
            raise UsageError(f"--input-shape {item!r}: expected NAME=D0,D1,... with integers") from None
        if any(d < 0 for d in shapes[name]):
            raise UsageError(f"--input-shape {item!r}: dimensions must be >= 0")
    return shapes


def parse_values(items: list[str]) -> dict[str, np.ndarray]:
    """``NAME=V`` (a scalar, broadcast to the input's shape) or ``NAME=V0,V1,...`` (a 1-D tensor)."""
    values: dict[str, np.ndarray] = {}
    for item in items:
        name, text = _split(item, "--input-value", "NAME=V[,V...]")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        try:
            numbers = [_number(p) for p in parts]
        except ValueError:
            raise UsageError(f"--input-value {item!r}: expected NAME=V[,V...] with numbers "
                             "(true/false for booleans)") from None
        if not numbers:
            raise UsageError(f"--input-value {item!r}: no value given")
        values[name] = np.array(numbers[0] if len(numbers) == 1 else numbers)
    return values


def parse_ranges(items: list[str]) -> dict[str, tuple[float, float]]:
    """``NAME=LO,HI``: values drawn uniformly from [LO, HI] (integers: both ends included)."""
    ranges: dict[str, tuple[float, float]] = {}
    for item in items:
        name, text = _split(item, "--input-range", "NAME=LO,HI")
        try:
            low, high = (float(p) for p in text.split(","))
        except ValueError:
            raise UsageError(f"--input-range {item!r}: expected NAME=LO,HI with two numbers") from None
        if not low <= high:
            raise UsageError(f"--input-range {item!r}: LO must not exceed HI")
        ranges[name] = (low, high)
    return ranges


def load_arrays(path: str) -> dict[str, Any]:
    """``--inputs FILE``: an .npz by input name (a sequence input as ``NAME[0]``, ``NAME[1]``...), or
    an .npy holding the single input of a one-input model (key ``""``)."""
    kind = ".npy" if path.endswith(".npy") else ".npz"
    _refuse_non_numpy(path, kind)
    try:
        if path.endswith(".npy"):
            return {"": np.load(path, allow_pickle=False)}
        with np.load(path, allow_pickle=False) as data:
            raw = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UsageError(f"--inputs {path}: cannot read as {kind} ({exc or type(exc).__name__})") from None
    arrays: dict[str, Any] = {}
    sequences: dict[str, dict[int, np.ndarray]] = {}
    for key, array in raw.items():
        match = SEQUENCE_KEY.match(key)
        if match and match["name"] not in raw:
            sequences.setdefault(match["name"], {})[int(match["index"])] = array
        else:
            arrays[key] = array
    for name, items in sequences.items():
        if sorted(items) != list(range(len(items))):
            last = len(items) - 1
            raise UsageError(f"--inputs {path}: sequence {name!r} needs keys {name}[0]..{name}[{last}] "
                             f"without gaps, found {', '.join(f'{name}[{i}]' for i in sorted(items))}")
        arrays[name] = [items[i] for i in range(len(items))]
    return arrays


NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def _refuse_non_numpy(path: str, kind: str) -> None:
    """A file that is not numpy's format at all (a text file, an image...) says so in plain words."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return  # numpy's own error says why it cannot be read
    if head.startswith(NPY_MAGIC) or head.startswith(ZIP_MAGIC):
        return
    what = "a text file" if head and all(32 <= b < 127 or b in b"\t\r\n" for b in head) else "not numpy data"
    raise UsageError(f"--inputs {path}: {what}, not an {kind}; save the inputs with "
                     "numpy.savez(PATH, NAME=array, ...) (an .npz by input name) or numpy.save for one input")


def build_request(model: Any, shapes: dict[str, tuple[int, ...]] | None = None,
                  arrays: dict[str, Any] | None = None, values: dict[str, np.ndarray] | None = None,
                  ranges: dict[str, tuple[float, float]] | None = None) -> Request:
    """A validated Request; raises UsageError on anything that does not fit the model's inputs."""
    specs = {s.name: s for s in feed_specs(model)}
    defaults = {v.name for v in model.graph.input_defaults if v.name}
    arrays = dict(arrays or {})
    if "" in arrays:  # an .npy: only for a model with exactly one input to feed
        if len(specs) != 1:
            raise UsageError(f"--inputs: an .npy file holds one array, but the model has {len(specs)} inputs "
                             f"to feed ({_listing(specs)}); use an .npz keyed by input name")
        arrays[next(iter(specs))] = arrays.pop("")
    request = Request(dict(shapes or {}), {}, {}, dict(ranges or {}))
    for flag, names in (("--input-shape", request.shapes), ("--inputs", arrays),
                        ("--input-value", values or {}), ("--input-range", request.ranges)):
        for name in names:
            if name not in specs and name not in defaults:
                raise UsageError(_unknown(flag, name, specs))
    for name, shape in request.shapes.items():
        if name in specs:
            _check_shape(specs[name], shape, "--input-shape")
    for name, array in arrays.items():
        if name in specs:
            request.arrays[name] = _checked_array(specs[name], array)
        else:
            request.arrays[name] = np.asarray(array)  # an initializer default the user overrides
    for name, value in (values or {}).items():
        spec = specs.get(name)
        if spec is None or spec.elem_type <= 0:
            raise UsageError(f"--input-value {name}: only tensor inputs to feed take a value")
        dtype = numpy_dtype(spec.elem_type)
        if value.ndim and len(spec.dims) == 1 and name not in request.shapes:
            request.arrays[name] = _checked_array(spec, value.astype(dtype))  # the whole 1-D tensor
        else:
            request.values[name] = value.astype(dtype)
    return request


def _split(item: str, flag: str, form: str) -> tuple[str, str]:
    name, sep, rest = item.rpartition("=")
    if not sep or not name:
        raise UsageError(f"{flag} {item!r}: expected {form}")
    return name, rest


def _number(text: str) -> float | int | bool:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)


def _listing(specs: dict[str, FeedSpec]) -> str:
    return ", ".join(f"{name}{_shape_text(spec)}" for name, spec in specs.items()) or "none"


def _shape_text(spec: FeedSpec) -> str:
    if spec.elem_type <= 0:
        return " (not a tensor)"
    dims = ",".join(str(d) if isinstance(d, int) and d >= 0 else (str(d) if d else "?") for d in spec.dims)
    return f" {np.dtype(numpy_dtype(spec.elem_type)).name}[{dims}]"


def _unknown(flag: str, name: str, specs: dict[str, FeedSpec]) -> str:
    close = difflib.get_close_matches(name, list(specs), n=1, cutoff=0.5) or \
        [s for s in specs if s.lower() == name.lower()]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{flag} {name}: the model has no input {name!r}{hint}; its inputs: {_listing(specs)}"


def _check_shape(spec: FeedSpec, shape: tuple[int, ...], flag: str) -> None:
    if spec.elem_type <= 0:
        raise UsageError(f"{flag} {spec.name}: input {spec.name!r} is not a tensor; give it with --inputs "
                         f"FILE.npz ({spec.name}[0], {spec.name}[1]... for a sequence)")
    if spec.dims and len(shape) != len(spec.dims):
        raise UsageError(f"{flag} {spec.name}: shape {list(shape)} has rank {len(shape)}, the model "
                         f"declares {spec.name}{_shape_text(spec)} (rank {len(spec.dims)})")
    for axis, (given, declared) in enumerate(zip(shape, spec.dims)):
        if isinstance(declared, int) and declared >= 0 and given != declared:
            raise UsageError(f"{flag} {spec.name}: dim {axis} is {given}, but the model fixes it to "
                             f"{declared} ({spec.name}{_shape_text(spec)})")


def _checked_array(spec: FeedSpec, array: Any) -> Any:
    if isinstance(array, list):
        if spec.elem_type > 0:
            raise UsageError(f"--inputs {spec.name}: a sequence was given, but {spec.name!r} is a tensor"
                             f"{_shape_text(spec)}")
        return array
    array = np.asarray(array)
    if spec.elem_type <= 0:
        kind = spec.type_proto.WhichOneof("value") if spec.type_proto is not None else ""
        if kind == "sequence_type":
            raise UsageError(f"--inputs {spec.name}: {spec.name!r} is a sequence; store its items as "
                             f"{spec.name}[0], {spec.name}[1]... in the .npz")
        return array
    expected = np.dtype(numpy_dtype(spec.elem_type))
    if array.dtype != expected and not (array.dtype.kind in "OUS" and expected.kind in "OUS"):
        raise UsageError(f"--inputs {spec.name}: dtype {array.dtype.name}, the model expects "
                         f"{expected.name} ({spec.name}{_shape_text(spec)}); convert it, e.g. "
                         f"array.astype('{expected.name}')")
    _check_shape(spec, tuple(array.shape), "--inputs")
    return array
