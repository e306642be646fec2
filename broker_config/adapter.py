"""The broker adapter every fitwire component uses: one :class:`Broker` per component and broker URL.

pika's BlockingConnection is not thread-safe, so each thread gets its own connection,
opened on first use and kept (the webhook no longer opens one per ``POST /jobs``).
A component says which part of the topology it uses; it is checked (else declared)
once per connection (:func:`use_topology`). Publishing may wait for the broker's
confirm. A connection found dead is dropped and the operation runs once more on a
fresh one. pika's exceptions never leave this module: callers see
``fitwire.contract.errors`` (:func:`translate_errors`).

Long-lived consumers (the Tracker's transport, the agent, its predictor, the CLI's
watchers) are a :class:`Consumer`: one connection of their own thread, queues consumed
on it, reopened with backoff when it is lost.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from fitwire.broker.connection import (
    BACKOFF_MAX_S,
    BACKOFF_STEP_S,
    CONNECT_ATTEMPTS,
    CONNECT_TIMEOUT_S,
    HEARTBEAT_S,
    Backoff,
    connect,
    translate_errors,
    use_topology,
)
from fitwire.broker.frames import FrameWriter, plain_socket, unsent
from fitwire.broker.topology import Topology, declare, watcher_queue_arguments
from fitwire.contract.errors import BrokerError, BrokerUnavailable

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


@dataclass(frozen=True)
class QueueSpec:
    """One queue a :class:`Subscription` reads.

    ``declare``: declared (with these flags and arguments) and bound on every open: a
    private or per-run queue that dies with its connection. Otherwise the queue is a
    shared one that already exists (declared with the consumer's ``declares`` topology).
    ``name=""``: a private queue the broker names, new on every open.
    """

    name: str = ""
    bindings: tuple[tuple[str, str], ...] = ()
    """(exchange, routing key) pairs bound on every open (``declare`` queues only)."""
    declare: bool = False
    exclusive: bool = False
    auto_delete: bool = False
    arguments: dict[str, Any] | None = None


def private_queue(exchange: str, binding_keys: list[str]) -> QueueSpec:
    """A watcher's queue: server-named, exclusive, auto-delete, with the watcher TTL and length limits."""
    return QueueSpec("", tuple((exchange, key) for key in binding_keys), declare=True, exclusive=True,
                     auto_delete=True, arguments=watcher_queue_arguments())


class Delivery:
    """One message a :class:`Subscription` received; ``ack``/``reject``/``nack`` go back on its channel."""

    __slots__ = ("_channel", "body", "delivery_tag", "headers", "properties", "redelivered", "routing_key")

    def __init__(self, channel: BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self._channel = channel
        self.body = body
        self.properties = properties
        self.headers: dict[str, Any] = dict(properties.headers or {})
        self.routing_key: str = method.routing_key
        self.delivery_tag: int = method.delivery_tag
        self.redelivered: bool = method.redelivered

    @property
    def alive(self) -> bool:
        """False once the channel it came on is gone: its ack is moot, the broker requeued it."""
        return bool(self._channel.is_open)

    def ack(self) -> None:
        with translate_errors():
            self._channel.basic_ack(self.delivery_tag)

    def reject(self, *, requeue: bool) -> None:
        """A reject, not a nack: from RabbitMQ 4.3 only a reject counts towards a quorum queue's delivery limit."""
        with translate_errors():
            self._channel.basic_reject(self.delivery_tag, requeue=requeue)

    def nack(self, *, requeue: bool) -> None:
        with translate_errors():
            self._channel.basic_nack(self.delivery_tag, requeue=requeue)


class Subscription:
    """Queues one channel of a :class:`Consumer` consumes, with one prefetch and one way of acking.

    Args:
        queues: the queues (a name: a queue that exists).
        on_message: called on the consumer's thread, inside :meth:`Consumer.poll`, with each delivery.
        auto_ack: the broker forgets a message once sent (watchers); otherwise the caller acks,
            and what it has not acked when the connection goes is delivered again.
        prefetch: at most this many unacked messages per consumer (None: no limit).
        start: consume as soon as the consumer opens; False: only after :meth:`start`
            (a consumer that bids for work when it has room, as the agent does).
    """

    def __init__(self, queues: list[QueueSpec | str], on_message: Callable[[Delivery], None], *,
                 auto_ack: bool = False, prefetch: int | None = None, start: bool = True) -> None:
        self.queues = [QueueSpec(q) if isinstance(q, str) else q for q in queues]
        self.on_message = on_message
        self.auto_ack = auto_ack
        self.prefetch = prefetch
        self.start_on_open = start
        self.channel: BlockingChannel | None = None
        self.names: list[str] = []
        """The queues' names on the current connection (a private queue's is the broker's)."""
        self._tags: list[str] = []

    @property
    def consuming(self) -> bool:
        return bool(self._tags)

    def start(self, arguments: dict[str, Any] | None = None) -> None:
        """Consume every queue (``arguments``: consumer arguments such as ``x-priority``)."""
        if self.channel is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            for name in self.names:
                self._tags.append(self.channel.basic_consume(
                    name, on_message_callback=self._deliver, auto_ack=self.auto_ack, arguments=arguments))

    def stop(self) -> None:
        """Stop consuming; what was delivered and not yet acked stays this consumer's to settle."""
        tags, self._tags = self._tags, []
        if self.channel is None:
            return
        with translate_errors():
            for tag in tags:
                self.channel.basic_cancel(tag)

    def _deliver(self, channel: BlockingChannel, method: Any, properties: pika.BasicProperties, body: bytes) -> None:
        self.on_message(Delivery(channel, method, properties, body))

    def _open(self, channel: BlockingChannel) -> None:
        """On a new connection's channel (pika errors are translated by the caller)."""
        self.channel, self.names, self._tags = channel, [], []
        if self.prefetch is not None:
            channel.basic_qos(prefetch_count=self.prefetch)  # per consumer
        for spec in self.queues:
            name = spec.name
            if spec.declare:
                name = channel.queue_declare(queue=spec.name, exclusive=spec.exclusive, auto_delete=spec.auto_delete,
                                             arguments=spec.arguments).method.queue
                for exchange, key in spec.bindings:
                    channel.queue_bind(queue=name, exchange=exchange, routing_key=key)
            self.names.append(name)
        if self.start_on_open:
            self.start()


MAX_WAIT_S = 1.0
"""Longest a :class:`Consumer` sleeps outside pika, so pika's timers (heartbeats) run at least this often."""


class _Waiter:
    """Where a :class:`Consumer`'s thread sleeps: in ``poll(2)`` on the connection's socket and a wake socket.

    pika's ``process_data_events(time_limit=t)`` costs ~100 µs of CPU for every call (a timer,
    closures, its own poll) and ``add_callback_threadsafe`` as much again for every wake; a run's
    transport paid both for every message it published, 0.8 ms in all. Here the thread waits in
    the kernel and then lets pika handle what arrived with ``process_data_events(0)`` (~15 µs);
    a wake is one byte on a socket pair.
    """

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)
        self._read_fd = self._read.fileno()
        self._poller: select.poll | None = None
        self._serviced_at = time.monotonic()
        self.callbacks = False
        """Set by ``call_soon``: pika has a callback to run."""

    def watch(self, connection: pika.BlockingConnection | None) -> None:
        """Sleep on this connection's socket from now on, when it is one the kernel can tell about."""
        sock = None if connection is None else plain_socket(connection)
        self._poller = None
        if sock is not None:
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)
            self._poller.register(self._read_fd, select.POLLIN)

    @property
    def watching(self) -> bool:
        return self._poller is not None

    def wake(self) -> None:
        try:
            self._write.send(b"\0")
        except OSError:
            pass  # the buffer is full (a wake is pending anyway) or the consumer is gone

    def wait(self, connection: pika.BlockingConnection, timeout: float) -> bool | None:
        """Sleep until the socket is readable, a wake, or ``timeout``.

        Returns True when pika has something to do (data arrived, a callback or one of its
        timers may be due), False when not (a wake or the timeout alone: the caller's own
        work), None when this cannot wait (TLS, or data read but not yet dispatched): sleep in pika.
        """
        if self._poller is None:
            return None
        if getattr(connection, "_channels_pending_dispatch", True) or getattr(connection, "_ready_events", True):
            return None  # read during a publish, not yet delivered: pika dispatches it at once
        if unsent(connection):
            return None  # a publish left bytes in pika's buffer (the socket was full): pika sends them
        ready = self._poller.poll(min(timeout, MAX_WAIT_S) * 1000)
        readable = False
        for fd, _ in ready:
            if fd == self._read_fd:
                try:
                    while self._read.recv(4096):
                        pass
                except OSError:
                    pass  # drained
            else:
                readable = True
        now = time.monotonic()
        if readable or self.callbacks or now >= self._serviced_at + MAX_WAIT_S:
            self.callbacks = False
            self._serviced_at = now
            return True
        return False

    def close(self) -> None:
        self._read.close()
        self._write.close()


class Consumer:
    """One connection that consumes queues and may publish, reopened with backoff when it is lost.

    A consumer belongs to one thread: :meth:`poll` runs pika's I/O there and delivers to the
    subscriptions' ``on_message``; only :meth:`call_soon` and :meth:`wake` may be called from
    other threads. Each subscription has its own channel; publishing uses one more, in
    confirm mode when the broker was made with ``confirm``. pika's errors arrive as
    ``fitwire.contract.errors``; :class:`BrokerError` from :meth:`poll` or :meth:`publish`
    means the connection is gone: :meth:`reopen` it.

    Args:
        broker: whose URL, connection name and topology check (``uses``) to use.
        subscriptions: what to consume; the first one's channel carries the topology check.
        declares: topology declared (not only checked) on every open: a consumer that owns
            its queues, such as the agent's job queues.
    """

    def __init__(self, broker: Broker, *subscriptions: Subscription, declares: Topology | None = None) -> None:
        self.broker = broker
        self.subscriptions = subscriptions
        self.declares = declares
        self.connection: pika.BlockingConnection | None = None
        self._out: BlockingChannel | None = None
        self._frames: FrameWriter | None = None
        self._waiter = _Waiter()
        weakref.finalize(self, self._waiter.close)

    @property
    def queue(self) -> str:
        """The first queue's name on the current connection ("" before the first open)."""
        names = self.subscriptions[0].names if self.subscriptions else []
        return names[0] if names else ""

    def open(self, attempts: int | None = None) -> None:
        """Connect, declare, bind and consume (raises :class:`BrokerUnavailable` when no broker answers)."""
        self.close()
        connection = self.broker.connect(attempts=attempts)
        try:
            with translate_errors():
                channel = (use_topology(connection, self.broker.uses) if self.broker.uses
                           else connection.channel())
                if self.declares is not None:
                    declare(channel, self.declares)
                for index, subscription in enumerate(self.subscriptions):
                    subscription._open(channel if index == 0 else connection.channel())
        except BaseException:
            _close(connection)
            raise
        self._waiter.watch(connection)
        self.connection = connection

    def reopen(self, *, step: float = BACKOFF_STEP_S, cap: float = BACKOFF_MAX_S, give_up_at: float | None = None,
               stop: threading.Event | None = None, at_once: bool = False, lost: Exception | None = None,
               on_failure: Callable[[Exception, float], None] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> bool:
        """Open again, one backoff step longer before each try (at most ``cap`` seconds apart); True once open.

        Args:
            give_up_at: False once ``time.monotonic()`` passes it.
            stop: False as soon as it is set while waiting (waits on it instead of ``sleep``).
            at_once: the first try without waiting (a first connection, or a quick retry).
            lost: what ended the last connection, reported to ``on_failure`` with the first wait.
            on_failure: called with every failed try's error and the wait before the next; it
                may raise to give up. Without it a refused login is raised at once (waiting
                does not change credentials) and an absent broker is retried.

        What an auto-ack private queue held is gone with it (watchers catch up from stored
        state); what a named queue's consumer had not acked is delivered again.
        """
        backoff = Backoff(step=step, cap=cap)
        delay = 0.0 if at_once else backoff.next_delay()
        if lost is not None and on_failure is not None:
            on_failure(lost, delay)
        while give_up_at is None or time.monotonic() < give_up_at:
            if delay and stop is not None:
                if stop.wait(delay):
                    return False
            elif delay:
                sleep(delay)
            try:
                self.open(attempts=1)
                return True
            except BrokerError as exc:
                delay = backoff.next_delay()
                if on_failure is not None:
                    on_failure(exc, delay)
                elif isinstance(exc, BrokerUnavailable):
                    log.debug("%s: the broker is still away", self.broker.name)
                else:
                    raise
        return False

    def poll(self, timeout: float) -> None:
        """Service the connection for up to ``timeout`` seconds, delivering what arrives to ``on_message``."""
        connection = self.connection
        if connection is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            pika_has_work = self._waiter.wait(connection, timeout) if timeout > 0 else True
            if pika_has_work is None:
                connection.process_data_events(time_limit=timeout)
            elif pika_has_work:
                connection.process_data_events(time_limit=0)  # only what is there: it has slept already
        for subscription in self.subscriptions:
            if subscription.channel is not None and not subscription.channel.is_open:
                # pika delivers nothing more on a channel the broker closed, and says nothing
                raise BrokerUnavailable(f"{self.broker.name}: the broker closed a consuming channel")

    def call_soon(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on the consumer's thread, within its next :meth:`poll` (from any thread)."""
        connection = self.connection
        if connection is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            connection.add_callback_threadsafe(callback)
        self._waiter.callbacks = True
        self._waiter.wake()  # the thread may sleep in the waiter, which does not see pika's own wake

    def wake(self) -> None:
        """End the current :meth:`poll` now (from any thread; a training thread's, so kept lean)."""
        if self._waiter.watching:
            self._waiter.wake()
            return
        connection = self.connection
        if connection is not None:
            try:
                connection.add_callback_threadsafe(_noop)
            except pika.exceptions.AMQPError:
                pass  # the connection is closing: its thread is about to notice anyway

    def run(self, operation: Callable[[BlockingChannel], T]) -> T:
        """``operation(channel)`` on the publishing channel, errors translated."""
        connection = self.connection
        if connection is None:
            raise BrokerUnavailable("not connected")
        with translate_errors():
            if self._out is None or not self._out.is_open:  # new, or closed by a refused publish
                self._out = connection.channel()
                if self.broker.confirm:
                    self._out.confirm_delivery()
            return operation(self._out)

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties | None = None,
                *, mandatory: bool = False) -> None:
        """Publish on the consumer's connection (confirmed when the broker was made with ``confirm``).

        Without confirms and ``mandatory`` the message leaves in one ``send`` of cached frame
        bytes (:class:`~fitwire.broker.frames.FrameWriter`), else, or where that cannot apply,
        through pika's ``basic_publish``. Either way it is on its way (or in pika's buffer) on return.
        """
        if not mandatory and not self.broker.confirm and self.run(
                lambda channel: self._frames_for(channel).publish(exchange, routing_key, body, properties)):
            return
        self.run(lambda channel: channel.basic_publish(
            exchange=exchange, routing_key=routing_key, body=body, properties=properties, mandatory=mandatory))

    def _frames_for(self, channel: BlockingChannel) -> FrameWriter:
        writer = self._frames
        if writer is None or writer.channel is not channel:  # a new connection, or a new publishing channel
            assert self.connection is not None
            writer = self._frames = FrameWriter(self.connection, channel)
        return writer

    def close(self) -> None:
        connection, self.connection, self._out, self._frames = self.connection, None, None, None
        self._waiter.watch(None)
        for subscription in self.subscriptions:
            subscription.channel, subscription._tags = None, []
        if connection is not None:
            _close(connection)


class Watcher(Consumer):
    """A consumer of a private, server-named queue bound to ``exchange``; ``on_message`` gets each body."""

    def __init__(self, broker: Broker, exchange: str, binding_keys: list[str],
                 on_message: Callable[[bytes], None]) -> None:
        super().__init__(broker, Subscription([private_queue(exchange, binding_keys)],
                                              lambda delivery: on_message(delivery.body), auto_ack=True))
        self.exchange = exchange
        self.binding_keys = binding_keys


def _noop() -> None:
    """Wakes ``process_data_events``."""


def publish_properties(**fields: Any) -> pika.BasicProperties:
    """JSON message properties (transient unless ``delivery_mode=2`` is given)."""
    return pika.BasicProperties(content_type="application/json", **{"delivery_mode": 1, **fields})
