"""Nodes: an op with read-only inputs changed by one mutator that keeps use lists in sync."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from graphopt.errors import IRError
from graphopt.ir.attributes import Attr, infer_attr
from graphopt.ir.ops import is_standard_domain
from graphopt.ir.value import Value

if TYPE_CHECKING:
    from graphopt.ir.graph import Graph


_GRAPH, _GRAPHS = 5, 10  # onnx.AttributeProto.GRAPH / GRAPHS


class Node:
    """One operator application.

    Example:
        >>> relu = Node("Relu", [x])          # doctest: +SKIP
        >>> relu.outputs[0].consumers()        # doctest: +SKIP

    ``inputs`` is a tuple (``None`` marks an omitted optional input); change it only with
    ``replace_input`` / ``set_inputs`` so that every value's use list stays the exact inverse.
    """

    __slots__ = ("op_type", "domain", "overload", "name", "_inputs", "_outputs", "attrs",
                 "doc_string", "metadata_props", "graph", "_prev", "_next", "__weakref__")

    def __init__(
        self,
        op_type: str,
        inputs: Sequence[Value | None] = (),
        attrs: Mapping[str, Any] | None = None,
        *,
        domain: str = "",
        num_outputs: int = 1,
        outputs: Sequence[Value] | None = None,
        name: str = "",
        overload: str = "",
    ) -> None:
        self.op_type = op_type
        self.domain = domain
        self.overload = overload
        self.name = name
        self.doc_string = ""
        self.metadata_props: dict[str, str] = {}
        self.graph: Graph | None = None
        self._prev: Node | None = None
        self._next: Node | None = None
        self.attrs: dict[str, Attr] = {k: infer_attr(k, v) for k, v in (attrs or {}).items()}
        self._inputs: tuple[Value | None, ...] = ()
        self.set_inputs(inputs)
        outs = list(outputs) if outputs is not None else [Value() for _ in range(num_outputs)]
        for i, out in enumerate(outs):
            if out.producer is not None:
                raise IRError(f"value {out!r} already has a producer; create a fresh Value")
            out._producer, out._output_index = self, i
        self._outputs: tuple[Value, ...] = tuple(outs)

    @property
    def inputs(self) -> tuple[Value | None, ...]:
        """The input values in slot order (read-only)."""
        return self._inputs

    @property
    def outputs(self) -> tuple[Value, ...]:
        """The output values in slot order."""
        return self._outputs

    def replace_input(self, index: int, value: Value | None) -> None:
        """Point input slot ``index`` at ``value``, updating both use lists."""
        old = self._inputs[index]
        if old is value:
            return
        if old is not None:
            old._remove_use(self, index)
        if value is not None:
            value._add_use(self, index)
        self._inputs = self._inputs[:index] + (value,) + self._inputs[index + 1:]

    def set_inputs(self, values: Iterable[Value | None]) -> None:
        """Replace all input slots at once (the list may change length)."""
        for i, old in enumerate(self._inputs):
            if old is not None:
                old._remove_use(self, i)
        self._inputs = tuple(values)
        for i, new in enumerate(self._inputs):
            if new is not None:
                new._add_use(self, i)

    def attr(self, name: str, default: Any = None) -> Any:
        """The Python value of attribute ``name``, or ``default`` when absent."""
        a = self.attrs.get(name)
        return default if a is None else a.value

    def set_attr(self, name: str, value: Any) -> None:
        """Set (or replace) an attribute, inferring its ONNX type from the Python value."""
        self.attrs[name] = infer_attr(name, value)

    def subgraphs(self) -> list[Graph]:
        """Graphs held in GRAPH / GRAPHS attributes (If branches, Loop and Scan bodies)."""
        found: list[Graph] = []
        for a in self.attrs.values():
            if a.type == _GRAPH:
                found.append(a.value)
            elif a.type == _GRAPHS:
                found.extend(a.value)
        return found

    def inner_nodes(self) -> list[Node]:
        """Every node inside this node's subgraphs, nested bodies included (empty for most nodes)."""
        return [inner for sub in self.subgraphs() for inner in sub.all_nodes()]

    def reads(self) -> list[Value]:
        """Values this node reads: its inputs, then what its subgraphs read (outer-scope captures and
        their own values alike; ``Graph.local_producer`` tells which are defined where)."""
        values = [v for v in self.inputs if v is not None]
        for inner in self.inner_nodes():
            values.extend(v for v in inner.inputs if v is not None)
        return values

    @property
    def qualified_type(self) -> str:
        """``op_type`` prefixed by its domain unless it is the default ONNX domain."""
        return self.op_type if is_standard_domain(self.domain) else f"{self.domain}::{self.op_type}"

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"Node({self.qualified_type}{label})"
