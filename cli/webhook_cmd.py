"""`fitwire webhook`: Run and administer the webhook service."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Run and administer the webhook service.")
