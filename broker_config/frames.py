"""Publishing one message as one ``send``: its three AMQP frames, built from cached bytes.

pika's ``basic_publish`` marshals a method, a header and a body frame, writes each into
its transport's buffer, turns the socket's write watcher on, runs its event loop until the
buffer is empty and turns the watcher off again. Between two batches of a fit, with the
caches cold, ``Consumer.publish`` cost about 390 µs of CPU per message that way on the
2-core development VM, most of a run's transport thread, and about 145 µs this way
(``python -m bench.profile_tracker``, part 4). For one exchange, routing key and
properties object the method frame and the header frame differ only in the body's size,
so both are cached.

:class:`FrameWriter` is used only where it is safe, and says so by returning False
otherwise (the caller then publishes through pika): a plain TCP socket (TLS buffers what
the kernel cannot see), both the connection and the channel open, a body that fits one
frame and is not empty, and nothing waiting to be read. Incoming bytes may be the broker
closing the connection or the channel: pika's path reads them first and raises, so the
caller learns at once that the message went nowhere (the Tracker's transport then keeps
its epoch events for the next connection), as before. When pika still holds unsent bytes,
or the socket takes only part of the message, the rest joins pika's own buffer, in order,
and pika sends it from its event loop (:func:`unsent` tells the consumer to sleep there
until it has). Publisher confirms and ``mandatory`` need pika's bookkeeping: callers go
through pika for those.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
from typing import Any

import pika
from pika import frame, spec

FRAME_BODY = 3
FRAME_END = b"\xce"
_HEADER_SIZE_AT = slice(11, 19)
"""Where a marshaled header frame holds the body size: after type, channel, length, class and weight."""
_SIZE = struct.Struct(">Q")
_BODY_HEAD = struct.Struct(">BHI")


def _transport(connection: pika.BlockingConnection) -> Any:
    """pika's transport of the connection (private in pika 1.x); None when this pika has another shape."""
    return getattr(getattr(connection, "_impl", None), "_transport", None)


def plain_socket(connection: pika.BlockingConnection) -> socket.socket | None:
    """The connection's TCP socket; None for TLS (data the kernel cannot see may wait in its buffer).

    pika keeps no public handle on its socket: with another pika, None too, and callers fall
    back to pika's own loop.
    """
    sock = getattr(_transport(connection), "_sock", None)
    if not isinstance(sock, socket.socket) or isinstance(sock, ssl.SSLSocket) or sock.fileno() < 0:
        return None
    return sock


def unsent(connection: pika.BlockingConnection) -> int:
    """Bytes pika still holds for the connection, to send from its event loop (0 when it cannot say)."""
    size = getattr(_transport(connection), "get_write_buffer_size", None)
    return int(size()) if size is not None else 0


class FrameWriter:
    """Sends messages on one channel of one connection; see the module's docstring for when."""

    def __init__(self, connection: pika.BlockingConnection, channel: Any) -> None:
        self._impl = getattr(connection, "_impl", None)
        self.channel = channel
        self._sock = plain_socket(connection)
        self._transport = _transport(connection)
        self._readable = select.poll()
        if self._sock is not None:
            self._readable.register(self._sock.fileno(), select.POLLIN)
        self._max_body = getattr(self._impl, "_body_max_length", 0)
        # The last publish's exchange and routing key, its properties and the cached frame bytes.
        # The properties object is kept, so its id cannot be reused by another one meanwhile.
        self._key: tuple[str, str] | None = None
        self._properties: pika.BasicProperties | None = None
        self._head = self._tail = b""

    @property
    def usable(self) -> bool:
        return (self._sock is not None and hasattr(self._transport, "get_write_buffer_size")
                and self._max_body > 0)

    def publish(self, exchange: str, routing_key: str, body: bytes,
                properties: pika.BasicProperties | None) -> bool:
        """Send the message; False when this path does not apply (nothing was sent: use pika).

        Raises:
            OSError: the socket failed (the connection is gone: reopen it).
        """
        impl, channel = self._impl, self.channel
        if (not self.usable or not body or len(body) > self._max_body or impl is None or not impl.is_open
                or not channel.is_open):  # an empty body has no body frame: pika's path
            return False
        if self._readable.poll(0):
            return False  # the broker said something (perhaps goodbye): pika reads it first
        number = channel.channel_number
        if self._key != (exchange, routing_key) or self._properties is not properties:
            self._cache(number, exchange, routing_key, properties)
            self._key, self._properties = (exchange, routing_key), properties
        size = len(body)
        data = b"".join((self._head, _SIZE.pack(size), self._tail, _BODY_HEAD.pack(FRAME_BODY, number, size),
                         body, FRAME_END))
        sent = 0
        if not self._transport.get_write_buffer_size():  # else pika's bytes go first: ours join its buffer
            assert self._sock is not None
            try:
                sent = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
        if sent < len(data):
            self._transport.write(data[sent:])
        impl.bytes_sent += len(data)  # pika's heartbeat checker reads these
        impl.frames_sent += 3
        return True

    def _cache(self, channel_number: int, exchange: str, routing_key: str,
               properties: pika.BasicProperties | None) -> None:
        method = frame.Method(channel_number, spec.Basic.Publish(exchange=exchange, routing_key=routing_key))
        header = frame.Header(channel_number, 0, properties or spec.BasicProperties()).marshal()
        self._head = method.marshal() + header[:_HEADER_SIZE_AT.start]
        self._tail = header[_HEADER_SIZE_AT.stop:]
