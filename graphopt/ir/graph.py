"""Graphs: an ordered node list that tolerates removal during iteration, plus inputs/outputs/constants."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from graphopt.errors import IRError
from graphopt.ir.node import Node
from graphopt.ir.value import Value

if TYPE_CHECKING:
    from graphopt.ir.tensor import Tensor


class ValueList(list):  # type: ignore[type-arg]
    """A list of values that counts its members by identity, so membership is constant time; every
    list mutator keeps the count."""

    __slots__ = ("_count",)

    def __init__(self, values: Iterable[Value] = ()) -> None:
        super().__init__(values)
        self._count: dict[int, int] = {}
        for value in self:
            self._add(value)

    def __reduce__(self) -> tuple:  # type: ignore[type-arg]
        return (ValueList, (list(self),))  # copies recount: the counts are keyed by identity

    def holds(self, value: Value) -> bool:
        """True if ``value`` itself (not an equal one) is in the list."""
        return id(value) in self._count

    def _add(self, value: Value) -> None:
        self._count[id(value)] = self._count.get(id(value), 0) + 1

    def _drop(self, value: Value) -> None:
        left = self._count[id(value)] - 1
        if left:
            self._count[id(value)] = left
        else:
            del self._count[id(value)]

    def _recount(self) -> None:
        self._count = {}
        for value in self:
            self._add(value)

    def append(self, value: Value) -> None:
        super().append(value)
        self._add(value)

    def extend(self, values: Iterable[Value]) -> None:
        for value in list(values):
            self.append(value)

    def __iadd__(self, values: Iterable[Value]) -> ValueList:  # type: ignore[override,misc]
        self.extend(values)
        return self

    def insert(self, index: int, value: Value) -> None:  # type: ignore[override]
        super().insert(index, value)
        self._add(value)

    def pop(self, index: int = -1) -> Value:  # type: ignore[override]
        value = super().pop(index)
        self._drop(value)
        return value

    def remove(self, value: Value) -> None:
        super().remove(value)
        self._drop(value)

    def clear(self) -> None:
        super().clear()
        self._count = {}

    def __setitem__(self, index, value) -> None:  # type: ignore[no-untyped-def]
        super().__setitem__(index, value)
        self._recount()

    def __delitem__(self, index) -> None:  # type: ignore[no-untyped-def]
        super().__delitem__(index)
        self._recount()

    def __imul__(self, times: int) -> ValueList:  # type: ignore[override,misc]
        super().__imul__(times)
        self._recount()
        return self


class Graph:
    """A (sub)graph. ``parent`` is the node holding it as an attribute, None for the main graph."""

    __slots__ = ("name", "doc_string", "_inputs", "_outputs", "_consts", "input_defaults", "parent",
                 "sparse_consts", "_head", "_tail", "_count", "metadata_props", "extra_value_infos",
                 "__weakref__")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.doc_string = ""
        self._inputs = ValueList()
        self._outputs = ValueList()
        self._consts: dict[Value, None] = {}
        self.input_defaults: dict[Value, Tensor] = {}  # IR<4 initializers that are also inputs
        self.sparse_consts: dict[Value, Any] = {}  # sparse initializers, kept opaque (not folded)
        self.parent: Node | None = None
        self._head: Node | None = None
        self._tail: Node | None = None
        self._count = 0
        self.metadata_props: dict[str, str] = {}
        self.extra_value_infos: list = []  # value_info naming no value here (kept verbatim)

    # ----- nodes -------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Node]:
        """Nodes in order; removing the current (or any) node while iterating is allowed."""
        node = self._head
        while node is not None:
            if node.graph is self:
                yield node
            node = node._next
            while node is not None and node.graph is not self:
                node = node._next

    def __len__(self) -> int:
        return self._count

    @property
    def nodes(self) -> list[Node]:
        """A snapshot list of the nodes in order."""
        return list(self)

    def reversed(self) -> Iterator[Node]:
        """Nodes from last to first; removal while iterating is allowed."""
        node = self._tail
        while node is not None:
            prev = node._prev
            if node.graph is self:
                yield node
            node = prev
            while node is not None and node.graph is not self:
                node = node._prev

    def append(self, *nodes: Node) -> None:
        """Add nodes at the end."""
        for node in nodes:
            self._link(node, self._tail, None)

    def insert_before(self, ref: Node, nodes: Node | Sequence[Node]) -> None:
        """Insert nodes (in order) right before ``ref``."""
        self._check_member(ref)
        for node in [nodes] if isinstance(nodes, Node) else nodes:
            self._link(node, ref._prev, ref)

    def insert_after(self, ref: Node, nodes: Node | Sequence[Node]) -> None:
        """Insert nodes (in order) right after ``ref``."""
        self._check_member(ref)
        for node in [nodes] if isinstance(nodes, Node) else nodes:
            self._link(node, ref, ref._next)
            ref = node

    def remove(self, nodes: Node | Iterable[Node], *, safe: bool = True) -> None:
        """Remove nodes, all or nothing.

        With ``safe`` (the default) this refuses when an output of a removed node is still read by a
        node that stays or is a graph output. Removed nodes drop their input uses.
        """
        # dict.fromkeys: a node listed twice (e.g. the producer of two dead outputs) is removed once
        doomed = [nodes] if isinstance(nodes, Node) else list(dict.fromkeys(nodes))
        doomed_set = set(doomed)
        for node in doomed:
            self._check_member(node)
            if safe:
                for out in node.outputs:
                    if out.is_graph_output:
                        raise IRError(f"cannot remove {node!r}: its output {out!r} is a graph output")
                    for user, _ in out.iter_uses():
                        if user not in doomed_set:
                            raise IRError(f"cannot remove {node!r}: {out!r} is still used by {user!r};"
                                          " rewire its uses first (replace_all_uses_with)")
        for node in doomed:
            node.set_inputs(())
            for sub in node.subgraphs():  # captured outer values lose the uses inside the body too
                for inner in sub.all_nodes():
                    inner.set_inputs(())
            self._unlink(node)

    def remove_with_constants(self, nodes: Node | Iterable[Node]) -> None:
        """``remove(nodes)``, then drop the constants they read that nothing reads any more."""
        doomed = [nodes] if isinstance(nodes, Node) else list(nodes)
        read = [v for node in doomed for v in node.inputs if v is not None and v.const is not None]
        self.remove(doomed)
        for value in dict.fromkeys(read):
            if not value.num_uses and not value.is_graph_output and value.graph is not None:
                value.graph.remove_const(value)

    def reorder(self, order: Sequence[Node]) -> None:
        """Put this graph's nodes in ``order``, which must be a permutation of them."""
        order = list(order)
        if len(order) != self._count or len(set(order)) != len(order) or \
                any(n.graph is not self for n in order):
            raise IRError(f"reorder of graph {self.name!r} needs a permutation of its nodes")
        prev: Node | None = None
        for node in order:
            node._prev = prev
            if prev is not None:
                prev._next = node
            prev = node
        if order:
            order[-1]._next = None
        self._head = order[0] if order else None
        self._tail = prev

    def move_to(self, nodes: Sequence[Node], target: Graph, before: Node | None = None) -> None:
        """Move nodes, in order, into ``target`` before ``before`` (or at its end).

        Inputs and uses stay as they are: this is for inlining a body into its enclosing graph, where
        every value the nodes read is still in scope.
        """
        if before is not None:
            target._check_member(before)
        for node in nodes:
            self._check_member(node)
        for node in nodes:
            self._unlink(node)
            target._link(node, before._prev if before is not None else target._tail, before)

    def move_const(self, value: Value, target: Graph) -> None:
        """Hand a constant of this graph over to ``target`` (e.g. an enclosing graph)."""
        if value not in self._consts:
            raise IRError(f"{value!r} is not a constant of graph {self.name!r}")
        del self._consts[value]
        target._consts[value] = None
        value._graph = target

    def _check_member(self, node: Node) -> None:
        if node.graph is not self:
            raise IRError(f"{node!r} does not belong to graph {self.name!r}")

    def _link(self, node: Node, prev: Node | None, nxt: Node | None) -> None:
        if node.graph is not None:
            raise IRError(f"{node!r} already belongs to a graph; remove it there first")
        node.graph = self
        for out in node.outputs:
            out._graph = self
        node._prev, node._next = prev, nxt
        if prev is None:
            self._head = node
        else:
            prev._next = node
        if nxt is None:
            self._tail = node
        else:
            nxt._prev = node
        self._count += 1

    def _unlink(self, node: Node) -> None:
        prev, nxt = node._prev, node._next
        if prev is None:
            self._head = nxt
        else:
            prev._next = nxt
        if nxt is None:
            self._tail = prev
        else:
            nxt._prev = prev
        node.graph = None  # keep node._next so that a live iterator can move on
        self._count -= 1

    # ----- values ------------------------------------------------------------------------------
    @property
    def consts(self) -> list[Value]:
        """Constant values (initializers) of this graph, in insertion order."""
        return list(self._consts)

    def add_const(self, tensor: Tensor, name: str | None = None) -> Value:
        """Create a constant value owned by this graph."""
        value = Value(name, const=tensor)
        value._graph = self
        self._consts[value] = None
        return value

    def remove_const(self, value: Value) -> None:
        """Drop an unused constant of this graph; refuses while it is used, is a graph output, or belongs
        to another graph (removing it here would unlink it from its real owner)."""
        if value not in self._consts:
            raise IRError(f"cannot remove constant {value!r} from graph {self.name!r}: it is not one of "
                          "this graph's constants")
        if value.num_uses or value.is_graph_output:
            raise IRError(f"cannot remove constant {value!r}: it is still used")
        self._consts.pop(value, None)
        value._graph = None

    def add_input(self, value: Value) -> Value:
        """Append a graph input."""
        value._graph = self
        self.inputs.append(value)
        return value

    @property
    def inputs(self) -> ValueList:
        """The graph inputs in order (a list; assigning one replaces them)."""
        return self._inputs

    @inputs.setter
    def inputs(self, values: Iterable[Value]) -> None:
        self._inputs = ValueList(values)

    @property
    def outputs(self) -> ValueList:
        """The graph outputs in order (a list; assigning one replaces them)."""
        return self._outputs

    @outputs.setter
    def outputs(self, values: Iterable[Value]) -> None:
        self._outputs = ValueList(values)

    def replace_input(self, index: int, value: Value) -> Value:
        """Put ``value`` in input slot ``index``; the value it replaces no longer belongs to the graph
        (its readers must have been rewired). Returns the old value."""
        old = self._inputs[index]
        if old.num_uses:
            raise IRError(f"cannot replace graph input {old!r}: it is still read")
        self._inputs[index] = value
        value._graph = self
        if old is not value and not self._inputs.holds(old) and not self._outputs.holds(old):
            old._graph = None
        return old

    def is_input(self, value: Value) -> bool:
        """True if ``value`` is one of this graph's inputs (constant time)."""
        return self._inputs.holds(value)

    def is_output(self, value: Value) -> bool:
        """True if ``value`` is one of this graph's outputs (constant time)."""
        return self._outputs.holds(value)

    def local_producer(self, value: Value) -> Node | None:
        """The node of this graph that defines ``value``: its producer, or the node holding the subgraph
        where it is produced; None for inputs, constants and values of enclosing graphs."""
        return self.local_holder(value.producer) if value.producer is not None else None

    def local_holder(self, node: Node) -> Node | None:
        """The node of this graph that is ``node`` or holds the subgraph where it lives; None when
        ``node`` is not inside this graph."""
        holder: Node | None = node
        while holder is not None and holder.graph is not self:
            holder = holder.graph.parent if holder.graph is not None else None
        return holder

    def ancestors(self) -> Iterator[Graph]:
        """This graph, then each enclosing graph outwards."""
        graph: Graph | None = self
        while graph is not None:
            yield graph
            graph = graph.parent.graph if graph.parent is not None else None

    def all_graphs(self) -> Iterator[Graph]:
        """This graph and every nested subgraph, depth first."""
        stack: list[Graph] = [self]
        while stack:
            graph = stack.pop()
            yield graph
            nested = [sub for node in graph for sub in node.subgraphs()]
            stack.extend(reversed(nested))

    def all_nodes(self) -> Iterator[Node]:
        """Every node of this graph and of its subgraphs."""
        for graph in self.all_graphs():
            yield from graph

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {self._count} nodes)"
