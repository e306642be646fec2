"""`fitwire dev`: the local development stack (a RabbitMQ that answers)."""

from __future__ import annotations

import typer
from rich.console import Console

from fitwire.broker.connection import redact
from fitwire.broker.local import ensure_broker, local_status, stop_local
from fitwire.contract.errors import FitwireError
from fitwire.settings import Settings

app = typer.Typer(no_args_is_help=True, help="Local development stack: broker, webhook.")
broker = typer.Typer(no_args_is_help=True, help="A RabbitMQ at FITWIRE_AMQP_URL, started locally when none answers.")
app.add_typer(broker, name="broker")

_err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except FitwireError as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None


@broker.command("up")
def up() -> None:
    """Make a broker available; print its URL on the last line (for FITWIRE_AMQP_URL).

    A node started here listens on FITWIRE_BROKER_BIND (loopback by default) and asks the
    webhook at FITWIRE_WEBHOOK_URL about every user's and agent's login; the URL printed is
    the webhook's own internal account (secrets in <data dir>/rabbitmq/accounts.json, 0600).
    """
    settings = _settings()
    try:
        url, started = ensure_broker(
            settings.amqp_url, settings.data_dir, bind=settings.broker_bind, webhook_url=settings.webhook_url
        )
    except FitwireError as exc:
        _err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(3) from None
    local = local_status(settings.data_dir)
    if local:
        _err.print(f"logins checked by the webhook at {settings.webhook_url}; Web STOMP at {local['stomp_url']}",
                   soft_wrap=True)
    what = "started a local RabbitMQ node" if started else "a RabbitMQ answers"
    _err.print(f"{what} at {redact(url)}")  # last: `make run` shows this line
    print(url)


@broker.command("down")
def down() -> None:
    """Stop the local node `up` started (never a broker it did not start)."""
    settings = _settings()
    if stop_local(settings.data_dir):
        _err.print("stopped the local RabbitMQ node")
    else:
        _err.print("no local RabbitMQ node started by fitwire is running")


@broker.command("status")
def status() -> None:
    """Say which broker answers and whether fitwire started it."""
    from fitwire.broker.connection import answers

    settings = _settings()
    local = local_status(settings.data_dir)
    if local:
        print(f"local node (pid {local['pid']}) at {redact(str(local['url']))}, Web STOMP at {local['stomp_url']}")
    elif answers(settings.amqp_url):
        print(f"a RabbitMQ answers at {redact(settings.amqp_url)} (not started by fitwire)")
    else:
        print(f"no RabbitMQ answers at {redact(settings.amqp_url)}")
        raise typer.Exit(3)
