"""`fitwire outbox`: The Tracker's local outbox of unsent run records."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from fitwire import credentials
from fitwire.broker.errors import SettingsError
from fitwire.callback.outbox import Outbox, flush, outbox_path
from fitwire.settings import Settings

app = typer.Typer(no_args_is_help=True, help="The Tracker's local outbox of unsent run records.")

console = Console()
err_console = Console(stderr=True)


def _open() -> tuple[Settings, Outbox]:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(code=2) from None
    return settings, Outbox(outbox_path(settings))


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the run records that have not reached the webhook yet."""
    settings, outbox = _open()
    try:
        counts, rows = outbox.counts(), outbox.rows()
    finally:
        outbox.close()
    if as_json:
        typer.echo(json.dumps({"path": str(outbox_path(settings)), **counts, "records": rows}))
        return
    console.print(f"outbox {outbox_path(settings)}: {counts['pending']} pending, {counts['rejected']} rejected")
    if rows:
        table = Table("run", "record", "webhook", "state", "attempts", "last error")
        for r in rows:
            what = f"epoch {r['epoch']}" if r["kind"] == "epoch_end" else str(r["kind"])
            table.add_row(str(r["run_id"])[:12], what, str(r["server"]), str(r["state"]),
                          str(r["attempts"]), str(r["last_error"]))
        console.print(table)


@app.command("flush")
def flush_cmd(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 30.0,
    retry_rejected: Annotated[
        bool,
        typer.Option("--retry-rejected",
                     help="Also retry refused records (with your current login for those refused with 401)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Send every pending run record to its webhook now; exit 1 when some are still pending."""
    settings, outbox = _open()
    try:
        if retry_rejected:
            outbox.requeue_rejected(credentials.resolve_token(settings))
        result = flush(outbox, deadline=time.monotonic() + timeout, respect_backoff=False)
        counts = outbox.counts()
    finally:
        outbox.close()
    if as_json:
        typer.echo(json.dumps({"sent": result.sent, "rejected": result.rejected, "failed": result.failed,
                               **counts, "errors": sorted(set(result.errors))}))
    else:
        console.print(f"sent {result.sent}, refused {result.rejected}; "
                      f"{counts['pending']} pending, {counts['rejected']} rejected in {outbox_path(settings)}")
        for error in sorted(set(result.errors)):
            err_console.print(f"  {error}")
    if counts["pending"]:
        raise typer.Exit(code=1)
