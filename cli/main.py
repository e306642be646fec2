"""The `fitwire` command."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, help="fitwire: watch and steer deep-learning training from anywhere.")
