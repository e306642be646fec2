"""`fitwire outbox`: The Tracker's local outbox of unsent run records (one file per run)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fitwire import credentials
from fitwire.callback.delivery import flush_leftovers
from fitwire.callback.outbox import Lease, Outbox, outbox_dir, outbox_files
from fitwire.cli.common import io, reports_errors
from fitwire.cli.common import settings as load_settings
from fitwire.client_api.http import token_for

app = typer.Typer(no_args_is_help=True, help="The Tracker's local outbox of unsent run records.")



def _live(path: Path) -> bool:
    """Whether a running fit holds this file (it sends its records itself)."""
    lease = Lease.take(path)
    if lease is None:
        return True
    lease.release()
    return False


@app.command("status")
@reports_errors
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the run records that have not reached the webhook yet."""
    settings = load_settings()
    counts = {"pending": 0, "rejected": 0}
    rows: list[dict[str, object]] = []
    for path in outbox_files(settings):
        try:
            outbox = Outbox(path, create=False)
        except (OSError, sqlite3.Error):  # finished and deleted meanwhile
            continue
        try:
            for state, n in outbox.counts().items():
                counts[state] = counts.get(state, 0) + n
            file_rows = outbox.rows()
        finally:
            outbox.close()
        live = _live(path) if file_rows else False
        rows += [{**r, "live": live} for r in file_rows]
    if as_json:
        typer.echo(json.dumps({"path": str(outbox_dir(settings)), **counts, "records": rows}))
        return
    io().out.print(f"outbox {outbox_dir(settings)}: {counts['pending']} pending, {counts['rejected']} rejected")
    if rows:
        table = Table("run", "record", "webhook", "state", "attempts", "last error")
        for r in rows:
            what = f"epoch {r['epoch']}" if r["kind"] == "epoch_end" else str(r["kind"])
            state = f"{r['state']} (run going on)" if r["live"] else str(r["state"])
            table.add_row(str(r["run_id"])[:12], what, str(r["server"]), state,
                          str(r["attempts"]), str(r["last_error"]))
        io().out.print(table)


@app.command("flush")
@reports_errors
def flush_cmd(
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds.")] = 30.0,
    retry_rejected: Annotated[
        bool,
        typer.Option("--retry-rejected",
                     help="Also retry refused records (with your current login for those refused with 401)."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Send every pending run record to its webhook now; exit 1 when some are still pending.

    Records of fits still running are left to them (they send their own).
    """
    settings = load_settings()
    server = credentials.resolve_server(settings)
    token = token_for(settings, server) if retry_rejected else None

    def requeue(outbox: Outbox) -> None:
        outbox.requeue_rejected(token, server)

    result = flush_leftovers(outbox_files(settings), deadline=time.monotonic() + timeout, respect_backoff=False,
                             before=requeue if retry_rejected else None, count_live=True)
    counts = {"pending": 0, "rejected": 0}
    for path in outbox_files(settings):
        try:
            outbox = Outbox(path, create=False)
        except (OSError, sqlite3.Error):
            continue
        try:
            for state, n in outbox.counts().items():
                counts[state] = counts.get(state, 0) + n
        finally:
            outbox.close()
    left = counts["pending"] - result.live
    if as_json:
        typer.echo(json.dumps({"sent": result.sent, "rejected": result.rejected, "failed": result.failed,
                               "shrunk": result.shrunk, "live": result.live, **counts,
                               "errors": sorted(set(result.errors))}))
    else:
        io().out.print(f"sent {result.sent}, refused {result.rejected}; "
                      f"{counts['pending']} pending, {counts['rejected']} rejected in {outbox_dir(settings)}")
        if result.live:
            io().out.print(f"{result.live} of the pending records belong to fits still running; they send them.")
        for error in sorted(set(result.errors)):
            io().err.print(f"  {error}")
    if left > 0:
        raise typer.Exit(code=1)
