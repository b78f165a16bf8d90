"""The few SVG pieces the charts share: round axis ticks, byte sizes, text, a legend and the document.

Written by hand instead of with a plotting library: graphopt has no plotting dependency, and text that
only depends on its input makes the same picture byte for byte (a picture in a test or a diff).
"""

from __future__ import annotations

import math
from html import escape
from typing import Callable

MB = 1024 * 1024
_UNITS = (("GB", 1024 ** 3), ("MB", MB), ("KB", 1024), ("B", 1))


def ticks(top: float, count: int = 5, integer: bool = False) -> tuple[list[float], int]:
    """Tick values 0, s, 2s, ... up to ``top`` for a round step s (1, 2, 2.5 or 5 times a power of ten,
    at most about ``count`` steps), and the decimals that print every one exactly. ``integer`` keeps s a
    whole number."""
    if top <= 0:
        return [0.0], 0
    raw = top / count
    power = math.floor(math.log10(raw))
    if integer:
        power = max(power, 0)
    choices = (1, 2, 5, 10) if integer and power == 0 else (1, 2, 2.5, 5, 10)
    mantissa = next(m for m in choices if m * 10.0 ** power >= raw)
    if mantissa == 10:
        mantissa, power = 1, power + 1
    step = mantissa * 10.0 ** power
    values = [i * step for i in range(int(top / step + 1e-9) + 1)]
    return values, max(0, (1 if mantissa == 2.5 else 0) - power)


def unit_of(largest: float) -> tuple[str, int]:
    """The unit (name, bytes) that prints ``largest`` bytes with at most four digits before the point."""
    return next(((name, size) for name, size in _UNITS if largest >= size), ("B", 1))


def human_bytes(n: float) -> str:
    """``1.50 MB``, ``384.00 KB``, ``20 B``: a size as a reader says it."""
    name, size = unit_of(abs(n))
    return f"{n:.0f} B" if size == 1 else f"{n / size:.2f} {name}"


def f2(value: float) -> str:
    """A coordinate with two decimals (enough for a screen, and the same text on every platform)."""
    return f"{value:.2f}"


def text(x: float, y: float, content: str, **attrs: str) -> str:
    """A ``<text>`` element; ``content`` is escaped, attribute names use ``_`` for ``-``."""
    extra = "".join(f' {k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{f2(x)}" y="{f2(y)}"{extra}>{escape(content)}</text>'


def clip(name: str, limit: int) -> str:
    """``name`` cut to ``limit`` characters with an ellipsis in the middle (both ends identify a tensor)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) // 2
    return name[:head] + "…" + name[len(name) - (limit - 1 - head):]


def y_ticks(values: list[float], labels: list[str], left: float, right: float, to_y: Callable[[float], float],
            side: str = "left", group: str = "y-ticks") -> list[str]:
    """A ``<g id=group>`` of horizontal grid lines across [left, right] at each value, labelled on the
    left (text ending at the axis) or on the right side."""
    parts = [f'<g id="{group}">']
    for value, label in zip(values, labels):
        y = to_y(value)
        if side == "left":
            parts.append(f'<line x1="{f2(left)}" y1="{f2(y)}" x2="{f2(right)}" y2="{f2(y)}" stroke="#ddd"/>')
            parts.append(text(left - 6, y + 4, label, text_anchor="end"))
        else:
            parts.append(f'<line x1="{f2(right)}" y1="{f2(y)}" x2="{f2(right + 4)}" y2="{f2(y)}" '
                         'stroke="#333"/>')
            parts.append(text(right + 6, y + 4, label))
    parts.append("</g>")
    return parts


def legend(x: float, y: float, entries: list[tuple[str, str]], row: float = 18,
           across: bool = False) -> list[str]:
    """A ``<g id="legend">`` of entries (style, label), one per row from (x, y), or side by side when
    ``across``. A style starting with ``line:`` draws a line segment in that stroke (``line:red 4 3``
    is red, dashed 4 on 3 off); any other style is a fill colour for a square swatch."""
    parts = ['<g id="legend">']
    top = y
    for style, label in entries:
        if style.startswith("line:"):
            colour, *dash = style[5:].split()
            dashes = f' stroke-dasharray="{" ".join(dash)}"' if dash else ""
            parts.append(f'<line x1="{f2(x)}" y1="{f2(top + 6)}" x2="{f2(x + 14)}" y2="{f2(top + 6)}" '
                         f'stroke="{colour}" stroke-width="2"{dashes}/>')
        else:
            parts.append(f'<rect x="{f2(x)}" y="{f2(top)}" width="12" height="12" fill="{style}" '
                         'stroke="#333" stroke-width="0.5"/>')
        parts.append(text(x + 20, top + 10, label, **{"class": "legend-label"}))
        if across:
            x += 34 + 6.5 * len(label)  # about a sans-serif 12px character, and a gap
        else:
            top += row
    parts.append("</g>")
    return parts


def document(width: float, height: float, body: list[str]) -> str:
    """The SVG document: white background, ``body``, a final newline."""
    head = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
            f'viewBox="0 0 {width:g} {height:g}" font-family="sans-serif" font-size="12">',
            f'<rect width="{width:g}" height="{height:g}" fill="white"/>']
    return "\n".join([*head, *body, "</svg>"]) + "\n"
