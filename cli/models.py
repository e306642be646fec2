"""`fitwire models`: Create and manage models (model keys)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Create and manage models (model keys).")
