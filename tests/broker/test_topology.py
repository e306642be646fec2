"""The declared topology on a real RabbitMQ is what broker_config says, and definitions.json agrees."""

from __future__ import annotations

import json
from pathlib import Path

import pika
import pytest

from fitwire.broker import connect, declare_all
from fitwire.broker import topology as t
from fitwire.contract import new_id

DEFINITIONS = Path(__file__).resolve().parents[2] / "broker_config" / "definitions.json"


def test_definitions_json_matches_python_topology() -> None:
    assert json.loads(DEFINITIONS.read_text()) == t.definitions(), (
        "regenerate with: python -m fitwire.broker.topology > broker_config/definitions.json"
    )


def test_declare_all_twice_is_harmless(amqp_channel) -> None:
    declare_all(amqp_channel)
    declare_all(amqp_channel)
    for queue in t.durable_queues():
        # passive declare fails with 404 when the queue is missing
        amqp_channel.queue_declare(queue=queue.name, passive=True)


def test_a_fresh_vhost_has_no_fitwire_topology(amqp_url: str) -> None:
    """The fixture gives tests a broker as nobody prepared it: each component must declare what it uses."""
    from tests.fixtures.broker import fresh_vhost

    with fresh_vhost(amqp_url) as url:
        conn = connect(url)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            conn.channel().exchange_declare(t.JOBS.name, passive=True)
        assert info.value.reply_code == 404
        if conn.is_open:
            conn.close()


def test_each_role_declares_what_it_uses_and_it_adds_up_to_the_whole() -> None:
    agent = t.agent_topology(("default",))
    assert {e.name for e in agent.exchanges} == {t.JOBS.name, t.DLX.name, t.TELEMETRY.name}
    assert {q.name for q in agent.queues} == {"jobs.default", t.JOBS_DEAD.name, t.JOBS_DEAD_WATCH.name}
    assert t.job_queue("default").arguments["x-delivery-limit"] == t.JOB_DELIVERY_LIMIT
    every_role = agent + t.LIVE + t.TELEMETRY_WATCH
    full = t.full_topology()
    # the RPC exchanges are the predictor's and the webhook's (fitwire.agent.predictor.rpc_topology)
    assert {e.name for e in every_role.exchanges} == {e.name for e in full.exchanges} - {t.RPC.name,
                                                                                         t.RPC_REPLIES.name}
    assert sorted(map(repr, every_role.queues)) == sorted(repr(q) for q in full.queues if not q.name.startswith("rpc."))
    assert set(every_role.bindings) == {b for b in full.bindings if b.exchange != t.RPC.name}


def test_declared_queue_arguments_are_the_topology(amqp_url: str) -> None:
    """Re-declaring with other arguments is refused: the broker holds exactly ours."""
    queue = t.job_queue("default")
    conn = connect(amqp_url)
    t.declare(conn.channel(), t.agent_topology(("default",)))  # what an agent of pool default declares
    conn.close()
    for key, wrong in [
        ("x-delivery-limit", t.JOB_DELIVERY_LIMIT + 1),
        ("x-dead-letter-exchange", "elsewhere"),
        ("x-queue-type", "classic"),
    ]:
        conn = connect(amqp_url)
        channel = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            channel.queue_declare(queue=queue.name, durable=True, arguments={**queue.arguments, key: wrong})
        assert info.value.reply_code == 406, key  # PRECONDITION_FAILED: arguments differ
        conn.close()


def test_watcher_queue_drops_oldest_and_expires(amqp_channel) -> None:
    args = t.watcher_queue_arguments()
    assert args["x-message-ttl"] == 5000 and args["x-overflow"] == "drop-head"
    small = {**args, "x-max-length": 3}
    queue = amqp_channel.queue_declare(queue="", exclusive=True, auto_delete=True, arguments=small).method.queue
    for i in range(5):
        amqp_channel.basic_publish("", queue, str(i).encode())
    bodies = []
    while (got := amqp_channel.basic_get(queue, auto_ack=True))[0] is not None:
        bodies.append(got[2])
    assert bodies == [b"2", b"3", b"4"]  # a slow watcher sees the newest progress, not the oldest


def test_dead_jobs_are_dead_lettered_to_the_dlx(amqp_channel) -> None:
    """A job rejected without requeue is dead-lettered through fitwire.dlx with its pool's key,
    into jobs.dead (kept) and jobs.dead.watch (the agents' notification).

    The test also listens on a private queue bound like jobs.dead, to see this pool's letter only.
    """
    pool = "topology-test-" + new_id()[:8]
    queue = t.job_queue(pool)
    t.declare(amqp_channel, t.job_pool_topology(pool))
    spy = amqp_channel.queue_declare(queue="", exclusive=True, auto_delete=True).method.queue
    amqp_channel.queue_bind(queue=spy, exchange=t.DLX.name, routing_key=f"jobs.{pool}")
    try:
        amqp_channel.basic_publish(t.JOBS.name, pool, b"poison", pika.BasicProperties(delivery_mode=2))
        method = None
        for _ in range(100):
            method, _props, _body = amqp_channel.basic_get(queue.name)
            if method:
                break
            amqp_channel.connection.sleep(0.02)
        assert method is not None
        amqp_channel.basic_reject(method.delivery_tag, requeue=False)
        dead = (None, None, None)
        for _ in range(100):
            dead = amqp_channel.basic_get(spy, auto_ack=True)
            if dead[0]:
                break
            amqp_channel.connection.sleep(0.02)
        assert dead[2] == b"poison"
    finally:
        amqp_channel.queue_delete(queue.name)
