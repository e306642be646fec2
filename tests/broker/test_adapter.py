"""The broker adapter against a real RabbitMQ: kept connections, reconnects, confirms, translated errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pika
import pytest

from fitwire.broker import adapter
from fitwire.broker.adapter import (
    Broker,
    Consumer,
    Delivery,
    Subscription,
    Watcher,
    publish_properties,
)
from fitwire.broker.jobs import declare_pool, publish_job
from fitwire.broker.local import free_port
from fitwire.broker.topology import LIVE, PROGRESS
from fitwire.contract import (
    BrokerAccessRefused,
    BrokerError,
    BrokerUnavailable,
    Job,
    JobSpec,
    new_id,
)
from tests.fixtures.broker import close_connections


def _queue(amqp_url: str) -> tuple[pika.BlockingConnection, str]:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    queue = ch.queue_declare("", exclusive=True).method.queue
    return conn, queue


def test_a_thread_keeps_its_connection_and_threads_do_not_share(amqp_url: str) -> None:
    broker = Broker(amqp_url, name=f"adapter-{new_id()[:8]}")
    try:
        first = broker.run(lambda ch: ch.connection)
        again = broker.run(lambda ch: ch.connection)
        other: list[object] = []
        thread = threading.Thread(target=lambda: other.append(broker.run(lambda ch: ch.connection)))
        thread.start()
        thread.join()
        assert first is again
        assert other[0] is not first
    finally:
        broker.close()
    assert not first.is_open


def test_a_connection_the_broker_closed_is_replaced_and_the_publish_arrives(amqp_url: str) -> None:
    name = f"adapter-{new_id()[:8]}"
    broker = Broker(amqp_url, name=name, confirm=True, heartbeat=0)
    conn, queue = _queue(amqp_url)
    try:
        broker.publish("", queue, b"one")
        assert close_connections(amqp_url, name) == 1
        time.sleep(0.5)
        broker.publish("", queue, b"two")  # the dead connection is noticed and replaced
        bodies = []
        for _ in range(2):
            method, _props, body = conn.channel().basic_get(queue, auto_ack=True)
            assert method is not None
            bodies.append(body)
        assert bodies == [b"one", b"two"]
    finally:
        broker.close()
        conn.close()


def test_confirmed_publish_to_nowhere_is_a_broker_error_and_the_channel_stays_usable(amqp_url: str) -> None:
    broker = Broker(amqp_url, name=f"adapter-{new_id()[:8]}", confirm=True)
    pool = f"nobody-{new_id()[:6]}"
    job = Job(owner="alice", pool=pool, spec=JobSpec(bundle="b" * 32, model_key="m"))
    try:
        broker.run(lambda ch: ch.exchange_declare("fitwire.jobs", "direct", durable=True))
        with pytest.raises(BrokerError, match=f"no queue takes jobs for pool '{pool}'"):
            broker.run(lambda ch: publish_job(ch, job))
        broker.run(lambda ch: declare_pool(ch, pool))
        broker.run(lambda ch: publish_job(ch, job))  # same kept channel, now routable
        depth = broker.run(lambda ch: ch.queue_declare(f"jobs.{pool}", passive=True).method.message_count)
        assert depth == 1
    finally:
        broker.run(lambda ch: ch.queue_delete(f"jobs.{pool}"))
        broker.close()


def test_pika_errors_arrive_as_fitwire_errors(amqp_url: str) -> None:
    nowhere = Broker(f"amqp://guest:guest@127.0.0.1:{free_port()}/", name="adapter-nowhere", attempts=1)
    with pytest.raises(BrokerUnavailable, match="no RabbitMQ answers"):
        nowhere.publish("", "q", b"x")
    wrong = Broker(amqp_url.replace("guest:guest", "guest:wrong"), name="adapter-wrong", attempts=1)
    with pytest.raises(BrokerAccessRefused):
        wrong.publish("", "q", b"x")
    broker = Broker(amqp_url, name=f"adapter-{new_id()[:8]}")
    try:
        with pytest.raises(BrokerError, match="404"):
            broker.run(lambda ch: ch.queue_declare(f"missing-{new_id()}", passive=True))
        assert broker.run(lambda ch: ch.is_open)  # a channel the broker closed is replaced
    finally:
        broker.close()


def test_a_watcher_receives_what_matches_its_keys_only(amqp_url: str) -> None:
    broker = Broker(amqp_url, name=f"adapter-{new_id()[:8]}", uses=LIVE)
    received: list[bytes] = []
    try:
        with broker.watching(PROGRESS.name, ["alice.m1.*"], on_message=received.append) as watcher:
            broker.publish(PROGRESS.name, "alice.m1.r1", b"mine", properties=publish_properties())
            broker.publish(PROGRESS.name, "bob.m1.r1", b"not mine", properties=publish_properties())
            deadline = time.monotonic() + 5
            while not received and time.monotonic() < deadline:
                watcher.poll(0.1)
            watcher.poll(0.3)
        assert received == [b"mine"]
    finally:
        broker.close()


def test_a_watcher_whose_connection_the_broker_closed_reopens_with_backoff_and_receives_again(amqp_url: str) -> None:
    name = f"adapter-watch-{new_id()[:8]}"
    publisher = Broker(amqp_url, name=f"adapter-{new_id()[:8]}", uses=LIVE)
    watcher_broker = Broker(amqp_url, name=name, uses=LIVE)
    received: list[bytes] = []
    slept: list[float] = []
    with watcher_broker.watching(PROGRESS.name, ["alice.m1.*"], on_message=received.append) as watcher:
        assert close_connections(amqp_url, name) == 1
        with pytest.raises(BrokerUnavailable):
            for _ in range(50):
                watcher.poll(0.1)
        assert watcher.reopen(cap=0.5, give_up_at=time.monotonic() + 10, sleep=slept.append)
        assert slept == [0.5]  # one step of backoff, then open again
        publisher.publish(PROGRESS.name, "alice.m1.r2", b"after", properties=publish_properties())
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            watcher.poll(0.1)
    publisher.close()
    assert received == [b"after"]


def test_reopen_gives_up_at_its_deadline_when_nothing_answers() -> None:
    nowhere = Broker(f"amqp://guest:guest@127.0.0.1:{free_port()}/", name="adapter-nowhere")
    watcher = Watcher(nowhere, PROGRESS.name, ["#"], lambda body: None)
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(0.3)

    assert watcher.reopen(cap=1.0, give_up_at=time.monotonic() + 1.5, sleep=sleep) is False
    assert len(slept) >= 2 and slept[:2] == [1.0, 1.0]  # backoff steps, capped


def _poll_until(consumer: Consumer, done: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        consumer.poll(0.1)


def test_a_named_queue_consumer_reconnects_and_gets_what_it_had_not_acked_again(amqp_url: str) -> None:
    name = f"adapter-consume-{new_id()[:8]}"
    queue = f"adapter-jobs-{new_id()[:8]}"
    publisher = Broker(amqp_url, name=f"adapter-{new_id()[:8]}", confirm=True)
    publisher.run(lambda ch: ch.queue_declare(queue))  # a shared queue: it outlives the consumer's connection
    received: list[Delivery] = []
    consumer = Consumer(Broker(amqp_url, name=name), Subscription([queue], received.append, prefetch=1))
    failures: list[Exception] = []
    try:
        consumer.open()
        publisher.publish("", queue, b"one")
        publisher.publish("", queue, b"two")
        _poll_until(consumer, lambda: bool(received))
        consumer.poll(0.3)
        assert [d.body for d in received] == [b"one"]  # prefetch 1: "two" waits for an ack
        assert not received[0].redelivered
        assert close_connections(amqp_url, name) == 1
        with pytest.raises(BrokerUnavailable):
            for _ in range(50):
                consumer.poll(0.1)
        assert not received[0].alive
        assert consumer.reopen(step=0.1, cap=0.2, give_up_at=time.monotonic() + 10,
                               on_failure=lambda exc, _delay: failures.append(exc))
        _poll_until(consumer, lambda: len(received) == 2)
        again = received[1]
        assert (again.body, again.redelivered) == (b"one", True)  # unacked when the connection went
        again.ack()
        _poll_until(consumer, lambda: len(received) == 3)
        received[2].ack()
        consumer.poll(0.3)
        assert [d.body for d in received] == [b"one", b"one", b"two"]
        depth = publisher.run(lambda ch: ch.queue_declare(queue, passive=True).method.message_count)
        assert depth == 0
        assert failures == []
    finally:
        consumer.close()
        publisher.run(lambda ch: ch.queue_delete(queue))
        publisher.close()


def test_a_subscription_made_not_to_start_consumes_only_between_start_and_stop(amqp_url: str) -> None:
    queue = f"adapter-bid-{new_id()[:8]}"
    publisher = Broker(amqp_url, name=f"adapter-{new_id()[:8]}", confirm=True)
    publisher.run(lambda ch: ch.queue_declare(queue))
    received: list[Delivery] = []
    bids = Subscription([queue], received.append, start=False)
    consumer = Consumer(Broker(amqp_url, name=f"adapter-{new_id()[:8]}"), bids)
    try:
        consumer.open()
        publisher.publish("", queue, b"early")
        consumer.poll(0.5)
        assert received == [] and not bids.consuming
        bids.start(arguments={"x-priority": 5})
        _poll_until(consumer, lambda: bool(received))
        received[0].ack()
        bids.stop()
        publisher.publish("", queue, b"late")
        consumer.poll(0.5)
        assert [d.body for d in received] == [b"early"]
    finally:
        consumer.close()
        publisher.run(lambda ch: ch.queue_delete(queue))
        publisher.close()


def test_reopen_returns_when_its_stop_event_is_set_while_nothing_answers() -> None:
    nowhere = Broker(f"amqp://guest:guest@127.0.0.1:{free_port()}/", name="adapter-nowhere")
    consumer = Consumer(nowhere, Subscription(["q"], lambda delivery: None))
    stop = threading.Event()
    failures: list[tuple[Exception, float]] = []
    threading.Timer(0.5, stop.set).start()
    started = time.monotonic()
    assert consumer.reopen(step=10.0, stop=stop, at_once=True,
                           on_failure=lambda exc, delay: failures.append((exc, delay))) is False
    assert time.monotonic() - started < 3.0  # not the 10 s step: the wait ends with the event
    assert len(failures) == 1 and isinstance(failures[0][0], BrokerUnavailable) and failures[0][1] == 10.0


def _private_consumer(amqp_url: str, received: list[bytes]) -> tuple[Consumer, str]:
    """A consumer of its own private queue on the progress exchange, and the routing key that reaches it."""
    consumer = Watcher(Broker(amqp_url, name=f"adapter-{new_id()[:8]}", uses=LIVE), PROGRESS.name,
                       [f"adapter.{new_id()[:8]}"], received.append)
    consumer.open()
    return consumer, consumer.binding_keys[0]


def test_poll_sleeps_until_a_message_a_wake_or_a_callback_not_until_its_timeout(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The consumer sleeps in poll(2) on its socket (not in pika): each of these must end the sleep.
    monkeypatch.setattr(adapter, "MAX_WAIT_S", 60.0)  # no periodic service hides a missed wake-up
    received: list[bytes] = []
    consumer, key = _private_consumer(amqp_url, received)
    publisher = Broker(amqp_url, name=f"adapter-{new_id()[:8]}", uses=LIVE)
    ran: list[str] = []

    def poll_until(done: Callable[[], bool]) -> float:
        started = time.monotonic()
        while not done() and time.monotonic() - started < 20.0:
            consumer.poll(30.0)
        return time.monotonic() - started

    try:
        consumer.poll(0.3)  # what opening left to dispatch
        started = time.monotonic()
        consumer.poll(0.3)  # nothing happens: it sleeps its timeout, not longer
        assert 0.25 <= time.monotonic() - started < 10.0
        threading.Timer(0.2, consumer.wake).start()
        started = time.monotonic()
        consumer.poll(30.0)
        assert 0.15 <= time.monotonic() - started < 10.0
        threading.Timer(0.2, lambda: publisher.publish(PROGRESS.name, key, b"hello")).start()
        assert poll_until(lambda: bool(received)) < 10.0 and received == [b"hello"]
        threading.Timer(0.2, lambda: consumer.call_soon(lambda: ran.append("callback"))).start()
        assert poll_until(lambda: bool(ran)) < 10.0 and ran == ["callback"]
    finally:
        consumer.close()
        publisher.close()


def test_messages_read_while_the_consumer_published_are_delivered_without_sleeping(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # pika reads the socket inside a publish; what it read then is no longer in the kernel, so
    # a poll that slept on the socket would wait for the next traffic (here: never) to deliver it.
    monkeypatch.setattr(adapter, "MAX_WAIT_S", 60.0)
    received: list[bytes] = []
    consumer, key = _private_consumer(amqp_url, received)
    try:
        for i in range(20):  # to its own queue
            consumer.publish(PROGRESS.name, key, str(i).encode())
        time.sleep(0.5)  # all 20 deliveries wait in the kernel's buffer …
        consumer.publish(PROGRESS.name, "adapter.nobody", b"elsewhere")  # … which this publish reads into pika
        started = time.monotonic()
        while len(received) < 20 and time.monotonic() - started < 20.0:
            consumer.poll(30.0)  # and then no traffic comes: the socket stays quiet
        assert len(received) == 20
        assert time.monotonic() - started < 10.0
    finally:
        consumer.close()
