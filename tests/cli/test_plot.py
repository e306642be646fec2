"""Terminal curves: braille charts that survive NaN, flat lines and single points."""

from __future__ import annotations

import io
import math

from rich.console import Console

from fitwire.cli.plot import chart, metric_groups


def render(renderable: object, width: int = 100) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(renderable)
    return out.getvalue()


def test_a_falling_curve_starts_high_and_ends_low() -> None:
    lines = render(chart({"loss": [1.0, 0.5, 0.25, 0.1]}, width=40, height=8)).splitlines()
    rows = [line.split("┤", 1)[-1].split("│", 1)[-1] for line in lines[:8]]
    top, bottom = rows[0], rows[7]
    assert top.strip() and top.index(top.strip()[0]) < 5  # the first epoch is at the top left
    assert bottom.rstrip()[-1] != " " and len(bottom.rstrip()) > 35  # the last at the bottom right
    assert "1 ┤" in lines[0] and "0.1 ┤" in lines[7]


def test_non_finite_values_are_left_out_not_plotted() -> None:
    drawn = render(chart({"loss": [1.0, math.nan, None, math.inf, 0.5]}))
    assert "inf" not in drawn and "nan" not in drawn.lower()
    assert "0.5 ┤" in drawn


def test_flat_and_single_point_series_still_draw() -> None:
    assert any("\u2800" < ch <= "\u28ff" for ch in render(chart({"acc": [0.5, 0.5, 0.5]})))
    assert any("\u2800" < ch <= "\u28ff" for ch in render(chart({"acc": [0.5]})))
    assert "nothing to plot" in render(chart({"acc": [None]}, title="acc"))


def test_metrics_pair_with_their_validation_twin_loss_first() -> None:
    groups = metric_groups([{"accuracy": 0.5, "val_accuracy": 0.4, "loss": 1.0, "val_loss": 1.1, "lr": 0.1}])
    assert list(groups) == ["loss", "accuracy"]
    assert list(groups["loss"]) == ["loss", "val_loss"]
