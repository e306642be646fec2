"""`fitwire dev`: the local development stack (a RabbitMQ that answers)."""

from __future__ import annotations

import typer

from fitwire.broker.connection import redact
from fitwire.broker.local import ensure_broker, local_status, stop_local
from fitwire.cli.common import EXIT_UNREACHABLE, Unreachable, io, reports_errors
from fitwire.cli.common import settings as load_settings
from fitwire.contract.errors import FitwireError

app = typer.Typer(no_args_is_help=True, help="Local development stack: broker, webhook.")
broker = typer.Typer(no_args_is_help=True, help="A RabbitMQ at FITWIRE_AMQP_URL, started locally when none answers.")
app.add_typer(broker, name="broker")



@broker.command("up")
@reports_errors
def up() -> None:
    """Make a broker available; print its URL on the last line (for FITWIRE_AMQP_URL).

    A node started here listens on FITWIRE_BROKER_BIND (loopback by default) and asks the
    webhook at FITWIRE_WEBHOOK_URL about every user's and agent's login; the URL printed is
    the webhook's own internal account (secrets in <data dir>/rabbitmq/accounts.json, 0600).
    """
    settings = load_settings()
    try:
        url, started = ensure_broker(
            settings.amqp_url, settings.data_dir, bind=settings.broker_bind, webhook_url=settings.webhook_url
        )
    except FitwireError as exc:
        raise Unreachable(str(exc)) from None
    local = local_status(settings.data_dir)
    if local:
        io().err.print(f"logins checked by the webhook at {settings.webhook_url}; Web STOMP at {local['stomp_url']}",
                   soft_wrap=True)
    what = "started a local RabbitMQ node" if started else "a RabbitMQ answers"
    io().err.print(f"{what} at {redact(url)}")  # last: `make run` shows this line
    print(url)


@broker.command("down")
@reports_errors
def down() -> None:
    """Stop the local node `up` started (never a broker it did not start)."""
    settings = load_settings()
    if stop_local(settings.data_dir):
        io().err.print("stopped the local RabbitMQ node")
    else:
        io().err.print("no local RabbitMQ node started by fitwire is running")


@broker.command("status")
@reports_errors
def status() -> None:
    """Say which broker answers and whether fitwire started it."""
    from fitwire.broker.connection import answers

    settings = load_settings()
    local = local_status(settings.data_dir)
    if local:
        print(f"local node (pid {local['pid']}) at {redact(str(local['url']))}, Web STOMP at {local['stomp_url']}")
    elif answers(settings.amqp_url):
        print(f"a RabbitMQ answers at {redact(settings.amqp_url)} (not started by fitwire)")
    else:
        print(f"no RabbitMQ answers at {redact(settings.amqp_url)}")
        raise typer.Exit(EXIT_UNREACHABLE)
