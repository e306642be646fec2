"""The CLI's side of the broker: one watcher queue on ``fitwire.progress``, and signals out.

A watcher gets its own server-named, exclusive, auto-delete queue (DL-Tracker's
viewers shared one queue and stole each other's messages). Names, keys and
arguments all come from ``fitwire.broker.topology``.
"""

from __future__ import annotations

import logging

from fitwire.broker.adapter import Broker, Watcher, publish_properties
from fitwire.broker.connection import login_name
from fitwire.broker.topology import (
    LIVE,
    PROGRESS,
    SIGNALS,
    owner_signal_key,
    progress_key,
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
        # The first watcher on a fresh developer broker must not fail on a missing exchange; a
        # signal the broker refuses (not this login's model) fails in ``publish``, not silently.
        broker = Broker(amqp_url, name=name, uses=LIVE, confirm=True)
        self._watcher = Watcher(broker, PROGRESS.name, binding_keys, self._on_message)
        self._pending: list[ProgressEvent] = []

    def open(self, attempts: int = CONNECT_ATTEMPTS) -> None:
        """Connect, declare the queue and bind it; ``Unreachable`` when no broker answers."""
        try:
            self._watcher.open(attempts=attempts)
        except BrokerUnavailable:
            raise broker_unreachable(self.amqp_url) from None

    def reopen(self, *, cap: float, give_up_at: float | None) -> bool:
        """After a lost connection: the adapter's reconnect with backoff; False when ``give_up_at`` passed."""
        return self._watcher.reopen(cap=cap, give_up_at=give_up_at)

    def _on_message(self, body: bytes) -> None:
        try:
            self._pending.extend(unpack(decode(body, ProgressMessage)))
        except DecodeError as exc:
            # A newer or broken sender must not take the viewer down; watcher queues do not dead-letter.
            log.warning("skipped an undecodable progress message: %s", exc)

    def poll(self, timeout: float) -> list[ProgressEvent]:
        """Events that arrived within ``timeout`` seconds (possibly none); a ``batches`` message as one ``Batch`` each."""
        self._watcher.poll(timeout)
        events, self._pending = self._pending, []
        return events

    def publish(self, signal: Signal, owner: str) -> None:
        """Send ``signal`` to its run (or to every running run of its model) of ``owner``'s model.

        ``user_id`` is this connection's login: RabbitMQ refuses the publish unless it is,
        so the run can trust it as the sender (and refuses a signal without one).
        """
        self._watcher.publish(SIGNALS.name, owner_signal_key(owner, signal.model_key, signal.run_id),
                              encode(signal), publish_properties(user_id=login_name(self.amqp_url)))

    def close(self) -> None:
        self._watcher.close()

    def __enter__(self) -> WatchQueue:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
