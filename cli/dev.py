"""`fitwire dev`: Local development stack: broker, webhook."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Local development stack: broker, webhook.")
