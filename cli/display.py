"""How runs look in the terminal: remote text made safe, metric formatting, run labels,
epoch summaries, the run table.

Every string that came from the server or the broker (names, reasons, hosts, metric
names, signal details) goes through :func:`clean` before it is drawn, and is drawn as
a ``Text`` (or with ``markup=False``), never inside rich markup: a run named
``[bold]x`` prints those brackets, and an ``ESC[2J`` in a reason prints as ``\x1b[2J``
instead of clearing the screen.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.progress import ProgressColumn, Task
from rich.table import Table
from rich.text import Text

from fitwire.contract.entities import Epoch, Run

STATUS_STYLE = {"running": "cyan", "completed": "green", "stopped": "yellow", "failed": "red"}
METRIC_ORDER = ("loss", "accuracy", "acc")

# C0 controls, DEL and C1 controls (ESC and CSI start terminal commands), the Unicode line
# separators and the bidirectional overrides and isolates (they reorder what follows).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def clean(value: Any) -> str:
    """``value`` as text that cannot move the cursor or restyle the terminal: every control
    character is shown as its escape (``\x1b``, ``\n``). The one sanitiser for remote text;
    draw the result as a ``Text`` (or use :func:`remote`), never inside rich markup."""
    return _UNSAFE.sub(_escape, str(value))


def remote(value: Any, style: str = "") -> Text:
    """Remote text as a ``Text``: cleaned, and safe from rich markup (``[red]`` stays literal)."""
    return Text(clean(value), style=style)


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
    """``loss 0.1234  accuracy 0.9500 …``; the first ``limit`` metrics only, when given (names cleaned)."""
    if not logs:
        return ""
    return "  ".join(f"{clean(k)} {fmt_value(logs[k])}" for k in metric_names(logs)[:limit])


def fmt_time(moment: datetime | None, chars: int = 19) -> str:
    """``2026-01-02 03:04:05`` (UTC; ``chars=16`` to the minute); "" for no time."""
    return "" if moment is None else moment.astimezone(UTC).isoformat()[:chars].replace("T", " ")


def parse_time(iso: Any) -> float | None:
    """Unix time of an ISO 8601 string from the API, None when absent or unreadable."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not seconds >= 0:  # NaN too
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def run_label(run: Run | None, run_id: str) -> str:
    """A run's human name (training_003) when the server knows the run, else its id's start (cleaned)."""
    return clean(run.name) if run is not None else f"run {clean(run_id[:8])}"


def status_text(status: str) -> Text:
    return remote(status, STATUS_STYLE.get(status, ""))


def epochs_done(epochs: Sequence[Epoch]) -> int:
    """How far a run got: its last stored epoch, counted from 1 (a resumed run did not store the first)."""
    return max(e.epoch for e in epochs) + 1 if epochs else 0


def partial_epoch(run: Run, epochs: Sequence[Epoch]) -> int | None:
    """The epoch (from 0) that a STOP cut short, None when every stored epoch ran to its end.

    A STOP halts ``fit`` at the next batch boundary and Keras still ends that epoch, so the
    last stored epoch of a ``stopped`` run holds the logs of part of an epoch (or of a cut
    validation). A run that failed never stored the epoch it died in.
    """
    if run.status != "stopped" or not epochs:
        return None
    return epochs_done(epochs) - 1


def epochs_text(done: int, planned: int | None, partial: bool = False) -> str:
    """``6/15`` (epochs run of epochs planned); ``6/15 (last partial)`` when a STOP cut the last one."""
    text = f"{done}/{planned}" if planned else str(done)
    return f"{text} (last partial)" if partial else text


def run_duration(run: Run) -> float | None:
    return (run.ended_at - run.started_at).total_seconds() if run.ended_at is not None else None


def runs_table(
    runs: list[Run],
    epochs: Mapping[str, Sequence[Epoch]],
    *,
    title: str | None = None,
    model_names: dict[str, str] | None = None,
) -> Table:
    """One row per run, ``epochs`` (run id → its stored epochs) giving how far each got;
    a model column when ``model_names`` (key → name) is given."""
    columns = ["run", "name", "status", "epochs", "final metrics", "started", "took"]
    if model_names is not None:
        columns.insert(1, "model")
    table = Table(*columns, title=remote(title) if title else None, title_justify="left", box=None,
                  header_style="bold")
    for run in runs:
        stored = epochs.get(run.run_id, [])
        model = [remote(model_names.get(run.model_key, run.model_key))] if model_names is not None else []
        table.add_row(
            remote(run.run_id[:12]),
            *model,
            Text(run_label(run, run.run_id)),
            status_text(run.status),
            Text(epochs_text(epochs_done(stored), run.epochs, partial_epoch(run, stored) is not None)),
            Text(fmt_logs(run.final_logs, limit=2)),  # a table row, not the whole story: `runs show`
            remote(fmt_time(run.started_at)),
            fmt_duration(run_duration(run)),
        )
    return table


def epoch_line(label: str, epoch: int, total: int | None, logs: dict[str, Any], took: float | None,
               *, partial: bool = False) -> Text:
    """The line left behind by an ended epoch (epochs count from 1 on screen, 0 on the wire):
    ``✓`` when it ran to its end, ``◐ … partial`` when a STOP cut it short."""
    of = f"/{total}" if total else ""
    line = Text()
    line.append("◐ " if partial else "✓ ", style="yellow" if partial else "green")
    line.append(f"{label} epoch {epoch + 1}{of}", style="bold")
    if partial:
        line.append(" partial (stopped mid-epoch)", style="yellow")
    if took is not None:
        line.append(f"  {fmt_duration(took)}", style="dim")
    line.append(f"  {fmt_logs(logs)}")
    return line


def end_line(label: str, status: str, reason: str | None, done: int, total: int | None,
             took: float | None, logs: dict[str, Any] | None, *, partial: bool = False) -> Text:
    mark = {"completed": "■", "stopped": "◼", "failed": "✗"}.get(status, "■")
    line = Text()
    line.append(f"{mark} {label} ", style="bold")
    line.append(clean(status), style=STATUS_STYLE.get(status, "bold"))
    line.append(f" after {epochs_text(done, total)} epochs" + (", the last one partial" if partial else ""))
    if took is not None:
        line.append(f" in {fmt_duration(took)}")
    if reason:
        line.append(f" ({clean(reason)})", style="dim")
    if logs:
        line.append(f"  {fmt_logs(logs)}")
    return line


class RateColumn(ProgressColumn):
    """Batches per second, for `watch`'s epoch bars (rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.1f} batch/s" if speed else "", style="progress.data.speed")
