"""Charts drawn on the server as inline SVG: no script, nothing from another origin.

Each chart has a viewBox 360 units wide and scales to its container (dashboard.css), so a
13-unit label is about 13 px on a 390 px phone. Colours and sizes are SVG attributes, not
style attributes, which the Content-Security-Policy would block. Labels are escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

WIDTH = 360
FONT = 13
BAR = "#b22222"
MUTED = "#555"
GRID = "#ccc"


def _svg(height: float, title: str, body: list[str], chart_id: str) -> Markup:
    head = (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'role="img" aria-labelledby="{chart_id}-t" font-size="{FONT}" font-family="system-ui, sans-serif">'
        f'<title id="{chart_id}-t">{escape(title)}</title>'
    )
    # Every text part is escaped (_text, the title); the rest are numbers and constants.
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704  # nosec B704


def _text(x: float, y: float, text: object, anchor: str = "start", fill: str = "#1b1b1b") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}">{escape(str(text))}</text>'


def daily_columns(series: Sequence[tuple[date, int]], title: str, chart_id: str) -> Markup:
    """One column per day, the largest value on the axis, the first, middle and last dates under it."""
    top, left, plot_h = 20.0, 30.0, 150.0
    peak = max((v for _d, v in series), default=0) or 1
    step = (WIDTH - left - 4) / max(len(series), 1)
    body = [
        f'<line x1="{left}" y1="{top}" x2="{WIDTH - 4}" y2="{top}" stroke="{GRID}"/>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{WIDTH - 4}" y2="{top + plot_h}" stroke="{MUTED}"/>',
        _text(left - 4, top + 4, peak, "end", MUTED),
        _text(left - 4, top + plot_h, 0, "end", MUTED),
    ]
    for n, (_day, value) in enumerate(series):
        height = plot_h * value / peak
        x = left + n * step + step * 0.15
        y = top + plot_h - height
        body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.2f}" height="{height:.1f}" fill="{BAR}"/>')
    if series:
        marks = sorted({0, len(series) // 2, len(series) - 1})
        for n, anchor in zip(marks, ("start", "middle", "end"), strict=False):
            x = left + n * step + (step / 2 if anchor == "middle" else 0 if anchor == "start" else step)
            body.append(_text(x, top + plot_h + 16, series[n][0].strftime("%m-%d"), anchor, MUTED))
    return _svg(top + plot_h + 24, title, body, chart_id)


def bars(items: Sequence[tuple[str, int | str | None]], title: str, chart_id: str) -> Markup:
    """A horizontal bar per item, its label above it; a hidden count ("<5") gets no bar."""
    row, top = 38.0, 4.0
    numbers = [v for _label, v in items if isinstance(v, int)]
    peak = max(numbers, default=0) or 1
    room = WIDTH - 48
    body: list[str] = []
    for n, (label, value) in enumerate(items):
        y = top + n * row
        body.append(_text(0, y + 13, label))
        width = room * value / peak if isinstance(value, int) else 0
        if width:
            body.append(f'<rect x="0" y="{y + 18:.1f}" width="{width:.1f}" height="14" fill="{BAR}"/>')
        shown = "–" if value is None else value
        body.append(_text(width + 4, y + 30, shown, fill=MUTED))
    return _svg(top + max(len(items), 1) * row, title, body, chart_id)
