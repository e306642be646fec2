"""The live server fixture stops cleanly: no ``Bad file descriptor`` in any thread, no thread left over.

Every test with a real webhook ends by closing it; a dirty close printed pages of waitress
thread tracebacks into `make test`'s output and left a serving loop running per test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

import pytest
import requests

from tests.fixtures.webhook import serve_in_thread


def _hello(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.5)  # still being served when the server is told to stop
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


@pytest.fixture
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Exceptions that end any thread during the test (waitress's loop died of EBADF this way)."""
    errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    return errors


def test_close_with_a_client_connection_still_open(thread_errors: list[BaseException]) -> None:
    url, server, thread = serve_in_thread(_hello)
    client = requests.Session()  # keeps its connection open (keep-alive) across the close
    try:
        for _ in range(5):
            assert client.get(url, timeout=10).text == "hello"
        server.close()
        assert not thread.is_alive()
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=5)
    finally:
        client.close()
    assert thread_errors == []


def test_a_request_being_served_gets_its_answer_before_the_server_stops(
    thread_errors: list[BaseException],
) -> None:
    url, server, thread = serve_in_thread(_hello)
    answers: list[str] = []
    slow = threading.Thread(target=lambda: answers.append(requests.get(url + "/slow", timeout=10).text))
    slow.start()
    time.sleep(0.2)  # let the request reach a worker thread
    server.close()
    slow.join(timeout=10)
    assert answers == ["hello"]
    assert not thread.is_alive()
    assert thread_errors == []


def test_close_twice_is_harmless() -> None:
    _, server, thread = serve_in_thread(_hello)
    server.close()
    server.close()
    assert not thread.is_alive()
