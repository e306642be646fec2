"""Metric curves drawn in the terminal with braille dots (2×4 per cell), no plotting library.

A braille cell packs 8 dots, so a 60×10 character chart has 120×40 points:
smooth enough to see a loss curve bend, and it is only text, so it prints
into pipes, logs and tests like any other line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.console import Group, RenderableType
from rich.text import Text

from fitwire.cli.display import clean

_DOTS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
"""Bit of the dot at (row, column) inside a braille cell."""
_BRAILLE = 0x2800
COLOURS = ("cyan", "magenta", "yellow", "green", "blue", "red")


def _finite(values: Sequence[float | None]) -> list[tuple[int, float]]:
    return [(i, float(v)) for i, v in enumerate(values) if isinstance(v, int | float) and math.isfinite(v)]


def _label(value: float) -> str:
    return f"{value:.4g}"


def _segment(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The dots of a straight line between two points (Bresenham)."""
    points = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        points.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return points
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def chart(
    series: dict[str, Sequence[float | None]],
    *,
    title: str = "",
    width: int = 60,
    height: int = 8,
    first_x: int = 1,
) -> RenderableType:
    """Curves of ``series`` (name → one value per epoch) over a shared y axis.

    Non-finite values (NaN, inf) and None are left out of the curve rather than
    squashing the scale. Returns a note instead of a chart when nothing is plottable.
    """
    points = {name: _finite(values) for name, values in series.items()}
    points = {name: pts for name, pts in points.items() if pts}
    if not points:
        return Text(f"{clean(title)}: nothing to plot yet", style="dim")
    n = max(len(values) for values in series.values())
    lo = min(v for pts in points.values() for _, v in pts)
    hi = max(v for pts in points.values() for _, v in pts)
    if hi == lo:  # a flat line still needs a scale
        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
    px_w, px_h = width * 2, height * 4
    cells: dict[tuple[int, int], tuple[int, str]] = {}

    def to_px(i: int, v: float) -> tuple[int, int]:
        x = 0 if n <= 1 else round(i * (px_w - 1) / (n - 1))
        y = round((hi - v) * (px_h - 1) / (hi - lo))
        return x, y

    for colour_index, (_name, pts) in enumerate(points.items()):
        colour = COLOURS[colour_index % len(COLOURS)]
        pixels = [to_px(i, v) for i, v in pts]
        dots = pixels[:1] + [p for a, b in zip(pixels, pixels[1:], strict=False) for p in _segment(*a, *b)]
        for x, y in dots:
            key = (y // 4, x // 2)
            bits, _ = cells.get(key, (0, colour))
            cells[key] = (bits | _DOTS[y % 4][x % 2], colour)

    labels = {0: _label(hi), height - 1: _label(lo)}
    if height >= 5:
        labels[(height - 1) // 2] = _label((hi + lo) / 2)
    margin = max(len(s) for s in labels.values())
    lines: list[RenderableType] = []
    if title:
        lines.append(Text(clean(title), style="bold"))  # metric names come from the run
    for row in range(height):
        line = Text(f"{labels.get(row, ''):>{margin}} ┤" if row in labels else " " * margin + " │")
        for col in range(width):
            bits, colour = cells.get((row, col), (0, ""))
            line.append(chr(_BRAILLE + bits) if bits else " ", style=colour)
        lines.append(line)
    last = f"epoch {first_x + n - 1}" if n > 1 else ""
    axis = " " * margin + " └" + "─" * width
    lines.append(Text(axis))
    lines.append(Text(" " * (margin + 2) + f"epoch {first_x}".ljust(max(width - len(last), 0)) + last, style="dim"))
    legend = Text(" " * (margin + 2))
    for colour_index, name in enumerate(points):
        legend.append("━━ ", style=COLOURS[colour_index % len(COLOURS)])
        legend.append(f"{clean(name)}   ")
    lines.append(legend)
    return Group(*lines)


def metric_groups(epoch_logs: Sequence[dict[str, float | None]]) -> dict[str, dict[str, list[float | None]]]:
    """Per-epoch logs grouped into one chart per metric: ``loss`` with ``val_loss``, and so on."""
    names: list[str] = []
    for logs in epoch_logs:
        names.extend(k for k in logs if k not in names)
    first = ("loss", "accuracy", "acc")
    names.sort(key=lambda n: (first.index(b) if (b := n.removeprefix("val_")) in first else len(first), b, n))
    groups: dict[str, dict[str, list[float | None]]] = {}
    for name in names:
        base = name.removeprefix("val_")
        if base == "lr" or base == "learning_rate":
            continue
        groups.setdefault(base, {})[name] = [logs.get(name) for logs in epoch_logs]
    return groups
