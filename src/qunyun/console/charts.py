"""Charts as inline SVG, drawn on the server.

Why not a JavaScript charting library: the console must work offline, on a phone, and under a
strict Content-Security-Policy, and these charts are simple daily series. An SVG needs no script,
prints, scales with the page, and every point carries a <title> that browsers show on hover.
Colours come from classes in console.css (style attributes would be blocked by the CSP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 14, 28
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    css: str = "s1"  # s1…s4: the palette in console.css


def _nice_max(value: float) -> float:
    """A round upper bound for the y axis (1, 2, 2.5, 5 × 10^n)."""
    if value <= 1:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def _frame(
    labels: Sequence[str], series: Sequence[Series], fmt: Callable[[float], str], title: str
) -> tuple[list[str], float]:
    """The SVG's opening, grid and axis labels; and the y axis' top value."""
    top = _nice_max(max((v for s in series for v in s.values), default=0))
    plot_w, plot_h = PLOT_W, PLOT_H
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}"'
        ' xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for i in range(5):
        y = TOP + plot_h * i / 4
        value = top * (4 - i) / 4
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(value))}</text>')
    if labels:
        every = max(1, len(labels) // 6)
        for i, label in enumerate(labels):
            if i % every and i != len(labels) - 1:
                continue
            x = LEFT + plot_w * (i + 0.5) / len(labels)
            parts.append(f'<text class="axis" x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{escape(label)}</text>')
    return parts, top


def _tip(labels: Sequence[str], i: int, series: Series, text: str) -> str:
    """The hover title of point ``i`` of ``series``."""
    label = labels[i] if i < len(labels) else ""
    return f"<title>{escape(label)} {escape(series.name)}: {escape(text)}</title>"


def _legend(series: Sequence[Series]) -> str:
    if len(series) < 2:
        return ""
    items = "".join(f'<li><span class="key {s.css}"></span>{escape(s.name)}</li>' for s in series)
    return f'<ul class="legend">{items}</ul>'


def line_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, fmt: Callable[[float], str] = lambda v: f"{v:g}"
) -> Markup:
    """One polyline per series over ``labels`` (e.g. days)."""
    parts, top = _frame(labels, series, fmt, title)
    plot_w, plot_h = PLOT_W, PLOT_H
    n = max(len(labels), 1)
    for s in series:
        points = []
        dots = []
        for i, value in enumerate(s.values):
            x = LEFT + plot_w * (i + 0.5) / n
            y = TOP + plot_h * (1 - value / top)
            points.append(f"{x:.1f},{y:.1f}")
            tip = _tip(labels, i, s, fmt(value))
            dots.append(f'<circle class="dot {s.css}" cx="{x:.1f}" cy="{y:.1f}" r="2.5">{tip}</circle>')
        parts.append(f'<polyline class="line {s.css}" points="{" ".join(points)}"/>')
        parts.extend(dots)
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(series))


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, fmt: Callable[[float], str] = lambda v: f"{v:g}"
) -> Markup:
    """Grouped bars: one bar per series in each label's slot."""
    parts, top = _frame(labels, series, fmt, title)
    plot_w, plot_h = PLOT_W, PLOT_H
    n = max(len(labels), 1)
    slot = plot_w / n
    width = slot * 0.8 / max(len(series), 1)
    for k, s in enumerate(series):
        for i, value in enumerate(s.values):
            h = plot_h * max(value, 0) / top
            x = LEFT + slot * i + slot * 0.1 + width * k
            parts.append(
                f'<rect class="bar {s.css}" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{width:.1f}"'
                f' height="{h:.1f}">{_tip(labels, i, s, fmt(value))}</rect>'
            )
    parts.append("</svg>")
    return Markup("".join(parts) + _legend(series))
