"""`fitwire nodes`: See trainer nodes (admins)."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="See trainer nodes (admins).")
