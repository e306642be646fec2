"""`fitwire login`, `logout`, `whoami`: the login file (fitwire.credentials, mode 0600)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from fitwire import credentials
from fitwire.cli.common import (
    EXIT_UNREACHABLE,
    Api,
    CliError,
    JsonOption,
    ServerOption,
    TokenOption,
    Unreachable,
    api,
    io,
    print_json,
    reports_errors,
    settings,
)


@reports_errors
def login(
    username: Annotated[str | None, typer.Argument(help="Your user name; asked when left out.")] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="FITWIRE_PASSWORD", help="Asked (hidden) when left out.", show_default=False),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin (for scripts).")
    ] = False,
    server: ServerOption = None,
) -> None:
    """Log in and save the token in the login file (readable by you only)."""
    client = api(server, None)
    if username is None:
        username = typer.prompt("Username")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif password is None:
        password = typer.prompt("Password", hide_input=True)
    answer = client.login(username, password)
    user = answer.user
    saved = credentials.save(
        settings(),
        credentials.Credentials(server=client.server, username=user.username, token=answer.token,
                                amqp_url=_announced_broker(client.server, answer.token)),
    )
    io().out.print(
        f"Logged in to {client.server} as [bold]{user.username}[/]; token saved in {saved}.",
        highlight=False,
        soft_wrap=True,
    )


def _announced_broker(server: str, token: str) -> str | None:
    """The broker the server announces (``GET /api/v1/session``), remembered for when it cannot be asked.

    A Tracker whose webhook is down at start still publishes where this
    server's watchers and STOPs are; a server that does not answer now only
    costs that memory, not the login.
    """
    try:
        url = Api(server, token).session().amqp_url
    except CliError:
        return None
    return url if isinstance(url, str) and url.startswith(("amqp://", "amqps://")) else None


@reports_errors
def logout(server: ServerOption = None, token: TokenOption = None) -> None:
    """Revoke the token on the server and forget the login file."""
    conf = settings()
    client = api(server, token)
    if not client.token:
        raise CliError("You are not logged in")
    unreachable: Unreachable | None = None
    try:
        client.logout()
    except Unreachable as exc:
        unreachable = exc
    except CliError:
        pass  # an expired or revoked token: forgetting it is all that is left to do
    saved = credentials.load(conf)
    if saved and saved.server.rstrip("/") == client.server:
        credentials.forget(conf)
    if unreachable:
        raise CliError(
            f"Forgot the local login, but could not reach {client.server} to revoke the token",
            EXIT_UNREACHABLE,
        )
    io().out.print(f"Logged out of {client.server}.", highlight=False)


@reports_errors
def whoami(server: ServerOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Who the saved token belongs to, on which server."""
    client = api(server, token)
    user = client.me()
    if as_json:
        print_json({"server": client.server, "user": user})
        return
    role = "admin" if user.is_admin else "user"
    io().out.print(f"{user.username} ({role}) on {client.server}", highlight=False)
