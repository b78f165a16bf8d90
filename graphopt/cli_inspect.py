"""``graphopt inspect``: what a model is (interface, opsets, ops, MACs/FLOPs, parameters, external data,
custom domains, local functions), as rich tables on a terminal, plain aligned text otherwise, or JSON."""

from __future__ import annotations

import argparse
import io
import json
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from graphopt.inspection import Inspection, TensorSig

EXIT_CODES = """exit codes:
  0   success
  2   usage error (bad --fix-dims) or unreadable model (one line on stderr says what and how to fix it)
  70  internal error (please report it; --debug shows the traceback)"""


def add_inspect_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """The ``inspect`` subcommand's flags."""
    ins = sub.add_parser("inspect", help="show a model's interface, ops, MACs, parameters and more",
                         description="Show what a model is without running it: interface, opsets, op "
                         "histogram (subgraphs too), MACs/FLOPs per op type, parameters by dtype, "
                         "external data files, custom domains and model-local functions.",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ins.add_argument("input", help="model .onnx file (never modified)")
    ins.add_argument("--json", action="store_true",
                     help="print one JSON object (stable keys, exact integers) instead of the tables")
    ins.add_argument("--fix-dims", action="append", default=[], metavar="SPEC",
                     help="fix input dims before counting MACs: NAME=D0,D1,... (an input's shape), "
                          "NAME:AXIS=N, or DIM=N (a dim name such as batch); repeatable")
    ins.add_argument("--no-color", action="store_true", help="plain text even on a terminal (NO_COLOR too)")


def cmd_inspect(args: argparse.Namespace) -> int:
    """``graphopt inspect``: analyse, then print JSON or tables."""
    from graphopt.inspection import inspect_model

    info = inspect_model(args.input, fix=args.fix_dims)
    if args.json:
        print(json.dumps(info.as_dict(), indent=2))
        return 0
    from rich.console import Console

    console = Console(no_color=args.no_color, force_terminal=None, highlight=False, markup=False, emoji=False)
    plain = not console.is_terminal or args.no_color or bool(os.environ.get("NO_COLOR"))
    if plain:  # render wide (no wrapping) into a buffer, then print without the padding rich leaves
        console = Console(file=io.StringIO(), width=10_000, no_color=True, highlight=False, markup=False,
                          emoji=False)
    console.print(_header(info), soft_wrap=True)
    console.print(_interface_table(info, plain))
    console.print()
    console.print(_ops_table(info, plain))
    console.print()
    for line in [*_summary(info), *_dynamic_note(info)]:
        console.print(line, soft_wrap=True)
    if plain:
        print("\n".join(line.rstrip() for line in console.file.getvalue().splitlines()))  # type: ignore[attr-defined]
    return 0


def _table(plain: bool, *columns: str) -> Table:
    """A table: boxed head on a terminal, space-aligned columns without rules otherwise."""
    from rich import box
    from rich.table import Table

    table = Table(box=None if plain else box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  padding=(0, 2, 0, 0) if plain else (0, 1))
    for column in columns:
        left = column in ("", "name", "op", "dtype", "shape")
        table.add_column(column, justify="left" if left else "right")
    return table


def _header(info: Inspection) -> str:
    opsets = ", ".join(f"{domain or 'ai.onnx'} {version}" for domain, version in info.opsets.items())
    producer = " ".join(p for p in (info.producer_name, info.producer_version) if p) or "?"
    return f"{info.path}: ir_version {info.ir_version}; opsets {opsets}; producer {producer}"


def _interface_table(info: Inspection, plain: bool) -> Table:
    table = _table(plain, "", "name", "dtype", "shape")
    for kind, sigs in (("input", info.inputs), ("output", info.outputs)):
        for sig in sigs:
            table.add_row(kind, sig.name, sig.dtype, shape_text(sig))
    return table


def shape_text(sig: TensorSig) -> str:
    """``[batch,3,224,224]``; ``?`` for an unknown dim, ``[?]`` for an unknown rank."""
    if sig.shape is None:
        return "[?]"
    return "[" + ",".join("?" if d is None else str(d) for d in sig.shape) + "]"


def _ops_table(info: Inspection, plain: bool) -> Table:
    table = _table(plain, "op", "count", "MACs", "FLOPs")
    for op in info.ops:
        table.add_row(op.op, str(op.count), _cost_text(op.macs, op.unknown), _cost_text(op.flops, op.unknown))
    compute = info.compute
    table.add_row("total", str(info.nodes), human(compute.macs) + ("+?" if compute.unknown_nodes else ""),
                  human(compute.flops) + ("+?" if compute.unknown_nodes else ""))
    return table


def _cost_text(value: int | None, unknown: int) -> str:
    """``4.11 G``; ``?`` when no node was known, ``1.2 k+?`` when some were not, ``-`` for uncounted ops."""
    if value is None:
        return "?" if unknown else "-"
    return human(value) + ("+?" if unknown else "")


def human(n: int) -> str:
    """``999``, ``4.11 G``, ``25.6 M``, ``207 k``: three significant digits with an SI unit."""
    value, units = float(n), ("", " k", " M", " G", " T", " P", " E")
    step = 0
    while abs(value) >= 999.5 and step < len(units) - 1:
        value, step = value / 1000, step + 1
    return str(n) if step == 0 else f"{value:.3g}{units[step]}"


def _summary(info: Inspection) -> list[str]:
    """The one-line facts below the tables (only those the model has, but parameters always)."""
    from graphopt.report import format_bytes

    params = info.parameters
    count, size = sum(p["count"] for p in params.values()), sum(p["bytes"] for p in params.values())
    by_dtype = ", ".join(f"{d} {human(p['count'])} ({format_bytes(p['bytes'])})" for d, p in params.items())
    lines = [f"parameters: {human(count)} ({format_bytes(size)})" + (f": {by_dtype}" if by_dtype else "")]
    for graph in info.subgraphs:
        lines.append(f"subgraph {graph.path}: {_plural(graph.nodes, 'op')} ({_counts(graph.ops)})")
    for entry in info.external_data:
        lines.append(f"external data: {entry['file']}: {_plural(entry['tensors'], 'tensor')}, "
                     f"{format_bytes(entry['bytes'])} ({entry['bytes']} bytes)")
    for domain, ops in info.custom_domains.items():
        lines.append(f"custom domain {domain}: {_counts(ops)}")
    for function in info.functions:
        domain = f"{function['domain']}::" if function["domain"] else ""
        lines.append(f"function {domain}{function['name']}: {_plural(function['nodes'], 'node')}, "
                     f"{_plural(function['calls'], 'call')}")
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _counts(ops: dict[str, Any]) -> str:
    return ", ".join(op if count == 1 else f"{op} x{count}" for op, count in ops.items()) or "empty"


def _dynamic_note(info: Inspection) -> list[str]:
    """Which dims kept MACs unknown, and the command line that would fix them."""
    compute = info.compute
    if not compute.unknown_nodes:
        return []
    named = [d for d in compute.dynamic_dims if d != "?"]
    reasons = ([f"dynamic dims {', '.join(named)}"] if named else []) + \
        (["dims without a name (data-dependent or unknown shapes)"] if "?" in compute.dynamic_dims else [])
    lines = [f"MACs unknown for {_plural(compute.unknown_nodes, 'node')}: " + " and ".join(reasons)]
    suggestion = info.suggestion()
    if suggestion:
        lines.append(f"fix them for MACs: {suggestion}")
    return lines
