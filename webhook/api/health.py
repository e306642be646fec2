"""Health, the caller's session (broker URL, protocol versions) and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, g

from fitwire import __version__
from fitwire.broker.topology import SUPPORTED_VERSIONS
from fitwire.webhook.api.common import authenticated, store, user_json
from fitwire.webhook.openapi import openapi_document

bp = Blueprint("health", __name__)


@bp.get("/health")
def health() -> tuple[dict[str, Any], int]:
    """200 when the store answers, 503 (TEMPORARILY_UNAVAILABLE) when it does not; no auth."""
    store().ping()
    return {"status": "ok", "version": __version__, "store": store().kind}, 200


@bp.get("/api/v1/session")
@authenticated
def session() -> dict[str, Any]:
    """Who the token is, and where the broker is (the Tracker and CLI learn the AMQP URL here)."""
    return {
        "user": user_json(g.user),
        "amqp_url": current_app.config["AMQP_URL"],
        "protocol_versions": list(SUPPORTED_VERSIONS),
    }


@bp.get("/openapi.json")
def openapi() -> dict[str, Any]:
    return openapi_document()
