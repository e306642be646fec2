"""`fitwire jobs`: Submit and manage training jobs."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="Submit and manage training jobs.")
