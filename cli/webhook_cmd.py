"""`fitwire webhook`: run and administer the webhook service (serve, create-admin, upgrade)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlparse

import typer

from fitwire.cli.common import CliError, io, reports_errors
from fitwire.cli.common import settings as load_settings
from fitwire.contract.errors import FitwireError
from fitwire.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Run and administer the webhook service.")


def _fail(exc: Exception) -> CliError:
    return CliError(str(exc))


DEFAULT_THREADS = 8
DEFAULT_CONNECTION_LIMIT = 500


def waitress_options(settings: Settings, threads: int = DEFAULT_THREADS,
                     connection_limit: int = DEFAULT_CONNECTION_LIMIT) -> dict[str, Any]:
    """The options ``serve`` gives waitress (bench/_timed_webhook.py serves the same)."""
    return {
        "threads": threads,
        "ident": "fitwire",
        # Every live run keeps one connection open (its outbox sends an epoch every few
        # seconds). At waitress's default limit of 100 sockets, the 99th run's connection
        # waited unaccepted until its request timed out. poll(), not select(): select
        # cannot watch descriptors past 1024.
        "connection_limit": connection_limit,
        "asyncore_use_poll": True,
        # waitress buffers a whole body (spilling to disk) before the app sees it, and answers bodies over
        # its own limit (1 GiB by default) with a plain-text 413. Its limit is a backstop at twice the
        # artifact limit, so that an upload just over the stated limit still gets the app's JSON 413.
        "max_request_body_size": 2 * settings.artifact_max_bytes,
    }


@app.command()
@reports_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on [default: FITWIRE_WEBHOOK_URL's host].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: FITWIRE_WEBHOOK_URL's port].")] = None,
    threads: Annotated[int, typer.Option(min=1, max=256, help="Worker threads of the WSGI server.")] = DEFAULT_THREADS,
    connection_limit: Annotated[int, typer.Option(
        min=10, max=100_000, help="Open client connections at most; each live run keeps one.")] = DEFAULT_CONNECTION_LIMIT,
) -> None:
    """Serve the webhook with waitress (a production WSGI server) on FITWIRE_STORE."""
    import waitress

    from fitwire.webhook import create_app

    settings = load_settings()
    url = urlparse(settings.webhook_url)
    host = host or url.hostname or "127.0.0.1"
    port = port or url.port or (443 if url.scheme == "https" else 80)
    try:
        application = create_app()
    except FitwireError as exc:
        raise _fail(exc) from None
    io().err.print(f"fitwire webhook on http://{host}:{port} (store: {application.extensions['fitwire_store'].kind})")
    waitress.serve(application, host=host, port=port, **waitress_options(settings, threads, connection_limit))


@app.command("create-admin")
@reports_errors
def create_admin(
    username: Annotated[str, typer.Argument(help="The admin's username.")],
    password: Annotated[
        str | None, typer.Option("--password", "-p", help="The password [default: ask, hidden].")
    ] = None,
    display_name: Annotated[str, typer.Option(help="Shown instead of the username.")] = "",
) -> None:
    """Create an admin user directly in FITWIRE_STORE (the first user of a new server)."""
    from pydantic import TypeAdapter, ValidationError

    from fitwire.contract.http import Password, Username
    from fitwire.webhook.security import hash_password
    from fitwire.webhook.store import open_store

    settings = load_settings()
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        TypeAdapter(Username).validate_python(username)
    except ValidationError:
        raise _fail(ValueError("The username must be 2 to 32 letters, digits, '_' or '-'.")) from None
    try:
        TypeAdapter(Password).validate_python(password)
    except ValidationError:
        raise _fail(ValueError("The password must be 8 to 1024 characters.")) from None
    try:
        store = open_store(settings.store_url)
        try:
            user = store.create_user(username, hash_password(password), display_name=display_name,
                                     is_admin=True, now=datetime.now(UTC))
        finally:
            store.close()
    except FitwireError as exc:
        raise _fail(exc) from None
    io().out.print(f"Created admin {user.username!r}.")


@app.command()
@reports_errors
def upgrade() -> None:
    """Upgrade the SQL store's schema to what this fitwire needs (alembic upgrade head)."""
    settings = load_settings()
    scheme = urlparse(settings.store_url).scheme
    if scheme == "firestore":
        io().out.print("Firestore needs no schema upgrade.")
        return
    from sqlalchemy.exc import OperationalError

    from fitwire.webhook.store import migrate
    from fitwire.webhook.store.sql import make_engine

    engine = make_engine(settings.store_url)
    try:
        before = migrate.current_revision(engine)
        migrate.upgrade(engine)
        after = migrate.current_revision(engine)
    except OperationalError as exc:
        raise _fail(RuntimeError(f"The database does not answer ({exc.orig}).")) from None
    finally:
        engine.dispose()
    if before == after:
        io().out.print(f"The schema is up to date (revision {after}).")
    else:
        io().out.print(f"Upgraded the schema from revision {before or 'none'} to {after}.")


@app.command()
@reports_errors
def invite(
    admin: Annotated[str, typer.Option("--admin", help="The admin the invitation is made in the name of.")],
    days: Annotated[int, typer.Option(min=1, max=365, help="Days the invitation stays valid.")] = 7,
) -> None:
    """Print a one-time sign-up invitation (for FITWIRE_SIGNUP=invite), straight from FITWIRE_STORE."""
    from datetime import timedelta

    from fitwire.webhook.security import hash_secret, new_secret
    from fitwire.webhook.store import open_store

    settings = load_settings()
    token = new_secret()
    try:
        store = open_store(settings.store_url)
        try:
            user = store.get_credentials(admin).user
            if not user.is_admin:
                raise _fail(ValueError(f"{admin!r} is not an admin.")) from None
            expires_at = datetime.now(UTC) + timedelta(days=days)
            store.create_invitation(hash_secret(token), user.id, expires_at)
        finally:
            store.close()
    except FitwireError as exc:
        raise _fail(exc) from None
    io().out.print(f"Invitation (valid until {expires_at:%Y-%m-%d %H:%M} UTC, for one sign-up):")
    print(token)
