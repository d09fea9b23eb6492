"""Hand-written SVG charts for the report (no plotting library): a forest plot and line charts.

The SVG is plain text, so the HTML report inlines it and the Markdown report links the same file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#0969da", "#cf222e", "#1a7f37", "#8250df", "#9a6700", "#bf3989", "#0550ae", "#57606a")
_FONT = "font-family='system-ui,sans-serif' font-size='12'"


@dataclass(frozen=True)
class ForestRow:
    label: str  # the arm
    mean: float
    low: float
    high: float
    color: str = PALETTE[0]

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class ForestGroup:
    title: str  # e.g. "securityeval · strict_secure"
    rows: Sequence[ForestRow]


def nice_ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high] (steps 1, 2, 2.5 or 5 times a power of ten)."""
    span = max(high - low, 1e-9)
    raw = span / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _text(x: float, y: float, text: str, *, anchor: str = "start", extra: str = "") -> str:
    return f"<text x='{x:.1f}' y='{y:.1f}' text-anchor='{anchor}' {_FONT} {extra}>{escape(text)}</text>"


def _svg(width: float, height: float, body: Sequence[str], title: str) -> str:
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' height='{height:.0f}' "
        f"viewBox='0 0 {width:.0f} {height:.0f}' role='img'><title>{escape(title)}</title>"
        f"<rect width='100%' height='100%' fill='white'/>{''.join(body)}</svg>\n"
    )


def forest_svg(groups: Sequence[ForestGroup], *, axis_label: str, title: str) -> str:
    """One row per (group, arm): the CI as a horizontal bar, the mean as a square (filled when the
    CI excludes 0), a dashed vertical line at 0, and the numbers on the right."""
    values = [v for g in groups for r in g.rows for v in (r.low, r.high, r.mean)] + [0.0]
    low, high = min(values), max(values)
    if high - low < 2.0:  # e.g. every difference 0: keep a readable axis around the values
        low, high = low - 1.0, high + 1.0
    ticks = nice_ticks(low, high)
    left, right, width, row_h = 210.0, 560.0, 760.0, 20.0

    def x(value: float) -> float:
        return left + (value - ticks[0]) / ((ticks[-1] - ticks[0]) or 1.0) * (right - left)

    body, y = [_text(10, 20, title, extra="font-weight='bold'")], 40.0
    for group in groups:
        body.append(_text(10, y + 4, group.title, extra="font-weight='bold'"))
        y += row_h
        for row in group.rows:
            body.append(_text(24, y + 4, row.label))
            body.append(f"<line x1='{x(row.low):.1f}' y1='{y:.1f}' x2='{x(row.high):.1f}' y2='{y:.1f}' "
                        f"stroke='{row.color}' stroke-width='2'/>")  # fmt: skip
            fill = row.color if row.excludes_zero else "white"
            body.append(f"<rect x='{x(row.mean) - 4:.1f}' y='{y - 4:.1f}' width='8' height='8' "
                        f"fill='{fill}' stroke='{row.color}' stroke-width='1.5'/>")  # fmt: skip
            body.append(_text(right + 12, y + 4, f"{row.mean:+.1f} [{row.low:+.1f}, {row.high:+.1f}]"))
            y += row_h
        y += 6
    top, bottom = 30.0, y
    body.append(f"<line x1='{x(0):.1f}' y1='{top:.1f}' x2='{x(0):.1f}' y2='{bottom:.1f}' stroke='#57606a' "
                "stroke-dasharray='4 3'/>")  # fmt: skip
    body.append(
        f"<line x1='{left:.1f}' y1='{bottom:.1f}' x2='{right:.1f}' y2='{bottom:.1f}' stroke='#1f2328'/>"
    )
    for tick in ticks:
        body.append(f"<line x1='{x(tick):.1f}' y1='{bottom:.1f}' x2='{x(tick):.1f}' y2='{bottom + 5:.1f}' "
                    "stroke='#1f2328'/>")  # fmt: skip
        body.append(_text(x(tick), bottom + 18, f"{tick:g}", anchor="middle"))
    body.append(_text((left + right) / 2, bottom + 36, axis_label, anchor="middle"))
    return _svg(width, bottom + 48, body, title)


@dataclass(frozen=True)
class LinePanel:
    title: str
    series: dict[str, list[tuple[float, float]]]  # name -> (x, y) points, x ascending
    y_range: tuple[float, float] | None = None  # fixed y axis (e.g. 0-100 for shares)


def _panel(panel: LinePanel, colors: dict[str, str], x0: float, xs: Sequence[float]) -> list[str]:
    left, top, width, height = x0 + 50.0, 40.0, 250.0, 160.0
    points = [y for s in panel.series.values() for _, y in s]
    low, high = panel.y_range or (min(points, default=0.0), max(points, default=1.0))
    yticks = nice_ticks(low, high if high > low else low + 1.0, 5)
    xmin, xmax = min(xs), max(xs)

    def px(value: float) -> float:
        return left + (value - xmin) / ((xmax - xmin) or 1.0) * width

    def py(value: float) -> float:
        return top + height - (value - yticks[0]) / ((yticks[-1] - yticks[0]) or 1.0) * height

    body = [_text(left + width / 2, 24, panel.title, anchor="middle", extra="font-weight='bold'")]
    body.append(
        f"<rect x='{left}' y='{top}' width='{width}' height='{height}' fill='none' stroke='#d0d7de'/>"
    )
    for tick in yticks:
        body.append(
            f"<line x1='{left}' y1='{py(tick):.1f}' x2='{left + width}' y2='{py(tick):.1f}' stroke='#eaeef2'/>"
        )
        body.append(_text(left - 6, py(tick) + 4, f"{tick:g}", anchor="end"))
    for value in xs:
        body.append(_text(px(value), top + height + 16, f"{value:g}", anchor="middle"))
    body.append(_text(left + width / 2, top + height + 32, "round", anchor="middle"))
    for name, series in panel.series.items():
        path = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in series)
        body.append(f"<polyline points='{path}' fill='none' stroke='{colors[name]}' stroke-width='2'/>")
        body += [
            f"<circle cx='{px(a):.1f}' cy='{py(b):.1f}' r='3' fill='{colors[name]}'/>" for a, b in series
        ]
    return body


def line_chart_svg(panels: Sequence[LinePanel], *, title: str) -> str:
    """Panels side by side sharing the x axis (rounds) and one legend of the series."""
    names = list(dict.fromkeys(n for p in panels for n in p.series))
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    xs = sorted({a for p in panels for s in p.series.values() for a, _ in s}) or [1.0]
    body: list[str] = []
    for i, panel in enumerate(panels):
        body += _panel(panel, colors, 320.0 * i, xs)
    for i, name in enumerate(names):
        lx = 50.0 + 130.0 * (i % 5)
        ly = 250.0 + 18.0 * (i // 5)
        body.append(f"<rect x='{lx:.0f}' y='{ly - 9:.0f}' width='12' height='4' fill='{colors[name]}'/>")
        body.append(_text(lx + 16, ly - 4, name))
    return _svg(320.0 * max(len(panels), 1) + 10, 260.0 + 18.0 * ((len(names) - 1) // 5 + 1), body, title)
