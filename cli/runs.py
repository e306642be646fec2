"""Top-level `fitwire` commands of this area (placeholder until the CLI work lands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this file's commands to the top-level app."""
