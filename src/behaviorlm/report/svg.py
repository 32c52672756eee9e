"""Charts as standalone SVG markup: lines over a numeric axis and grouped bars.

No plotting library: the report is one HTML file that opens anywhere, and these two chart
kinds are all it draws. Each chart has a title, labelled axes with round tick values, a
light grid and a legend; a series is one colour of :data:`PALETTE` in every chart of a page,
given its place in the list of names.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Final

#: Series colours (Tableau 10): the n-th series of every chart takes the n-th colour.
PALETTE: Final[tuple[str, ...]] = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
WIDTH: Final = 560
HEIGHT: Final = 320
#: Margins around the plot area: left (tick labels), top (title), bottom (axis label).
LEFT, TOP, BOTTOM = 64, 34, 48
#: Width of one character of the legend, in pixels (12-pixel sans-serif, a little generous).
CHAR = 7
#: Most points of a series drawn with a marker each (a longer series is a plain line).
MARKERS = 40


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]``: steps of 1, 2 or 5 times a power of ten.

    Examples
    --------
    >>> nice_ticks(0.0, 0.23)
    [0.0, 0.05, 0.1, 0.15, 0.2, 0.25]
    >>> nice_ticks(3.0, 3.0)
    [2.6, 2.8, 3.0, 3.2, 3.4]
    >>> nice_ticks(0.0, 0.0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"ticks need finite bounds, got {lo}, {hi}")
    if hi <= lo and lo == 0.0:  # all zero: an axis from 0 up
        hi = 1.0
    elif hi <= lo:
        pad = abs(lo) * 0.1
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, count)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float) -> str:
    """A tick value without needless digits: ``0.05``, ``20``, ``1,000``.

    Examples
    --------
    >>> [tick_label(v) for v in (0.05, 20.0, 1000.0, 0.1 + 0.2)]
    ['0.05', '20', '1,000', '0.3']
    """
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.6g}"


def colour(name: str, order: Sequence[str]) -> str:
    """The colour of series ``name``: its place in ``order`` (every name of the page); past
    the palette, hues a golden angle apart, so no two series of a page share a colour.

    Examples
    --------
    >>> colour("b", ["a", "b"])
    '#f28e2b'
    >>> names = [str(i) for i in range(12)]
    >>> colour("10", names), colour("11", names)
    ('#2bab50', '#762bab')
    """
    place = list(order).index(name)
    if place < len(PALETTE):
        return PALETTE[place]
    hue = (place - len(PALETTE) + 1) * 137.508 % 360 / 360
    red, green, blue = colorsys.hls_to_rgb(hue, 0.42, 0.6)  # hex: any SVG renderer reads it
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def _legend(shown: Sequence[str], order: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(shown):
        top = y + 18 * i
        fill = colour(name, order)
        out.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="12" height="12" fill="{fill}"/>')
        out.append(f'<text x="{x + 18:.1f}" y="{top + 10:.1f}">{escape(name)}</text>')
    return out


def _frame(title: str, legend_width: float, rows: int) -> tuple[list[str], float, float]:
    """The opening of a chart (taller where ``rows`` legend rows need it); returns its parts
    and the plot area's width and height."""
    width = WIDTH + legend_width
    height = max(HEIGHT, TOP + 18 * rows + 8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
        f'viewBox="0 0 {width:.0f} {height}" font-family="sans-serif" font-size="12" '
        f'role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    return parts, WIDTH - LEFT - 16, HEIGHT - TOP - BOTTOM


def _y_axis(
    parts: list[str], lo: float, hi: float, plot_w: float, plot_h: float
) -> Callable[[float], float]:
    """Draw a y axis with round ticks spanning ``lo`` to ``hi``; returns the map from a value
    to its y coordinate."""
    ticks = nice_ticks(lo, hi)
    y_lo, y_hi = ticks[0], ticks[-1]

    def y_of(y: float) -> float:
        return TOP + plot_h - (y - y_lo) / ((y_hi - y_lo) or 1.0) * plot_h

    for t in ticks:
        y = y_of(t)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w:.1f}" y2="{y:.1f}" '
            'stroke="#e5e5e5"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{tick_label(t)}</text>'
        )
    return y_of


def _labels(parts: list[str], x_label: str, y_label: str, plot_w: float, plot_h: float) -> None:
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
    )
    mid = TOP + plot_h / 2
    parts.append(
        f'<text x="14" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 14 {mid:.1f})">'
        f"{escape(y_label)}</text>"
    )
    parts.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w:.1f}" height="{plot_h:.1f}" '
        'fill="none" stroke="#999"/>'
    )


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    log_x: bool = False,
    x_ticks: Sequence[float] | None = None,
    names: Sequence[str] | None = None,
    from_zero: bool = True,
) -> str:
    """Lines through ``(x, y)`` points, one per series, with a marker at each point (where a
    series has at most :data:`MARKERS` of them).

    Parameters
    ----------
    series : mapping
        ``{name: [(x, y), ...]}``; non-finite values are skipped.
    title, x_label, y_label : str
        Text of the chart.
    log_x : bool
        A logarithmic x axis (x values must be positive).
    x_ticks : sequence of float, optional
        Where to label the x axis (default: round values, or the points' x on a log axis).
    names : sequence of str, optional
        Every series name of the page in order, so a name keeps its colour across charts.
    from_zero : bool
        The y axis starts at 0 (else at the smallest value, e.g. for a loss).

    Examples
    --------
    >>> svg = line_chart({"a": [(1, 0.1), (10, 0.3)]}, title="HR", x_label="K", y_label="HR",
    ...                  log_x=True)
    >>> svg.startswith("<svg") and "<polyline" in svg
    True
    """
    order = list(names) if names is not None else list(series)
    clean = {
        name: [(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        for name, points in series.items()
    }
    xs = [x for points in clean.values() for x, _ in points]
    ys = [y for points in clean.values() for _, y in points]
    if not xs:
        raise ValueError(f"{title}: no finite points to draw")
    if log_x and min(xs) <= 0:
        raise ValueError(f"{title}: a logarithmic x axis needs positive x, got {min(xs)}")
    shown = [n for n in order if clean.get(n)]  # a series without a point has no line
    legend_width = 30 + CHAR * max(len(n) for n in shown)
    parts, plot_w, plot_h = _frame(title, legend_width, len(shown))
    scale = math.log10 if log_x else float
    if x_ticks is None:
        x_ticks = sorted(set(xs)) if log_x else nice_ticks(min(xs), max(xs))
    x_lo, x_hi = scale(min([*xs, *x_ticks])), scale(max([*xs, *x_ticks]))
    if x_hi == x_lo:  # one x: in the middle
        x_lo, x_hi = x_lo - 1.0, x_hi + 1.0
    lo, hi = (min(0.0, min(ys)), max(0.0, max(ys))) if from_zero else (min(ys), max(ys))
    y_of = _y_axis(parts, lo, hi, plot_w, plot_h)

    def x_of(x: float) -> float:
        return LEFT + (scale(x) - x_lo) / (x_hi - x_lo) * plot_w

    for t in x_ticks:
        parts.append(
            f'<text x="{x_of(t):.1f}" y="{TOP + plot_h + 16:.1f}" text-anchor="middle">'
            f"{tick_label(t)}</text>"
        )
    _labels(parts, x_label, y_label, plot_w, plot_h)
    for name in shown:
        stroke = colour(name, order)
        points = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in sorted(clean[name]))
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="{stroke}" stroke-width="2">'
            f"<title>{escape(name)}</title></polyline>"
        )
        for x, y in clean[name] if len(clean[name]) <= MARKERS else []:
            parts.append(
                f'<circle cx="{x_of(x):.1f}" cy="{y_of(y):.1f}" r="3" fill="{stroke}">'
                f"<title>{escape(name)}: {tick_label(x)}, {y:.4f}</title></circle>"
            )
    parts.extend(_legend(shown, order, WIDTH, TOP))
    parts.append("</svg>")
    return "\n".join(parts)


def bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    names: Sequence[str] | None = None,
) -> str:
    """Grouped bars: for each group (a label on the x axis) one bar per series.

    ``series`` maps a name to one value per group (``None`` or not finite: no bar).

    Examples
    --------
    >>> svg = bar_chart(["1-4", "5-9"], {"a": [0.1, 0.2], "b": [0.15, None]}, title="NDCG@10",
    ...                 x_label="events", y_label="NDCG@10")
    >>> svg.count("<rect") - 3  # three bars, besides the two legend keys and the frame
    3
    """
    order = list(names) if names is not None else list(series)
    shown = [n for n in order if n in series]
    values = [float(v) for n in shown for v in series[n] if v is not None and math.isfinite(v)]
    if not values:
        raise ValueError(f"{title}: no finite values to draw")
    legend_width = 30 + CHAR * max(len(n) for n in shown)
    parts, plot_w, plot_h = _frame(title, legend_width, len(shown))
    y_of = _y_axis(parts, min(0.0, min(values)), max(0.0, max(values)), plot_w, plot_h)  # from 0
    slot = plot_w / max(1, len(groups))
    bar = slot * 0.8 / max(1, len(shown))
    for g, group in enumerate(groups):
        centre = LEFT + slot * (g + 0.5)
        parts.append(
            f'<text x="{centre:.1f}" y="{TOP + plot_h + 16:.1f}" text-anchor="middle">'
            f"{escape(group)}</text>"
        )
        for s, name in enumerate(shown):
            value = series[name][g]
            if value is None or not math.isfinite(value):
                continue
            x = centre - slot * 0.4 + bar * s
            top, base = y_of(max(value, 0.0)), y_of(min(value, 0.0))
            fill = colour(name, order)
            parts.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{base - top:.1f}" '
                f'fill="{fill}"><title>{escape(name)}, {escape(group)}: {value:.4f}</title>'
                "</rect>"
            )
    _labels(parts, x_label, y_label, plot_w, plot_h)
    parts.extend(_legend(shown, order, WIDTH, TOP))
    parts.append("</svg>")
    return "\n".join(parts)
