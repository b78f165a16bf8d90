"""Which nodes of a transformed model compute something the original did not: a node is unchanged when
the original had a node with the same op, attributes, input names (constants by identity) and output
names. Only tensors downstream of changed nodes can differ, so only those are compared, and a change is
only proven when one of them is informative."""

from __future__ import annotations

from typing import Any, Hashable

from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.node import Node
from graphopt.ir.ops import INDEX_TYPES
from graphopt.ir.value import Value

# ops that select by comparing floats: a legitimate rounding change may flip a near tie, so what they
# select (indices, and everything gathered with them) is compared only when the selection itself (its
# integer outputs) came out exactly as in the original; see selection_gates
SELECTION_OPS = frozenset({"TopK", "ArgMax", "ArgMin", "NonMaxSuppression", "Unique", "NonZero"})
# the integer outputs that say what each selection op picked (the others are gathered with them)
SELECTION_INDEX_OUTPUTS = {"TopK": (1,), "ArgMax": (0,), "ArgMin": (0,), "NonMaxSuppression": (0,),
                           "Unique": (1, 2, 3), "NonZero": (0,)}
RANDOM_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                        "Multinomial", "Bernoulli"})


def graph_signatures(graph: Graph, keep: list[Any]) -> set[Hashable]:
    """The signature of every node of ``graph``; ``keep`` collects the constants the signatures
    identify by ``id`` so that they stay alive (an id is only unique among live objects)."""
    return {node_signature(node, keep) for node in graph}


def node_signature(node: Node, keep: list[Any]) -> Hashable:
    """What a node computes, by names: op, attributes, inputs, outputs and bodies."""
    inputs = tuple(_token(v, keep) for v in node.inputs)
    attrs = tuple(sorted((name, _attr_token(a.value, keep)) for name, a in node.attrs.items()))
    outputs = tuple(v.name for v in node.outputs)
    return (node.op_type, node.domain, node.overload, inputs, attrs, outputs)


def _token(value: Value | None, keep: list[Any]) -> Hashable:
    if value is None:
        return None
    if value.const is not None:
        keep.append(value.const)
        return ("const", value.name, id(value.const))
    return ("value", value.name) if value.name is not None else ("anonymous", id(value))


def _attr_token(value: Any, keep: list[Any]) -> Hashable:
    if isinstance(value, Graph):
        nodes = tuple(node_signature(n, keep) for n in value)
        consts = tuple(_token(c, keep) for c in value.consts)
        io = (tuple(v.name for v in value.inputs), tuple(_token(v, keep) for v in value.outputs))
        return ("graph", nodes, consts, io)
    if isinstance(value, list):
        return tuple(_attr_token(v, keep) for v in value)
    if isinstance(value, (int, float, str, bytes, bool)) or value is None:
        return value
    keep.append(value)  # tensors, sparse tensors, type protos: immutable, compared by identity
    return ("object", id(value))


def changed_nodes(model: Model, reference: set[Hashable], same_opsets: bool) -> list[Node]:
    """Main-graph nodes of ``model`` whose signature the original does not have (all when opsets differ)."""
    keep: list[Any] = []
    if not same_opsets:
        return list(model.graph)
    return [node for node in model.graph if node_signature(node, keep) not in reference]


def downstream(model: Model, start: list[Node]) -> tuple[list[Value], dict[Node, set[int]]]:
    """Values (in graph order) reachable from the outputs of ``start`` in the main graph, and for each
    start node the ids of the values it reaches (itself included)."""
    main = model.graph
    order = {node: i for i, node in enumerate(main)}
    reached: dict[int, Value] = {}
    per_start: dict[Node, set[int]] = {}
    for node in sorted(start, key=lambda n: -order.get(n, 0)):
        seen: set[int] = set()
        stack = list(node.outputs)
        while stack:
            value = stack.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            reached[id(value)] = value
            for user, _ in value.uses():
                holder = main.local_holder(user)
                if holder is not None:
                    stack.extend(holder.outputs)
        per_start[node] = seen
    values = sorted(reached.values(), key=lambda v: order.get(v.producer, -1) if v.producer else -1)
    return values, per_start


def random_dependent(model: Model, ops: frozenset[str] = RANDOM_OPS) -> set[int]:
    """Ids of main-graph values that depend on a random op (or another of ``ops``)."""
    main = model.graph
    tainted: set[int] = set()
    for node in main:
        inner = node.inner_nodes()
        if node.op_type in ops or any(n.op_type in ops for n in inner) \
                or any(id(v) in tainted for v in node.reads()):
            tainted.update(id(v) for v in node.outputs)
    return tainted


def selection_gates(model: Model) -> dict[int, frozenset[str] | None]:
    """For each main-graph value downstream of a selection op, by id, the names of the selections'
    integer outputs it depends on: when those agree exactly with the original's, the tensor is a
    deterministic function of float data and may be compared within tolerance. A node whose body
    selects counts as a selection when all it returns is indices. None: it depends on a selection that
    cannot be observed (unnamed, or a body returning floats), so it is never compared."""
    gates: dict[int, frozenset[str] | None] = {}
    for node in model.graph:
        upstream = [gates[id(v)] for v in node.reads() if id(v) in gates]
        inner = any(n.op_type in SELECTION_OPS for n in node.inner_nodes())
        if not upstream and node.op_type not in SELECTION_OPS and not inner:
            continue
        own: frozenset[str] | None = frozenset()
        if node.op_type in SELECTION_OPS:
            picked = [v for i, v in enumerate(node.outputs) if i in SELECTION_INDEX_OUTPUTS[node.op_type]]
            own = _names(picked)
        elif inner:  # a body that selects (a batched NMS under an If): observable when it returns indices
            own = _names(node.outputs) if all(v.dtype in INDEX_TYPES for v in node.outputs) else None
        gate = None if own is None or any(g is None for g in upstream) else \
            own.union(*[g for g in upstream if g is not None])
        for out in node.outputs:
            gates[id(out)] = gate
    return gates


def _names(values: list[Value]) -> frozenset[str] | None:
    """The names of ``values`` (None when there are none or one is unnamed: nothing to observe)."""
    return frozenset(v.name for v in values if v.name) if values and all(v.name for v in values) else None


def input_dependent(model: Model) -> set[int]:
    """Ids of main-graph values computed from a graph input (the others are constants of the model)."""
    main = model.graph
    live = {id(v) for v in main.inputs if v not in main.input_defaults}
    live |= {id(v) for v in main.input_defaults}
    for node in main:
        inner = node.inner_nodes()
        if any(id(v) in live for v in node.reads()) or node.op_type in RANDOM_OPS \
                or any(n.op_type in RANDOM_OPS for n in inner):
            live.update(id(v) for v in node.outputs)
    return live
