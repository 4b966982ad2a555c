"""Charts as inline SVG, drawn on the server.

Why not a JavaScript charting library: the console must work offline, on a phone, and under a
strict Content-Security-Policy, and these charts are simple daily series. An SVG needs no script,
prints, scales with the page, and every point, bar and day column carries a <title> that browsers
show on hover. Colours come from classes in console.css (style attributes would be blocked by the
CSP); sizes are presentation attributes, which the CSP allows.

Readable at a glance: the SVG scales with its card, so the text size is chosen in the drawing's
units for the narrowest card (a phone, ``NARROWEST_PX`` wide): axis labels never render below
``MIN_FONT_PX``. Head counts get whole-number ticks; a missing value (a ratio on a day without
members) leaves a gap and reads "—", it is not drawn as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 400, 220
LEFT, RIGHT, TOP, BOTTOM = 54, 8, 12, 30
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
NARROWEST_PX = 320  # a chart card on a 360 px phone, less the page's and the card's padding
MIN_FONT_PX = 11
FONT = math.ceil(MIN_FONT_PX * WIDTH / NARROWEST_PX)  # in the drawing's units: 14
NO_VALUE = "—"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    css: str = "s1"  # s1…s4: the palette in console.css


def ticks(top_value: float, *, whole: bool, most: int = 5) -> list[float]:
    """Axis ticks from 0 up to at least ``top_value`` in steps of 1, 2 or 5 × 10^n, at most
    ``most`` intervals; with ``whole`` the steps are whole numbers (no 2.5 people)."""
    if top_value <= 0:
        return [0.0, 1.0]
    raw = top_value / most
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    if whole:
        step = max(1.0, float(math.ceil(step)))
    count = max(1, math.ceil(top_value / step - 1e-9))
    return [round(step * i, 9) for i in range(count + 1)]


def _text(x: float, y: float, label: str, anchor: str) -> str:
    return (
        f'<text class="axis" x="{x:.1f}" y="{y:.1f}" font-size="{FONT}" text-anchor="{anchor}">{escape(label)}</text>'
    )


def _short(label: str, room: float) -> str:
    """``label`` cut to fit ``room`` drawing units (CJK characters are about one em wide)."""
    width = sum(FONT if ord(ch) > 0x2E80 else FONT * 0.6 for ch in label)
    if width <= room:
        return label
    out = ""
    for ch in label:
        if sum(FONT if ord(c) > 0x2E80 else FONT * 0.6 for c in out + ch) > room - FONT:
            break
        out += ch
    return out + "…"


def _frame(
    labels: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str], title: str, whole: bool | None
) -> tuple[list[str], float]:
    """The SVG's opening, grid and axis labels; and the y axis' top value."""
    if whole is None:  # counts arrive as ints: members, joins, orders
        whole = all(isinstance(v, int) for s in series for v in s.values if v is not None)
    marks = ticks(max((v for s in series for v in s.values if v is not None), default=0), whole=whole)
    top = marks[-1]
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for value in marks:
        y = TOP + PLOT_H * (1 - value / top)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(_text(LEFT - 6, y + FONT * 0.35, fmt(value), "end"))
    if labels:
        slot = PLOT_W / len(labels)
        # As many labels as fit side by side (about five characters each), the last one always.
        every = max(1, math.ceil(len(labels) / max(1, int(PLOT_W // (FONT * 4)))))
        for i, label in enumerate(labels):
            if i % every and i != len(labels) - 1:
                continue
            if i != len(labels) - 1 and len(labels) - 1 - i < every:
                continue  # too close to the last label
            text = _short(label, max(slot * every, FONT * 3))
            if i == len(labels) - 1 and i:
                # The last label ends at the plot's right edge instead of being cut off by it.
                parts.append(_text(LEFT + PLOT_W, HEIGHT - 9, text, "end"))
            else:
                parts.append(_text(LEFT + slot * (i + 0.5), HEIGHT - 9, text, "middle"))
    return parts, top


def _shown(value: float | None, fmt: Callable[[float], str]) -> str:
    return NO_VALUE if value is None else fmt(value)


def _tip(labels: Sequence[str], i: int, series: Series, text: str) -> str:
    """The hover title of point ``i`` of ``series``."""
    label = labels[i] if i < len(labels) else ""
    return f"<title>{escape(label)} {escape(series.name)}: {escape(text)}</title>"


def _columns(labels: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str]) -> list[str]:
    """A transparent column per label, on top, whose title lists every series' value there:
    hovering anywhere over a day shows its numbers, not only on a 3-pixel dot."""
    parts = []
    slot = PLOT_W / max(len(labels), 1)
    for i, label in enumerate(labels):
        values = "; ".join(f"{s.name}: {_shown(s.values[i] if i < len(s.values) else None, fmt)}" for s in series)
        parts.append(
            f'<rect class="hover" x="{LEFT + slot * i:.1f}" y="{TOP}" width="{slot:.1f}" height="{PLOT_H}"'
            f' fill="transparent"><title>{escape(label)} · {escape(values)}</title></rect>'
        )
    return parts


def _legend(series: Sequence[Series]) -> str:
    if len(series) < 2:
        return ""
    items = "".join(f'<li><span class="key {s.css}"></span>{escape(s.name)}</li>' for s in series)
    return f'<ul class="legend">{items}</ul>'


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Callable[[float], str] = _number,
    whole: bool | None = None,
) -> Markup:
    """One line per series over ``labels`` (e.g. days); a None value breaks the line.
    ``whole``: the values are counts (head counts), so the axis steps by whole numbers; by
    default when every value is an int."""
    parts, top = _frame(labels, series, fmt, title, whole)
    n = max(len(labels), 1)
    for s in series:
        runs: list[list[str]] = [[]]
        dots = []
        for i, value in enumerate(s.values):
            if value is None:
                runs.append([])
                continue
            x = LEFT + PLOT_W * (i + 0.5) / n
            y = TOP + PLOT_H * (1 - value / top)
            runs[-1].append(f"{x:.1f},{y:.1f}")
            tip = _tip(labels, i, s, fmt(value))
            dots.append(f'<circle class="dot {s.css}" cx="{x:.1f}" cy="{y:.1f}" r="3">{tip}</circle>')
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline class="line {s.css}" points="{" ".join(run)}"/>')
        parts.extend(dots)
    parts.extend(_columns(labels, series, fmt))
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(series))


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Callable[[float], str] = _number,
    whole: bool | None = None,
) -> Markup:
    """Grouped bars: one bar per series in each label's slot (none for a None value)."""
    parts, top = _frame(labels, series, fmt, title, whole)
    n = max(len(labels), 1)
    slot = PLOT_W / n
    width = slot * 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        for i, value in enumerate(s.values):
            if value is None:
                continue
            h = PLOT_H * max(value, 0) / top
            x = LEFT + slot * i + slot * 0.1 + width * k
            parts.append(
                f'<rect class="bar {s.css}" x="{x:.1f}" y="{TOP + PLOT_H - h:.1f}" width="{width:.1f}"'
                f' height="{h:.1f}">{_tip(labels, i, s, fmt(value))}</rect>'
            )
    parts.extend(_columns(labels, series, fmt))
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(series))
