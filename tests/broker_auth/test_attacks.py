"""Raw AMQP with only the credentials the webhook hands out: the broker itself confines each login.

Bob attacks Alice (each owns one model); every attack must be refused by RabbitMQ
(ACCESS_REFUSED, or the login refused), and Alice's watcher sees none of it, while
Bob's own traffic, an admin's ``#`` watcher and an agent's own queue and telemetry work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from fitwire.broker import connect
from fitwire.broker.topology import (
    JOBS,
    JOBS_DEAD,
    PROGRESS,
    SIGNALS,
    TELEMETRY,
    owner_signal_key,
    owner_signal_keys,
    owner_signal_queue_name,
    progress_key,
    signal_queue_arguments,
    telemetry_key,
    watcher_queue_arguments,
)
from fitwire.contract import BrokerAccessRefused, new_id
from tests.broker_auth.conftest import Login, Secured

ACCESS_REFUSED = 403


def _refused(conn: pika.BlockingConnection, action: Callable[[BlockingChannel], Any]) -> int:
    """Run ``action`` on a fresh confirm-mode channel; the reply code the broker closed it with."""
    channel = conn.channel()
    channel.confirm_delivery()  # so that a refused publish fails here, not on some later call
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as closed:
        action(channel)
    return closed.value.reply_code


def _ok(conn: pika.BlockingConnection, action: Callable[[BlockingChannel], Any]) -> Any:
    channel = conn.channel()
    channel.confirm_delivery()
    result = action(channel)
    channel.close()
    return result


def _watcher(channel: BlockingChannel, exchange: str, key: str) -> str:
    """A server-named watcher queue bound with ``key`` (what `fitwire watch` declares)."""
    queue = channel.queue_declare("", exclusive=True, auto_delete=True,
                                  arguments=watcher_queue_arguments()).method.queue
    channel.queue_bind(queue, exchange, key)
    return str(queue)


def _publish(exchange: str, key: str, body: bytes = b"{}", **props: Any) -> Callable[[BlockingChannel], None]:
    def action(channel: BlockingChannel) -> None:
        channel.basic_publish(exchange, key, body, pika.BasicProperties(**props))
    return action


def _drain(conn: pika.BlockingConnection, channel: BlockingChannel, queue: str) -> list[tuple[str, bytes]]:
    conn.process_data_events(time_limit=1.0)  # let in-flight messages land
    seen = []
    while True:
        method, _props, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            return seen
        seen.append((method.routing_key, body))


@contextmanager
def _watching(secured: Secured, login: Login, exchange: str, key: str) -> Iterator[Callable[[], list[tuple[str, bytes]]]]:
    conn = secured.connect(login)
    channel = conn.channel()
    queue = _watcher(channel, exchange, key)
    try:
        yield lambda: _drain(conn, channel, queue)
    finally:
        conn.close()


@pytest.fixture
def bob(secured: Secured) -> Iterator[pika.BlockingConnection]:
    conn = secured.connect(secured.bob)
    yield conn
    if conn.is_open:
        conn.close()


# --- logins ---------------------------------------------------------------------------------


def test_the_session_hands_each_user_their_own_login_never_guest_or_the_webhooks(secured: Secured) -> None:
    url = secured.session_url(secured.bob)
    assert url == f"amqp://bob:{secured.bob.token}@127.0.0.1:{secured.node.port}/"
    connect(url, attempts=1).close()


@pytest.mark.parametrize("who", ["wrong token", "alice's token", "guest", "node with a user token"])
def test_a_wrong_login_is_refused_at_connect(secured: Secured, who: str) -> None:
    port = secured.node.port
    url = {
        "wrong token": f"amqp://bob:{'x' * 43}@127.0.0.1:{port}/",
        "alice's token": f"amqp://bob:{secured.alice.token}@127.0.0.1:{port}/",
        "guest": f"amqp://guest:guest@127.0.0.1:{port}/",
        "node with a user token": f"amqp://{secured.agent.username}:{secured.bob.token}@127.0.0.1:{port}/",
    }[who]
    with pytest.raises(BrokerAccessRefused):
        connect(url, attempts=1)


def test_a_logged_out_token_no_longer_logs_in(secured: Secured) -> None:
    login = {"username": "bob", "password": "correct horse battery"}
    token = secured.web.api("POST", "/api/v1/auth/login", json=login).json()["token"]
    assert secured.web.api("POST", "/api/v1/auth/logout", token).status_code == 204
    with pytest.raises(BrokerAccessRefused):
        secured.connect(Login("bob", token))


# --- progress: reading and publishing ---------------------------------------------------------


@pytest.mark.parametrize("pattern", ["#", "alice.#", "*.#", "*.*.*", "alice.*.*", "#.alice"])
def test_bob_cannot_watch_other_users_progress(secured: Secured, bob: pika.BlockingConnection, pattern: str) -> None:
    assert _refused(bob, lambda ch: _watcher(ch, PROGRESS.name, pattern)) == ACCESS_REFUSED


def test_bob_watches_and_publishes_his_own_progress(secured: Secured, bob: pika.BlockingConnection) -> None:
    key = progress_key("bob", secured.bob.model, new_id())
    with _watching(secured, secured.bob, PROGRESS.name, "bob.#") as seen:
        _ok(bob, _publish(PROGRESS.name, key, b'{"mine": 1}'))
        assert seen() == [(key, b'{"mine": 1}')]


@pytest.mark.parametrize("key", [
    "alice.{alice_model}.run1",  # alice's key
    "bob.{alice_model}.run1",  # bob's name, alice's model
    "bob.no-such-model.run1",
    "bob.{bob_model}.*",  # a wildcard is not a run
    "bob.{bob_model}",
    "bob.{bob_model}.run1.extra",
])
def test_bob_cannot_publish_progress_outside_his_own_models(
    secured: Secured, bob: pika.BlockingConnection, key: str
) -> None:
    key = key.format(alice_model=secured.alice.model, bob_model=secured.bob.model)
    with _watching(secured, secured.root, PROGRESS.name, "#") as admin_sees:
        forged = json.dumps({"type": "train_end", "status": "completed"}).encode()
        assert _refused(bob, _publish(PROGRESS.name, key, forged)) == ACCESS_REFUSED
        assert admin_sees() == []


def test_an_admin_watches_everyone_and_alice_sees_only_her_own(secured: Secured) -> None:
    alice_key = progress_key("alice", secured.alice.model, new_id())
    bob_key = progress_key("bob", secured.bob.model, new_id())
    with _watching(secured, secured.root, PROGRESS.name, "#") as admin_sees, \
            _watching(secured, secured.alice, PROGRESS.name, "alice.#") as alice_sees:
        for login, key in ((secured.alice, alice_key), (secured.bob, bob_key)):
            conn = secured.connect(login)
            _ok(conn, _publish(PROGRESS.name, key))
            conn.close()
        assert sorted(k for k, _ in admin_sees()) == sorted([alice_key, bob_key])
        assert [k for k, _ in alice_sees()] == [alice_key]


# --- signals ------------------------------------------------------------------------------------


def test_bob_cannot_signal_alices_runs(secured: Secured, bob: pika.BlockingConnection) -> None:
    run_id = new_id()
    alice = secured.connect(secured.alice)
    channel = alice.channel()
    queue = owner_signal_queue_name("alice", run_id)
    channel.queue_declare(queue, exclusive=True, auto_delete=True, arguments=signal_queue_arguments())
    for key in owner_signal_keys("alice", secured.alice.model, run_id):
        channel.queue_bind(queue, SIGNALS.name, key)
    try:
        for key in (owner_signal_key("alice", secured.alice.model, run_id),
                    owner_signal_key("alice", secured.alice.model, None),
                    owner_signal_key("bob", secured.alice.model, run_id)):
            assert _refused(bob, _publish(SIGNALS.name, key, b'{"type": "stop"}')) == ACCESS_REFUSED
        # nor reach her queue some other way: declare, consume, or bind it
        assert _refused(bob, lambda ch: ch.queue_declare(queue, exclusive=True, auto_delete=True,
                                                         arguments=signal_queue_arguments())) == ACCESS_REFUSED
        assert _refused(bob, lambda ch: ch.basic_consume(queue, lambda *a: None)) == ACCESS_REFUSED
        assert _refused(bob, lambda ch: ch.queue_bind(queue, SIGNALS.name, "bob.#")) == ACCESS_REFUSED
        assert _refused(bob, lambda ch: _watcher(ch, SIGNALS.name, "alice.#")) == ACCESS_REFUSED
        alice.process_data_events(time_limit=0.5)
        assert channel.basic_get(queue, auto_ack=True)[0] is None  # nothing reached alice's run
    finally:
        alice.close()


def test_bob_signals_his_own_run_through_his_own_queue(secured: Secured, bob: pika.BlockingConnection) -> None:
    run_id = new_id()
    channel = bob.channel()
    queue = owner_signal_queue_name("bob", run_id)
    channel.queue_declare(queue, exclusive=True, auto_delete=True, arguments=signal_queue_arguments())
    for key in owner_signal_keys("bob", secured.bob.model, run_id):
        channel.queue_bind(queue, SIGNALS.name, key)
    sender = secured.connect(secured.bob)
    _ok(sender, _publish(SIGNALS.name, owner_signal_key("bob", secured.bob.model, None), b"stop", user_id="bob"))
    sender.close()
    bob.process_data_events(time_limit=0.5)
    method, props, body = channel.basic_get(queue, auto_ack=True)
    assert method is not None and body == b"stop" and props.user_id == "bob"


def test_a_signals_sender_is_the_login_not_a_claim(secured: Secured, bob: pika.BlockingConnection) -> None:
    # RabbitMQ validates user_id against the login: bob cannot sign as alice, even on his own key.
    key = owner_signal_key("bob", secured.bob.model, None)
    assert _refused(bob, _publish(SIGNALS.name, key, b"stop", user_id="alice")) == 406  # PRECONDITION_FAILED


# --- jobs and the shared topology ----------------------------------------------------------------


@pytest.mark.parametrize("attack", [
    "read jobs", "consume jobs", "purge jobs", "delete jobs", "read dead letters", "purge dead letters",
    "delete progress exchange", "delete jobs exchange", "redeclare progress exchange",
    "publish a job", "publish into the job queue by name", "watch telemetry", "declare a queue of his choosing",
])
def test_bob_cannot_touch_jobs_or_the_shared_topology(
    secured: Secured, bob: pika.BlockingConnection, attack: str
) -> None:
    queue = "jobs.default"
    action: Callable[[BlockingChannel], Any] = {
        "read jobs": lambda ch: ch.basic_get(queue, auto_ack=False),
        "consume jobs": lambda ch: ch.basic_consume(queue, lambda *a: None),
        "purge jobs": lambda ch: ch.queue_purge(queue),
        "delete jobs": lambda ch: ch.queue_delete(queue),
        "read dead letters": lambda ch: ch.basic_get(JOBS_DEAD.name),
        "purge dead letters": lambda ch: ch.queue_purge(JOBS_DEAD.name),
        "delete progress exchange": lambda ch: ch.exchange_delete(PROGRESS.name),
        "delete jobs exchange": lambda ch: ch.exchange_delete(JOBS.name),
        "redeclare progress exchange": lambda ch: ch.exchange_declare(PROGRESS.name, "topic", durable=True),
        "publish a job": _publish(JOBS.name, "default", b'{"type": "job"}'),
        "publish into the job queue by name": _publish("", queue, b'{"type": "job"}'),
        "watch telemetry": lambda ch: _watcher(ch, TELEMETRY.name, "#"),
        "declare a queue of his choosing": lambda ch: ch.queue_declare("bob-queue"),
    }[attack]
    assert _refused(bob, action) == ACCESS_REFUSED
    # and everything is still there for everyone else
    admin = connect(secured.node.admin_url, attempts=1)
    channel = admin.channel()
    channel.queue_declare(queue, passive=True)
    channel.exchange_declare(PROGRESS.name, passive=True)
    channel.exchange_declare(JOBS.name, passive=True)
    admin.close()


# --- admins and agents --------------------------------------------------------------------------


def test_an_admin_reads_telemetry_and_an_agent_publishes_only_as_itself(secured: Secured) -> None:
    node_id = secured.agent.username.removeprefix("node.")
    agent = secured.connect(secured.agent)
    with _watching(secured, secured.root, TELEMETRY.name, "#") as admin_sees:
        _ok(agent, _publish(TELEMETRY.name, telemetry_key(node_id), b'{"gpus": []}'))
        assert _refused(agent, _publish(TELEMETRY.name, telemetry_key("someone-else"))) == ACCESS_REFUSED
        assert admin_sees() == [(telemetry_key(node_id), b'{"gpus": []}')]
    agent.close()


def test_an_agent_consumes_its_pool_and_nothing_of_the_users(secured: Secured) -> None:
    agent = secured.connect(secured.agent)
    _ok(agent, lambda ch: ch.basic_get("jobs.default", auto_ack=False))  # not refused
    assert _refused(agent, lambda ch: _watcher(ch, PROGRESS.name, "#")) == ACCESS_REFUSED
    key = progress_key("alice", secured.alice.model, new_id())
    assert _refused(agent, _publish(PROGRESS.name, key)) == ACCESS_REFUSED
    assert _refused(agent, _publish(SIGNALS.name, owner_signal_key("alice", secured.alice.model, None))) \
        == ACCESS_REFUSED
    agent.close()
