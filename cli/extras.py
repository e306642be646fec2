"""Commands that need an optional extra (``fitwire[server]``, ``fitwire[agent]``).

``pip install fitwire`` is the light part; the webhook and the agent need more.
Rather than let such a command die of a ``ModuleNotFoundError`` deep in an import
(or, for the agent, start and fail later, when its first job needs Keras), each
command of a gated sub-app first checks that the extra's modules are there and
otherwise says, in one sentence, which extra to install (exit code 2).
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

import typer

from fitwire.cli.common import EXIT_USAGE, fail

EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "server": ("flask", "sqlalchemy", "alembic", "waitress", "psycopg", "firebase_admin", "argon2", "PIL"),
    "agent": ("keras", "tensorflow", "pynvml", "psutil", "PIL"),
}
"""The top-level modules each extra of setup.cfg installs (a test keeps the two in agreement)."""


def missing_modules(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here (found, not imported: that is cheap)."""
    return [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]


def missing_extra_message(command: str, extra: str, missing: list[str]) -> str:
    """The one sentence a command without its extra prints."""
    if len(missing) == len(EXTRA_MODULES[extra]):
        what = "which is not installed here"
    else:
        what = f"which is only partly installed here (missing: {', '.join(missing)})"
    return f"{command} needs the {extra} extra, {what}; install it with `pip install 'fitwire[{extra}]'`"


def add_typer_needing(parent: typer.Typer, app: typer.Typer, *, name: str, extra: str) -> None:
    """``parent.add_typer(app, name=name)``, with every command of ``app`` first checking for ``extra``.

    The check runs when a command is invoked, not when its ``--help`` is shown.
    """
    if extra not in EXTRA_MODULES:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRA_MODULES)}")
    _gate(app, f"fitwire {name}", extra)
    parent.add_typer(app, name=name)


def _gate(app: typer.Typer, path: str, extra: str) -> None:
    for info in app.registered_commands:
        if info.callback is not None:
            # typer's own default name for a command: the function's, with '-' for '_'
            command = info.name or info.callback.__name__.lower().replace("_", "-")
            info.callback = _checked(info.callback, f"{path} {command}", extra)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _gate(group.typer_instance, f"{path} {group.name}", extra)


def _checked(command: Callable[..., Any], path: str, extra: str) -> Callable[..., Any]:
    @functools.wraps(command)  # typer reads the options from the wrapped signature
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        missing = missing_modules(extra)
        if missing:
            raise fail(missing_extra_message(path, extra, missing), EXIT_USAGE)
        return command(*args, **kwargs)

    return wrapper
