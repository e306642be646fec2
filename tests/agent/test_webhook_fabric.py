"""Jobs through the webhook: HTTP routes, node tokens, the version check, and agents end to end."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable

from fitwire.agent.telemetry import AGENT_VERSION
from fitwire.contract import PROTOCOL_VERSION, GpuInfo, NodeTelemetry, encode

from .conftest import EXAMPLES
from .hub import Hub

TINY = str(EXAMPLES / "tiny_mlp.py")


def _wait_for(predicate: Callable[[], bool], timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def _submit(hub: Hub, *args: str) -> dict[str, object]:
    done = hub.cli("jobs", "submit", TINY, "--model", hub.model_key, "--pool", hub.pool, "--json", *args)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_submit_validates_the_spec_and_the_bundle(hub: Hub) -> None:
    bad = hub.api("POST", "/api/v1/jobs", json={"spec": {"model_key": hub.model_key, "epochs": 0},
                                                 "bundle_source": "def build(): pass\n"})
    assert bad.status_code == 400 and "epochs" in bad.json()["error"]["message"]
    broken = hub.api("POST", "/api/v1/jobs", json={"spec": {"model_key": hub.model_key},
                                                    "bundle_source": "def build(:\n"})
    assert broken.status_code == 400 and "does not compile" in broken.json()["error"]["message"]
    foreign = hub.api("POST", "/api/v1/jobs", json={"spec": {"model_key": "nope"}, "bundle_source": "x = 1\n"})
    assert foreign.status_code == 404


def test_cancel_a_queued_job_and_list_show(hub: Hub) -> None:
    job = _submit(hub)
    assert job["state"] == "queued"
    assert hub.cli("jobs", "cancel", str(job["job_id"])).returncode == 0
    assert hub.cli("jobs", "cancel", str(job["job_id"])).returncode == 0  # idempotent
    listed = json.loads(hub.cli("jobs", "list", "--json").stdout)["jobs"]
    assert [(j["job_id"], j["state"]) for j in listed] == [(job["job_id"], "cancelled")]
    agent = hub.start_agent()
    hub.wait_job(str(job["job_id"]), "cancelled")
    shown = json.loads(hub.cli("jobs", "show", str(job["job_id"]), "--json").stdout)
    assert shown["state"] == "cancelled"
    assert "started in pid" not in agent.log()


def test_node_tokens_are_for_admins_and_unaccepted_versions_are_refused(hub: Hub) -> None:
    assert hub.api("POST", "/api/v1/nodes", json={"name": "x"}).status_code == 403
    token = hub.node_token("old-box")
    old = PROTOCOL_VERSION + 1  # a version this server does not speak
    report = NodeTelemetry(node_id="x", hostname="h", agent_version="0.0.1", protocol_version=old)
    r = hub.api("POST", "/api/v1/nodes/hello", token, data=encode(report))
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith(f"This server accepts wire-contract version {PROTOCOL_VERSION} "
                                                   f"only; this agent speaks version {old}.")
    gpu = GpuInfo(index=0, name="Fake", memory_total_mb=100, memory_used_mb=10, memory_free_mb=90)
    ok = NodeTelemetry(node_id="x", hostname="h", agent_version=AGENT_VERSION, gpus=[gpu])
    assert hub.api("POST", "/api/v1/nodes/hello", token, data=encode(ok)).status_code == 200
    nodes = json.loads(hub.cli("nodes", "list", "--json", token=hub.admin_token).stdout)["nodes"]
    assert [(n["name"], n["telemetry"]["gpus"][0]["memory_free_mb"]) for n in nodes] == [("old-box", 90)]
    assert hub.api("GET", "/api/v1/nodes").status_code == 403


def test_agent_with_a_bad_token_exits_with_a_sentence(hub: Hub) -> None:
    agent = hub.start_agent(token="not-a-node-token")
    assert agent.process.wait(timeout=60) == 1
    assert "not a node token" in agent.log()


def test_submitted_job_runs_through_the_webhook_with_every_epoch_stored(hub: Hub) -> None:
    hub.start_agent()
    job = _submit(hub, "--epochs", "3")
    done = hub.wait_job(str(job["job_id"]), "succeeded", "failed", "dead")
    assert (done["state"], done["reason"]) == ("succeeded", None)
    assert hub.epochs(str(job["run_id"])) == [0, 1, 2]
    late = hub.cli("jobs", "cancel", str(job["job_id"]))
    assert late.returncode == 1 and "succeeded" in late.stderr
    run = hub.api("GET", f"/api/v1/runs/{job['run_id']}").json()
    assert run["model_key"] == hub.model_key
    nodes = json.loads(hub.cli("nodes", "list", "--json", token=hub.admin_token).stdout)["nodes"]
    assert len(nodes) == 1 and nodes[0]["telemetry"]["cpu_threads"] > 0


def test_killed_agent_resumes_elsewhere_through_the_webhook(hub: Hub) -> None:
    first = hub.start_agent()
    job = _submit(hub, "--epochs", "4", "--param", "sleep_per_batch=0.15")
    run_id, job_id = str(job["run_id"]), str(job["job_id"])
    _wait_for(lambda: len(hub.epochs(run_id)) >= 2)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=30)
    hub.start_agent()
    done = hub.wait_job(job_id, "succeeded", "failed", "dead")
    assert done["state"] == "succeeded"
    assert hub.epochs(run_id) == [0, 1, 2, 3]
    assert done["node_id"] != first.node_id


def test_stop_from_the_cli_ends_the_job_stopped(hub: Hub) -> None:
    hub.start_agent()
    job = _submit(hub, "--epochs", "40", "--param", "sleep_per_batch=0.15")
    run_id = str(job["run_id"])
    _wait_for(lambda: bool(hub.epochs(run_id)))
    stopped = hub.cli("stop", run_id)
    assert stopped.returncode == 0, stopped.stderr
    done = hub.wait_job(str(job["job_id"]), "stopped", "succeeded", "failed")
    assert done["state"] == "stopped" and "STOP" in (done["reason"] or "")
    assert len(hub.epochs(run_id)) < 40


def test_failing_and_poison_jobs_through_the_webhook(hub: Hub) -> None:
    hub.start_agent()
    failing = hub.cli("jobs", "submit", str(EXAMPLES / "failing.py"), "--model", hub.model_key, "--pool",
                      hub.pool, "--json")
    poison = hub.cli("jobs", "submit", str(EXAMPLES / "poison.py"), "--model", hub.model_key, "--pool",
                     hub.pool, "--json")
    assert failing.returncode == 0 and poison.returncode == 0, failing.stderr + poison.stderr
    failed = hub.wait_job(json.loads(failing.stdout)["job_id"], "failed", "succeeded", "dead")
    assert (failed["state"], failed["reason"]) == ("failed", "ValueError: the dataset path /data/missing does not exist")
    dead = hub.wait_job(json.loads(poison.stdout)["job_id"], "dead", "failed", "succeeded")
    assert dead["state"] == "dead" and "delivered 4 times" in dead["reason"]
