"""The machinery behind ``graphopt.testing.strategies``: the pool of tensors, the build context, op specs.

A model is built step by step. Every tensor a step may read sits in a *pool* with its dtype, its static
shape and a bound on its magnitude (assuming feeds in [-1, 1]); each op builder checks what it needs on
the pool, draws its parameters from sets it computed to be feasible, works out its output shape and
bound itself and puts the result back. Nothing is generated and then filtered (no assume, no
filter, no rejection), and every draw shrinks towards the simplest choice.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

FLOAT, DOUBLE, FLOAT16 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16
INT32, INT64, BOOL = TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL
FLOATS = frozenset({FLOAT, DOUBLE, FLOAT16})
NO_DOUBLE = frozenset({FLOAT, FLOAT16})  # onnxruntime's CPU kernels of some ops lack float64
INTS = frozenset({INT32, INT64})
ALL = FLOATS | INTS

MAX_DIM, MAX_RANK, MAX_ELEMENTS = 8, 4, 512
# Largest magnitude a tensor may reach, per dtype: far from overflow (a float16 sum of 512 such
# values still fits) and small enough for integer products.
LIMIT = {FLOAT16: 100.0, FLOAT: 1e5, DOUBLE: 1e6, INT32: 1e6, INT64: 1e6}
INT_FEED_MAX = 3  # integer feeds are drawn in [0, INT_FEED_MAX]; integer constants in [-2, 2]
INT64_MAX, INT64_MIN = 2**63 - 1, -(2**63)
ANY_RANK = (1, 2, 3, 4)


def numel(shape: Sequence[int]) -> int:
    """Number of elements of a static shape."""
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def fits(shape: Sequence[int]) -> bool:
    """True if a shape respects the size limits of pool tensors."""
    return 1 <= len(shape) <= MAX_RANK and all(1 <= d <= MAX_DIM for d in shape) \
        and numel(shape) <= MAX_ELEMENTS


def broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """The numpy broadcast of two shapes, or None if they do not broadcast."""
    out = []
    for x, y in itertools.zip_longest(reversed(a), reversed(b), fillvalue=1):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(reversed(out))


def divisors(n: int) -> list[int]:
    """Positive divisors of n in increasing order."""
    return [d for d in range(1, n + 1) if n % d == 0]


def np_dtype(dtype: int) -> np.dtype:
    """The numpy dtype of an ONNX element type."""
    return np.dtype(helper.tensor_dtype_to_np_dtype(dtype))


@dataclass
class T:
    """A pool tensor: name, element type, static shape and a bound on its magnitude."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    bound: float
    dead: bool = False  # produced by a dead-branch step: only dead steps may read it
    produced: bool = True  # False for graph inputs
    shape_valued: bool = False  # computed from a Shape: onnxruntime propagates it as 1-D shape data

    @property
    def rank(self) -> int:
        """Number of dimensions."""
        return len(self.shape)


Builder = Callable[["Ctx", T], None]


@dataclass(frozen=True)
class OpSpec:
    """One entry of the op table: the op it emits, where it applies, and its builder."""

    op: str
    build: Builder
    dtypes: frozenset[int] = FLOATS
    accepts: Callable[[Ctx, T], bool] = lambda ctx, t: True
    min_opset: int = 1
    total_ranks: tuple[int, ...] = ()  # ranks on which it applies to any input tensor (bound 1)
    preserves: bool = False  # output has the input's shape and dtype (usable inside If branches)
    flag: str = ""  # Config attribute that must be true for this entry

    def applies(self, ctx: Ctx, t: T) -> bool:
        """True if this entry can take ``t`` as its main input."""
        return t.dtype in self.dtypes and self.accepts(ctx, t)


@dataclass(frozen=True)
class Config:
    """The validated arguments of ``models``."""

    ops: frozenset[str]
    specs: tuple[OpSpec, ...]  # the op table entries ``ops`` and the flags allow
    min_nodes: int
    max_nodes: int
    opset: int
    input_shapes: tuple[tuple[int, ...], ...] | None
    dtypes: tuple[int, ...]
    constants: bool
    dead_branches: bool
    shape_subgraphs: bool
    if_subgraphs: bool
    dynamic_batch: bool

    def __repr__(self) -> str:
        args = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "specs"}
        args["ops"] = sorted(self.ops)
        return "models(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """Hypothesis' pretty printer: the compact repr, not every field of the op table."""
        printer.text(repr(self))

    def allows(self, *ops: str) -> bool:
        """True if every op type in ``ops`` may appear in the model."""
        return all(op in self.ops for op in ops)


@dataclass
class Ctx:
    """The state of one model draw (or of one If branch inside it)."""

    draw: Callable[[st.SearchStrategy[Any]], Any]
    cfg: Config
    rng: np.random.Generator
    counter: Iterator[int]
    budget: int
    root: Ctx | None = None
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)  # used on the root only
    pool: list[T] = field(default_factory=list)
    reserve: int = 1  # nodes the current step must keep for later (its own node, a live step)
    dead: bool = False  # the current step builds a dead branch
    keep: tuple[int, ...] | None = None  # inside an If branch: the shape binary ops must keep
    last: T | None = None
    batch: int | None = None  # concrete size of the symbolic batch dimension "N"

    # ----- draws -------------------------------------------------------------------------------
    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi], shrinking towards lo."""
        return lo if lo >= hi else self.draw(st.integers(lo, hi))

    def choice(self, options: Sequence[Any]) -> Any:
        """One of ``options``, shrinking towards the first."""
        if not options:
            raise RuntimeError("graphopt.testing bug: nothing to choose from")
        return options[0] if len(options) == 1 else self.draw(st.sampled_from(options))

    def flag(self) -> bool:
        """A fair coin, shrinking towards False."""
        return self.draw(st.booleans())

    def rarely(self) -> bool:
        """True about one time in four, shrinking towards False."""
        return self.draw(st.integers(0, 3)) == 3

    def subset(self, items: Sequence[Any], lo: int, hi: int) -> list[Any]:
        """Between lo and hi distinct items in drawn order (picked one by one: nothing is rejected)."""
        rest = list(items)
        return [rest.pop(self.integer(0, len(rest) - 1)) for _ in range(self.integer(lo, hi))]

    def values(self, shape: Sequence[int], dtype: int, scale: float = 1.0) -> np.ndarray:
        """Constant values: floats uniform in [-scale, scale], integers in [-2, 2]."""
        if dtype in INTS:
            return self.rng.integers(-2, 3, size=tuple(shape)).astype(np_dtype(dtype))
        return (self.rng.uniform(-1.0, 1.0, size=tuple(shape)) * scale).astype(np_dtype(dtype))

    # ----- graph construction ------------------------------------------------------------------
    def fresh(self) -> str:
        """A new name; one generator names values, nodes and initializers of all graphs."""
        return f"t{next(self.counter)}"

    def extra(self, k: int = 1) -> bool:
        """True if ``k`` more helper nodes fit in the budget besides what the step must keep."""
        return self.budget - k >= self.reserve

    def node(self, op: str, inputs: Sequence[str], n_out: int = 1, **attrs: Any) -> list[str]:
        """Append a node (None attributes are left out) and return its output names."""
        outs = [self.fresh() for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=self.fresh(), **attrs))
        self.budget -= 1
        return outs

    def helper_node(self, op: str, inputs: Sequence[str], **attrs: Any) -> str:
        """Append a helper node the caller reserved room for (``reserve += k`` before its constants)."""
        self.reserve -= 1
        return self.node(op, inputs, **attrs)[0]

    def add(self, name: str, dtype: int, shape: Sequence[int], bound: float) -> T:
        """Put a step's output into the pool."""
        shape = tuple(int(d) for d in shape)
        if not fits(shape) or not bound <= LIMIT[dtype]:
            raise RuntimeError(f"graphopt.testing bug: {name} {shape} bound {bound} out of limits")
        t = T(name, dtype, shape, float(bound), dead=self.dead)
        self.pool.append(t)
        if not self.dead:
            self.last = t
        return t

    def emit(self, op: str, inputs: Sequence[str], dtype: int, shape: Sequence[int], bound: float,
             **attrs: Any) -> T:
        """Append a one-output node and put its output into the pool."""
        t = self.add(self.node(op, inputs, **attrs)[0], dtype, shape, bound)
        from_shape = {p.name for p in self.pool if p.shape_valued}
        t.shape_valued = op == "Shape" or any(name in from_shape for name in inputs)
        return t

    def const(self, array: np.ndarray) -> str:
        """A constant: an initializer, or sometimes a Constant node when the budget allows."""
        if self.cfg.constants and self.cfg.allows("Constant") and self.extra() and self.rarely():
            return self.node("Constant", [], **_constant_attr(array, self.flag()))[0]
        name = self.fresh()
        self.inits.append(numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def ints(self, values: Sequence[int]) -> str:
        """A 1-D int64 constant (axes, pads, shapes...)."""
        return self.const(np.array(list(values), dtype=np.int64))

    def scalar(self, value: float, dtype: int) -> str:
        """A 0-d constant of ``dtype``."""
        return self.const(np.array(value, dtype=np_dtype(dtype)))

    def new_input(self, dtype: int, shape: Sequence[int], batch: bool = False) -> str:
        """Declare a new graph input of the main graph (dim 0 symbolic "N" when ``batch``)."""
        root = self.root or self
        name = self.fresh()
        dims: list[int | str] = list(shape)
        if batch and root.cfg.dynamic_batch:
            dims[0] = "N"
        root.inputs.append(helper.make_tensor_value_info(name, dtype, dims))
        return name

    def weight(self, shape: Sequence[int], dtype: int, scale: float = 1.0) -> tuple[str, np.ndarray | None]:
        """A weight or second operand: a constant (values returned), or a graph input if not ``constants``."""
        if self.cfg.constants:
            array = self.values(shape, dtype, scale)
            return self.const(array), array
        return self.new_input(dtype, shape), None

    def feed_bound(self, dtype: int) -> float:
        """Largest magnitude of a weight that is a graph input."""
        return float(INT_FEED_MAX) if dtype in INTS else 1.0

    def gain(self, dtype: int, fan_in: int) -> float:
        """Worst sum of |weights| over ``fan_in`` weights made by ``weight`` (with scale 1/sqrt(fan_in))."""
        if dtype in INTS:
            return float(fan_in * (2 if self.cfg.constants else INT_FEED_MAX))
        return float(np.sqrt(fan_in)) if self.cfg.constants else float(fan_in)

    def within(self, dtype: int, bound: float) -> bool:
        """True if a magnitude bound is allowed for ``dtype``."""
        return bound <= LIMIT[dtype]

    def operands(self, dtype: int) -> list[T]:
        """Pool tensors of ``dtype`` the current step may read besides its main input."""
        return [t for t in reversed(self.pool) if t.dtype == dtype and (self.dead or not t.dead)]

    def child(self, budget: int) -> Ctx:
        """A context for an If branch: same names and draws, reads the enclosing pool."""
        sub = Ctx(self.draw, self.cfg, self.rng, self.counter, budget, root=self.root or self)
        # what this step may read, as live tensors of the branch (a dead If may read dead tensors)
        sub.pool = [dataclasses.replace(t, dead=False) for t in self.pool if self.dead or not t.dead]
        return sub


def _constant_attr(array: np.ndarray, short: bool) -> dict[str, Any]:
    """Attributes of a Constant node holding ``array`` (the short value_* forms when ``short``)."""
    if short and array.dtype == np.float32 and array.ndim <= 1:
        return {"value_float": float(array)} if array.ndim == 0 else {"value_floats": array.tolist()}
    if short and array.dtype == np.int64 and array.ndim <= 1:
        return {"value_int": int(array)} if array.ndim == 0 else {"value_ints": array.tolist()}
    return {"value": numpy_helper.from_array(np.array(array, order="C"), "")}


def max_abs(array: np.ndarray | None, default: float) -> float:
    """Largest magnitude in ``array`` (``default`` when it is a graph input, None)."""
    if array is None:
        return default
    return float(np.max(np.abs(array.astype(np.float64)))) if array.size else 0.0


# Ops that keep shape data 1-D. onnxruntime propagates Shape outputs as symbolic shape data and
# rejects valid models once such data becomes 2-D (Unsqueeze of a Shape, then Add: "Invalid rank for
# Add broadcasting"), so shape-valued tensors only feed these.
SHAPE_DATA_OPS = frozenset({"Gather", "Concat", "Cast", "Identity", "Add", "Sub", "Mul", "Slice", "Abs",
                            "Relu", "Reshape"})


def _takes(spec: OpSpec, ctx: Ctx, t: T) -> bool:
    """Whether ``spec`` may take ``t`` as its main input (shape data stays 1-D)."""
    if t.shape_valued and spec.op not in SHAPE_DATA_OPS:
        return False
    return spec.applies(ctx, t)


def fill(ctx: Ctx, specs: Sequence[OpSpec], least: int,
         primary: Callable[[T], bool] = lambda t: True) -> None:
    """Spend the node budget in steps: each draws an op that applies, then its main input.

    A step may also be skipped (the first, simplest choice) while ``least`` nodes and a live output
    remain reachable: a shrinking example then loses steps without having to re-draw later ones.
    """
    while ctx.budget > 0:
        ctx.dead = ctx.cfg.dead_branches and ctx.budget >= 2 and ctx.rarely()
        ctx.reserve = 2 if ctx.dead else 1
        usable = [t for t in reversed(ctx.pool) if (ctx.dead or not t.dead) and primary(t)]
        eligible: list[OpSpec | None] = [s for s in specs if any(_takes(s, ctx, t) for t in usable)]
        if len(ctx.nodes) + ctx.budget > least and (ctx.last is not None or ctx.budget > 1):
            eligible.insert(0, None)
        spec = ctx.choice(eligible)
        if spec is None:
            ctx.budget -= 1
            continue
        spec.build(ctx, ctx.choice([t for t in usable if _takes(spec, ctx, t)]))
    ctx.dead, ctx.reserve = False, 1
