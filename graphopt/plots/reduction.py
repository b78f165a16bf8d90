"""The node count of an optimize run after each pass that changed the model, as an SVG bar chart.

One bar per changing pass in run order (passes that found nothing are left out: on a real model they are
most of the runs and would bury the ones that matter), a bar for the input first, rolled-back passes in
their own colour, fixed-point rounds separated and labelled, and the weight bytes as a line on a second
axis. Deterministic: the same records give the same bytes.

Example::

    svg = reduction_svg(result.report.records, sum(result.ops_before.values()), title="model.onnx")
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Sequence

from graphopt.pass_infra.manager import PassRecord
from graphopt.plots.svg import clip, document, f2, human_bytes, legend, text, ticks, unit_of, y_ticks

COLOURS = {"input": "#a0a0a0", "changed": "#4a7fd4", "rolled-back": "#d9534f"}
WEIGHTS = "#2e8b57"
SLOT = 22  # horizontal px per bar: a rotated 11px pass name fits beside the next one
LEFT, TOP, PLOT_HEIGHT, RIGHT_ROOM = 80, 92, 300, 100
LABEL_CHARS = 32  # longer pass names are shortened in the middle (the bar's tooltip has the whole step)
MIN_PLOT_WIDTH = 560


@dataclass(frozen=True)
class _Bar:
    """One bar: the node count and weight bytes after ``label`` ran (or at the input)."""

    label: str
    nodes: int
    weight_bytes: int
    kind: str  # input | changed | rolled-back
    round: int
    tip: str


def _bars(records: Sequence[PassRecord], nodes_before: int) -> list[_Bar]:
    """The input bar, an import bar when importing alone changed the count (Constant nodes become
    initializers), then one bar per changed or rolled-back pass."""
    ran = [r for r in records if r.status != "disabled"]
    start_bytes = ran[0].bytes_before if ran else 0
    bars = [_Bar("input", nodes_before, start_bytes, "input", 0, f"input: {nodes_before} nodes")]
    if ran and ran[0].nodes_before != nodes_before:
        bars.append(_Bar("import", ran[0].nodes_before, start_bytes, "input", 0,
                         f"after import (Constant nodes become initializers): {ran[0].nodes_before} nodes"))
    for r in ran:
        if r.status not in ("changed", "rolled-back"):
            continue
        where = f" (round {r.round})" if r.round else ""
        # no time in the tip: two runs of the same model must write the same bytes
        tip = (f"{r.step or r.name}{where}: {r.status}, nodes {r.nodes_before} -> {r.nodes_after}, weights "
               f"{human_bytes(r.bytes_before)} -> {human_bytes(r.bytes_after)}")
        if r.failure:
            tip += f"; {r.failure}"
        bars.append(_Bar(r.name, r.nodes_after, r.bytes_after, r.status, r.round, tip))
    return bars


def _columns(bars: list[_Bar], bottom: float, sy: float) -> list[str]:
    """The bars and, under each, its pass name turned 50 degrees so long names do not collide."""
    parts = ['<g id="bars">']
    for i, bar in enumerate(bars):
        height = bar.nodes * sy
        parts.append(f'<rect x="{f2(LEFT + i * SLOT + 3)}" y="{f2(bottom - height)}" width="{SLOT - 6}" '
                     f'height="{f2(height)}" fill="{COLOURS[bar.kind]}" class="bar {bar.kind}">'
                     f"<title>{escape(bar.tip)}</title></rect>")
    parts += ["</g>", '<g id="x-labels" font-size="11">']
    for i, bar in enumerate(bars):
        x, y = LEFT + (i + 0.5) * SLOT + 4, bottom + 10
        parts.append(text(x, y, clip(bar.label, LABEL_CHARS), text_anchor="end",
                          transform=f"rotate(-50 {f2(x)} {f2(y)})"))
    parts.append("</g>")
    return parts


def _rounds(bars: list[_Bar], bottom: float) -> list[str]:
    """A dashed line and ``round N`` where the fixed-point round changes; labels closer than a label's
    width alternate between two rows."""
    parts, previous, last_x, row = ['<g id="rounds" font-size="10" fill="#555">'], 0, -1e9, 0
    for i, bar in enumerate(bars):
        if bar.round == previous or not bar.round:
            previous = bar.round
            continue
        x = LEFT + i * SLOT
        row = 1 - row if x - last_x < 46 else 0
        parts.append(f'<line x1="{x}" y1="{TOP - 14 - 12 * row}" x2="{x}" y2="{f2(bottom)}" stroke="#888" '
                     'stroke-dasharray="3 3"/>')
        parts.append(text(x + 3, TOP - 4 - 12 * row, f"round {bar.round}"))
        previous, last_x = bar.round, x
    parts.append("</g>")
    return parts


def _weights(bars: list[_Bar], right: float, bottom: float) -> list[str]:
    """Weight bytes after each bar as a line, on an axis at the right in the unit that fits the largest."""
    largest = max(bar.weight_bytes for bar in bars)
    if largest <= 0:
        return []
    unit, size = unit_of(largest)
    values, decimals = ticks(largest / size)
    sy = PLOT_HEIGHT / (largest / size)
    points = " ".join(f"{f2(LEFT + (i + 0.5) * SLOT)},{f2(bottom - bar.weight_bytes / size * sy)}"
                      for i, bar in enumerate(bars))
    middle = TOP + PLOT_HEIGHT / 2
    return [*y_ticks(values, [f"{v:.{decimals}f} {unit}" for v in values], LEFT, right,
                     lambda v: bottom - v * sy, side="right", group="weight-ticks"),
            f'<polyline id="weights" points="{points}" fill="none" stroke="{WEIGHTS}" stroke-width="1.5"/>',
            f'<line x1="{f2(right)}" y1="{TOP}" x2="{f2(right)}" y2="{f2(bottom)}" stroke="#333"/>',
            text(right + RIGHT_ROOM - 12, middle, "weight bytes", text_anchor="middle", fill=WEIGHTS,
                 transform=f"rotate(-90 {f2(right + RIGHT_ROOM - 12)} {f2(middle)})")]


def reduction_svg(records: Sequence[PassRecord], nodes_before: int, title: str = "") -> str:
    """An SVG bar chart of the node count after each pass of ``records`` that changed the model.

    Args:
        records: the run's pass records (``PipelineReport.records``), in run order.
        nodes_before: the input model's node count (the first bar).
        title: what the chart is of, e.g. the model's file name.
    """
    bars = _bars(records, nodes_before)
    right = LEFT + max(len(bars) * SLOT, MIN_PLOT_WIDTH)
    bottom = TOP + PLOT_HEIGHT
    below = 56 + 5 * min(max(len(bar.label) for bar in bars), LABEL_CHARS)  # the turned names' depth
    top_nodes = max(bar.nodes for bar in bars) or 1
    sy = PLOT_HEIGHT / top_nodes
    values, _ = ticks(top_nodes, integer=True)
    changed = sum(bar.kind == "changed" for bar in bars)
    rolled = sum(bar.kind == "rolled-back" for bar in bars)
    hidden = sum(r.status not in ("changed", "rolled-back") for r in records)
    final, saved = bars[-1].nodes, nodes_before - bars[-1].nodes
    share = f" ({-saved / nodes_before:+.1%})" if nodes_before else ""
    parts = [text(LEFT, 22, f"{title or 'optimize'}: {nodes_before} -> {final} nodes{share}", font_size="15"),
             text(LEFT, 39, f"{changed} pass runs changed the model, {rolled} rolled back; {hidden} runs "
                  "without a change are not shown", font_size="11", fill="#555"),
             *legend(LEFT, 50, [(COLOURS["input"], "input"), (COLOURS["changed"], "changed the model"),
                                (COLOURS["rolled-back"], "rolled back (change undone)"),
                                (f"line:{WEIGHTS}", "weight bytes (right axis)")], across=True),
             *y_ticks(values, [f"{v:.0f}" for v in values], LEFT, right, lambda v: bottom - v * sy),
             *_rounds(bars, bottom), *_columns(bars, bottom, sy), *_weights(bars, right, bottom),
             f'<line x1="{LEFT}" y1="{f2(bottom)}" x2="{f2(right)}" y2="{f2(bottom)}" stroke="black"/>',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{f2(bottom)}" stroke="black"/>',
             text(18, TOP + PLOT_HEIGHT / 2, "nodes", text_anchor="middle", id="y-title",
                  transform=f"rotate(-90 18 {f2(TOP + PLOT_HEIGHT / 2)})"),
             text((LEFT + right) / 2, bottom + below - 12, "passes that changed the model, in run order",
                  text_anchor="middle", id="x-title")]
    return document(right + RIGHT_ROOM, bottom + below, parts)
