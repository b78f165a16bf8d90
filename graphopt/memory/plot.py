"""The plan as an SVG picture: schedule step on x, arena offset on y, one rectangle per buffer, so a
reader sees at a glance where the peak is, how tightly buffers pack and which tensors are the big ones.

Colours say what a buffer is (one tensor, or bytes shared by views and in-place writes), with a legend;
only the ``LABELLED`` largest buffers get a numbered badge and a line in the key, so a model with ten
thousand buffers stays as readable as one with ten. Plain SVG, no plotting library, deterministic.
"""

from __future__ import annotations

import colorsys
import hashlib
from html import escape

from graphopt.memory.plan import MemoryPlan, Placement
from graphopt.plots.svg import MB, clip, document, f2, human_bytes, legend, text, ticks, y_ticks

WIDTH, HEIGHT = 1000, 600
LEFT, RIGHT, TOP, BOTTOM = 92, 720, 50, 530  # the plot area; the key sits right of it
KEY_X = 740
LABELLED = 5  # largest buffers named in the key
OUTLINED = 1000  # above this many buffers outlines would paint the thin ones dark grey: fill only
HUES = {"alone": 0.6, "shared": 0.08}  # blue: one tensor; orange: bytes other tensors reuse


def _colour(name: str, kind: str) -> str:
    """The kind's hue, lightness and saturation varied per tensor so neighbours stay apart; hex, since
    every SVG renderer reads it and not all read hsl()."""
    digest = hashlib.sha256(name.encode()).digest()
    light, saturation = 0.55 + digest[2] % 20 / 100, 0.55 + digest[1] % 20 / 100
    return _hex(HUES[kind], light, saturation)


def _hex(hue: float, light: float, saturation: float) -> str:
    red, green, blue = colorsys.hls_to_rgb(hue, light, saturation)
    return f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def _buffers(plan: MemoryPlan) -> list[tuple[Placement, int, str]]:
    """Each arena buffer (tensor, last step, kind) by offset. A buffer lasts until the last tensor
    sharing it; external views take no arena bytes and aliases are drawn by the tensor they share."""
    by_name = {t.name: t for t in plan.tensors}
    last_step: dict[str, int] = {}
    shared: set[str] = set()
    for t in plan.tensors:
        root = t
        while root.alias_of and root.alias_of in by_name:
            root = by_name[root.alias_of]
        last_step[root.name] = max(last_step.get(root.name, t.end), t.end)
        if root is not t:
            shared.add(root.name)
    drawn = [t for t in plan.tensors if t.offset is not None and not t.alias_of]
    drawn.sort(key=lambda t: (t.offset or 0, t.start, t.name))
    return [(t, last_step.get(t.name, t.end), "shared" if t.name in shared else "alone") for t in drawn]


def _axes(plan: MemoryPlan, sx: float, sy: float) -> list[str]:
    """Axis lines, ticks in steps (x) and MB (y), axis titles and the lower-bound line."""
    mb_ticks, decimals = ticks(plan.arena_bytes / MB)
    parts = y_ticks(mb_ticks, [f"{v:.{decimals}f} MB" for v in mb_ticks], LEFT, RIGHT,
                    lambda v: BOTTOM - v * MB * sy)
    step_ticks, _ = ticks(max(plan.steps, 1), count=8, integer=True)
    parts.append('<g id="x-ticks">')
    for step in step_ticks:
        x = LEFT + (step + 0.5) * sx
        parts.append(f'<line x1="{f2(x)}" y1="{BOTTOM}" x2="{f2(x)}" y2="{BOTTOM + 4}" stroke="black"/>')
        parts.append(text(x, BOTTOM + 17, f"{step:.0f}", text_anchor="middle"))
    parts.append("</g>")
    bound_y = BOTTOM - plan.lower_bound_bytes * sy
    return [*parts,
            f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{RIGHT}" y2="{BOTTOM}" stroke="black"/>',
            f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="black"/>',
            f'<line x1="{LEFT}" y1="{f2(bound_y)}" x2="{RIGHT}" y2="{f2(bound_y)}" stroke="red" '
            'stroke-dasharray="4 3"/>',
            text((LEFT + RIGHT) / 2, BOTTOM + 42, "schedule step", text_anchor="middle", id="x-title"),
            text(16, (TOP + BOTTOM) / 2, "arena offset (MB)", text_anchor="middle", id="y-title",
                 transform=f"rotate(-90 16 {(TOP + BOTTOM) / 2:g})")]


def _key(largest: list[tuple[Placement, int, str]]) -> list[str]:
    """The legend of colours and the line, then the largest buffers by number, name and size."""
    parts = legend(KEY_X, TOP + 10, [(_hex(HUES["alone"], 0.65, 0.65), "buffer of one tensor"),
                                     (_hex(HUES["shared"], 0.65, 0.65), "shared by views / in-place ops"),
                                     ("line:red 4 3", "lower bound (peak live bytes)")])
    parts += ['<g id="largest" font-size="11">',
              text(KEY_X, TOP + 90, f"largest buffers (top {len(largest)})", font_weight="bold")]
    for rank, (t, end, _) in enumerate(largest, start=1):
        y = TOP + 110 + (rank - 1) * 32
        parts.append(f'<text x="{KEY_X}" y="{y}" class="largest-name">{rank}. {escape(clip(t.name, 36))}'
                     f"<title>{escape(t.name)}</title></text>")
        parts.append(text(KEY_X + 14, y + 14, f"{human_bytes(t.size)}, steps {t.start}..{end}",
                          **{"class": "largest-size"}))
    parts.append("</g>")
    return parts


def plan_svg(plan: MemoryPlan, title: str = "") -> str:
    """An SVG document of ``plan`` (byte-identical for the same plan and title).

    Example: ``write_text_atomic("plan.svg", plan_svg(plan, title="model.onnx"))``.
    """
    sx = (RIGHT - LEFT) / (max(plan.steps, 1) + 1)
    sy = (BOTTOM - TOP) / max(plan.arena_bytes, 1)
    buffers = _buffers(plan)
    largest = sorted(buffers, key=lambda b: (-b[0].size, b[0].name))[:LABELLED]
    parts = [text(LEFT, 24, f"{title or 'memory plan'}: arena {plan.arena_bytes / MB:.3f} MB, lower bound "
                  f"{plan.lower_bound_bytes / MB:.3f} MB, ratio {plan.ratio:.3f}", font_size="15"),
             text(LEFT, 40, f"{len(buffers)} buffers for {len(plan.tensors)} tensors over {plan.steps} "
                  "steps", font_size="11", fill="#555"),
             *_axes(plan, sx, sy), '<g id="buffers">']
    outline = ' stroke="#333" stroke-width="0.3"' if len(buffers) <= OUTLINED else ""
    for t, end, kind in buffers:
        x, y = LEFT + t.start * sx, BOTTOM - (t.offset + t.size) * sy  # type: ignore[operator]
        tip = f"{escape(t.name)}: {t.size} B at {t.offset}, steps {t.start}..{end}"
        parts.append(f'<rect x="{f2(x)}" y="{f2(y)}" width="{f2(max((end - t.start + 1) * sx, 0.5))}" '
                     f'height="{f2(max(t.size * sy, 0.5))}" fill="{_colour(t.name, kind)}" class="{kind}"'
                     f"{outline}><title>{tip}</title></rect>")
    parts += ["</g>", '<g id="badges" font-size="10">']
    for rank, (t, end, _) in enumerate(largest, start=1):
        cx = LEFT + (t.start + (end - t.start + 1) / 2) * sx
        cy = BOTTOM - (t.offset + t.size / 2) * sy  # type: ignore[operator]
        parts.append(f'<circle cx="{f2(cx)}" cy="{f2(cy)}" r="7" fill="white" stroke="#333"/>')
        parts.append(text(cx, cy + 3.5, str(rank), text_anchor="middle"))
    parts.append("</g>")
    return document(WIDTH, HEIGHT, parts + _key(largest))
