"""`fitwire agent`: Run a trainer agent on this machine."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Run a trainer agent on this machine.")
