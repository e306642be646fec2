"""`fitwire outbox`: The Tracker's local outbox of unsent run records."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="The Tracker's local outbox of unsent run records.")
