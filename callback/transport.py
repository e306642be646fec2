"""The one background thread that owns a run's pika connection, and its hand-off queue.

pika's ``BlockingConnection`` may only be touched by the thread that made it
(``add_callback_threadsafe`` is its one thread-safe method), so everything
AMQP happens here: publishing progress, consuming the run's signal queue,
servicing heartbeats through ``process_data_events`` and reconnecting with
backoff. The training thread only appends small dicts to :class:`EventQueue`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import pika
import pika.exceptions

from fitwire.broker import topology
from fitwire.broker.connection import Backoff, parameters, redact, translate_errors
from fitwire.broker.errors import BrokerAccessRefused, BrokerError, DecodeError
from fitwire.broker.messages import (
    Batch,
    EpochBegin,
    EpochEnd,
    Heartbeat,
    ProgressEvent,
    Signal,
    SignalAck,
    TrainBegin,
    TrainEnd,
    decode,
    encode,
)
from fitwire.callback import _notices
from fitwire.callback.identity import Identity

log = logging.getLogger(__name__)

MAX_PENDING_BATCHES = 256
"""Batch events waiting beyond this coalesce into the newest one; other events never drop."""
COALESCE_CHUNK = 64
"""When this many events wait at once (catching up after an outage), older batches are skipped."""
TICK_S = 0.5
"""Longest sleep in ``process_data_events``; new events wake it at once through add_callback_threadsafe."""
HEARTBEAT_EVERY_S = 5.0
"""A run that published nothing for this long sends a heartbeat, so watchers know it is alive."""
CONNECT_TIMEOUT_S = 3.0
RECONNECT_STEP_S = 0.5
RECONNECT_MAX_S = 5.0
"""Short cap: after a broker restart the progress should resume within seconds."""

_MODELS: dict[str, type[ProgressEvent]] = {
    m.model_fields["type"].default: m
    for m in (TrainBegin, EpochBegin, Batch, EpochEnd, TrainEnd, SignalAck, Heartbeat)
}
_PROPERTIES = pika.BasicProperties(content_type="application/json", delivery_mode=1)


def numbers(logs: Mapping[str, Any] | None) -> dict[str, float | None]:
    """Keras logs as plain numbers; values that are not scalars (per-class arrays …) are left out."""
    out: dict[str, float | None] = {}
    for key, value in (logs or {}).items():
        if value is None:
            out[str(key)] = None
            continue
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class EventQueue:
    """Bounded, coalescing hand-off from the training thread to the transport thread.

    ``put`` never drops (run and epoch events are few); ``put_batch`` never
    blocks: when :data:`MAX_PENDING_BATCHES` batch events already wait, the
    newest replaces the last one, so a watcher sees current progress rather
    than a backlog. ``seq`` is assigned here so a watcher can see the gaps.
    """

    def __init__(self, max_batches: int = MAX_PENDING_BATCHES) -> None:
        self._lock = threading.Lock()
        self._items: deque[dict[str, Any]] = deque()
        self._batches = 0
        self._max_batches = max_batches
        self._seq = 0
        self.coalesced = 0
        self.waker: Callable[[], None] | None = None

    def put(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            event["seq"] = self._seq
            self._items.append(event)
            wake = len(self._items) == 1
        if wake:
            self._wake()

    def put_batch(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            event["seq"] = self._seq
            if self._batches >= self._max_batches and self._items[-1]["type"] == "batch":
                self._items[-1] = event
                self.coalesced += 1
                return
            self._items.append(event)
            self._batches += 1
            wake = len(self._items) == 1
        if wake:
            self._wake()

    def take_all(self) -> list[dict[str, Any]]:
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._batches = 0
        return items

    def put_back(self, items: list[dict[str, Any]]) -> None:
        """Return unpublished events to the front, in order (their ``seq`` is kept)."""
        with self._lock:
            self._items.extendleft(reversed(items))
            self._batches += sum(1 for e in items if e["type"] == "batch")

    def __len__(self) -> int:
        return len(self._items)

    def _wake(self) -> None:
        waker = self.waker
        if waker is not None:
            try:
                waker()
            except Exception:  # a closing connection: the transport loop will see the event anyway
                pass


def coalesce(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Skip a batch event that another batch event right after it supersedes (backlog only)."""
    if len(events) < COALESCE_CHUNK:
        return events
    kept = [
        e
        for e, nxt in zip(events, events[1:], strict=False)
        if not (e["type"] == "batch" and nxt["type"] == "batch")
    ]
    kept.append(events[-1])
    return kept


class Transport(threading.Thread):
    """Publishes a run's events and consumes its signal queue; reconnects until closed.

    Args:
        model_key: the run's model key.
        run_id: the run id (signal queue ``signals.<run_id>``).
        events: the hand-off queue the training thread fills.
        resolve_identity: called once on this thread (it may do HTTP).
        on_signal: called on this thread with every decoded signal.
        notices: one warning per condition.
    """

    def __init__(
        self,
        *,
        model_key: str,
        run_id: str,
        events: EventQueue,
        resolve_identity: Callable[[], Identity],
        on_signal: Callable[[Signal], None],
        notices: _notices.Notices,
    ) -> None:
        super().__init__(name=f"fitwire-transport-{run_id[:8]}", daemon=True)
        self._model_key = model_key
        self._run_id = run_id
        self._events = events
        self._resolve_identity = resolve_identity
        self._on_signal = on_signal
        self._notices = notices
        self._closing = threading.Event()
        self._conn: pika.BlockingConnection | None = None
        self._channel: Any = None
        self._routing_key = ""
        self._identity: Identity | None = None
        self._last_publish = time.monotonic()
        self._backoff = Backoff(step=RECONNECT_STEP_S, cap=RECONNECT_MAX_S)
        self.connected = threading.Event()
        self.published = 0
        self.connects = 0
        self.attempts = 0

    @property
    def identity(self) -> Identity | None:
        return self._identity

    def close(self) -> None:
        """Ask the thread to publish what is queued (when connected) and exit; does not wait."""
        self._closing.set()
        self._events._wake()

    def run(self) -> None:
        try:
            self._identity = self._resolve_identity()
            self._routing_key = topology.progress_key(self._identity.owner, self._model_key, self._run_id)
            log.debug("run %s publishes as %s", self._run_id, self._routing_key)
            while True:
                conn = self._conn
                if conn is None:
                    if self._closing.is_set() and self.attempts:
                        break  # closing while the broker is away: the outbox has what matters
                    if not self._connect():
                        self._closing.wait(self._backoff.next_delay())
                    continue
                try:
                    self._pump()
                    if self._closing.is_set() and not len(self._events):
                        break
                    conn.process_data_events(time_limit=TICK_S)
                except (pika.exceptions.AMQPError, OSError, BrokerError) as exc:
                    self._lost(exc)
        except Exception:  # the transport must never take the training down
            log.exception("fitwire transport stopped on an unexpected error")
        finally:
            self._disconnect()

    # --- connection ----------------------------------------------------------------

    def _connect(self) -> bool:
        assert self._identity is not None
        url = self._identity.amqp_url
        self.attempts += 1
        try:
            with translate_errors():
                conn = pika.BlockingConnection(
                    parameters(url, name=f"fitwire-tracker-{self._run_id[:8]}", timeout=CONNECT_TIMEOUT_S)
                )
                channel = conn.channel()
                self._declare(conn, channel)
        except BrokerAccessRefused as exc:
            self._notices.warn(
                _notices.BROKER_REFUSED,
                f"the broker at {redact(url)} refused access ({exc}); training goes on without live progress.",
            )
            return False
        except BrokerError as exc:
            self._notices.warn(
                _notices.BROKER_DOWN,
                f"no RabbitMQ at {redact(url)} ({type(exc).__name__}); training goes on, "
                "live progress resumes when the broker is back.",
            )
            return False
        except Exception as exc:  # pika raises a few things translate_errors does not know
            log.debug("connect failed: %r", exc)
            return False
        self._conn, self._channel = conn, channel
        self._events.waker = self._waker
        self._backoff.reset()
        self.connects += 1
        if self.connects > 1:
            log.info("fitwire: reconnected to %s; live progress resumes", redact(url))
        self.connected.set()
        return True

    def _declare(self, conn: pika.BlockingConnection, channel: Any) -> None:
        """The run's own signal queue: exclusive and auto-delete, so it dies with the run."""
        for exchange in (topology.PROGRESS, topology.SIGNALS):
            channel.exchange_declare(exchange=exchange.name, exchange_type=exchange.type, durable=exchange.durable)
        queue = topology.signal_queue_name(self._run_id)
        channel.queue_declare(
            queue=queue,
            durable=False,
            exclusive=True,
            auto_delete=True,
            arguments=topology.signal_queue_arguments(),
        )
        for key in topology.signal_keys(self._model_key, self._run_id):
            channel.queue_bind(queue=queue, exchange=topology.SIGNALS.name, routing_key=key)
        channel.basic_consume(queue=queue, on_message_callback=self._on_message)

    def _waker(self) -> None:
        conn = self._conn
        if conn is not None:
            conn.add_callback_threadsafe(_noop)

    def _lost(self, exc: BaseException) -> None:
        assert self._identity is not None
        self._notices.warn(
            _notices.BROKER_DOWN,
            f"lost the broker at {redact(self._identity.amqp_url)} ({type(exc).__name__}); "
            "training goes on, live progress resumes when it is back.",
        )
        log.debug("broker connection lost: %r", exc)
        self._disconnect()

    def _disconnect(self) -> None:
        self._events.waker = None
        self.connected.clear()
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except Exception:  # already half dead; the broker drops the exclusive queue anyway
                pass

    # --- traffic ---------------------------------------------------------------------

    def _pump(self) -> None:
        events = coalesce(self._events.take_all())
        for i, event in enumerate(events):
            try:
                body = self._encode(event)
            except Exception as exc:  # one bad event must not stop the stream
                log.debug("dropping an event that does not encode: %r", exc)
                continue
            try:
                self._channel.basic_publish(
                    exchange=topology.PROGRESS.name,
                    routing_key=self._routing_key,
                    body=body,
                    properties=_PROPERTIES,
                )
            except Exception:
                # Keep what did not go out, minus stale batch progress: the run and
                # epoch events must reach the watchers after the reconnect.
                self._events.put_back([e for e in events[i:] if e["type"] != "batch"])
                raise
            self.published += 1
            self._last_publish = time.monotonic()
        if not events and time.monotonic() - self._last_publish > HEARTBEAT_EVERY_S:
            self._events.put({"type": "heartbeat", "ts": time.time()})

    def _encode(self, event: dict[str, Any]) -> bytes:
        assert self._identity is not None
        fields = dict(event)
        kind = fields["type"]
        if "logs" in fields:
            fields["logs"] = numbers(fields["logs"])
        if kind == "batch" and fields.get("progress") is not None and not math.isfinite(fields["progress"]):
            fields["progress"] = None
        model = _MODELS[kind]
        return encode(
            model(run_id=self._run_id, model_key=self._model_key, owner=self._identity.owner, **fields)
        )

    def _on_message(self, channel: Any, method: Any, _props: Any, body: bytes) -> None:
        try:
            signal = decode(body, Signal)
        except DecodeError as exc:
            log.debug("rejecting an undecodable signal: %s", exc)
            channel.basic_reject(delivery_tag=method.delivery_tag, requeue=False)
            return
        channel.basic_ack(delivery_tag=method.delivery_tag)
        try:
            self._on_signal(signal)
        except Exception:
            log.exception("fitwire: handling signal %s failed", signal.id)


def _noop() -> None:
    """Wakes ``process_data_events``; the loop then drains the queue."""
