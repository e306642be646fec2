"""Node and job tokens over HTTP (issue 11): every attack a node or a job's code could try is refused.

A real webhook (the ``hub``: SQLite store, jobs published to the real broker); the node
speaks HTTP as an agent would, with no agent process, so each refusal is the webhook's.
"""

from __future__ import annotations

from typing import Any

import pytest

from fitwire import __version__ as AGENT_VERSION
from fitwire.contract import EpochEnd, NodeTelemetry, TrainBegin, encode

from .hub import Hub

BUNDLE = "def build():\n    raise RuntimeError('never run here')\n"


def _hello(hub: Hub, token: str, *pools: str) -> dict[str, Any]:
    report = NodeTelemetry(node_id="x", hostname="box", agent_version=AGENT_VERSION, pools=list(pools))
    r = hub.api("POST", "/api/v1/nodes/hello", token, data=encode(report))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _submit(hub: Hub, token: str | None = None, model_key: str | None = None, pool: str | None = None,
            source: str = BUNDLE) -> dict[str, Any]:
    r = hub.api("POST", "/api/v1/jobs", token, json={
        "pool": pool or hub.pool, "spec": {"model_key": model_key or hub.model_key}, "bundle_source": source})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _claim(hub: Hub, token: str, job_id: str, delivery: int = 0) -> Any:
    return hub.api("POST", f"/api/v1/jobs/{job_id}/claim", token, json={"delivery": delivery})


@pytest.fixture
def node(hub: Hub) -> str:
    token = hub.node_token("box")
    _hello(hub, token, hub.pool)
    return token


def test_a_claim_hands_out_the_stored_job_and_a_job_token_not_the_owners(hub: Hub, node: str) -> None:
    job = _submit(hub)
    r = _claim(hub, node, job["job_id"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    claimed = r.json()
    assert (claimed["job"]["run_id"], claimed["job"]["spec"]) == (job["run_id"], job["spec"])
    job_token = claimed["token"]
    # the job token is not a user's: none of the owner's rights come with it
    assert hub.api("GET", "/api/v1/models", job_token).status_code == 401
    assert hub.api("GET", "/api/v1/jobs", job_token).status_code == 401
    assert hub.api("POST", "/api/v1/nodes", job_token, json={"name": "evil"}).status_code == 401
    assert hub.api("POST", "/api/v1/invitations", job_token, json={}).status_code == 401


def test_a_node_claims_only_queued_jobs_of_its_pools_once_per_delivery(hub: Hub, node: str) -> None:
    admins_job = _submit(hub, hub.admin_token, hub.api("POST", "/api/v1/models", hub.admin_token,
                                                        json={"name": "admin's"}).json()["key"], pool="default")
    r = _claim(hub, node, admins_job["job_id"])  # pool "default" is not this node's
    assert r.status_code == 404, r.text
    assert _claim(hub, node, "a-job-nobody-submitted").status_code == 404
    job = _submit(hub)
    assert _claim(hub, node, job["job_id"]).status_code == 200
    again = _claim(hub, node, job["job_id"])  # the same delivery: a running job is not claimed twice
    assert again.status_code == 409 and again.json()["error"]["code"] == "INVALID_STATE"
    other = hub.node_token("other")
    _hello(hub, other, hub.pool)
    assert _claim(hub, other, job["job_id"]).status_code == 409
    # the broker redelivered it (its agent died): the next delivery may be claimed, once
    assert _claim(hub, other, job["job_id"], delivery=1).status_code == 200
    assert _claim(hub, node, job["job_id"], delivery=1).status_code == 409


def test_a_node_reports_only_the_job_it_runs(hub: Hub, node: str) -> None:
    job = _submit(hub)
    done = {"state": "succeeded", "reason": None}
    r = hub.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", node, json=done)  # queued, not its
    assert r.status_code == 403, r.text
    other = hub.node_token("other")
    _hello(hub, other, hub.pool)
    assert _claim(hub, other, job["job_id"]).status_code == 200
    assert hub.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", node, json=done).status_code == 403
    assert hub.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", other,
                   json={"state": "running", "reason": None}).status_code == 403
    assert hub.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", other, json=done).status_code == 200
    assert hub.job(job["job_id"])["state"] == "succeeded"


def test_node_tokens_touch_no_artifact(hub: Hub, node: str) -> None:
    job = _submit(hub)
    bundle = job["spec"]["bundle"]
    assert hub.api("GET", f"/api/v1/artifacts/bundles/{bundle}", node).status_code == 403
    assert hub.api("PUT", f"/api/v1/artifacts/checkpoints/{job['job_id']}", node, data=b"x").status_code == 403
    assert hub.api("GET", f"/api/v1/artifacts/bundles/{bundle}", hub.admin_token).content == BUNDLE.encode()


def test_a_job_token_reaches_its_own_run_bundle_and_checkpoint_only_and_dies_with_the_job(
    hub: Hub, node: str
) -> None:
    job, other = _submit(hub), _submit(hub, source=BUNDLE + "# another bundle\n")
    token = _claim(hub, node, job["job_id"]).json()["token"]
    mine, theirs = f"/api/v1/artifacts/checkpoints/{job['job_id']}", f"/api/v1/artifacts/checkpoints/{other['job_id']}"
    assert hub.api("GET", f"/api/v1/artifacts/bundles/{job['spec']['bundle']}", token).content == BUNDLE.encode()
    assert hub.api("GET", f"/api/v1/artifacts/bundles/{other['spec']['bundle']}", token).status_code == 403
    assert hub.api("PUT", mine, token, data=b"weights").status_code == 204
    assert hub.api("GET", mine, token).content == b"weights"
    assert hub.api("PUT", theirs, token, data=b"evil").status_code == 403
    assert hub.api("GET", f"/api/v1/jobs/{job['job_id']}", token).json()["state"] == "running"
    assert hub.api("GET", f"/api/v1/jobs/{other['job_id']}", token).status_code == 404

    begin = TrainBegin(run_id=job["run_id"], model_key=hub.model_key, owner="ada")
    assert hub.api("POST", "/api/v1/events", token, data=encode(begin)).status_code == 201
    elsewhere = TrainBegin(run_id="some-other-run", model_key=hub.model_key, owner="ada")
    assert hub.api("POST", "/api/v1/events", token, data=encode(elsewhere)).status_code == 403
    session = hub.api("GET", "/api/v1/session", token).json()
    assert session["user"]["username"] == "ada"  # the Tracker in the job's child learns its owner here

    ended = hub.api("PUT", f"/api/v1/jobs/{job['job_id']}/state", node, json={"state": "failed", "reason": "x"})
    assert ended.status_code == 200
    epoch = EpochEnd(run_id=job["run_id"], model_key=hub.model_key, owner="ada", epoch=0, logs={})
    assert hub.api("POST", "/api/v1/events", token, data=encode(epoch)).status_code == 401
    assert hub.api("GET", mine, token).status_code == 401


def test_nobody_can_squat_a_jobs_run_id(hub: Hub, node: str) -> None:
    job = _submit(hub)
    _, bob = hub.login("bob")
    bobs_model = hub.api("POST", "/api/v1/models", bob, json={"name": "bob's"}).json()["key"]
    squat = TrainBegin(run_id=job["run_id"], model_key=bobs_model, owner="bob")
    r = hub.api("POST", "/api/v1/events", bob, data=encode(squat))
    assert r.status_code == 409, r.text
    token = _claim(hub, node, job["job_id"]).json()["token"]
    own = TrainBegin(run_id=job["run_id"], model_key=hub.model_key, owner="ada")
    assert hub.api("POST", "/api/v1/events", token, data=encode(own)).status_code == 201


def test_node_tokens_are_listed_with_their_last_use_and_can_be_revoked(hub: Hub, node: str) -> None:
    nodes = hub.api("GET", "/api/v1/nodes", hub.admin_token).json()["nodes"]
    (box,) = [n for n in nodes if n["name"] == "box"]
    assert box["last_seen"] and box["token_expires_at"] > box["last_seen"] and box["revoked_at"] is None
    assert box["pools"] == [hub.pool]
    listed = hub.cli("nodes", "tokens", "--json", token=hub.admin_token)
    assert box["node_id"] in listed.stdout, listed.stderr
    assert hub.api("POST", f"/api/v1/nodes/{box['node_id']}/revoke", node).status_code == 401  # nodes are not admins
    revoked = hub.cli("nodes", "revoke", box["node_id"], token=hub.admin_token)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    report = NodeTelemetry(node_id="x", hostname="box", agent_version=AGENT_VERSION, pools=[hub.pool])
    r = hub.api("POST", "/api/v1/nodes/hello", node, data=encode(report))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_an_unused_node_token_lapses(hub: Hub) -> None:
    token = hub.node_token("idle")
    hub.app.config["NODE_TOKEN_TTL_SECONDS"] = 0.0  # "unused for longer than the setting", without waiting
    report = NodeTelemetry(node_id="x", hostname="idle", agent_version=AGENT_VERSION, pools=[hub.pool])
    r = hub.api("POST", "/api/v1/nodes/hello", token, data=encode(report))
    assert r.status_code == 401 and "lapsed" in r.json()["error"]["message"]
