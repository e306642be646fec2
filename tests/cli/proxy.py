"""A TCP proxy in front of RabbitMQ whose connections a test can cut: a real broker drop, as a client sees it."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlparse


class DroppingProxy:
    """Forwards 127.0.0.1:<port> to the broker; ``drop()`` cuts every connection open through it."""

    def __init__(self, amqp_url: str) -> None:
        target = urlparse(amqp_url)
        self.target = (target.hostname or "127.0.0.1", target.port or 5672)
        self.credentials = f"{target.username or 'guest'}:{target.password or 'guest'}"
        self.vhost_path = target.path or "/"  # the tests' own vhost: lose it and the client sees another broker
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"amqp://{self.credentials}@127.0.0.1:{self.port}{self.vhost_path}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> int:
        """Cut every open connection (new ones are accepted again); how many were cut."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        return len(sockets) // 2

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        self.drop()
