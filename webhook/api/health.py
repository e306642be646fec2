"""Health, the caller's session (broker URL, protocol versions) and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g

from fitwire import __version__
from fitwire.contract.entities import Session
from fitwire.contract.version import SUPPORTED_VERSIONS
from fitwire.webhook.api.broker_auth import login_url
from fitwire.webhook.api.common import bearer_token, store, to_json
from fitwire.webhook.api.nodes import job_login_url, user_or_job
from fitwire.webhook.api.web_client import stomp_url
from fitwire.webhook.openapi import openapi_document

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> tuple[dict[str, Any], int]:
    """200 when the store answers, 503 (TEMPORARILY_UNAVAILABLE) when it does not; no auth."""
    store().ping()
    return {"status": "ok", "version": __version__, "store": store().kind}, 200


@bp.get("/api/v1/session")
@user_or_job
def session() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Who the token is, and the broker with this user's own login (the Tracker and CLI learn it here).

    The login is the user's name and the token of this request, checked by the webhook when
    the broker asks (``broker_auth``); never the webhook's own account, never guest. Only a
    webhook configured for an unauthenticated developer broker (``BROKER_LOGINS=shared``)
    hands out its ``AMQP_URL`` as it is.
    """
    amqp_url = current_app.config["AMQP_URL"]
    if g.job is not None:  # a job's child: its owner, and the job's own broker login
        amqp_url = job_login_url(g.job, bearer_token() or "")
    elif current_app.config["BROKER_LOGINS"] != "shared":
        amqp_url = login_url(amqp_url, g.user.username, bearer_token() or "")
    body = Session(user=g.user, amqp_url=amqp_url, protocol_versions=list(SUPPORTED_VERSIONS),
                   stomp_url=stomp_url())  # browsers: Web STOMP, with the same login as amqp_url
    return to_json(body), 200, {"Cache-Control": "no-store"}  # it carries a credential


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return openapi_document()
