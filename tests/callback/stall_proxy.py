"""A TCP front for a real service that can hang: it accepts connections and never answers, as a hung server does."""

from __future__ import annotations

import contextlib
import socket
import threading


class StallingProxy:
    """Listens on 127.0.0.1:<port>; while ``stalled`` it holds new connections silent, else forwards them.

    Args:
        target: (host, port) of the real service (the live webhook, RabbitMQ).
        stalled: start hung.
    """

    def __init__(self, target: tuple[str, int], *, stalled: bool = True) -> None:
        self.target = target
        self.stalled = stalled
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, name="test-stall-proxy", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.stalled:
                with self._lock:
                    self.held.append(client)  # read nothing, answer nothing
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.held += [client, upstream]
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
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def resume(self) -> None:
        """From now on, forward new connections to the real service."""
        self.stalled = False

    def close(self) -> None:
        """Stop listening and cut every connection (a client stuck on one gets an error at once)."""
        self._closed = True
        self.listener.close()
        with self._lock:
            held, self.held = self.held, []
        for sock in held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
