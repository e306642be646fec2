"""Agents and running jobs on a broker whose logins the webhook checks (issue 11).

An agent logs in as ``node.<id>`` with its node token, on the login ``/nodes/hello`` names,
and may consume only the job queues of the pools it said hello with; a revoked node is
refused. A job's child logs in as ``job.<id>`` with its job token and reaches its own run only.
"""

from __future__ import annotations

import pika
import pytest

from fitwire.broker import connect
from fitwire.broker.topology import (
    PROGRESS,
    SIGNALS,
    declare,
    job_pool_topology,
    job_queue,
    owner_signal_keys,
    owner_signal_queue_name,
    progress_key,
    signal_queue_arguments,
)
from fitwire.contract import BrokerAccessRefused
from tests.broker_auth.conftest import Secured, say_hello
from tests.broker_auth.test_attacks import ACCESS_REFUSED, _ok, _publish, _refused


def test_hello_names_the_nodes_own_login_and_it_works(secured: Secured) -> None:
    answer = say_hello(secured.web, secured.agent.token, "default")
    assert answer["amqp_url"] == secured.url(secured.agent)
    conn = connect(str(answer["amqp_url"]), attempts=1)
    _ok(conn, lambda ch: ch.basic_get(job_queue("default").name, auto_ack=False))
    conn.close()


def test_a_node_cannot_consume_another_pools_queue(secured: Secured) -> None:
    webhook = connect(secured.node.url)  # the webhook's account declares the other pool
    declare(webhook.channel(), job_pool_topology("gpu-only"))
    webhook.close()
    agent = secured.connect(secured.agent)  # it said hello with pool "default" only
    try:
        assert _refused(agent, lambda ch: ch.basic_get(job_queue("gpu-only").name, auto_ack=False)) == ACCESS_REFUSED
        assert _refused(agent, lambda ch: ch.basic_consume(job_queue("gpu-only").name, lambda *_: None)) \
            == ACCESS_REFUSED
        assert _refused(agent, lambda ch: ch.queue_purge(job_queue("gpu-only").name)) == ACCESS_REFUSED
        assert _refused(agent, lambda ch: ch.queue_purge("jobs.dead")) == ACCESS_REFUSED
        _ok(agent, lambda ch: ch.basic_get(job_queue("default").name, auto_ack=False))
    finally:
        agent.close()


def test_a_revoked_node_is_refused_by_the_broker(secured: Secured) -> None:
    created = secured.web.api("POST", "/api/v1/nodes", secured.root.token, json={"name": "stolen-box"}).json()
    say_hello(secured.web, created["token"], "default")
    revoked = secured.web.api("POST", f"/api/v1/nodes/{created['node_id']}/revoke", secured.root.token)
    assert revoked.status_code == 200
    with pytest.raises(BrokerAccessRefused):
        connect(f"amqp://node.{created['node_id']}:{created['token']}@127.0.0.1:{secured.node.port}/", attempts=1)


def test_a_running_jobs_login_reaches_its_own_run_only(secured: Secured) -> None:
    web, alice = secured.web, secured.alice
    say_hello(web, secured.agent.token, "default")
    bundle = "def build():\n    pass\n"
    job = web.api("POST", "/api/v1/jobs", alice.token, json={"spec": {"model_key": alice.model},
                                                               "bundle_source": bundle}).json()
    claimed = web.api("POST", f"/api/v1/jobs/{job['job_id']}/claim", secured.agent.token, json={}).json()
    url = str(claimed["amqp_url"])
    assert url.startswith(f"amqp://job.{job['job_id']}:")
    conn = connect(url, attempts=1)
    try:
        run = job["run_id"]
        _ok(conn, _publish(PROGRESS.name, progress_key("alice", alice.model, run)))
        assert _refused(conn, _publish(PROGRESS.name, progress_key("alice", alice.model, "another-run"))) \
            == ACCESS_REFUSED
        assert _refused(conn, _publish(SIGNALS.name, "alice." + alice.model + ".any")) == ACCESS_REFUSED

        def signal_queue(ch: pika.adapters.blocking_connection.BlockingChannel) -> None:
            queue = owner_signal_queue_name("alice", run)
            ch.queue_declare(queue, exclusive=True, auto_delete=True, arguments=signal_queue_arguments())
            for key in owner_signal_keys("alice", alice.model, run):
                ch.queue_bind(queue, SIGNALS.name, key)

        _ok(conn, signal_queue)
        assert _refused(conn, lambda ch: ch.queue_declare(owner_signal_queue_name("alice", "another-run"),
                                                          exclusive=True, auto_delete=True,
                                                          arguments=signal_queue_arguments())) == ACCESS_REFUSED
    finally:
        conn.close()
    ended = web.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", secured.agent.token, json={"state": "failed"})
    assert ended.status_code == 200
    # A job login that was never used before its job ended is refused (one that was is cached by
    # the broker for 30 s, like every login: docs/broker-auth.md).
    job = web.api("POST", "/api/v1/jobs", alice.token, json={"spec": {"model_key": alice.model},
                                                               "bundle_source": bundle}).json()
    claimed = web.api("POST", f"/api/v1/jobs/{job['job_id']}/claim", secured.agent.token, json={}).json()
    web.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", secured.agent.token, json={"state": "failed"})
    with pytest.raises(BrokerAccessRefused):
        connect(str(claimed["amqp_url"]), attempts=1)
