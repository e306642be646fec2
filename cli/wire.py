"""The CLI's side of the broker: one watcher queue on ``fitwire.progress``, and signals out.

A watcher gets its own server-named, exclusive, auto-delete queue (DL-Tracker's
viewers shared one queue and stole each other's messages). Names, keys and
arguments all come from ``fitwire.broker.topology``.
"""

from __future__ import annotations

import logging
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from fitwire.broker import connect
from fitwire.broker.connection import login_name, translate_errors, use_topology
from fitwire.broker.topology import (
    LIVE,
    PROGRESS,
    SIGNALS,
    owner_signal_key,
    progress_key,
    watcher_queue_arguments,
)
from fitwire.cli.common import broker_unreachable
from fitwire.contract import BrokerUnavailable, DecodeError, ProgressMessage, Signal, decode, encode
from fitwire.contract.messages import ProgressEvent, unpack

log = logging.getLogger(__name__)

CONNECT_ATTEMPTS = 2
"""A CLI user waits a couple of seconds for a broker, not half a minute."""


def run_pattern(owner: str, model_key: str, run_id: str | None = None) -> str:
    """Binding key for one run's progress, or (``run_id=None``) every run of a model."""
    return progress_key(owner, model_key, run_id or "*")


class WatchQueue:
    """A blocking-connection consumer of progress events matching some binding keys.

    Single-threaded on purpose: ``poll`` runs pika's I/O (heartbeats included)
    on the caller's thread and returns the decoded events, so the caller draws
    them without locks. Broker failures surface as ``BrokerUnavailable``.
    """

    def __init__(self, amqp_url: str, binding_keys: list[str], *, name: str = "fitwire-cli") -> None:
        self.amqp_url = amqp_url
        self.binding_keys = binding_keys
        self.name = name
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._pending: list[ProgressEvent] = []

    def open(self, attempts: int = CONNECT_ATTEMPTS) -> None:
        """Connect, declare the queue and bind it; ``Unreachable`` when no broker answers."""
        self.close()
        try:
            connection = connect(self.amqp_url, attempts=attempts, name=self.name)
        except BrokerUnavailable:
            raise broker_unreachable(self.amqp_url) from None
        with translate_errors():
            # The first watcher on a fresh developer broker must not fail on a missing exchange.
            channel = use_topology(connection, LIVE)
            declared = channel.queue_declare(
                queue="", exclusive=True, auto_delete=True, arguments=watcher_queue_arguments()
            )
            queue = declared.method.queue
            for key in self.binding_keys:
                channel.queue_bind(queue=queue, exchange=PROGRESS.name, routing_key=key)
            channel.basic_consume(queue=queue, on_message_callback=self._on_message, auto_ack=True)
            # A signal the broker refuses (not this login's model) fails in ``publish``, not silently.
            channel.confirm_delivery()
        self._connection, self._channel = connection, channel

    def _on_message(self, _ch: Any, _method: Any, _props: Any, body: bytes) -> None:
        try:
            self._pending.extend(unpack(decode(body, ProgressMessage)))
        except DecodeError as exc:
            # A newer or broken sender must not take the viewer down; watcher queues do not dead-letter.
            log.warning("skipped an undecodable progress message: %s", exc)

    def poll(self, timeout: float) -> list[ProgressEvent]:
        """Events that arrived within ``timeout`` seconds (possibly none); a ``batches`` message as one ``Batch`` each."""
        if self._connection is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            self._connection.process_data_events(time_limit=timeout)
        events, self._pending = self._pending, []
        return events

    def publish(self, signal: Signal, owner: str) -> None:
        """Send ``signal`` to its run (or to every running run of its model) of ``owner``'s model.

        ``user_id`` is this connection's login: RabbitMQ refuses the publish unless it is,
        so the run can trust it as the sender (and refuses a signal without one).
        """
        if self._channel is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            self._channel.basic_publish(
                exchange=SIGNALS.name,
                routing_key=owner_signal_key(owner, signal.model_key, signal.run_id),
                body=encode(signal),
                properties=pika.BasicProperties(content_type="application/json", delivery_mode=1,
                                                user_id=login_name(self.amqp_url)),
            )

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                pass  # closing a dead connection: nothing left to release

    def __enter__(self) -> WatchQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
