"""Publishing as one ``send`` (``fitwire.broker.frames``): the bytes pika would send, in order, else pika's path.

The byte-level tests use a socket pair and a stand-in for pika's connection (this module
alone); the last ones publish through ``Consumer.publish`` on a real RabbitMQ.
"""

from __future__ import annotations

import select
import socket
import time
from types import SimpleNamespace
from typing import Any

import pika
import pytest
from pika import frame, spec

from fitwire.broker.adapter import Broker, Consumer, Subscription, private_queue, publish_properties
from fitwire.broker.frames import FrameWriter, plain_socket
from fitwire.broker.topology import LIVE, PROGRESS
from fitwire.contract import BrokerError, new_id
from tests.fixtures.broker import close_connections

MAX_BODY = 131_072 - 8


class _Transport:
    """pika's transport as the writer sees it: a socket, a buffer of what it could not send yet."""

    def __init__(self, sock: socket.socket, held: int = 0) -> None:
        self._sock = sock
        self.held = held
        self.written: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return self.held + sum(map(len, self.written))

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _connection(sock: socket.socket, held: int = 0) -> Any:
    impl = SimpleNamespace(_transport=_Transport(sock, held), _body_max_length=MAX_BODY, is_open=True,
                           bytes_sent=0, frames_sent=0)
    return SimpleNamespace(_impl=impl)


def _channel(number: int = 1) -> Any:
    return SimpleNamespace(channel_number=number, is_open=True)


def _pika_bytes(number: int, exchange: str, key: str, body: bytes, props: pika.BasicProperties | None) -> bytes:
    return b"".join((
        frame.Method(number, spec.Basic.Publish(exchange=exchange, routing_key=key)).marshal(),
        frame.Header(number, len(body), props or spec.BasicProperties()).marshal(),
        frame.Body(number, body).marshal(),
    ))


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    sock.settimeout(2)
    while len(data) < size:
        data += sock.recv(size - len(data))
    return data


PROPERTIES = [
    None,
    publish_properties(),
    publish_properties(user_id="alice", message_id="m-1", headers={"x-fitwire": "1", "n": 2}),
]


@pytest.mark.parametrize("props", PROPERTIES, ids=["none", "json", "user-and-headers"])
def test_the_bytes_sent_are_the_frames_pika_marshals(props: pika.BasicProperties | None) -> None:
    ours, peer = socket.socketpair()
    connection = _connection(ours)
    writer = FrameWriter(connection, _channel(3))
    expected = b""
    # The cache is per (exchange, routing key, properties): a new key or size must never reuse old bytes.
    for key, body in (("a.b.c", b'{"x": 1}'), ("a.b.c", b"y" * 5000), ("other.key", b"z"), ("a.b.c", b"{}")):
        assert writer.publish("fitwire.progress", key, body, props) is True
        expected += _pika_bytes(3, "fitwire.progress", key, body, props)
    assert _read(peer, len(expected)) == expected
    assert connection._impl.bytes_sent == len(expected) and connection._impl.frames_sent == 12
    assert connection._impl._transport.written == []


def test_bytes_pika_still_holds_go_first_so_the_message_joins_its_buffer() -> None:
    ours, peer = socket.socketpair()
    connection = _connection(ours, held=10)
    writer = FrameWriter(connection, _channel())
    assert writer.publish("x", "k", b"body", None) is True
    assert connection._impl._transport.written == [_pika_bytes(1, "x", "k", b"body", None)]
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)  # nothing overtook pika's bytes on the socket


def test_what_a_full_socket_does_not_take_is_handed_to_pika_in_order() -> None:
    ours, peer = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ours.setblocking(False)
    connection = _connection(ours)
    writer = FrameWriter(connection, _channel())
    body = b"b" * 200_000
    writer._max_body = len(body)  # a broker that negotiated large frames
    assert writer.publish("x", "k", body, None) is True
    rest = b"".join(connection._impl._transport.written)
    assert rest, "the socket took everything: the test did not fill it"
    expected = _pika_bytes(1, "x", "k", body, None)
    assert _read(peer, len(expected) - len(rest)) + rest == expected


@pytest.mark.parametrize("case", ["empty body", "body over one frame", "channel closed", "connection closed",
                                  "no socket"])
def test_where_one_send_does_not_apply_nothing_is_sent_and_pika_publishes(case: str) -> None:
    ours, peer = socket.socketpair()
    connection, channel, body = _connection(ours), _channel(), b"x"
    if case == "empty body":
        body = b""
    elif case == "body over one frame":
        body = b"x" * (MAX_BODY + 1)
    elif case == "channel closed":
        channel.is_open = False
    elif case == "connection closed":
        connection._impl.is_open = False
    else:
        connection._impl._transport._sock = None  # TLS, or a pika of another shape
    assert FrameWriter(connection, channel).publish("x", "k", body, None) is False
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)
    assert connection._impl._transport.written == [] and connection._impl.bytes_sent == 0


def test_a_consumer_publishes_in_order_through_both_paths_and_properties_arrive(amqp_url: str) -> None:
    received: list[tuple[bytes, Any]] = []
    key = f"frames.{new_id()[:8]}"
    watcher = Consumer(Broker(amqp_url, name=f"frames-w-{new_id()[:8]}", uses=LIVE),
                       Subscription([private_queue(PROGRESS.name, [key])],
                                    lambda d: received.append((d.body, d.properties)), auto_ack=True))
    watcher.open()
    publisher = Consumer(Broker(amqp_url, name=f"frames-p-{new_id()[:8]}", uses=LIVE))
    publisher.open()
    try:
        props = publish_properties(message_id="m-7", headers={"k": "v"})
        assert publisher.connection is not None
        frame_max = publisher.connection._impl.params.frame_max
        # One send for most; pika's path for the empty body and the body over one frame.
        bodies = [b"1", b"2" * 1000, b"", b"4" * (frame_max + 10), b"5", b"6"]
        for body in bodies:
            publisher.publish(PROGRESS.name, key, body, props)
        assert publisher._frames is not None and publisher._frames.usable
        deadline = time.monotonic() + 10
        while len(received) < len(bodies) and time.monotonic() < deadline:
            publisher.poll(0.01)
            watcher.poll(0.05)
        assert [body for body, _ in received] == bodies
        for _, got in received:
            assert got.content_type == "application/json" and got.delivery_mode == 1
            assert got.message_id == "m-7" and got.headers == {"k": "v"}
    finally:
        publisher.close()
        watcher.close()


def test_what_waits_to_be_read_goes_through_pika_first() -> None:
    ours, peer = socket.socketpair()
    peer.send(b"\x01")  # a frame from the broker, maybe its Connection.Close
    assert FrameWriter(_connection(ours), _channel()).publish("x", "k", b"body", None) is False
    peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        peer.recv(100)


def test_a_publish_after_the_broker_closed_the_connection_raises_so_nothing_is_lost_silently(
    amqp_url: str,
) -> None:
    name = f"frames-{new_id()[:8]}"
    publisher = Consumer(Broker(amqp_url, name=name, uses=LIVE))
    publisher.open()
    try:
        publisher.publish(PROGRESS.name, "frames.nobody", b"before", publish_properties())
        assert close_connections(amqp_url, name) == 1
        assert publisher.connection is not None
        sock = plain_socket(publisher.connection)
        assert sock is not None
        deadline = time.monotonic() + 10
        while not select.select([sock], [], [], 0.1)[0] and time.monotonic() < deadline:
            pass  # until the broker's Connection.Close has arrived
        with pytest.raises(BrokerError):
            publisher.publish(PROGRESS.name, "frames.nobody", b"after", publish_properties())
    finally:
        publisher.close()
