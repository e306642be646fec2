"""The connection helper's failures are fitwire errors with a sentence, never pika's."""

from __future__ import annotations

import pytest

from fitwire.broker import connect
from fitwire.broker.connection import Backoff, choose_broker_url, login_name, redact, use_topology
from fitwire.broker.local import free_port
from fitwire.broker.topology import Exchange, Topology
from fitwire.contract import BrokerAccessRefused, BrokerUnavailable, new_id


def test_nothing_listening_is_unavailable_after_bounded_retries() -> None:
    slept: list[float] = []
    with pytest.raises(BrokerUnavailable, match="3 attempts"):
        connect(f"amqp://guest:guest@127.0.0.1:{free_port()}/", sleep=slept.append)
    assert slept == [1.0, 2.0]  # backoff grows by a step per failure


def test_wrong_password_is_access_refused_not_retried(amqp_url: str) -> None:
    bad = amqp_url.replace("guest:guest", "guest:wrong")
    slept: list[float] = []
    with pytest.raises(BrokerAccessRefused):
        connect(bad, sleep=slept.append)
    assert slept == []


def test_backoff_is_capped_and_resets() -> None:
    b = Backoff(step=1, cap=3)
    assert [b.next_delay() for _ in range(5)] == [1, 2, 3, 3, 3]
    b.reset()
    assert b.next_delay() == 1


def test_redact_hides_the_password() -> None:
    assert "secret" not in redact("amqp://ann:secret@host:5673/")


def test_use_topology_declares_what_a_fresh_broker_lacks_and_only_checks_what_exists(amqp_url: str) -> None:
    exchange = Exchange(f"fitwire.test-{new_id()[:8]}", "topic", durable=False)
    conn = connect(amqp_url)
    try:
        channel = use_topology(conn, Topology(exchanges=(exchange,)))  # missing: declared
        channel.exchange_declare(exchange.name, passive=True)
        again = use_topology(conn, Topology(exchanges=(exchange,)))  # present: only checked
        again.basic_publish(exchange.name, "k", b"{}")
        again.exchange_delete(exchange.name)
    finally:
        conn.close()


def test_the_login_announced_for_this_very_client_beats_a_named_broker() -> None:
    mine = "amqp://ann:tok-ann@broker.example:5672/"
    job = "amqp://job.j1:tok-job@broker.example:5672/"
    shared = "amqp://guest:guest@broker.example:5672/"
    env = "amqp://guest:guest@127.0.0.1:5672/"
    assert choose_broker_url(mine, None, env, username="ann") == mine  # FITWIRE_AMQP_URL does not override it
    assert choose_broker_url(job, None, env, username="ann", token="tok-job") == job
    assert choose_broker_url(shared, None, env, username="ann", token="tok-ann") == env  # a shared login: env wins
    assert choose_broker_url(shared, "amqp://x@h/", env, username="ann") == "amqp://x@h/"  # the argument first
    assert choose_broker_url(shared, None, None, username="ann") == shared
    assert choose_broker_url(None, None, None, username="ann") is None
    assert login_name("amqp://b%40c:pw@h/") == "b@c" and login_name("amqp://h/") == "guest"
