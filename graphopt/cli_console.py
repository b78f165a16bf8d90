"""The terminal face of ``graphopt optimize``: a live status line while it works and rich tables after.

On a terminal the status line (stderr) says what runs now — loading, choosing check inputs, each pass
and each check — and the tables are drawn by rich, with the check column coloured and fixed-point
rounds in which no pass changed anything folded into one line. Anywhere else (pipes, logs, CI) the
plain text of graphopt.report is printed unchanged, one line per pass, so it stays greppable.
``--no-color`` and ``NO_COLOR`` keep the tables but drop the colour.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from itertools import groupby
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from graphopt.pass_infra.changes import PassChanges
from graphopt.pass_infra.manager import PassRecord
from graphopt.report import check_text_of, format_bytes

STATUS_STYLE = {"changed": "green", "unchanged": "dim", "rolled-back": "bold red", "disabled": "dim"}


def colour_off(no_color_flag: bool) -> bool:
    """``--no-color`` or a non-empty ``NO_COLOR`` (https://no-color.org)."""
    return no_color_flag or bool(os.environ.get("NO_COLOR"))


def is_terminal(stream: IO[str]) -> bool:
    """Whether ``stream`` is an interactive terminal (a closed or replaced stream is not)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def make_console(stream: IO[str], no_color: bool, width: int | None = None, record: bool = False) -> Console:
    """A rich console on ``stream``; no highlighting of numbers in our own text."""
    return Console(
        file=stream,
        no_color=no_color,
        highlight=False,
        width=width,
        record=record,
        force_terminal=True if record else None,
        soft_wrap=False,
    )


@contextlib.contextmanager
def live_status(enabled: bool, no_color: bool) -> Iterator[Callable[[str], None]]:
    """A spinner on stderr with the current stage; yields the function that updates it. Disabled, the
    function does nothing, so callers need not care. The line disappears when the work ends."""
    if not enabled:
        yield lambda _stage: None
        return
    console = make_console(sys.stderr, no_color)
    spinner = Spinner("dots", Text("starting"), style="cyan")
    with Live(spinner, console=console, transient=True, refresh_per_second=12.5) as live:

        def show(stage: str) -> None:
            spinner.update(text=Text(stage))
            live.refresh()  # at once: a stage shorter than one frame is still seen

        yield show


def op_table(before: dict[str, int], after: dict[str, int]) -> Table:
    """Node count per op type before and after, largest first; changed rows in colour."""
    table = Table(title="ops", title_justify="left", box=None, padding=(0, 1), header_style="bold")
    table.add_column("op type")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    table.add_column("Δ", justify="right")
    for op in sorted(set(before) | set(after), key=lambda op: (-before.get(op, 0), op)):
        b, a = before.get(op, 0), after.get(op, 0)
        style = "dim" if a == b else ("green" if a < b else "yellow")
        table.add_row(op, str(b), str(a), _signed(a - b) if a != b else "", style=style)
    total_b, total_a = sum(before.values()), sum(after.values())
    table.add_section()
    table.add_row("total", str(total_b), str(total_a), _signed(total_a - total_b), style="bold")
    return table


def pass_table(records: list[PassRecord]) -> Table:
    """One row per pass run, grouped by fixed-point round; a round in which every pass was unchanged
    is one dim row (the last round of a fixed point always is: it is how the fixed point is found)."""
    table = Table(title="passes", title_justify="left", box=None, padding=(0, 1), header_style="bold")
    longest = max([len(rec.name) for rec in records] + [10])
    table.add_column("round", justify="right", no_wrap=True)
    table.add_column("pass", no_wrap=True, min_width=longest)  # names stay whole; the check wraps first
    for name in ("status", "time", "nodes", "weights Δ"):
        table.add_column(name, justify="left" if name == "status" else "right", no_wrap=True)
    table.add_column("check", overflow="fold")
    for round_number, group in groupby(records, key=lambda rec: rec.round):
        runs = list(group)
        if round_number and all(rec.status in ("unchanged", "disabled") for rec in runs):
            seconds = sum(rec.seconds for rec in runs)
            table.add_row(
                str(round_number),
                f"{len(runs)} pass{'es' if len(runs) != 1 else ''}",
                "unchanged",
                _ms(seconds),
                str(runs[0].nodes_before),
                "",
                "fixed point",
                style="dim",
            )
            continue
        for rec in runs:
            table.add_row(
                str(rec.round) if rec.round else "",
                rec.name,
                Text(rec.status, style=STATUS_STYLE.get(rec.status, "")),
                _ms(rec.seconds),
                _nodes(rec),
                _weights(rec),
                check_cell(rec.checks.get("numeric")),
                style="dim" if rec.status in ("unchanged", "disabled") else "",
            )
            if rec.failure:
                table.add_row("", Text(f"  ! {rec.failure}", style="red"), "", "", "", "", "")
    return table


def check_cell(check: dict[str, Any] | None) -> Text:
    """The check column: ``ok`` green, ``weak`` yellow, ``FAILED`` bold red, the detail after it."""
    text = check_text_of(check)
    word, _, detail = text.partition(" ")
    style = {"ok": "green", "weak": "yellow", "FAILED": "bold red"}.get(word, "dim")
    return Text.assemble((word, style), (" " + detail if detail else "", "dim"))


def diff_lines(changes: list[PassChanges], text: str) -> Text:
    """``--diff`` as coloured text: removals red, additions green, changes yellow."""
    styles = {"-": "red", "+": "green", "~": "yellow"}
    out = Text()
    for line in text.splitlines():
        mark = line.strip()[:1]
        out.append(line + "\n", style=styles.get(mark, "bold" if not line.startswith(" ") else ""))
    return out


def print_summary(
    console: Console,
    result: Any,
    summary: str,
    rolled_back: list[tuple[str, str]],
    output: str,
    rules: str | None,
    diff: str | None,
) -> None:
    """Everything ``optimize`` prints on a terminal, in the order of the plain text."""
    from graphopt.report import check_inputs_text

    console.print(op_table(result.ops_before, result.ops_after))
    console.print()
    if result.check_inputs:
        console.print(Text(check_inputs_text(result.check_inputs), style="cyan"))
        console.print()
    console.print(pass_table(result.report.records))
    console.print()
    if diff is not None:
        console.print(diff_lines(result.changes or [], diff))
    if rules is not None:
        console.print(Text(rules))
        console.print()
    console.print(Text(summary, style="bold"))
    for warning in result.report.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"))
    for failure, repro in rolled_back:
        console.print(
            Text.assemble(("rolled back: ", "bold red"), failure, ("\n  reproduce: ", "dim"), repro)
        )
    console.print(Text.assemble("wrote ", (output, "bold green")))


def _signed(n: int) -> str:
    return f"{n:+d}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}ms"


def _nodes(rec: PassRecord) -> str:
    if rec.status in ("disabled", "rolled-back") or rec.nodes_after == rec.nodes_before:
        return str(rec.nodes_before)
    return f"{rec.nodes_before}→{rec.nodes_after}"


def _weights(rec: PassRecord) -> str:
    if rec.status != "changed" or rec.bytes_after == rec.bytes_before:
        return ""
    delta = rec.bytes_after - rec.bytes_before
    return ("+" if delta > 0 else "") + format_bytes(delta)
