"""Connecting to RabbitMQ: heartbeats on, bounded retries with backoff, pika errors translated.

pika's exceptions stop at this module: callers see :class:`BrokerUnavailable`
or :class:`BrokerAccessRefused` (``fitwire.contract.errors``).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from fitwire.broker.topology import Topology, declare
from fitwire.contract.errors import BrokerAccessRefused, BrokerError, BrokerUnavailable

log = logging.getLogger(__name__)

HEARTBEAT_S = 30
"""Short enough to notice a dead peer within a minute, long enough for a busy host."""
CONNECT_TIMEOUT_S = 5.0
CONNECT_ATTEMPTS = 3
BACKOFF_STEP_S = 1.0
BACKOFF_MAX_S = 30.0


@dataclass
class Backoff:
    """Wait one step more per consecutive failure, capped; ``reset`` once things work again."""

    step: float = BACKOFF_STEP_S
    cap: float = BACKOFF_MAX_S
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        return min(self.cap, self.step * self.failures)

    def reset(self) -> None:
        self.failures = 0


def parameters(
    url: str, *, heartbeat: int = HEARTBEAT_S, name: str = "fitwire", timeout: float = CONNECT_TIMEOUT_S
) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 60
    params.socket_timeout = timeout
    params.stack_timeout = timeout + 5
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    return params


@contextmanager
def translate_errors() -> Iterator[None]:
    """Turn pika's (and the socket's) errors into fitwire's broker errors."""
    try:
        yield
    except pika.exceptions.ProbableAccessDeniedError as exc:
        raise BrokerAccessRefused(f"the broker refused the credentials ({exc})") from None
    except pika.exceptions.ProbableAuthenticationError as exc:
        raise BrokerAccessRefused(f"the broker refused the credentials ({exc})") from None
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 403:
            raise BrokerAccessRefused(exc.reply_text) from None
        raise BrokerError(f"the broker closed the channel: {exc.reply_code} {exc.reply_text}") from None
    except (pika.exceptions.AMQPConnectionError, pika.exceptions.StreamLostError) as exc:
        raise BrokerUnavailable(f"lost or could not open the broker connection ({exc!r})") from None
    except pika.exceptions.AMQPError as exc:
        raise BrokerError(f"broker error: {exc!r}") from None
    except OSError as exc:
        raise BrokerUnavailable(f"broker unreachable: {exc}") from None


def connect(
    url: str,
    *,
    attempts: int = CONNECT_ATTEMPTS,
    name: str = "fitwire",
    heartbeat: int = HEARTBEAT_S,
    timeout: float = CONNECT_TIMEOUT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> pika.BlockingConnection:
    """Open a blocking connection, retrying a bounded number of times with backoff.

    Raises:
        BrokerAccessRefused: wrong credentials or vhost (not retried).
        BrokerUnavailable: nothing answered after ``attempts`` tries.
    """
    backoff = Backoff()
    last: BrokerUnavailable | None = None
    for attempt in range(1, attempts + 1):
        try:
            with translate_errors():
                return pika.BlockingConnection(parameters(url, heartbeat=heartbeat, name=name, timeout=timeout))
        except BrokerUnavailable as exc:
            last = exc
            if attempt < attempts:
                delay = backoff.next_delay()
                log.debug("broker connect attempt %d failed, retrying in %.1fs", attempt, delay)
                sleep(delay)
    assert last is not None
    raise BrokerUnavailable(f"no RabbitMQ answers at {redact(url)} ({attempts} attempts): {last}")


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when an AMQP broker accepts a connection with these credentials at ``url``."""
    params = parameters(url, timeout=timeout)
    try:
        with socket.create_connection((params.host, params.port), timeout=timeout):
            pass
        conn = pika.BlockingConnection(params)
    except (OSError, pika.exceptions.AMQPError):
        return False
    conn.close()
    return True


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    params = pika.URLParameters(url)
    user = params.credentials.username if isinstance(params.credentials, pika.PlainCredentials) else ""
    return f"amqp://{user}:***@{params.host}:{params.port}/"


NOT_FOUND = 404
ACCESS_REFUSED = 403


def use_topology(connection: pika.BlockingConnection, topology: Topology) -> BlockingChannel:
    """A channel on which ``topology``'s exchanges and queues exist: checked passively, declared if missing.

    Every client (Tracker, watcher, signal sender) goes through here. On a broker whose
    logins the webhook checks, users may not configure the shared exchanges (RabbitMQ's
    configure permission is declare *and* delete), so they only check them passively; the
    webhook declared them at start. On a permissive developer broker nobody prepared,
    the first client declares them (issue 9: everything works on a fresh vhost). A passive
    check that fails closes its channel, so the declaring happens on a fresh one.

    Raises:
        BrokerAccessRefused: something is missing and this login may not declare it.
        pika.exceptions.AMQPError: anything else (callers translate with :func:`translate_errors`).
    """
    channel = connection.channel()
    try:
        for exchange in topology.exchanges:
            channel.exchange_declare(exchange=exchange.name, passive=True)
        for queue in topology.queues:
            channel.queue_declare(queue=queue.name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code != NOT_FOUND:
            raise
        missing = exc.reply_text
    else:
        return channel
    channel = connection.channel()
    try:
        declare(channel, topology)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == ACCESS_REFUSED:
            raise BrokerAccessRefused(
                f"the broker lacks fitwire's shared topology ({missing}) and this login may not declare it; "
                "the fitwire server declares it when it starts: is it running against this broker?"
            ) from None
        raise
    return channel


def login_name(url: str) -> str:
    """The username a connection to ``url`` logs in with (pika's default ``guest`` when the URL has none)."""
    username = urlsplit(url).username
    return unquote(username) if username else "guest"


def choose_broker_url(announced: str | None, *named: str | None, username: str | None = None,
                      token: str | None = None) -> str | None:
    """The broker URL a client uses, from what the server announced and what the user named.

    A login the server announced for this very client wins: its username is the session's
    user (``amqp://<username>:<token>@…``), or its password is the token the client asked
    with (a job's ``job.<id>`` login). On a broker whose logins the webhook checks it is the
    only login that may touch the client's runs, so a ``FITWIRE_AMQP_URL`` left in the
    environment must not replace it. Otherwise (a shared developer login, or no answer) the
    first URL the user named wins (in the order given: an explicit argument, then
    ``FITWIRE_AMQP_URL``), then the announced one; None when there is none at all.
    """
    if announced:
        parts = urlsplit(announced)
        login = unquote(parts.username) if parts.username else None
        secret = unquote(parts.password) if parts.password else None
        if (username and login == username) or (token and secret == token):
            return announced
    return next((url for url in named if url), None) or announced or None
