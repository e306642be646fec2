"""The local-broker command starts a private node when none answers, and `down` stops it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fitwire.broker import answers, connect, declare_all
from fitwire.broker import topology as t
from fitwire.broker.local import (
    DIST_PORT_OFFSET,
    STOMP_PORT_OFFSET,
    LocalNode,
    _ephemeral_floor,
    _port_free,
    free_port,
)
from tests.fixtures.services import service_missing

DEFINITIONS = Path(__file__).resolve().parents[2] / "broker_config" / "definitions.json"


@pytest.fixture
def rabbitmq_installed() -> None:
    if not (Path("/usr/lib/rabbitmq/bin/rabbitmq-server").exists() or shutil.which("rabbitmq-server")):
        service_missing("rabbitmq-server (the program)")


def _fitwire(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fitwire.cli", *args], env=env, capture_output=True, text=True, timeout=180
    )


@pytest.mark.usefixtures("rabbitmq_installed")
def test_up_starts_a_node_on_a_free_port_and_down_stops_it(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FITWIRE_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port}/", "FITWIRE_DATA_DIR": str(tmp_path)}
    assert not answers(env["FITWIRE_AMQP_URL"])
    try:
        up = _fitwire("dev", "broker", "up", env=env)
        assert up.returncode == 0, up.stderr
        url = up.stdout.strip().splitlines()[-1]
        assert url.endswith(f":{port}/") and answers(url)
        assert "started a local RabbitMQ node" in up.stderr

        again = _fitwire("dev", "broker", "up", env=env)  # idempotent: the same node answers
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1].endswith(f":{port}/")

        status = _fitwire("dev", "broker", "status", env=env)
        assert "local node" in status.stdout
    finally:
        down = _fitwire("dev", "broker", "down", env=env)
    assert "stopped" in down.stderr
    assert not answers(env["FITWIRE_AMQP_URL"])
    assert _fitwire("dev", "broker", "status", env=env).returncode == 3


@pytest.mark.usefixtures("rabbitmq_installed")
def test_down_never_stops_a_broker_it_did_not_start(amqp_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "FITWIRE_AMQP_URL": amqp_url, "FITWIRE_DATA_DIR": str(tmp_path)}
    assert _fitwire("dev", "broker", "up", env=env).returncode == 0
    down = _fitwire("dev", "broker", "down", env=env)
    assert "no local RabbitMQ node" in down.stderr
    assert answers(amqp_url)


def test_a_new_nodes_ports_are_free_and_below_the_range_outgoing_connections_take_theirs_from() -> None:
    # A node boots for seconds after its ports were found free; an outgoing connection given one of
    # them meanwhile made it fail with eaddrinuse (its Web STOMP port, once, in a full test run).
    for _ in range(20):
        port = free_port()
        ports = (port, port + STOMP_PORT_OFFSET, port + DIST_PORT_OFFSET)
        assert all(_port_free(p) for p in ports)
        assert max(ports) < _ephemeral_floor()


@pytest.mark.usefixtures("rabbitmq_installed")
def test_definitions_json_imports_into_a_fresh_node(tmp_path: Path) -> None:
    node = LocalNode(tmp_path, free_port())
    node.start()
    try:
        result = node.ctl("import_definitions", str(DEFINITIONS))
        assert result.returncode == 0, result.stdout + result.stderr
        conn = connect(node.url)
        channel = conn.channel()
        for queue in t.durable_queues():
            channel.queue_declare(queue=queue.name, passive=True)
        declare_all(channel)  # what the file declared is exactly what the code declares
        conn.close()
    finally:
        node.stop()


def _listening(pid: int) -> list[tuple[str, int]]:
    """Every listening TCP socket of the node's processes (the start script, beam and its helpers)."""
    import psutil

    root = psutil.Process(pid)
    found = []
    for proc in (root, *root.children(recursive=True)):
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found += [(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return found


@pytest.mark.usefixtures("rabbitmq_installed")
def test_a_private_node_listens_on_loopback_only_and_has_no_guest(tmp_path: Path) -> None:
    # epmd is not among the node's processes when a system epmd already ran (it is shared);
    # this machine's own epmd listens on 127.0.0.1 and ::1. A node that starts its own epmd
    # starts it with ERL_EPMD_ADDRESS=127.0.0.1.
    node = LocalNode(tmp_path, free_port())
    node.start()
    try:
        pid = node.pid()
        assert pid is not None
        sockets = _listening(pid)
        ports = {port for _, port in sockets}
        # AMQP, Erlang distribution and Web STOMP are all there, and all on loopback.
        assert {node.port, node.port + 20000, node.stomp_port} <= ports, sockets
        assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
        assert answers(node.url) and answers(node.admin_url)
        assert not answers(f"amqp://guest:guest@127.0.0.1:{node.port}/")
        assert (tmp_path / "accounts.json").stat().st_mode & 0o777 == 0o600
        users = node.ctl("list_users", "--silent")
        assert users.returncode == 0, users.stderr
        assert sorted(line.split()[0] for line in users.stdout.splitlines() if line.strip()) == [
            "fitwire.admin", "fitwire.webhook"
        ]
    finally:
        node.stop()


def test_a_bind_address_that_is_not_an_ipv4_address_names_the_variable() -> None:
    from fitwire.contract.errors import SettingsError
    from fitwire.settings import Settings

    with pytest.raises(SettingsError, match="FITWIRE_BROKER_BIND"):
        Settings.from_env({"FITWIRE_BROKER_BIND": "localhost"})
