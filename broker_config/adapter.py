"""The broker adapter every fitwire component uses: one :class:`Broker` per component and broker URL.

pika's BlockingConnection is not thread-safe, so each thread gets its own connection,
opened on first use and kept (the webhook no longer opens one per ``POST /jobs``).
A component says which part of the topology it uses; it is checked (else declared)
once per connection (:func:`use_topology`). Publishing may wait for the broker's
confirm. A connection found dead is dropped and the operation runs once more on a
fresh one. pika's exceptions never leave this module: callers see
``fitwire.contract.errors`` (:func:`translate_errors`).

Long-lived consumers with their own loop (the Tracker's transport, the agent) open
their connection here too (:meth:`Broker.connect`) and keep their loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from fitwire.broker.connection import (
    BACKOFF_MAX_S,
    CONNECT_ATTEMPTS,
    CONNECT_TIMEOUT_S,
    HEARTBEAT_S,
    Backoff,
    connect,
    translate_errors,
    use_topology,
)
from fitwire.broker.topology import Topology, watcher_queue_arguments
from fitwire.contract.errors import BrokerUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

def _close(connection: pika.BlockingConnection) -> None:
    if connection.is_open:
        try:
            connection.close()
        except (pika.exceptions.AMQPError, OSError):
            pass  # closing a dead connection: nothing left to release


class _Link:
    """One thread's connection and channel."""

    def __init__(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        self.connection = connection
        self.channel = channel

    def close(self) -> None:
        _close(self.connection)


class Broker:
    """One component's RabbitMQ: a connection per thread, the topology it uses, publish, run, watch.

    Args:
        url: the broker URL (``amqp://user:password@host:port/vhost``).
        name: the connection name the broker's management shows.
        uses: the part of the topology this component publishes to or consumes from;
            checked passively, declared when missing, on every new connection.
        confirm: put channels in confirm mode, so ``publish`` returns once the broker has
            the message (or raises :class:`BrokerError` when it nacks or cannot route it).
        heartbeat: seconds; 0 for connections that sit idle between requests in a thread
            that never services them (a web server's), which the broker would otherwise
            close for missed heartbeats. Such a connection found dead is reopened on use.
        attempts: connection attempts (with backoff) before :class:`BrokerUnavailable`.
        timeout: seconds one connection attempt may take.
    """

    def __init__(self, url: str, *, name: str, uses: Topology | None = None, confirm: bool = False,
                 heartbeat: int = HEARTBEAT_S, attempts: int = CONNECT_ATTEMPTS,
                 timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.url = url
        self.name = name
        self.uses = uses
        self.confirm = confirm
        self.heartbeat = heartbeat
        self.attempts = attempts
        self.timeout = timeout
        self._local = threading.local()
        self._links: set[_Link] = set()
        self._links_lock = threading.Lock()

    # --- connections -------------------------------------------------------------------

    def connect(self, *, attempts: int | None = None) -> pika.BlockingConnection:
        """A new connection of this component's (the caller owns and closes it)."""
        return connect(self.url, attempts=attempts or self.attempts, name=self.name, heartbeat=self.heartbeat,
                       timeout=self.timeout)

    def _link(self) -> _Link:
        link: _Link | None = getattr(self._local, "link", None)
        if link is not None and link.connection.is_open and link.channel.is_open:
            return link
        if link is not None:
            self._drop(link)
        connection = self.connect()
        try:
            with translate_errors():
                channel = use_topology(connection, self.uses) if self.uses else connection.channel()
                if self.confirm:
                    channel.confirm_delivery()
        except BaseException:
            _close(connection)
            raise
        link = _Link(connection, channel)
        self._local.link = link
        with self._links_lock:
            self._links.add(link)
        return link

    def _drop(self, link: _Link) -> None:
        if getattr(self._local, "link", None) is link:
            self._local.link = None
        with self._links_lock:
            self._links.discard(link)
        link.close()

    # --- operations ----------------------------------------------------------------------

    def run(self, operation: Callable[[BlockingChannel], T]) -> T:
        """``operation(channel)`` on this thread's channel, errors translated.

        A connection that died since its last use (a broker restart, an idle timeout) is
        replaced and the operation runs once more; a second failure is raised. When an
        operation fails otherwise, a channel the broker closed is dropped, so the next
        call starts clean.
        """
        for attempt in (1, 2):
            link = self._link()
            try:
                with translate_errors():
                    return operation(link.channel)
            except BrokerUnavailable:
                self._drop(link)
                if attempt == 2:
                    raise
                log.debug("%s: the broker connection was gone; retrying on a fresh one", self.name)
            except BaseException:
                if not (link.connection.is_open and link.channel.is_open):
                    self._drop(link)  # e.g. a refused declaration closed the channel
                raise
        raise AssertionError("unreachable")

    def publish(self, exchange: str, routing_key: str, body: bytes, *,
                properties: pika.BasicProperties | None = None, mandatory: bool = False) -> None:
        """Publish one message on this thread's channel (confirmed when the broker was opened with ``confirm``)."""
        self.run(lambda channel: channel.basic_publish(
            exchange=exchange, routing_key=routing_key, body=body, properties=properties, mandatory=mandatory,
        ))

    @contextmanager
    def watching(self, exchange: str, binding_keys: list[str], *,
                 on_message: Callable[[bytes], None]) -> Iterator[Watcher]:
        """A private queue bound to ``exchange`` with ``binding_keys``, consumed while the block runs.

        The queue is server-named, exclusive and auto-delete, with the watcher TTL and
        length limits, so a slow watcher sees fresh messages and its queue dies with it.
        """
        watcher = Watcher(self, exchange, binding_keys, on_message)
        watcher.open()
        try:
            yield watcher
        finally:
            watcher.close()

    def close(self) -> None:
        """Close every connection this broker opened, in every thread."""
        with self._links_lock:
            links, self._links = list(self._links), set()
        for link in links:
            link.close()
        self._local = threading.local()


class Watcher:
    """A consumer of a private, server-named queue; ``poll`` runs pika's I/O on the caller's thread."""

    def __init__(self, broker: Broker, exchange: str, binding_keys: list[str],
                 on_message: Callable[[bytes], None]) -> None:
        self.broker = broker
        self.exchange = exchange
        self.binding_keys = binding_keys
        self._on_message = on_message
        self.connection: pika.BlockingConnection | None = None
        self.channel: BlockingChannel | None = None
        self.queue = ""

    def open(self, attempts: int | None = None) -> None:
        """Connect, declare the queue and bind it (raises :class:`BrokerUnavailable` when no broker answers)."""
        self.close()
        connection = self.broker.connect(attempts=attempts)
        try:
            with translate_errors():
                channel = (use_topology(connection, self.broker.uses) if self.broker.uses
                           else connection.channel())
                self.queue = channel.queue_declare(
                    queue="", exclusive=True, auto_delete=True, arguments=watcher_queue_arguments()
                ).method.queue
                for key in self.binding_keys:
                    channel.queue_bind(queue=self.queue, exchange=self.exchange, routing_key=key)
                channel.basic_consume(queue=self.queue, auto_ack=True,
                                      on_message_callback=lambda _c, _m, _p, body: self._on_message(body))
                if self.broker.confirm:
                    channel.confirm_delivery()
        except BaseException:
            _close(connection)
            raise
        self.connection, self.channel = connection, channel

    def reopen(self, *, cap: float = BACKOFF_MAX_S, give_up_at: float | None = None,
               sleep: Callable[[float], None] = time.sleep) -> bool:
        """After a lost connection: try again, one backoff step longer each time (at most ``cap``
        seconds apart), until the queue is declared, bound and consumed again; True then, False
        once ``time.monotonic()`` passes ``give_up_at``. A watcher's queue is new: what was
        published while it was away is gone (watchers catch up from stored state)."""
        backoff = Backoff(cap=cap)
        while give_up_at is None or time.monotonic() < give_up_at:
            sleep(backoff.next_delay())
            try:
                self.open(attempts=1)
                return True
            except BrokerUnavailable:
                log.debug("%s: the broker is still away", self.broker.name)
        return False

    def poll(self, timeout: float) -> None:
        """Service the connection for up to ``timeout`` seconds, delivering what arrives to ``on_message``."""
        if self.connection is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            self.connection.process_data_events(time_limit=timeout)

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish on the watcher's own channel (a watcher that also sends: ``fitwire watch``'s STOP key)."""
        if self.channel is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            self.channel.basic_publish(exchange=exchange, routing_key=routing_key, body=body, properties=properties)

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            _close(connection)


def publish_properties(**fields: Any) -> pika.BasicProperties:
    """JSON message properties (transient unless ``delivery_mode=2`` is given)."""
    return pika.BasicProperties(content_type="application/json", **{"delivery_mode": 1, **fields})
