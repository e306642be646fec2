"""The OpenAPI paths and schemas of the trainer-agent routes (jobs, nodes, artifacts)."""

from __future__ import annotations

from typing import Any

from fitwire.contract import NodeTelemetry
from fitwire.contract.entities import Job, ListedNode
from fitwire.webhook.openapi import _I, _S, _T, _obj, _ok, _op, _ref, model_ref

_NULLABLE_S = {"type": "string", "nullable": True}


def agent_schemas() -> dict[str, Any]:
    model_ref(Job, "serialization")
    model_ref(ListedNode, "serialization")
    return {
        "DeadLetter": _obj(job_id=_NULLABLE_S, owner=_NULLABLE_S, pool=_S, reason=_S, queue=_S,
                           died_at={"type": "number", "nullable": True}, decodable={"type": "boolean"},
                           error=_NULLABLE_S, size=_I, body=_S),
    }


def agent_paths() -> dict[str, dict[str, Any]]:
    from fitwire.contract.http import ClaimBody, NodeBody, StateBody, SubmitBody

    job, node = _ref("Job"), _ref("ListedNode")
    report = model_ref(NodeTelemetry)
    raw = {"200": {"description": "The artifact's bytes.",
                   "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}
    put_raw = _op("Job token: write its own checkpoint (raw bytes).", _ok(None, "204"), params=("kind", "name"))
    put_raw["requestBody"] = {"required": True, "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}}
    return {
        "/api/v1/jobs": {
            "get": _op("The caller's jobs, newest first (an admin's: everyone's).",
                       _ok(_obj(jobs={"type": "array", "items": job}))),
            "post": _op("Validate a job spec, store its bundle and queue it (confirmed, persistent).",
                        _ok(job, "201"), SubmitBody),
        },
        "/api/v1/jobs/{job_id}": {"get": _op("One job (its owner, an admin or a node).", _ok(job), params=("job_id",))},
        "/api/v1/jobs/{job_id}/cancel": {"post": _op("Cancel a queued job.", _ok(job), params=("job_id",))},
        "/api/v1/jobs/{job_id}/claim": {"post": _op(
            "Node: start a queued job of its pools, once per broker delivery; returns the stored job, "
            "a job token for its child (its run, bundle and checkpoint only) and the child's broker login.",
            _ok(_obj(job=job, token=_S, amqp_url=_S)), ClaimBody, params=("job_id",))},
        "/api/v1/jobs/{job_id}/state": {"put": _op("Node: report the job's state.", _ok(job), StateBody,
                                                   params=("job_id",))},
        "/api/v1/dead-letters": {
            "get": _op("Admin: what jobs.dead holds (?limit=N, default 100), left in place; undecodable ones too.",
                       _ok(_obj(total=_I, dead_letters={"type": "array", "items": _ref("DeadLetter")}))),
            "delete": _op("Admin: empty jobs.dead (the jobs stay dead in the store).", _ok(_obj(purged=_I))),
        },
        "/api/v1/nodes": {
            "get": _op("Admin: every node with its last report.", _ok(_obj(nodes={"type": "array", "items": node}))),
            "post": _op("Admin: register a node; its token is shown once.",
                        _ok(_obj(node_id=_S, name=_S, token=_S, created_at=_T), "201"), NodeBody),
        },
        "/api/v1/nodes/{node_id}": {"get": _op("Admin: one node.", _ok(node), params=("node_id",))},
        "/api/v1/nodes/{node_id}/revoke": {"post": _op(
            "Admin: revoke the node's token (HTTP at once, broker logins within the broker's cache TTL).",
            _ok(node), params=("node_id",))},
        "/api/v1/nodes/hello": {"post": _op(
            "Node: an agent starting; refused (400) unless its wire-contract version is accepted. Records its "
            "pools and names its broker login.",
            _ok(_obj(node=node, protocol_versions={"type": "array", "items": _I}, amqp_url=_S)), report)},
        "/api/v1/nodes/telemetry": {"post": _op("Node: a telemetry report.", _ok(None, "204"), report)},
        "/api/v1/artifacts/{kind}/{name}": {
            "get": _op("Admin, or a job token (its own): a bundle (bundles/<id>) or checkpoint (checkpoints/<job id>).",
                       raw,
                       params=("kind", "name")),
            "put": put_raw,
        },
    }


__all__ = ["agent_paths", "agent_schemas"]
