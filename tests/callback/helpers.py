"""Watchers, signal senders and tiny Keras models for the Tracker's tests (and its benchmark)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pika

from fitwire.broker import connect, topology
from fitwire.broker.connection import login_name, use_topology
from fitwire.callback.identity import ANONYMOUS
from fitwire.contract import ProgressMessage, Signal, decode, encode
from fitwire.contract.messages import unpack


class Watcher:
    """A watcher as DESIGN.md describes one: its own server-named queue bound with a pattern.

    Consumes on its own thread (pika connections are single-threaded) and keeps
    every decoded message with its arrival time.
    """

    def __init__(self, amqp_url: str, pattern: str = "#") -> None:
        self.amqp_url = amqp_url
        self.pattern = pattern
        self.messages: list[tuple[float, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-watcher", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError(f"watcher did not come up: {self._error!r}")

    def _run(self) -> None:
        try:
            conn = connect(self.amqp_url)
            ch = use_topology(conn, topology.LIVE)  # what it binds to: a fresh developer broker has nothing
            queue = ch.queue_declare(
                queue="", exclusive=True, auto_delete=True, arguments=topology.watcher_queue_arguments()
            ).method.queue
            ch.queue_bind(queue=queue, exchange=topology.PROGRESS.name, routing_key=self.pattern)
            ch.basic_consume(queue=queue, on_message_callback=self._on_message, auto_ack=True)
        except BaseException as exc:
            self._error = exc
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                conn.process_data_events(time_limit=0.05)
        except Exception as exc:  # the broker went away (restart tests)
            self._error = exc
        finally:
            try:
                conn.close()
            except Exception:
                pass

    def _on_message(self, _ch: Any, _method: Any, _props: Any, body: bytes) -> None:
        received = time.time()
        messages = unpack(decode(body, ProgressMessage))
        with self._lock:
            self.messages.extend((received, message) for message in messages)

    def events(self, run_id: str | None = None, kind: str | None = None) -> list[Any]:
        with self._lock:
            return [
                m for _, m in self.messages
                if (run_id is None or m.run_id == run_id) and (kind is None or m.type == kind)
            ]

    def wait_for(self, predicate: Callable[[Watcher], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


def signed(amqp_url: str) -> pika.BasicProperties:
    """What `fitwire stop` sets: ``user_id`` = the login, which RabbitMQ checks and the run trusts."""
    return pika.BasicProperties(content_type="application/json", user_id=login_name(amqp_url))


def send_signal(amqp_url: str, signal: Signal, *, owner: str = ANONYMOUS, routing_run: str | None = None,
                body: bytes | None = None) -> None:
    """Publish ``signal`` on fitwire.signals to ``<owner>.<model_key>.<run_id>`` (or ``.any``).

    ``owner`` is the run's owner (``anonymous`` for a Tracker without a token). ``body``
    replaces the encoded signal (what a sender the schema would never encode might send).
    """
    conn = connect(amqp_url)
    try:
        channel = use_topology(conn, topology.LIVE)  # as `fitwire stop` does
        channel.basic_publish(
            exchange=topology.SIGNALS.name,
            routing_key=topology.owner_signal_key(owner, signal.model_key, routing_run or signal.run_id),
            body=encode(signal) if body is None else body,
            properties=signed(amqp_url),
        )
    finally:
        conn.close()


class SignalSender:
    """Publishes signals from inside a fit (on a hook) over one connection opened up front."""

    def __init__(self, amqp_url: str) -> None:
        self._conn = connect(amqp_url)
        self._channel = use_topology(self._conn, topology.LIVE)
        self._properties = signed(amqp_url)
        self.sent_at: float | None = None

    def send(self, signal: Signal, owner: str = ANONYMOUS, *, user_id: bool = True) -> None:
        """To the run's owner's key; ``user_id=False`` sends it unsigned (what no fitwire client does)."""
        self._channel.basic_publish(
            exchange=topology.SIGNALS.name,
            routing_key=topology.owner_signal_key(owner, signal.model_key, signal.run_id),
            body=encode(signal),
            properties=self._properties if user_id else None,
        )
        self.sent_at = time.perf_counter()

    def publish_raw(self, owner: str, model_key: str, body: bytes) -> None:
        """A body the schema would never encode, to every run of ``owner``'s model, signed."""
        self._channel.basic_publish(exchange=topology.SIGNALS.name,
                                    routing_key=topology.owner_signal_key(owner, model_key, None),
                                    body=body, properties=self._properties)

    def close(self) -> None:
        if self._conn.is_open:
            self._conn.close()


def tiny_model(lr: Any = 0.01, features: int = 3) -> Any:
    """A two-layer MLP; compiles in well under a second."""
    import keras

    model = keras.Sequential([keras.Input((features,)), keras.layers.Dense(4, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
    return model


def tiny_data(samples: int = 64, features: int = 3, seed: int = 0) -> tuple[Any, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, features)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def fitwire_threads(grace: float = 5.0) -> list[threading.Thread]:
    """fitwire threads still alive after ``grace`` s: an ended run closes its connection after fit returns."""
    deadline = time.monotonic() + grace
    alive = [t for t in threading.enumerate() if t.name.startswith("fitwire-") and t.is_alive()]
    for t in alive:
        t.join(max(0.0, deadline - time.monotonic()))
    return [t for t in alive if t.is_alive()]
