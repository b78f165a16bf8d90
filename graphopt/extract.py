"""Cutting a model at named tensors: ``optimize --outputs`` and ``graphopt extract``.

The peers and what this takes or avoids: ``onnx.utils.extract_model`` walks only ``node.input`` (a
kept If/Loop body's outer reads are missed), needs every name in value_info and never says that a cut
is open; Polygraphy's ``surgeon extract`` falls back on an onnxruntime run for unknown types, as done
here; onnxslim's ``--outputs`` guesses float32 for an untyped output, which is refused here instead.
A cut is *closed* when every tensor its nodes read (bodies included) is produced inside it, is a
weight, or is one of its inputs; an open cut is refused naming the missing tensor and its reader.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from graphopt.errors import OpenCutError, UnknownTensorError, UnknownTypeError, UsageError
from graphopt.ir.graph import Graph
from graphopt.ir.model import Model
from graphopt.ir.mutate import replace_all_uses_with
from graphopt.ir.node import Node
from graphopt.ir.tensor import onnx_dtype
from graphopt.ir.value import Value

SHOWN = 5  # close names / missing tensors listed in one message


def main_tensors(graph: Graph) -> dict[str, Value]:
    """The named tensors of the main graph (inputs, weights, node outputs) by name."""
    names: dict[str, Value] = {}
    for value in [*graph.inputs, *graph.consts, *graph.sparse_consts]:
        if value.name:
            names.setdefault(value.name, value)
    for node in graph:
        for out in node.outputs:
            if out.name:
                names.setdefault(out.name, out)
    return names


def find_tensors(model: Model, names: Sequence[str], flag: str) -> list[Value]:
    """The main-graph values named ``names``; an unknown or repeated name is a UsageError."""
    known = main_tensors(model.graph)
    found: list[Value] = []
    for name in names:
        if name in (v.name for v in found):
            raise UsageError(f"{flag}: tensor {name!r} is named twice")
        value = known.get(name)
        if value is None:
            raise UnknownTensorError(_unknown_message(model, name, flag, known))
        found.append(value)
    return found


def _unknown_message(model: Model, name: str, flag: str, known: dict[str, Value]) -> str:
    for graph in model.graph.all_graphs():
        if graph is not model.graph and name in main_tensors(graph) and graph.parent is not None:
            return (f"{flag}: tensor {name!r} lives inside the body of {graph.parent.op_type} node "
                    f"{graph.parent.name!r}; only main-graph tensors can be cut at (name an output of that "
                    "node instead)")
    close = difflib.get_close_matches(name, list(known), n=SHOWN, cutoff=0.6)
    if close:
        return f"{flag}: the model has no tensor {name!r}; close names: {', '.join(close)}"
    outputs = ", ".join(v.name or "?" for v in model.graph.outputs[:SHOWN])
    return f"{flag}: the model has no tensor {name!r} (nothing close; its outputs are {outputs})"


def has_type(value: Value, rank: bool = False) -> bool:
    """True when export can write a type for ``value`` (known, declared, or a non-tensor type); with
    ``rank``, a shape too (onnx.checker requires one on a graph input)."""
    if value.type_proto is not None:
        return True
    declared_dtype, declared_shape = value.declared or (None, None)
    return bool(value.dtype or declared_dtype) and (not rank or value.shape is not None
                                                     or declared_shape is not None)


def ensure_types(model: Model, values: Sequence[Value], flag: str,
                 observed: dict[Value, Any] | None = None, rank: bool = False) -> None:
    """Give ``values`` a type (with ``rank``, a shape too): declared or inferred (onnx shape
    inference), else the dtype and rank of what a run produced (``observed``); refuse naming the
    values still untyped."""
    if all(has_type(v, rank) for v in values):
        return
    from graphopt.analyses.shapes import refresh_types  # the analyses sit above the IR

    refresh_types(model)
    for value in values:
        array = (observed or {}).get(value)
        if not has_type(value, rank) and hasattr(array, "dtype"):
            value.dtype = value.dtype or onnx_dtype(array.dtype)
            if value.shape is None:
                value.shape = (None,) * array.ndim
    missing = [v.name for v in values if not has_type(v, rank)]
    if missing:
        how = "" if observed is not None else " or let a run tell it (drop --check off / --no-check)"
        raise UnknownTypeError(f"{flag}: the type of {', '.join(map(repr, missing[:SHOWN]))} is unknown: "
                               "shape inference cannot tell it; add a value_info for it to the model"
                               f"{how}")


def set_outputs(model: Model, names: Sequence[str],
                feeds: Callable[[], dict[str, Any]] | None = None) -> list[Value]:
    """Make the named tensors the graph's outputs, in order (``optimize --outputs``); what no longer
    reaches an output is left for eliminate-dead-code. A type that is neither declared nor inferable
    is read off one run on ``feeds()`` (when given)."""
    if not names:
        raise UsageError("--outputs: name at least one tensor")
    values = find_tensors(model, names, "--outputs")
    observed = None
    if feeds is not None and not all(has_type(v) for v in values):
        from graphopt.analyses.shapes import refresh_types
        from graphopt.numerics.run import observe

        refresh_types(model)
        untyped = [v for v in values if not has_type(v)]
        observed = observe(model, untyped, feeds(), "original model") if untyped else {}
    ensure_types(model, values, "--outputs", observed)
    model.graph.outputs = values
    return values


@dataclass
class Cut:
    """What a cut keeps: its inputs and outputs (main-graph values) and the nodes between them."""

    inputs: list[Value]
    outputs: list[Value]
    nodes: set[Node]


def plan_cut(model: Model, input_names: Sequence[str], output_names: Sequence[str]) -> Cut:
    """Resolve the names and collect the nodes the outputs need, walking back to the inputs; refuse
    an open cut, listing every missing tensor with a node that reads it."""
    graph = model.graph
    inputs = find_tensors(model, input_names, "--inputs")
    outputs = find_tensors(model, output_names, "--outputs")
    for value in inputs:
        if value.const is not None or value in graph.sparse_consts:
            raise UsageError(f"--inputs: {value.name!r} is a weight (initializer); weights the cut needs "
                             "come along by themselves, so drop it from --inputs")
    # a needed tensor that neither depends on an input nor on weights alone is where the cut is open
    # (the nearest such tensor is reported, not the model input far upstream of it)
    def constant(v: Value) -> bool:
        return v in fixed or v.graph is not graph or v.const is not None \
            or v in graph.sparse_consts or v in graph.input_defaults
    fixed: set[Value] = set()
    reached: set[Value] = set(inputs)
    for node in graph:
        reads = node.reads()
        if all(constant(v) for v in reads):
            fixed.update(node.outputs)
        elif any(v in reached for v in reads):
            reached.update(node.outputs)
    nodes: set[Node] = set()
    missing: dict[Value, Node | None] = {}
    stack: list[tuple[Value, Node | None]] = [(v, None) for v in outputs]
    seen: set[Value] = set(inputs)
    while stack:
        value, reader = stack.pop()
        if value in seen or value.graph is not graph:
            continue  # a cut input, or a value of a kept body (which comes whole)
        seen.add(value)
        if not constant(value) and value not in reached:
            missing.setdefault(value, reader)
        elif value.producer is not None and value.producer not in nodes:
            nodes.add(value.producer)
            stack.extend((v, value.producer) for v in value.producer.reads())
    if missing:
        raise OpenCutError(_open_message(missing, input_names))
    return Cut(inputs, outputs, nodes)


def _open_message(missing: dict[Value, Node | None], input_names: Sequence[str]) -> str:
    def where(v: Value, node: Node | None) -> str:
        return f"{v.name!r} (" + ("an output" if node is None else f"read by {node.op_type} node "
                                  f"{node.name!r}") + ")"
    shown = ", ".join(where(v, n) for v, n in list(missing.items())[:SHOWN])
    more = f" (+{len(missing) - SHOWN} more)" if len(missing) > SHOWN else ""
    names = ",".join([*input_names, *(v.name or "?" for v in missing)])
    one = len(missing) == 1
    return (f"the cut is open: {'tensor' if one else 'tensors'} {shown}{more} "
            f"{'is' if one else 'are'} needed but neither produced inside the cut, a weight, nor in "
            f"--inputs; add {'it' if one else 'them'} to --inputs (--inputs {names})")


def apply_cut(model: Model, cut: Cut) -> list[Node]:
    """Turn ``model`` into the sub-model of ``cut`` in place: intermediates named as inputs become
    typed graph inputs, the outputs are the named tensors, every other node and weight goes.
    Returns the removed nodes."""
    graph = model.graph
    replaced: dict[Value, Value] = {}
    new_inputs: list[Value] = []
    for value in cut.inputs:
        if graph.is_input(value):
            new_inputs.append(value)
            continue
        dtype, shape = value.declared or (None, None)
        fresh = Value(value.name, dtype=value.dtype or dtype, shape=value.shape or shape,
                      type_proto=value.type_proto)
        replace_all_uses_with(value, fresh)
        replaced[value] = fresh
        new_inputs.append(fresh)
    kept_defaults = [v for v in graph.inputs if v in graph.input_defaults and v.num_uses]
    for value in list(graph.input_defaults):
        if value not in kept_defaults:
            del graph.input_defaults[value]
    graph.inputs = []
    for value in [*new_inputs, *kept_defaults]:
        graph.add_input(value)
    graph.outputs = [replaced.get(v, v) for v in cut.outputs]
    doomed = [n for n in graph if n not in cut.nodes]
    graph.remove(doomed)  # safe: refuses (a bug) if a kept node still read a removed one
    for value in graph.consts:
        if not value.num_uses and not value.is_graph_output:
            graph.remove_const(value)
    for value in list(graph.sparse_consts):
        if not value.num_uses and not value.is_graph_output:
            del graph.sparse_consts[value]
    return doomed


@dataclass
class Extraction:
    """The outcome of ``extract``: the sub-model (the same object, cut in place) and its checks."""

    model: Model
    removed: int  # nodes of the main graph that the cut dropped
    max_abs: float | None = None  # largest difference from the original's tensors (None: not checked)


def extract(model: Model, input_names: Sequence[str], output_names: Sequence[str], *, check: bool = True,
            seed: int = 0, shapes: dict[str, tuple[int, ...]] | None = None) -> Extraction:
    """Cut ``model`` in place to the sub-model from ``input_names`` to ``output_names``.

    The result must pass onnx.checker and, with ``check``, compute exactly the original's tensors:
    the original runs once on seeded inputs (``shapes`` fixes dynamic dims), and the sub-model, fed
    what the original held at the cut's inputs, must give what it held at the cut's outputs.

    Example:
        >>> from graphopt import load_model, save_model                 # doctest: +SKIP
        >>> model = load_model("yolov8n.onnx")                          # doctest: +SKIP
        >>> extract(model, ["images"], ["/model.2/cv1/act/Mul_output_0"])  # doctest: +SKIP
        >>> save_model(model, "stem.onnx")                              # doctest: +SKIP
    """
    cut = plan_cut(model, input_names, output_names)
    observed = _observe(model, [*cut.inputs, *cut.outputs], seed, shapes) if check else None
    ensure_types(model, cut.inputs, "--inputs", observed, rank=True)
    ensure_types(model, cut.outputs, "--outputs", observed)
    removed = apply_cut(model, cut)
    from graphopt.ir.verify import verify

    verify(model)
    _check_standard(model)
    result = Extraction(model, len(removed))
    if observed is not None:
        result.max_abs = _compare(model, cut, observed)
    return result


def _observe(model: Model, values: list[Value], seed: int,
             shapes: dict[str, tuple[int, ...]] | None) -> dict[Value, Any]:
    """What the original holds at ``values`` on seeded inputs (one onnxruntime run)."""
    from graphopt.numerics.feeds import make_feeds
    from graphopt.numerics.run import observe

    feeds = make_feeds(model, seed=seed, shapes=shapes)
    inner = [v for v in values if not model.graph.is_input(v)]
    held = observe(model, inner, feeds, "original model") if inner else {}
    held.update({v: feeds[v.name] for v in values if model.graph.is_input(v) and v.name in feeds})
    return held


def _check_standard(model: Model) -> None:
    """onnx.checker on the sub-model (skipped past protobuf's 2 GB, which it cannot take)."""
    import onnx

    from graphopt.errors import InvalidSubModelError
    from graphopt.onnx_io.exporter import export_model

    if model.const_bytes() > 1_800_000_000:
        return
    try:
        onnx.checker.check_model(export_model(model))
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise InvalidSubModelError(f"the sub-model fails onnx.checker (please report it): "
                                   f"{str(exc).splitlines()[0]}") from None


def _compare(model: Model, cut: Cut, observed: dict[Value, Any]) -> float:
    """Run the sub-model on what the original held at the cut's inputs; return the largest error."""
    from graphopt.errors import InvalidSubModelError
    from graphopt.numerics.compare import compare_outputs, max_errors
    from graphopt.numerics.run import run_model

    feeds = {new.name: observed[old] for old, new in zip(cut.inputs, model.graph.inputs)}
    expected = {v.name: observed[v] for v in cut.outputs}
    actual = run_model(model, feeds, "sub-model")
    problems = compare_outputs(expected, actual)
    if problems:
        raise InvalidSubModelError(f"the sub-model does not compute the original's tensors (please report "
                                   f"it): {problems[0]}")
    return max_errors(expected, actual)[0]
