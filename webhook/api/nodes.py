"""Trainer nodes: node tokens (an admin registers a machine once), hello with the wire-contract
check, telemetry reports, and the admins' view of every node's last report."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, g, request

from fitwire.broker import DecodeError, NodeTelemetry, decode, new_id
from fitwire.broker.topology import SUPPORTED_VERSIONS
from fitwire.webhook.api.common import (
    Body,
    Name,
    admin_only,
    bearer_token,
    iso,
    now,
    parse_body,
    store,
)
from fitwire.webhook.security import hash_secret, new_secret
from fitwire.webhook.store.base import InvalidRequest, Node, Unauthenticated

bp = Blueprint("nodes", __name__, url_prefix="/api/v1")

F = TypeVar("F", bound=Callable[..., Any])


def node_only(view: F) -> F:
    """Require a node token; the node is ``g.node``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise Unauthenticated("This needs an 'Authorization: Bearer <node token>' header.")
        g.node = store().node_for_token(hash_secret(token))
        g.user = None
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def user_or_node(view: F) -> F:
    """A user's token (``g.user``) or a node's (``g.node``)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise Unauthenticated("This needs an 'Authorization: Bearer <token>' header; log in first.")
        token_hash = hash_secret(token)
        g.node = None
        try:
            g.user = store().user_for_token(token_hash, now())
        except Unauthenticated:
            g.user = None
            g.node = store().node_for_token(token_hash)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def node_json(node: Node) -> dict[str, Any]:
    return {
        "node_id": node.node_id, "name": node.name, "created_at": iso(node.created_at),
        "last_seen": iso(node.last_seen), "agent_version": node.agent_version,
        "protocol_version": node.protocol_version, "telemetry": node.telemetry,
    }


def telemetry_body() -> NodeTelemetry:
    """The body as a NodeTelemetry, refusing an unaccepted wire-contract version with a sentence naming ours."""
    raw = request.get_data()
    try:
        peek = json.loads(raw)
    except ValueError:
        raise InvalidRequest("The body is not valid JSON.") from None
    versions = [peek.get("protocol_version"), peek.get("v")] if isinstance(peek, dict) else []
    for version in versions:
        if version is not None and version not in SUPPORTED_VERSIONS:
            accepted = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
            raise InvalidRequest(
                f"This server accepts wire-contract version {accepted} only; this agent speaks version "
                f"{version}. Install a fitwire agent that speaks version {accepted}."
            )
    try:
        return decode(raw, NodeTelemetry)
    except DecodeError as exc:
        raise InvalidRequest(f"The body is not a node report: {exc}.") from None


class NodeBody(Body):
    name: Name


@bp.post("/nodes")
@admin_only
def create_node() -> tuple[dict[str, Any], int]:
    """201 ``{"node_id", "name", "token", "created_at"}``; the token is shown this once."""
    body = parse_body(NodeBody)
    secret = new_secret()
    node = store().create_node(new_id()[:16], body.name, hash_secret(secret), g.user.id, now())
    return {"node_id": node.node_id, "name": node.name, "token": secret, "created_at": iso(node.created_at)}, 201


@bp.get("/nodes")
@admin_only
def list_nodes() -> dict[str, Any]:
    return {"nodes": [node_json(n) for n in store().list_nodes()]}


@bp.get("/nodes/<node_id>")
@admin_only
def get_node(node_id: str) -> dict[str, Any]:
    return node_json(store().get_node(node_id))


@bp.post("/nodes/hello")
@node_only
def hello() -> dict[str, Any]:
    """An agent starting: checks its wire-contract version, keeps its first report."""
    report = telemetry_body()
    node = store().report_node(g.node.node_id, report.model_dump(mode="json"), agent_version=report.agent_version,
                               protocol_version=report.protocol_version, now=now())
    return {"node": node_json(node), "protocol_versions": list(SUPPORTED_VERSIONS)}


@bp.post("/nodes/telemetry")
@node_only
def telemetry() -> tuple[str, int]:
    report = telemetry_body()
    store().report_node(g.node.node_id, report.model_dump(mode="json"), agent_version=report.agent_version,
                        protocol_version=report.protocol_version, now=now())
    return "", 204
