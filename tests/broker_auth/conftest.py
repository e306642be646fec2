"""A private RabbitMQ node started by fitwire's own code, whose logins a real webhook checks.

``secured`` (one per module: a node takes seconds to start): the node from
``fitwire.broker.local`` in a temporary data dir on free ports, configured as
``fitwire dev broker up`` configures it, and a waitress webhook on the fixed port the
node was told about. Users ``alice`` and ``bob`` each own a model; ``root`` is an admin;
``agent`` is a registered node. Every credential comes from the webhook's HTTP API.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pytest

from fitwire.broker import connect, declare_all
from fitwire.broker.local import LocalNode, free_port
from fitwire.webhook import create_app
from fitwire.webhook.store import open_store
from tests.fixtures.services import service_missing
from tests.fixtures.webhook import LiveWebhook
from tests.fixtures.webhook import free_port as free_http_port


@dataclass
class Login:
    username: str
    token: str
    model: str = ""


@dataclass
class Secured:
    node: LocalNode
    web: LiveWebhook
    alice: Login
    bob: Login
    root: Login
    agent: Login

    def url(self, login: Login) -> str:
        return f"amqp://{login.username}:{login.token}@127.0.0.1:{self.node.port}/"

    def session_url(self, login: Login) -> str:
        """The broker URL the webhook announces to this user."""
        response = self.web.api("GET", "/api/v1/session", login.token)
        response.raise_for_status()
        return str(response.json()["amqp_url"])

    def connect(self, login: Login) -> pika.BlockingConnection:
        return connect(self.url(login), attempts=1)


def say_hello(web: LiveWebhook, node_token: str, *pools: str) -> dict[str, object]:
    """What an agent does first: ``POST /nodes/hello`` with its pools; the webhook's answer."""
    from fitwire.agent.telemetry import AGENT_VERSION
    from fitwire.contract import NodeTelemetry, encode

    report = NodeTelemetry(node_id="x", hostname="box", agent_version=AGENT_VERSION, pools=list(pools))
    answer = web.api("POST", "/api/v1/nodes/hello", node_token, data=encode(report))
    answer.raise_for_status()
    return dict(answer.json())


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    if not (Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or shutil.which("rabbitmq-server")):
        service_missing("rabbitmq-server (the program)")
    from waitress.server import create_server

    tmp = tmp_path_factory.mktemp("secured")
    http_port = free_http_port()
    node = LocalNode(tmp / "rabbitmq", free_port(), webhook_url=f"http://127.0.0.1:{http_port}")
    backing = open_store(f"sqlite:///{tmp / 'webhook.db'}")
    # The webhook talks to the broker with its own internal account, as `dev broker up` prints it.
    app = create_app({"STORE": backing, "SIGNUP": "open", "AMQP_URL": node.url})
    server = create_server(app, host="127.0.0.1", port=http_port, threads=4)
    thread = threading.Thread(target=server.run, name="broker-auth-webhook", daemon=True)
    thread.start()
    web = LiveWebhook(url=f"http://127.0.0.1:{http_port}", store=backing)
    node.start()
    try:
        # The shared exchanges and queues exist before any user comes (users may not declare
        # them): declared with the webhook's account, as the webhook does at start.
        conn = connect(node.url)
        declare_all(conn.channel())
        conn.close()

        def user(name: str, admin: bool = False) -> Login:
            token = web.create_user(name, "correct horse battery", admin=admin)
            return Login(name, token, web.create_model(token, f"{name}'s model"))

        root = user("root", admin=True)
        created = web.api("POST", "/api/v1/nodes", root.token, json={"name": "gpu-box"})
        created.raise_for_status()
        agent = Login(f"node.{created.json()['node_id']}", created.json()["token"])
        say_hello(web, agent.token, "default")  # its pools: the only job queues it may consume
        yield Secured(node, web, user("alice"), user("bob"), root, agent)
    finally:
        node.stop()
        web.session.close()
        server.close()
        thread.join(timeout=10)
        backing.close()
