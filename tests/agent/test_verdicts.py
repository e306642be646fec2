"""Every job gets a verdict, and nothing is a ghost: unknown pools, impossible jobs, agentless pools,
a broker that does not answer at submit, and dead letters that stay inspectable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pika

from fitwire.agent.telemetry import AGENT_VERSION
from fitwire.broker import connect
from fitwire.broker.local import free_port
from fitwire.broker.topology import JOBS, job_queue
from fitwire.contract import NodeTelemetry, encode
from fitwire.webhook import create_app
from fitwire.webhook.security import hash_password
from fitwire.webhook.store import open_store

from .conftest import Fabric
from .hub import Hub
from .test_webhook_fabric import _wait_for

BUNDLE = "def build():\n    pass\n"


def _queued_messages(amqp_url: str, queue: str) -> int:
    """How many messages ``queue`` holds (the webhook declares its pools' queues at start)."""
    conn = connect(amqp_url)
    try:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        if conn.is_open:
            conn.close()


def _queue_exists(amqp_url: str, queue: str) -> bool:
    conn = connect(amqp_url)
    try:
        conn.channel().queue_declare(queue, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404
        return False
    finally:
        if conn.is_open:
            conn.close()


def _submit(hub: Hub, pool: str, **spec: object) -> tuple[int, dict[str, object]]:
    r = hub.api("POST", "/api/v1/jobs", json={"pool": pool, "spec": {"model_key": hub.model_key, **spec},
                                              "bundle_source": BUNDLE})
    return r.status_code, r.json()


def _register_node(hub: Hub, *gpu_totals_mb: int) -> str:
    """A node of the hub's pool reporting GPUs with these totals (all free); returns its token."""
    from fitwire.agent import fake_gpu

    token = hub.node_token("box")
    report = NodeTelemetry(node_id="x", hostname="box", agent_version=AGENT_VERSION, pools=[hub.pool],
                           gpus=[fake_gpu(i, mb, total_mb=mb) for i, mb in enumerate(gpu_totals_mb)])
    assert hub.api("POST", "/api/v1/nodes/hello", token, data=encode(report)).status_code == 200
    return token


def test_an_unknown_pool_is_refused_and_no_queue_is_created(hub: Hub) -> None:
    status, body = _submit(hub, "made-up-pool")
    assert status == 404
    message = body["error"]["message"]  # type: ignore[index]
    assert message.startswith("No pool 'made-up-pool': the pools are ") and hub.pool in message
    assert not _queue_exists(hub.amqp_url, job_queue("made-up-pool").name)
    assert hub.store.list_jobs() == []


def test_resource_fields_are_bounded(hub: Hub) -> None:
    status, body = _submit(hub, hub.pool, gpu_memory_mb=10**30)
    assert status == 400 and "gpu_memory_mb" in body["error"]["message"]  # type: ignore[index]
    status, body = _submit(hub, hub.pool, gpus=65)
    assert status == 400 and "gpus" in body["error"]["message"]  # type: ignore[index]
    assert hub.store.list_jobs() == []


def test_a_job_no_registered_node_could_run_is_unschedulable_at_once(hub: Hub) -> None:
    _register_node(hub, 16_000)
    status, job = _submit(hub, hub.pool, gpus=64)
    assert status == 201
    assert job["state"] == "unschedulable"
    assert job["reason"] == (f"no registered node of pool {hub.pool!r} could ever run it: it needs 64 GPU(s) with "
                             "0 MiB each; the registered nodes have at most 1 GPU(s), the largest with 16000 MiB")
    assert _queued_messages(hub.amqp_url, job_queue(hub.pool).name) == 0  # never published
    shown = hub.cli("jobs", "show", str(job["job_id"]), "--json")
    assert json.loads(shown.stdout)["state"] == "unschedulable"
    cli = hub.cli("jobs", "submit", str(Path(__file__).parents[2] / "examples" / "jobs" / "tiny_mlp.py"),
                  "--model", hub.model_key, "--pool", hub.pool, "--gpu-memory-mb", "20000")
    assert cli.returncode == 1 and "is unschedulable: no registered node" in cli.stderr


def test_a_node_cannot_call_a_job_unschedulable_that_another_node_could_run(hub: Hub) -> None:
    token = _register_node(hub, 16_000, 16_000)
    status, job = _submit(hub, hub.pool, gpus=2)
    assert (status, job["state"]) == (201, "queued")
    r = hub.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", token,
                json={"state": "unschedulable", "reason": "too big for me"})
    assert r.status_code == 409
    assert r.json()["error"]["message"].startswith(f"Node 'box' of pool {hub.pool!r} could run job")
    assert hub.job(str(job["job_id"]))["state"] == "queued"


def test_a_job_in_a_pool_without_agents_ends_unschedulable_after_the_set_time(hub: Hub) -> None:
    status, job = _submit(hub, hub.pool)
    assert (status, job["state"]) == (201, "queued")
    assert hub.job(str(job["job_id"]))["state"] == "queued"  # within FITWIRE_UNSCHEDULABLE_AFTER
    hub.app.config["UNSCHEDULABLE_AFTER"] = 0.001  # as if that long had passed
    judged = hub.job(str(job["job_id"]))
    assert judged["state"] == "unschedulable"
    assert judged["reason"] == f"no agent of pool {hub.pool!r} has been seen for 0.001 s (FITWIRE_UNSCHEDULABLE_AFTER)"
    listed = json.loads(hub.cli("jobs", "list", "--json").stdout)["jobs"]
    assert [(j["job_id"], j["state"]) for j in listed] == [(job["job_id"], "unschedulable")]


def test_a_broker_failure_at_submit_is_a_503_and_the_store_says_so(tmp_path: Path) -> None:
    dead_broker = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    backing = open_store(f"sqlite:///{tmp_path / 'webhook.db'}")
    app = create_app({"STORE": backing, "AMQP_URL": dead_broker, "ARTIFACTS_DIR": str(tmp_path / "artifacts")})
    now = datetime.now(UTC)
    user = backing.create_user("ada", hash_password("password-123"), now=now)
    backing.create_model(user.id, "mk1", "tiny", now)
    client = app.test_client()
    token = client.post("/api/v1/auth/login", json={"username": "ada", "password": "password-123"}).json["token"]
    headers = {"Authorization": f"Bearer {token}"}

    r = client.post("/api/v1/jobs", headers=headers, json={"spec": {"model_key": "mk1"}, "bundle_source": BUNDLE})

    assert r.status_code == 503
    message = r.json["error"]["message"]
    assert message.startswith("The broker did not take the job (no RabbitMQ answers at ")
    [job] = backing.list_jobs()
    assert job.job_id in message and "recorded as failed (broker unavailable)" in message
    assert job.state == "failed" and job.reason is not None and job.reason.startswith("broker unavailable")
    shown = client.get(f"/api/v1/jobs/{job.job_id}", headers=headers).json
    assert (shown["state"], shown["reason"]) == ("failed", job.reason)
    backing.close()


def test_a_job_bigger_than_every_agent_that_sees_it_ends_unschedulable(fabric: Fabric) -> None:
    """Local mode (no webhook, no registry): the agents' bounded hand-backs give the verdict."""
    small = fabric.start_agent("--fake-gpu-mb", "4000")
    fabric.wait_consumers(1)
    job = fabric.submit("tiny_mlp.py", epochs=1, gpus=1, gpu_memory_mb=20_000)
    state, reason = fabric.wait_state(job, "unschedulable", "succeeded", "failed", "dead")
    assert state == "unschedulable"
    assert reason == (f"no agent of pool {fabric.pool!r} could ever run it: it needs 1 GPU(s) with 20000 MiB "
                      "each and the node has 0 that large (handed back 5 times by agents that could not)")
    assert "started in pid" not in small.log()
    fabric.wait_until(lambda: fabric.queue_counts()[0] == 0, "the job's message gone from the queue")


def test_dead_letters_stay_in_jobs_dead_until_an_admin_purges_them(hub: Hub) -> None:
    agent = hub.start_agent()
    _wait_for(lambda: _queue_exists(hub.amqp_url, job_queue(hub.pool).name))  # the agent declared its pool
    conn = connect(hub.amqp_url)
    garbage = b"not a job \x1b[2J at all"
    conn.channel().basic_publish(JOBS.name, hub.pool, garbage, pika.BasicProperties(delivery_mode=2))
    conn.close()
    _wait_for(lambda: "rejecting an undecodable job" in agent.log())
    _wait_for(lambda: "kept in jobs.dead" in agent.log())  # the agent saw the notification

    def listed() -> list[dict[str, object]]:
        done = hub.cli("jobs", "dead", "--json", token=hub.admin_token)
        assert done.returncode == 0, done.stderr
        return [d for d in json.loads(done.stdout)["dead_letters"] if d["pool"] == hub.pool]

    first = listed()
    assert [(d["decodable"], d["reason"], d["body"]) for d in first] == [(False, "rejected", garbage.decode())]
    assert listed() == first  # looking does not take it away
    table = hub.cli("jobs", "dead", token=hub.admin_token)
    assert "undecodable" in table.stdout and "\x1b" not in table.stdout
    assert hub.cli("jobs", "dead", token=hub.user_token).returncode == 1  # admins only

    purged = hub.cli("jobs", "dead", "--purge", "--json", token=hub.admin_token)
    assert purged.returncode == 0 and json.loads(purged.stdout)["purged"] >= 1
    assert listed() == []
