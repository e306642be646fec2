"""Trainer nodes: node tokens (an admin registers a machine once), hello with the wire-contract
check, telemetry reports, and the admins' view of every node's last report."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, current_app, g, request

from fitwire.broker.topology import job_username, node_username
from fitwire.contract import DecodeError, NodeTelemetry, decode, new_id
from fitwire.contract.entities import ListedNode
from fitwire.contract.errors import BadRequest, Unauthenticated
from fitwire.contract.http import NodeBody
from fitwire.contract.version import SUPPORTED_VERSIONS
from fitwire.webhook.api.broker_auth import login_url
from fitwire.webhook.api.common import (
    admin_only,
    bearer_token,
    iso,
    now,
    parse_body,
    store,
    to_json,
)
from fitwire.webhook.security import hash_secret, new_secret
from fitwire.webhook.store.base import Job, Node
from fitwire.webhook.store.base import Unauthenticated as StoreUnauthenticated

bp = Blueprint("nodes", __name__, url_prefix="/api/v1")

F = TypeVar("F", bound=Callable[..., Any])


def token_expires_at(node: Node) -> datetime:
    """When the node's token lapses: ``NODE_TOKEN_TTL_SECONDS`` after the node was last seen.

    Every hello and telemetry report renews it (a working agent reports every few seconds),
    so only a token nobody uses lapses; an admin revokes one at once (``revoke``)."""
    return (node.last_seen or node.created_at) + timedelta(seconds=float(current_app.config["NODE_TOKEN_TTL_SECONDS"]))


def live_node(token_hash: str) -> Node:
    """The node of a node token that is neither revoked nor lapsed. Raises: Unauthenticated."""
    node = store().node_for_token(token_hash)
    if token_expires_at(node) <= now():
        raise Unauthenticated(f"Node {node.node_id}'s token lapsed (unused since {iso(node.last_seen or node.created_at)}); "
                              "an admin creates a new node (`fitwire nodes create`).")
    return node


def node_only(view: F) -> F:
    """Require a live node token; the node is ``g.node``."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise Unauthenticated("This needs an 'Authorization: Bearer <node token>' header.")
        g.node = live_node(hash_secret(token))
        g.user = g.job = None
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def user_or_node(view: F) -> F:
    """A user's token (``g.user``), a node's (``g.node``) or a running job's (``g.job``, its owner ``g.user``).

    A job token is scoped to its job: each view that accepts one checks it names that job's run,
    checkpoint or bundle (``job_may``)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        token = bearer_token()
        if token is None:
            raise Unauthenticated("This needs an 'Authorization: Bearer <token>' header; log in first.")
        token_hash = hash_secret(token)
        g.node = g.job = g.user = None
        try:
            g.user = store().user_for_token(token_hash, now())
        except StoreUnauthenticated:
            try:
                g.job = store().job_for_token(token_hash)
            except StoreUnauthenticated:
                g.node = live_node(token_hash)
            else:
                g.user = store().get_user(g.job.owner_id)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def user_or_job(view: F) -> F:
    """A user's token, or a running job's (``g.job`` set, ``g.user`` its owner); never a node's."""

    @user_or_node
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if g.node is not None:
            raise Unauthenticated("A node token cannot do this; it needs a user's token.")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def job_login_url(job: Job, token: str) -> str:
    """The broker login a job's child uses (``job.<job id>`` with its job token), or the shared one."""
    amqp_url = str(current_app.config["AMQP_URL"])
    if current_app.config["BROKER_LOGINS"] == "shared":
        return amqp_url
    return login_url(amqp_url, job_username(job.job_id), token)


def node_json(node: Node) -> dict[str, Any]:
    """A node as the API shows it (:class:`ListedNode`): the entity and when its token lapses."""
    return to_json(ListedNode.of(node, token_expires_at(node)))


def telemetry_body() -> NodeTelemetry:
    """The body as a NodeTelemetry, refusing an unaccepted wire-contract version with a sentence naming ours."""
    raw = request.get_data()
    try:
        peek = json.loads(raw)
    except ValueError:
        raise BadRequest("The body is not valid JSON.") from None
    versions = [peek.get("protocol_version"), peek.get("v")] if isinstance(peek, dict) else []
    for version in versions:
        if version is not None and version not in SUPPORTED_VERSIONS:
            accepted = ", ".join(str(v) for v in SUPPORTED_VERSIONS)
            raise BadRequest(
                f"This server accepts wire-contract version {accepted} only; this agent speaks version "
                f"{version}. Install a fitwire agent that speaks version {accepted}."
            )
    try:
        return decode(raw, NodeTelemetry)
    except DecodeError as exc:
        raise BadRequest(f"The body is not a node report: {exc}.") from None


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


@bp.post("/nodes/<node_id>/revoke")
@admin_only
def revoke(node_id: str) -> dict[str, Any]:
    """Revoke the node's token: its HTTP calls get 401 at once, its broker logins are refused
    once the broker's cache of earlier answers (30 s) has run out."""
    return node_json(store().revoke_node(node_id, now()))


@bp.post("/nodes/hello")
@node_only
def hello() -> tuple[dict[str, Any], int, dict[str, str]]:
    """An agent starting: checks its wire-contract version, records its pools (the only job queues the
    broker lets it consume) and tells it its broker login: ``node.<node id>`` with its own node token."""
    report = telemetry_body()
    node = store().report_node(g.node.node_id, report.model_dump(mode="json"), agent_version=report.agent_version,
                               protocol_version=report.protocol_version, now=now(), pools=tuple(report.pools))
    amqp_url = str(current_app.config["AMQP_URL"])
    if current_app.config["BROKER_LOGINS"] != "shared":
        amqp_url = login_url(amqp_url, node_username(node.node_id), bearer_token() or "")
    body = {"node": node_json(node), "protocol_versions": list(SUPPORTED_VERSIONS), "amqp_url": amqp_url}
    return body, 200, {"Cache-Control": "no-store"}  # it carries a credential


@bp.post("/nodes/telemetry")
@node_only
def telemetry() -> tuple[str, int]:
    report = telemetry_body()
    store().report_node(g.node.node_id, report.model_dump(mode="json"), agent_version=report.agent_version,
                        protocol_version=report.protocol_version, now=now())
    return "", 204
