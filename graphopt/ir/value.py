"""Values: the edges of the IR, each owning the list of its uses."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator, Union

if TYPE_CHECKING:
    import onnx

    from graphopt.ir.graph import Graph
    from graphopt.ir.node import Node
    from graphopt.ir.tensor import Tensor

Dim = Union[int, str, None]
"""A dimension: a known size, a symbolic name, or unknown."""


class Value:
    """A tensor-valued edge: produced by a node output, a graph input, or a constant.

    Values compare by identity; ``name`` is boundary data for import/export only. ``uses()`` returns a
    snapshot of ``(node, input_index)`` pairs, so callers may rewire while iterating over it.
    """

    __slots__ = ("name", "dtype", "shape", "declared", "type_proto", "const", "_producer",
                 "_output_index", "_graph", "doc_string", "_uses", "__weakref__")

    def __init__(
        self,
        name: str | None = None,
        *,
        dtype: int | None = None,
        shape: tuple[Dim, ...] | None = None,
        const: Tensor | None = None,
        type_proto: onnx.TypeProto | None = None,
    ) -> None:
        self.name = name
        self.dtype = dtype if dtype is not None or const is None else const.dtype
        self.shape = shape if shape is not None or const is None else const.shape
        self.type_proto = type_proto  # only for non-tensor types (sequence, map, optional, sparse)
        # (dtype, shape) a file declared for a node output (value_info, graph output). Export writes
        # it back, but passes never rely on it: ``dtype``/``shape`` hold only what is known to be true
        # (graph inputs, constants, inference, or set by a pass).
        self.declared: tuple[int | None, tuple[Dim, ...] | None] | None = None
        self.const = const
        # links kept by Node and Graph only (read-only here): rewiring goes through their methods
        self._producer: Node | None = None
        self._output_index = 0
        self._graph: Graph | None = None
        self.doc_string = ""
        self._uses: dict[tuple[Node, int], None] = {}

    @property
    def producer(self) -> Node | None:
        """The node whose output this is (None for inputs and constants)."""
        return self._producer

    @property
    def output_index(self) -> int:
        """Which output of its producer this is."""
        return self._output_index

    @property
    def graph(self) -> Graph | None:
        """The graph that defines this value (its producer's, or the one owning it as input/constant)."""
        return self._graph

    def uses(self) -> list[tuple[Node, int]]:
        """A snapshot of the ``(consumer node, input index)`` pairs reading this value."""
        return list(self._uses)

    def consumers(self) -> list[Node]:
        """Distinct consumer nodes in first-use order."""
        return list(dict.fromkeys(node for node, _ in self._uses))

    def iter_uses(self) -> Iterator[tuple[Node, int]]:
        """Iterate uses without copying; do not mutate inputs while iterating."""
        return iter(self._uses)

    @property
    def num_uses(self) -> int:
        """How many input slots read this value."""
        return len(self._uses)

    @property
    def is_graph_output(self) -> bool:
        """True if the owning graph lists this value among its outputs."""
        return self._graph is not None and self._graph.is_output(self)

    @property
    def is_graph_input(self) -> bool:
        """True if this value is an input of its graph (never a constant, even with a default)."""
        return self.graph is not None and self.producer is None and self.const is None \
            and self.graph.is_input(self)

    @property
    def rank(self) -> int | None:
        """Rank when known."""
        return None if self.shape is None else len(self.shape)

    @property
    def static_shape(self) -> tuple[int, ...] | None:
        """The shape if every dimension is a known integer, else None."""
        if self.shape is None or not all(isinstance(d, int) for d in self.shape):
            return None
        return tuple(self.shape)  # type: ignore[arg-type]

    def _add_use(self, node: Node, index: int) -> None:
        self._uses[(node, index)] = None

    def _remove_use(self, node: Node, index: int) -> None:
        self._uses.pop((node, index), None)

    def __repr__(self) -> str:
        kind = "const" if self.const is not None else (
            f"{self.producer.op_type}:{self.output_index}" if self.producer else "input")
        return f"Value({self.name!r}, {kind})"
