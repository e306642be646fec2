"""Web STOMP (what a browser uses) goes through the same logins and checks as AMQP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import websocket

from fitwire.broker.topology import PROGRESS, SIGNALS, owner_signal_key, progress_key
from fitwire.contract import new_id
from tests.broker_auth.conftest import Login, Secured


class Stomp:
    """A minimal STOMP 1.2 client over a WebSocket: one text frame per STOMP frame."""

    def __init__(self, url: str) -> None:
        self.ws = websocket.create_connection(url, timeout=10, subprotocols=["v12.stomp"])

    def send(self, command: str, body: str = "", **headers: str) -> None:
        lines = [command, *(f"{k.replace('_', '-')}:{v}" for k, v in headers.items())]
        self.ws.send("\n".join(lines) + "\n\n" + body + "\x00")

    def receive(self) -> tuple[str, dict[str, str], str]:
        """The next frame; ``("CLOSED", {}, reason)`` when the server closed the WebSocket."""
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return "CLOSED", {}, data[2:].decode(errors="replace")
            frame = data.decode()
            if opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY) and frame.strip("\n"):
                break  # (a bare newline is a heart-beat)
        head, _, body = frame.partition("\n\n")
        command, *lines = head.lstrip("\n").split("\n")
        return command, dict(line.split(":", 1) for line in lines if ":" in line), body.split("\x00")[0]

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def stomp(secured: Secured) -> Iterator[Stomp]:
    client = Stomp(secured.node.stomp_url)
    yield client
    client.close()


def _refused(secured: Secured, stomp: Stomp, what: str) -> bool:
    """Web STOMP 3.10 answers a refused operation by closing the WebSocket ("STOMP died"), not
    always with an ERROR frame first; the broker's log says which check refused it."""
    command, headers, body = stomp.receive()
    if command == "ERROR":
        return "access_refused" in (headers.get("message", "") + body).lower()
    if command != "CLOSED":
        return False
    deadline = time.monotonic() + 15  # the broker's logger writes asynchronously
    while time.monotonic() < deadline:
        logs = "".join(p.read_text(errors="replace") for p in (secured.node.data_dir / "log").glob("*.log"))
        if f"{what} refused for user 'bob'" in logs:
            return True
        time.sleep(0.2)
    return False


def _login(stomp: Stomp, login: Login) -> str:
    stomp.send("CONNECT", accept_version="1.2", host="/", login=login.username, passcode=login.token,
               heart_beat="0,0")
    return stomp.receive()[0]


def test_a_browser_logs_in_with_the_users_own_login_only(secured: Secured, stomp: Stomp) -> None:
    assert _login(stomp, Login("bob", "not-a-token")) == "ERROR"
    fresh = Stomp(secured.node.stomp_url)
    try:
        assert _login(fresh, Login("guest", "guest")) == "ERROR"
    finally:
        fresh.close()


def test_a_browser_watches_its_own_runs_but_not_anyone_elses(secured: Secured, stomp: Stomp) -> None:
    assert _login(stomp, secured.bob) == "CONNECTED"
    stomp.send("SUBSCRIBE", id="mine", destination=f"/exchange/{PROGRESS.name}/bob.#", ack="auto",
               receipt="bound")
    assert stomp.receive()[0] == "RECEIPT"  # the queue is bound before anything is published
    key = progress_key("bob", secured.bob.model, new_id())
    amqp = secured.connect(secured.bob)
    amqp.channel().basic_publish(PROGRESS.name, key, b'{"type": "heartbeat"}')
    command, headers, body = stomp.receive()
    assert command == "MESSAGE" and body == '{"type": "heartbeat"}' and headers["destination"].endswith(key)
    amqp.close()

    stomp.send("SUBSCRIBE", id="theirs", destination=f"/exchange/{PROGRESS.name}/alice.#", ack="auto")
    assert _refused(secured, stomp, f"access to topic 'alice.#' in exchange '{PROGRESS.name}' in vhost '/'")


def test_a_browser_cannot_signal_someone_elses_model(secured: Secured, stomp: Stomp) -> None:
    assert _login(stomp, secured.bob) == "CONNECTED"
    target = owner_signal_key("alice", secured.alice.model, None)
    stomp.send("SEND", '{"type": "signal", "action": "stop"}', destination=f"/exchange/{SIGNALS.name}/{target}",
               receipt="r1")
    assert _refused(secured, stomp, f"access to topic '{target}' in exchange '{SIGNALS.name}' in vhost '/'")
