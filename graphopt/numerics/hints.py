"""What the model says about its own inputs: the role of each dynamic dimension (batch, image side,
sequence length, an inner size) and the values each input should take (indices below the table they
index, the constants a condition compares with, positive arguments of Log/Sqrt, shapes that Reshape
accepts...). Check inputs built from these exercise the model instead of tripping over it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from graphopt.ir.model import Model
from graphopt.ir.node import Node
from graphopt.ir.value import Value

# ops that pass values through unchanged (or only reshaped), so a use behind them is still a use
TRANSPARENT = frozenset({"Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand",
                         "CastLike"})
# ops between an image input and its first Conv that keep the image's axes
IMAGE_PATH = frozenset({"Cast", "Identity", "Sub", "Div", "Mul", "Add", "BatchNormalization", "Resize",
                        "Pad", "Clip", "Relu", "Concat", "Slice", "InstanceNormalization"})
CONV_LIKE = frozenset({"Conv", "ConvTranspose", "ConvInteger", "QLinearConv", "MaxPool", "AveragePool",
                       "LpPool"})
RECURRENT = frozenset({"LSTM", "GRU", "RNN"})
COMPARE = frozenset({"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"})
_BATCH_NAME = re.compile(r"^(n|b|bs|batch(_?size)?|num_images)$", re.IGNORECASE)
_LENGTH_NAME = re.compile(r"(seq|len|time|token|frame|sample|^t$)", re.IGNORECASE)
_SPATIAL_NAME = re.compile(r"^(h|w|height|width|img_h|img_w)$", re.IGNORECASE)

# (op, input slot) -> a value every run accepts, for inputs that hold structure rather than data
STRUCTURAL: dict[tuple[str, int], str] = {
    ("Reshape", 1): "reshape", ("Expand", 1): "ones", ("Tile", 1): "ones", ("ConstantOfShape", 0): "two",
    ("Range", 0): "zero", ("Range", 1): "four", ("Range", 2): "one",
    ("Slice", 1): "zero", ("Slice", 2): "big", ("Slice", 3): "arange", ("Slice", 4): "one",
    ("TopK", 1): "one", ("Unsqueeze", 1): "arange", ("Pad", 1): "zero", ("Pad", 3): "arange",
    ("Resize", 2): "ones", ("Upsample", 1): "ones", ("OneHot", 1): "four",
    ("NonMaxSuppression", 2): "three", ("NonMaxSuppression", 3): "half", ("NonMaxSuppression", 4): "zero",
    ("Clip", 1): "minus-half", ("Clip", 2): "half", ("Dropout", 1): "half", ("Dropout", 2): "false",
    ("Trilu", 1): "zero", ("CumSum", 1): "zero", ("Loop", 0): "three", ("Loop", 1): "true",
    ("SequenceAt", 1): "zero", ("SequenceInsert", 2): "zero", ("SequenceErase", 1): "zero",
    ("ReverseSequence", 1): "one", ("LSTM", 4): "one", ("GRU", 4): "one", ("RNN", 4): "one",
    ("STFT", 1): "two", ("DFT", 1): "zero",
}
for _reduce in ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare", "Squeeze"):
    STRUCTURAL[(_reduce, 1)] = "arange" if _reduce != "Squeeze" else "unit-axes"
# (op, slot) -> index of the data input and the attribute naming the indexed axis
INDEX_USES: dict[tuple[str, int], tuple[int, str | None]] = {
    ("Gather", 1): (0, "axis"), ("GatherElements", 1): (0, "axis"), ("GatherND", 1): (0, None),
    ("ScatterElements", 1): (0, "axis"), ("Scatter", 1): (0, "axis"), ("ScatterND", 1): (0, None),
    ("RoiAlign", 2): (0, None), ("MaxRoiPool", 1): (0, None),
}
POSITIVE = frozenset({("Log", 0), ("Sqrt", 0), ("Reciprocal", 0), ("Pow", 0), ("BatchNormalization", 4),
                      ("Acosh", 0)})
UNIT = frozenset({("Acos", 0), ("Asin", 0), ("Atanh", 0)})


@dataclass
class ValueHint:
    """How to fill one input: index bounds, compared constants, a sign or domain, a structural value."""

    low: int | None = None  # integers in [low, high)
    high: int | None = None
    choices: list[float] = field(default_factory=list)  # constants the graph compares the input with
    domain: str = ""  # "positive" | "unit" | "" (floats)
    structural: str = ""  # a STRUCTURAL rule, when the input holds a shape, an axis, a count...
    nonzero: bool = False
    # floats the model standardizes itself ((x - mean) / std at its entry): x ~ center + spread * N(0,1)
    center: float = 0.0
    spread: float = 1.0
    reasons: list[str] = field(default_factory=list)

    def add_bound(self, high: int, reason: str) -> None:
        """Intersect with indices in [-high, high) (we use [0, high))."""
        self.low = 0
        self.high = high if self.high is None else min(self.high, high)
        self.reasons.append(reason)


@dataclass
class ModelHints:
    """Per input: the role of each dynamic dim (by key) and a ValueHint."""

    roles: dict[str, str] = field(default_factory=dict)  # dim key -> batch|spatial|length|inner|fixed:N
    values: dict[str, ValueHint] = field(default_factory=dict)


def dim_key(input_name: str, axis: int, dim: Any) -> str:
    """Dims sharing a symbol share a key (and a value); an unnamed dynamic dim is its own key."""
    return f"${dim}" if isinstance(dim, str) and dim and dim != "?" else f"{input_name}:{axis}"


def analyze(model: Model) -> ModelHints:
    """Roles and value hints for every graph input that must be fed."""
    hints = ModelHints()
    graph = model.graph
    for value in graph.inputs:
        if value in graph.input_defaults or value.name is None:
            continue
        hints.values[value.name] = _value_hint(value)
        dims = list(value.shape or ())
        for axis, role in _roles(value, dims).items():
            key = dim_key(value.name, axis, dims[axis])
            hints.roles[key] = _stronger(hints.roles.get(key), role)
    return hints


_PRIORITY = ("batch", "fixed", "spatial", "length", "inner")


def _stronger(old: str | None, new: str) -> str:
    if old is None:
        return new
    rank = {r: i for i, r in enumerate(_PRIORITY)}
    return old if rank[old.split(":")[0]] <= rank[new.split(":")[0]] else new


def uses_through(value: Value, through: frozenset[str],
                 depth: int = 4) -> list[tuple[Node, int, list[int] | None]]:
    """``(node, slot, perm)`` uses of ``value``, looking behind ops in ``through``; ``perm`` composes
    the Transposes passed on the way (None when an op on the way reorders axes in another way)."""
    found: list[tuple[Node, int, list[int] | None]] = []
    frontier: list[tuple[Value, list[int] | None]] = [(value, None)]
    seen: set[int] = set()
    for _ in range(depth + 1):
        nxt: list[tuple[Value, list[int] | None]] = []
        for current, perm in frontier:
            if id(current) in seen:
                continue
            seen.add(id(current))
            for node, slot in current.uses():
                found.append((node, slot, perm))
                if node.op_type == "Transpose" and slot == 0 and node.attr("perm") is not None:
                    p = [int(a) for a in node.attr("perm")]
                    nxt.append((node.outputs[0], [perm[a] for a in p] if perm else p))
                elif node.op_type in through and slot == 0 and node.outputs:
                    keeps_axes = node.op_type not in ("Unsqueeze", "Squeeze", "Reshape", "Flatten")
                    nxt.append((node.outputs[0], perm if keeps_axes else None))
        frontier = nxt
    return found


def _roles(value: Value, dims: list[Any]) -> dict[int, str]:
    dynamic = [i for i, d in enumerate(dims) if not (isinstance(d, int) and d >= 0)]
    if not dynamic:
        return {}
    roles = {axis: _role_by_name(dims[axis]) or _role_by_position(axis, dims) for axis in dynamic}
    for node, slot, perm in uses_through(value, IMAGE_PATH | {"Unsqueeze"}, depth=6):
        if node.op_type in CONV_LIKE and slot == 0 and len(dims) >= 3:
            axes = perm if perm is not None and len(perm) == len(dims) else list(range(len(dims)))
            for conv_axis, axis in enumerate(axes):
                if axis in roles and conv_axis >= 2 and not _role_by_name(dims[axis]):
                    roles[axis] = "spatial" if len(dims) >= 4 else "length"
            channel = _conv_channels(node)
            if channel and axes[1] in roles and len(axes) == len(dims):
                roles[axes[1]] = f"fixed:{channel}"
            break
        if node.op_type in RECURRENT and len(dims) == 3:
            if slot == 0 and perm is None:
                roles.update({a: r for a, r in ((0, "length"), (1, "batch")) if a in roles})
            elif slot in (5, 6) and perm is None and 1 in roles:
                roles[1] = "batch"
            break
    return roles


def _role_by_name(dim: Any) -> str | None:
    if not isinstance(dim, str) or not dim:
        return None
    if _BATCH_NAME.match(dim):
        return "batch"
    if _SPATIAL_NAME.match(dim):
        return "spatial"
    if _LENGTH_NAME.search(dim):
        return "length"
    return None


def _role_by_position(axis: int, dims: list[Any]) -> str:
    rank = len(dims)
    if axis == 0 and rank >= 2:
        return "batch"
    if 0 < axis < rank - 1 and isinstance(dims[axis - 1], int) and dims[axis - 1] >= 0 \
            and isinstance(dims[axis + 1], int) and dims[axis + 1] >= 0 and not dims[axis]:
        return "inner"  # an unnamed dim between static ones: a state's batch, a cache's length
    if rank in (4, 5) and axis >= 1:
        channels_first = isinstance(dims[1], int) and 0 < dims[1] <= 4
        channels_last = isinstance(dims[-1], int) and 0 < dims[-1] <= 4
        if channels_first or not channels_last:
            return "spatial" if axis >= 2 else "length"
        return "spatial" if axis < rank - 1 else "length"
    return "length"


def _conv_channels(node: Node) -> int | None:
    if node.op_type not in ("Conv", "ConvInteger") or len(node.inputs) < 2 or node.inputs[1] is None:
        return None
    weight = node.inputs[1]
    shape = weight.const.shape if weight.const is not None else weight.static_shape
    if not shape or len(shape) < 2:
        return None
    return int(shape[1]) * int(node.attr("group", 1) or 1)


AFFINE = frozenset({"Sub", "Add", "Mul", "Div"})


def _normalization(value: Value) -> tuple[float, float, str] | None:
    """When ``value`` enters the model through a chain of Sub/Add/Mul/Div by constants (an image's
    ``(x / 255 - mean) / std``), the center and spread of the inputs that chain maps to N(0,1), and
    which nodes said so; per-channel constants count by their mean. None when there is no such chain."""
    scale, shift = 1.0, 0.0  # the chain so far computes scale * x + shift
    current, names = value, []
    while True:
        uses = current.uses()
        if len(uses) != 1:
            break
        node, slot = uses[0]
        if node.op_type in TRANSPARENT - {"Reshape", "Expand"} and slot == 0:
            current = node.outputs[0]
            continue
        other = node.inputs[1 - slot] if node.op_type in AFFINE and len(node.inputs) == 2 else None
        if other is None or other.const is None or other.const.size > 4096 or (
                node.op_type in ("Sub", "Div") and slot != 0):
            break
        constant = float(other.const.numpy().astype(float).mean())
        if node.op_type in ("Mul", "Div") and constant == 0:
            break
        if node.op_type == "Sub":
            shift -= constant
        elif node.op_type == "Add":
            shift += constant
        else:
            factor = constant if node.op_type == "Mul" else 1.0 / constant
            scale, shift = scale * factor, shift * factor
        names.append(f"{node.op_type} {node.name!r}" if node.name else node.op_type)
        current = node.outputs[0]
    if not names or (scale, shift) == (1.0, 0.0):
        return None
    return -shift / scale, 1.0 / abs(scale), f"standardized by the model: {', '.join(names)}"


def _value_hint(value: Value) -> ValueHint:
    hint = ValueHint()
    if (normal := _normalization(value)) is not None:
        hint.center, hint.spread, why = normal
        hint.reasons.append(why)
    for node, slot, _ in uses_through(value, TRANSPARENT):
        key = (node.op_type, slot)
        label = f"{node.op_type} {node.name!r}" if node.name else node.op_type
        if key in STRUCTURAL and not hint.structural:
            hint.structural = STRUCTURAL[key]
            hint.reasons.append(f"input {slot} of {label}")
        elif key in INDEX_USES:
            bound = _index_bound(node, *INDEX_USES[key])
            if bound:
                hint.add_bound(bound, f"index into {label} (size {bound})")
        elif node.op_type == "OneHot" and slot == 0:
            depth = node.inputs[1].const if len(node.inputs) > 1 and node.inputs[1] is not None else None
            if depth is not None and depth.size == 1:
                hint.add_bound(max(int(depth.numpy().reshape(-1)[0]), 1), f"index of {label}")
        elif node.op_type in COMPARE:
            _add_choices(hint, node, slot, label)
        elif node.op_type == "If" and slot == 0:
            hint.choices = hint.choices or [1.0, 0.0]
            hint.reasons.append(f"condition of {label}")
        elif node.op_type in ("Div", "Mod") and slot == 1:
            hint.nonzero = True
        elif key in POSITIVE:
            hint.domain = "positive"
        elif key in UNIT:
            hint.domain = "unit"
    return hint


def _index_bound(node: Node, data_slot: int, axis_attr: str | None) -> int | None:
    data = node.inputs[data_slot] if len(node.inputs) > data_slot else None
    if data is None:
        return None
    shape = data.const.shape if data.const is not None else data.shape
    if not shape:
        return None
    axis = int(node.attr(axis_attr, 0) or 0) if axis_attr else 0
    axis = axis + len(shape) if axis < 0 else axis
    dims = [shape[axis]] if axis_attr else [d for d in shape[:1]]
    known = [int(d) for d in dims if isinstance(d, int) and d > 0]
    return min(known) if known else None


def _add_choices(hint: ValueHint, node: Node, slot: int, label: str) -> None:
    other = node.inputs[1 - slot] if len(node.inputs) == 2 else None
    if other is None or other.const is None or other.const.size > 16:
        return
    values = [float(v) for v in other.const.numpy().reshape(-1)]
    for v in values:
        if v not in hint.choices:
            hint.choices.append(v)
    if node.op_type != "Equal":  # both sides of an inequality
        hint.choices.extend(v + 1 for v in values if v + 1 not in hint.choices)
    else:  # and a value that differs (half of it: a rate or size's usual alternative, 16000 -> 8000)
        hint.choices.extend(o for v in values if (o := v / 2 if v and v % 2 == 0 else v + 1)
                            not in hint.choices)
    hint.reasons.append(f"compared with {', '.join(f'{v:g}' for v in values)} in {label}")
