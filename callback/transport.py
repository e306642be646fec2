"""The one background thread that owns a run's pika connection, and its hand-off queue.

pika's ``BlockingConnection`` may only be touched by the thread that made it
(``add_callback_threadsafe`` is its one thread-safe method), so everything
AMQP happens here: publishing progress, consuming the run's signal queue,
servicing heartbeats and reconnecting with backoff, all through the broker
adapter's :class:`~fitwire.broker.adapter.Consumer`. The training thread only
appends small dicts to :class:`EventQueue`.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from fitwire.broker import topology
from fitwire.broker.adapter import (
    Broker,
    Consumer,
    Delivery,
    QueueSpec,
    Subscription,
    publish_properties,
)
from fitwire.broker.connection import redact
from fitwire.callback import _notices
from fitwire.callback.identity import Identity
from fitwire.contract.errors import BrokerAccessRefused, BrokerError, DecodeError
from fitwire.contract.messages import (
    EpochBegin,
    EpochEnd,
    Heartbeat,
    ProgressEvent,
    Signal,
    SignalAck,
    TrainBegin,
    TrainEnd,
    batches_body,
    decode,
    encode,
    wire_number,
)

log = logging.getLogger(__name__)

MAX_PENDING_BATCHES = 4096
"""Batch events waiting beyond this (a broker outage) coalesce into the newest one; other events never drop."""
FLUSH_S = 0.05
"""Longest a batch waits before it is published: batches that come faster travel together in one message."""
LATE_FLUSH_MAX_S = 0.4
"""Widest the flush window grows while the transport runs late: a saturated machine publishes fewer, fuller messages."""
ON_TIME_FLUSHES = 8
"""Flushes in a row on time before a widened window halves: it widens at once, narrows slowly, so a load
that its widening relieved does not come straight back."""
FLUSH_BATCHES = 512
"""A flush also happens as soon as this many batches wait, so one message stays small (~30 kB)."""
TICK_S = 0.5
"""Longest sleep in ``process_data_events``; new events wake it at once through add_callback_threadsafe."""
HEARTBEAT_EVERY_S = 5.0
"""A run that published nothing for this long sends a heartbeat, so watchers know it is alive."""
CONNECT_TIMEOUT_S = 3.0
RECONNECT_STEP_S = 0.5
RECONNECT_MAX_S = 5.0
"""Short cap: after a broker restart the progress should resume within seconds."""
CLOSE_AT_EXIT_S = 1.0
"""How long an exiting process gives its runs' connections to finish their close handshakes, all together."""

_MODELS: dict[str, type[ProgressEvent]] = {
    m.model_fields["type"].default: m
    for m in (TrainBegin, EpochBegin, EpochEnd, TrainEnd, SignalAck, Heartbeat)  # batches: encode_batches
}
_PROPERTIES = publish_properties()
_CLOSING: set[Transport] = set()
"""Transports whose run ended but whose connection may still be closing (joined, bounded, at exit)."""
_SKIP = object()


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

    ``put`` never drops (run and epoch events are few) and wakes the transport
    at once. ``put_batch`` never blocks and wakes it only for the first batch
    of a flush (or when :data:`FLUSH_BATCHES` wait): the transport then sleeps
    until the oldest batch is ``flush_after`` old and sends every waiting batch
    together, so a fit at 1,000 steps/s costs 20 wake-ups a second, not 1,000.
    When ``max_batches`` batch events already wait (the broker is away), the
    newest replaces the last one, so a watcher sees current progress rather
    than a backlog. ``seq`` is assigned here so a watcher can see the gaps.

    The window adapts to the machine: when the transport takes the batches more
    than ``flush_after`` later than they were due (the CPU is saturated, by
    other runs or by the training), the window doubles, up to
    :data:`LATE_FLUSH_MAX_S`; after :data:`ON_TIME_FLUSHES` flushes in a row on
    time it halves, back down to ``flush_after``. Batches that wait anyway then
    travel in fewer messages, and the load that made them late shrinks instead
    of growing.
    """

    def __init__(self, max_batches: int = MAX_PENDING_BATCHES, flush_after: float = FLUSH_S,
                 flush_batches: int = FLUSH_BATCHES, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._items: deque[dict[str, Any]] = deque()
        self._batches = 0
        self._max_batches = max_batches
        self._base_flush_after = flush_after
        self._flush_after = flush_after
        self._widest_flush_after = max(flush_after, LATE_FLUSH_MAX_S)
        self._flush_batches = flush_batches
        self._clock = clock
        self._on_time = 0
        self._oldest_batch_at = 0.0
        self._urgent = False
        self._seq = 0
        self.coalesced = 0
        self.widest = flush_after
        """The widest flush window this run used (s)."""
        self.waker: Callable[[], None] | None = None

    @property
    def flush_after(self) -> float:
        """The current flush window (s)."""
        return self._flush_after

    def put(self, event: dict[str, Any]) -> None:
        with self._lock:
            self._seq += 1
            event["seq"] = self._seq
            self._items.append(event)
            wake, self._urgent = not self._urgent, True
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
            if self._batches == 1:
                self._oldest_batch_at = self._clock()
            wake = self._batches == 1 or self._batches == self._flush_batches
        if wake:
            self._wake()

    def due_in(self) -> float | None:
        """Seconds until what waits must go out (0: now); None when nothing waits."""
        with self._lock:
            if self._urgent or self._batches >= self._flush_batches:
                return 0.0
            if not self._batches:
                return None
            return max(0.0, self._oldest_batch_at + self._flush_after - self._clock())

    def take_all(self) -> list[dict[str, Any]]:
        with self._lock:
            if self._batches and not self._urgent and self._batches < self._flush_batches:
                self._adapt(self._clock() - (self._oldest_batch_at + self._flush_after))
            items = list(self._items)
            self._items.clear()
            self._batches = 0
            self._urgent = False
        return items

    def _adapt(self, late: float) -> None:
        """Widen or narrow the window after a flush that was due ``late`` seconds ago (negative: early)."""
        if late < 0:
            return  # taken before it was due (a closing run): says nothing about the machine
        base = self._base_flush_after
        if late > base:
            self._flush_after = min(self._flush_after * 2, self._widest_flush_after)
            self.widest = max(self.widest, self._flush_after)
            self._on_time = 0
        elif late < base / 2:
            self._on_time += 1
            if self._on_time >= ON_TIME_FLUSHES:
                self._flush_after = max(self._flush_after / 2, base)
                self._on_time = 0
        else:
            self._on_time = 0

    def put_back(self, items: list[dict[str, Any]]) -> None:
        """Return unpublished events to the front, in order (their ``seq`` is kept)."""
        with self._lock:
            self._items.extendleft(reversed(items))
            batches = sum(1 for e in items if e["type"] == "batch")
            if batches and not self._batches:
                self._oldest_batch_at = self._clock()
            self._batches += batches
            self._urgent = self._urgent or batches < len(items)

    def __len__(self) -> int:
        return len(self._items)

    def _wake(self) -> None:
        waker = self.waker
        if waker is not None:
            try:
                waker()
            except Exception:  # a closing connection: the transport loop will see the event anyway
                pass


def batch_groups(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """``events`` in publishing order, consecutive batches of one epoch grouped into one message each.

    A group breaks where the batch index or ``seq`` jumps (a rate cap skipped
    batches, or a full queue coalesced them) and at every other event, so a
    ``batches`` message always leaves before the ``epoch_end`` that follows it.
    """
    groups: list[list[dict[str, Any]]] = []
    for event in events:
        last = groups[-1][-1] if groups else None
        if (event["type"] == "batch" and last is not None and last["type"] == "batch"
                and event["epoch"] == last["epoch"] and event["batch"] == last["batch"] + 1
                and event["seq"] == last["seq"] + 1):
            groups[-1].append(event)
        else:
            groups.append([event])
    return groups


def _wire_value(value: Any) -> Any:
    """One log value as a ``batches`` column carries it; ``_SKIP`` for a value that is not a scalar."""
    if value is None:
        return None
    try:
        return wire_number(float(value))
    except (TypeError, ValueError):
        return _SKIP


def encode_batches(head: Mapping[str, Any], group: list[dict[str, Any]]) -> bytes:
    """One ``batches`` message for a group from :func:`batch_groups`: logs as columns, converted once."""
    names: dict[str, None] = {}
    for event in group:
        names.update(dict.fromkeys(event["logs"]))
    columns: dict[str, list[Any]] = {}
    for name in names:
        column = [_wire_value(event["logs"].get(name)) for event in group]
        if all(v is _SKIP for v in column):
            continue  # not a scalar metric (per-class arrays …): left out, as ``numbers`` does
        columns[str(name)] = [None if v is _SKIP else v for v in column]
    last = group[-1]
    return batches_body(head, ts=last["ts"], seq=group[0]["seq"], epoch=last["epoch"], first=group[0]["batch"],
                        progress=last.get("progress"), logs=columns, count=len(group))


class Transport(threading.Thread):
    """Publishes a run's events and consumes its signal queue; reconnects until closed.

    Args:
        model_key: the run's model key.
        run_id: the run id (signal queue ``signals.<owner>.<run_id>``).
        events: the hand-off queue the training thread fills.
        resolve_identity: called once on this thread (it may do HTTP).
        on_signal: called on this thread with every decoded signal and its sender: the
            broker-validated ``user_id`` of the message, None when it carries none.
        notices: one warning per condition.
    """

    def __init__(
        self,
        *,
        model_key: str,
        run_id: str,
        events: EventQueue,
        resolve_identity: Callable[[], Identity],
        on_signal: Callable[[Signal, str | None], None],
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
        self._consumer: Consumer | None = None
        self._routing_key = ""
        self._head: dict[str, str] = {}
        self._identity: Identity | None = None
        self._last_publish = time.monotonic()
        self.connected = threading.Event()
        self.finished_publishing = threading.Event()
        self.published = 0
        self.connects = 0
        self.attempts = 0

    @property
    def identity(self) -> Identity | None:
        return self._identity

    def close(self) -> None:
        """Ask the thread to publish what is queued (when connected) and exit; does not wait.

        :attr:`finished_publishing` is set once the last event went out (or
        the broker is away); the AMQP close handshake happens after it, in the
        background, so the end of ``fit`` never waits for it.
        """
        _CLOSING.add(self)
        self._closing.set()
        self._events._wake()

    def run(self) -> None:
        try:
            self._identity = self._resolve_identity()
            self._routing_key = topology.progress_key(self._identity.owner, self._model_key, self._run_id)
            self._head = {"run_id": self._run_id, "model_key": self._model_key, "owner": self._identity.owner}
            log.debug("run %s publishes as %s", self._run_id, self._routing_key)
            consumer = self._consumer = self._signal_consumer()
            while True:
                if not self.connected.is_set():
                    if self._closing.is_set() and self.attempts:
                        break  # closing while the broker is away: the outbox has what matters
                    if not self._connect(consumer):
                        break  # closed while the broker was away
                    continue
                try:
                    self._pump(consumer)
                    if self._closing.is_set() and not len(self._events):
                        break
                    # Asleep until a signal, a run/epoch event, or the oldest waiting batch is due.
                    due = self._events.due_in()
                    consumer.poll(TICK_S if due is None else min(TICK_S, due))
                except BrokerError as exc:
                    self._lost(exc)
        except Exception:  # the transport must never take the training down
            log.exception("fitwire transport stopped on an unexpected error")
        finally:
            self.finished_publishing.set()
            self._disconnect()
            _CLOSING.discard(self)

    # --- connection ----------------------------------------------------------------

    def _signal_consumer(self) -> Consumer:
        """The run's connection: the shared exchanges (checked, else declared) and its own signal queue.

        The queue is exclusive and auto-delete, so it dies with the run; it is named and bound
        owner-first, which is what the broker lets this owner (and only them) declare and bind.
        Signals are acked by :meth:`_on_message`.
        """
        assert self._identity is not None
        owner = self._identity.owner
        queue = QueueSpec(
            topology.owner_signal_queue_name(owner, self._run_id),
            bindings=tuple((topology.SIGNALS.name, key)
                           for key in topology.owner_signal_keys(owner, self._model_key, self._run_id)),
            declare=True, exclusive=True, auto_delete=True, arguments=topology.signal_queue_arguments(),
        )
        broker = Broker(self._identity.amqp_url, name=f"fitwire-tracker-{self._run_id[:8]}", uses=topology.LIVE,
                        attempts=1, timeout=CONNECT_TIMEOUT_S)
        return Consumer(broker, Subscription([queue], self._on_message))

    def _connect(self, consumer: Consumer) -> bool:
        """Open the connection, retrying with backoff; False when the run closed meanwhile."""
        self.attempts += 1
        if not consumer.reopen(step=RECONNECT_STEP_S, cap=RECONNECT_MAX_S, stop=self._closing, at_once=True,
                               on_failure=self._connect_failed):
            return False
        self._events.waker = consumer.wake
        self.connects += 1
        if self.connects > 1:
            assert self._identity is not None
            log.info("fitwire: reconnected to %s; live progress resumes", redact(self._identity.amqp_url))
        self.connected.set()
        return True

    def _connect_failed(self, exc: Exception, _delay: float) -> None:
        assert self._identity is not None
        url = self._identity.amqp_url
        if isinstance(exc, BrokerAccessRefused):
            self._notices.warn(
                _notices.BROKER_REFUSED,
                f"the broker at {redact(url)} refused access ({exc}); training goes on without live progress.",
            )
        else:
            self._notices.warn(
                _notices.BROKER_DOWN,
                f"no RabbitMQ at {redact(url)} ({type(exc).__name__}); training goes on, "
                "live progress resumes when the broker is back.",
            )

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
        if self._consumer is not None:
            self._consumer.close()  # a half-dead connection: the broker drops the exclusive queue anyway

    # --- traffic ---------------------------------------------------------------------

    def _pump(self, consumer: Consumer) -> None:
        if not self._closing.is_set() and self._events.due_in() != 0.0:
            if time.monotonic() - self._last_publish > HEARTBEAT_EVERY_S and not len(self._events):
                self._events.put({"type": "heartbeat", "ts": time.time()})
            return
        events = self._events.take_all()
        sent = 0
        for group in batch_groups(events):
            try:
                body = encode_batches(self._head, group) if group[0]["type"] == "batch" else self._encode(group[0])
            except Exception as exc:  # one bad event must not stop the stream
                log.debug("dropping an event that does not encode: %r", exc)
                sent += len(group)
                continue
            try:
                consumer.publish(topology.PROGRESS.name, self._routing_key, body, _PROPERTIES)
            except Exception:
                # Keep what did not go out, minus stale batch progress: the run and
                # epoch events must reach the watchers after the reconnect.
                self._events.put_back([e for e in events[sent:] if e["type"] != "batch"])
                raise
            sent += len(group)
            self.published += 1
            self._last_publish = time.monotonic()

    def _encode(self, event: dict[str, Any]) -> bytes:
        assert self._identity is not None
        fields = dict(event)
        kind = fields["type"]
        if "logs" in fields:
            fields["logs"] = numbers(fields["logs"])
        model = _MODELS[kind]
        return encode(
            model(run_id=self._run_id, model_key=self._model_key, owner=self._identity.owner, **fields)
        )

    def _on_message(self, delivery: Delivery) -> None:
        try:
            signal = decode(delivery.body, Signal)
        except DecodeError as exc:
            log.debug("rejecting an undecodable signal: %s", exc)
            delivery.reject(requeue=False)
            return
        delivery.ack()
        # RabbitMQ refuses a publish whose user_id is not the publisher's login, so this is who
        # sent it; the body's ``sender`` is whatever the sender chose to write.
        sender = getattr(delivery.properties, "user_id", None) or None
        try:
            self._on_signal(signal, sender)
        except Exception:
            log.exception("fitwire: handling signal %s failed", signal.id)


@atexit.register
def _finish_closing() -> None:
    """Give the connections of ended runs a bounded moment to close cleanly before the process exits."""
    deadline = time.monotonic() + CLOSE_AT_EXIT_S
    for transport in list(_CLOSING):
        transport.join(max(0.0, deadline - time.monotonic()))
