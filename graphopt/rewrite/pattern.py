"""Tree patterns rooted at the last op, with named captures.

Example:
    >>> pattern = Op("Relu", Op("BatchNormalization", Op("Conv", Var("x"), Const("w"), Opt(Const("b"))),
    ...                        Const("scale"), Const("bias"), Const("mean"), Const("var"),
    ...                        capture="bn"), capture="relu")          # doctest: +SKIP

A pattern matches a value: ``Op`` matches the value's producer (its first output unless ``output`` says
otherwise), ``Var`` any value, ``Const`` a constant value, ``Opt`` an omitted or present input.
``Add``/``Mul``/``Max``/``Min``/``Sum`` (and any ``commutative=True`` Op) also match with inputs swapped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Union

from graphopt.ir.node import Node
from graphopt.ir.ops import COMMUTATIVE_OPS, STANDARD_DOMAINS, is_standard_domain
from graphopt.ir.value import Value

AttrTest = Union[Any, Callable[[Any], bool]]


@dataclass(frozen=True)
class Var:
    """Any value (optionally satisfying ``where``), captured as ``name``."""

    name: str
    where: Callable[[Value], bool] | None = None


@dataclass(frozen=True)
class Const:
    """A constant value (``value.const`` set), captured as ``name``."""

    name: str
    where: Callable[[Value], bool] | None = None


@dataclass(frozen=True)
class Opt:
    """An optional input: matches an omitted (None or missing) input, or ``inner``."""

    inner: Var | Const | Op


@dataclass(frozen=True)
class Op:
    """A node of ``op_type`` whose inputs match ``inputs`` (extra trailing node inputs must be None).

    ``attrs`` maps attribute names to required values or predicates (a predicate receives None when
    the attribute is absent). ``capture`` names the matched node.
    """

    op_type: str
    inputs: tuple[Var | Const | Opt | Op, ...]
    attrs: dict[str, AttrTest] = field(default_factory=dict)
    capture: str | None = None
    domain: str = ""
    output: int = 0
    commutative: bool | None = None

    def __init__(self, op_type: str, *inputs: Var | Const | Opt | Op,
                 attrs: dict[str, AttrTest] | None = None, capture: str | None = None, domain: str = "",
                 output: int = 0, commutative: bool | None = None) -> None:
        object.__setattr__(self, "op_type", op_type)
        object.__setattr__(self, "inputs", tuple(inputs))
        object.__setattr__(self, "attrs", dict(attrs or {}))
        object.__setattr__(self, "capture", capture)
        object.__setattr__(self, "domain", domain)
        object.__setattr__(self, "output", output)
        object.__setattr__(self, "commutative", commutative)

    def __hash__(self) -> int:
        return hash((self.op_type, self.inputs, self.capture, self.domain, self.output))


@dataclass
class Match:
    """What a pattern matched: captured values and nodes, and every matched node (root first)."""

    root: Node
    values: dict[str, Value] = field(default_factory=dict)
    nodes: dict[str, Node] = field(default_factory=dict)
    matched: list[Node] = field(default_factory=list)

    def __getitem__(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        return self.nodes[name]

    def get(self, name: str) -> Any:
        """A capture, or None when an optional part was absent."""
        return self.values.get(name, self.nodes.get(name))


def match(pattern: Op, node: Node) -> Match | None:
    """Match ``pattern`` with ``node`` as its root; None when it does not match."""
    result = Match(node)
    return result if _match_node(pattern, node, result) else None


def _match_node(pattern: Op, node: Node, result: Match) -> bool:
    if node.op_type != pattern.op_type or node.domain not in _domains(pattern.domain):
        return False
    bound = result.nodes.get(pattern.capture) if pattern.capture else None
    if bound is not None and bound is not node:
        return False  # the same capture twice must be the same node (as for Var and Const)
    for name, test in pattern.attrs.items():
        actual = node.attr(name)
        if callable(test) and not isinstance(test, (list, tuple)):
            if not test(actual):
                return False
        elif actual != test:
            return False
    commutative = pattern.commutative if pattern.commutative is not None else \
        pattern.op_type in COMMUTATIVE_OPS
    orders = [list(node.inputs)]
    if commutative and len(node.inputs) == 2:
        orders.append([node.inputs[1], node.inputs[0]])
    for inputs in orders:
        trial = Match(result.root, dict(result.values), dict(result.nodes), list(result.matched))
        if _match_inputs(pattern, inputs, trial):
            if pattern.capture:
                trial.nodes[pattern.capture] = node
            if node not in trial.matched:
                trial.matched.insert(len(result.matched), node)
            result.values, result.nodes, result.matched = trial.values, trial.nodes, trial.matched
            return True
    return False


def _domains(domain: str) -> tuple[str, ...]:
    return STANDARD_DOMAINS if is_standard_domain(domain) else (domain,)


def _match_inputs(pattern: Op, inputs: list[Value | None], result: Match) -> bool:
    if len(inputs) > len(pattern.inputs) and any(v is not None for v in inputs[len(pattern.inputs):]):
        return False
    for index, sub in enumerate(pattern.inputs):
        value = inputs[index] if index < len(inputs) else None
        if not _match_value(sub, value, result):
            return False
    return True


def _match_value(sub: Var | Const | Opt | Op, value: Value | None, result: Match) -> bool:
    if isinstance(sub, Opt):
        return value is None or _match_value(sub.inner, value, result)
    if value is None:
        return False
    if isinstance(sub, (Var, Const)):
        if isinstance(sub, Const) and value.const is None:
            return False
        if sub.where is not None and not sub.where(value):
            return False
        known = result.values.get(sub.name)
        if known is not None and known is not value:
            return False  # the same name twice must be the same value
        result.values[sub.name] = value
        return True
    producer = value.producer
    if producer is None or value.output_index != sub.output or producer.graph is not result.root.graph:
        return False
    return _match_node(sub, producer, result)
