"""The plan as an SVG picture: time (steps) on x, arena offset on y, one rectangle per buffer, so a
reader sees at a glance where the peak is and how tightly buffers pack. Plain SVG, no plotting library."""

from __future__ import annotations

import colorsys
import hashlib
from html import escape

from graphopt.memory.plan import MemoryPlan

WIDTH, HEIGHT, MARGIN = 1000, 600, 60


def _colour(name: str) -> str:
    """A stable pastel colour per tensor, as hex (every SVG renderer reads it; not all read hsl())."""
    digest = hashlib.sha256(name.encode()).digest()
    hue, light, saturation = digest[0] / 256, 0.55 + digest[2] % 20 / 100, 0.55 + digest[1] % 30 / 100
    red, green, blue = colorsys.hls_to_rgb(hue, light, saturation)
    return f"#{int(red * 255):02x}{int(green * 255):02x}{int(blue * 255):02x}"


def plan_svg(plan: MemoryPlan, title: str = "") -> str:
    """An SVG document of ``plan`` (deterministic for a given plan)."""
    steps = max(plan.steps, 1) + 1
    arena = max(plan.arena_bytes, 1)
    sx, sy = (WIDTH - 2 * MARGIN) / steps, (HEIGHT - 2 * MARGIN) / arena
    mb = 1024 * 1024
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
             f'<text x="{MARGIN}" y="24" font-size="15">{escape(title or "memory plan")}: arena '
             f'{plan.arena_bytes / mb:.3f} MB, lower bound {plan.lower_bound_bytes / mb:.3f} MB, '
             f'ratio {plan.ratio:.3f}</text>',
             f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" '
             'stroke="black"/>',
             f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="black"/>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 20}" text-anchor="middle">step</text>',
             f'<text x="16" y="{HEIGHT / 2}" transform="rotate(-90 16 {HEIGHT / 2})" '
             'text-anchor="middle">offset (bytes)</text>',
             f'<text x="{MARGIN - 4}" y="{MARGIN + 4}" text-anchor="end">{plan.arena_bytes / mb:.1f}M</text>',
             f'<text x="{MARGIN - 4}" y="{HEIGHT - MARGIN}" text-anchor="end">0</text>',
             f'<text x="{MARGIN}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">0</text>',
             f'<text x="{WIDTH - MARGIN}" y="{HEIGHT - MARGIN + 16}" '
             f'text-anchor="middle">{plan.steps}</text>']
    bound_y = HEIGHT - MARGIN - plan.lower_bound_bytes * sy
    parts.append(f'<line x1="{MARGIN}" y1="{bound_y:.2f}" x2="{WIDTH - MARGIN}" y2="{bound_y:.2f}" '
                 'stroke="red" stroke-dasharray="4 3"/>')
    by_name = {t.name: t for t in plan.tensors}
    last_step: dict[str, int] = {}
    for t in plan.tensors:  # a buffer lasts until the last tensor sharing it (views, in-place writes)
        root = t
        while root.alias_of and root.alias_of in by_name:
            root = by_name[root.alias_of]
        last_step[root.name] = max(last_step.get(root.name, t.end), t.end)
    for t in sorted(plan.tensors, key=lambda t: (t.offset is None, t.offset or 0, t.start, t.name)):
        if t.offset is None or t.alias_of:
            continue  # external views take no arena bytes; aliases are drawn by the tensor they share
        end = last_step.get(t.name, t.end)
        x = MARGIN + t.start * sx
        width = max((end - t.start + 1) * sx, 0.5)
        y = HEIGHT - MARGIN - (t.offset + t.size) * sy
        height = max(t.size * sy, 0.5)
        tip = f"{escape(t.name)}: {t.size} B at {t.offset}, steps {t.start}..{end}"
        parts.append(f'<rect x="{x:.2f}" y="{y:.2f}" width="{width:.2f}" height="{height:.2f}" '
                     f'fill="{_colour(t.name)}" stroke="#333" stroke-width="0.3"><title>{tip}</title></rect>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
