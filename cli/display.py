"""How runs look in the terminal: metric formatting, run labels, epoch summaries, the run table."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

STATUS_STYLE = {"running": "cyan", "completed": "green", "stopped": "yellow", "failed": "red"}
METRIC_ORDER = ("loss", "accuracy", "acc")


def number(value: Any) -> float | None:
    """A metric as a float; the wire's "NaN"/"Infinity" strings included, anything else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def fmt_value(value: Any) -> str:
    num = number(value)
    if num is None:
        return "—"
    if not math.isfinite(num):
        return str(num).replace("inf", "Infinity").replace("nan", "NaN")
    return f"{num:.4f}" if abs(num) < 1000 else f"{num:.4g}"


def metric_names(logs: dict[str, Any]) -> list[str]:
    """Log keys in Keras's reading order: training metrics (loss and accuracy first), then val_ ones."""
    bases = sorted(
        {k.removeprefix("val_") for k in logs},
        key=lambda b: (METRIC_ORDER.index(b) if b in METRIC_ORDER else len(METRIC_ORDER), b),
    )
    return [k for prefix in ("", "val_") for b in bases if (k := prefix + b) in logs]


def fmt_logs(logs: dict[str, Any] | None, limit: int | None = None) -> str:
    """``loss 0.1234  accuracy 0.9500 …``; the first ``limit`` metrics only, when given."""
    if not logs:
        return ""
    return "  ".join(f"{k} {fmt_value(logs[k])}" for k in metric_names(logs)[:limit])


def parse_time(iso: Any) -> float | None:
    """Unix time of an ISO 8601 string from the API, None when absent or unreadable."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def run_label(run: dict[str, Any] | None, run_id: str) -> str:
    """A run's human name (training_003) when the server gave one, else its id's start."""
    name = (run or {}).get("name")
    return str(name) if name else f"run {run_id[:8]}"


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def run_duration(run: dict[str, Any]) -> float | None:
    start, end = parse_time(run.get("started_at")), parse_time(run.get("ended_at"))
    return end - start if start is not None and end is not None else None


def runs_table(
    runs: list[dict[str, Any]], *, title: str | None = None, model_names: dict[str, str] | None = None
) -> Table:
    """One row per run; a model column when ``model_names`` (key → name) is given."""
    columns = ["run", "name", "status", "epochs", "final metrics", "started", "took"]
    if model_names is not None:
        columns.insert(1, "model")
    table = Table(*columns, title=title, title_justify="left", box=None, header_style="bold")
    for run in runs:
        model = [model_names.get(run["model_key"], run["model_key"])] if model_names is not None else []
        table.add_row(
            run["run_id"][:12],
            *model,
            run_label(run, run["run_id"]),
            status_text(str(run.get("status", ""))),
            str(run.get("epochs") or "—"),
            fmt_logs(run.get("final_logs"), limit=2),  # a table row, not the whole story: `runs show`
            str(run.get("started_at") or "")[:19].replace("T", " "),
            fmt_duration(run_duration(run)),
        )
    return table


def epoch_line(label: str, epoch: int, total: int | None, logs: dict[str, Any], took: float | None) -> Text:
    """The line left behind by a finished epoch (epochs count from 1 on screen, 0 on the wire)."""
    of = f"/{total}" if total else ""
    line = Text()
    line.append("✓ ", style="green")
    line.append(f"{label} epoch {epoch + 1}{of}", style="bold")
    if took is not None:
        line.append(f"  {fmt_duration(took)}", style="dim")
    line.append(f"  {fmt_logs(logs)}")
    return line


def end_line(label: str, status: str, reason: str | None, epochs_done: int, total: int | None,
             took: float | None, logs: dict[str, Any] | None) -> Text:
    mark = {"completed": "■", "stopped": "◼", "failed": "✗"}.get(status, "■")
    line = Text()
    line.append(f"{mark} {label} ", style="bold")
    line.append(status, style=STATUS_STYLE.get(status, "bold"))
    of = f"/{total}" if total else ""
    line.append(f" after {epochs_done}{of} epochs")
    if took is not None:
        line.append(f" in {fmt_duration(took)}")
    if reason:
        line.append(f" ({reason})", style="dim")
    if logs:
        line.append(f"  {fmt_logs(logs)}")
    return line


class RateColumn(ProgressColumn):
    """Batches per second, for `watch`'s epoch bars (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} batch/s" if speed else "", style="progress.data.speed")
